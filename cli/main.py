"""The parser built from the command groups, and `main`, which runs one command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cli import (
    city,
    db,
    displays,
    ingest_admin,
    processes,
    resources,
    review,
    rules,
    serve,
    users,
)
from cli.common import Handler
from config import ConfigError, load_settings
from data.errors import OneScreenError
from data.safe_text import install_log_escaping

# in the order `--help` lists them
COMMAND_GROUPS = (
    db, city, serve, processes, ingest_admin, displays, users, rules, resources, review,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cli.py", description="OneScreen 一屏观全城 — city operations dashboard."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors a user can fix print one line and exit non-zero."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # usernames, topics and reasons reach the logs: no control character gets through raw
    install_log_escaping()
    handler: Handler = args.handler
    try:
        return handler(args, load_settings())
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except OneScreenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
