"""What several command groups share: engines, SIGTERM handling, the Redis a `serve` started."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from config import Settings

if TYPE_CHECKING:
    import sqlalchemy as sa

# argparse has no public name for the object add_subparsers() returns
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace, Settings], int]


def open_engine(settings: Settings) -> sa.Engine:
    """An engine on the configured database (starting the embedded cluster if need be)."""
    from data.engine import check_database, create_db_engine, resolve_database_url

    engine = create_db_engine(resolve_database_url(settings))
    check_database(engine, require_postgis=False)
    return engine


def current_engine(settings: Settings) -> sa.Engine:
    """`open_engine`, refusing a schema older than the code."""
    from data import migrate

    engine = open_engine(settings)
    migrate.require_current_schema(engine)
    return engine


def background_engine(engine: sa.Engine) -> sa.Engine:
    """An engine on the same database for the background jobs (see create_background_engine)."""
    from data.engine import create_background_engine

    return create_background_engine(engine.url.render_as_string(hide_password=False))


def terminate_on_sigterm() -> None:
    """Make SIGTERM stop a long-running command as Ctrl-C does."""
    import signal

    def interrupt(_signum, _frame):
        # shutting down already: a second SIGTERM (e.g. to the whole process group while the
        # interpreter waits for its threads) must not abort the shutdown with a traceback
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def adopt_redis(url: str) -> None:
    """Name the Redis at `url` in the environment the children of this process start with
    (this process passes it on in its settings)."""
    import os

    os.environ["ONESCREEN_REDIS_URL"] = url


def display_url(base_url: str, *, kind: str, token: str) -> str:
    """The address a wall or kiosk opens with its token."""
    return f"{base_url.rstrip('/')}/{kind}?token={token}"
