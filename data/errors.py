"""Errors the data layer raises with a message fit to show a user, and how a failed read is told."""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy.exc import DBAPIError, SQLAlchemyError


class OneScreenError(RuntimeError):
    """Base class: the message is the whole story, no traceback needed."""


class DatabaseUnavailable(OneScreenError):
    """The configured database cannot be reached or logged into."""


class PostgisMissing(OneScreenError):
    """The server has no PostGIS extension, or the role may not create it."""


class EmbeddedClusterError(OneScreenError):
    """The project-managed PostgreSQL cluster could not be created, started or stopped."""


class AlreadySeeded(OneScreenError):
    """The database already holds a synthetic city; re-seeding needs --reset."""


class SchemaOutOfDate(OneScreenError):
    """The database schema is older than the code; run `python cli.py db upgrade`."""


# what a read of the store may raise that a caller shows as "unavailable" rather than a crash
# (InvalidQuery, a bad argument from a browser, is a ValueError)
READ_ERRORS = (OneScreenError, SQLAlchemyError, ValueError, KeyError)


def database_down(exc: BaseException) -> bool:
    """Whether `exc` says the database is down (an outage, not a bug)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def report_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed read: one line when the database is down, the traceback otherwise."""
    if database_down(exc):
        logger.warning("%s: database unavailable: %s", what, _first_line(exc))
    else:
        logger.error("%s", what, exc_info=exc)
