"""Errors the data layer raises with a message fit to show a user."""


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
