"""`python -m cli …`: the OneScreen command line."""

import sys

from cli.main import main

sys.exit(main())
