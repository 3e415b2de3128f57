"""`python cli.py …`: the OneScreen command line (the commands live in the `cli/` package).

Run as a script only: `import cli` anywhere, this file's own `from cli.main …` included, finds
the package, since Python prefers a package directory over a module of the same name.
"""

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main())
