"""Schema migrations (Alembic) run from code, against the engine OneScreen is configured with.

Revision NNNN upgrades with data/sql/NNNN_*.sql, its own copies, frozen once it landed: a later
revision that changes a function runs a copy of its own, and its downgrade runs the earlier
revision's copy of that function.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from data.engine import psycopg_connection
from data.errors import PostgisMissing, SchemaOutOfDate

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQL_DIR = Path(__file__).resolve().parent / "sql"


def run_sql_file(bind: sa.Connection, name: str) -> None:
    """Execute one file of data/sql verbatim (no bind-parameter parsing, several statements)."""
    sql = (SQL_DIR / name).read_text(encoding="utf-8")
    psycopg_connection(bind).execute(sql)


def run_sql_function(bind: sa.Connection, name: str, *, function: str) -> None:
    """Execute one `CREATE OR REPLACE FUNCTION function(…) … END $$;` of a data/sql file."""
    # a downgrade restores one function from the earlier revision's file: the whole file would
    # also create its tables and triggers again
    text = (SQL_DIR / name).read_text(encoding="utf-8")
    start = text.index(f"CREATE OR REPLACE FUNCTION {function}(")
    end = text.index("END $$;", start) + len("END $$;")
    psycopg_connection(bind).execute(text[start:end])


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return str(script.get_current_head())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Bring the schema to `revision`, creating PostGIS first when the role is allowed to."""
    with engine.begin() as conn:
        has_postgis = conn.execute(
            sa.text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
        ).scalar_one_or_none()
        if not has_postgis:
            try:
                with conn.begin_nested():
                    conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
            except sa.exc.DBAPIError as exc:
                raise PostgisMissing(
                    "cannot create the PostGIS extension "
                    f"({str(exc.orig).strip().splitlines()[0]}). Ask a superuser to run "
                    "`CREATE EXTENSION postgis;` in this database, or install the "
                    "postgresql-15-postgis-3 package."
                ) from None
        command.upgrade(_alembic_config(conn), revision)
    _provision_web_login(engine)


def _provision_web_login(engine: Engine) -> None:
    """Give the web role (revision 0004 on) its derived login now, so no web request runs DDL."""
    from data.scope import WEB_ROLE, provision_web_role

    with engine.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": WEB_ROLE}
        ).scalar_one_or_none()
    if not exists:
        return
    try:
        provision_web_role(engine)
    except sa.exc.DBAPIError as exc:
        # an owner without CREATEROLE: the administrator gives the login (README, Access)
        log.warning(
            "cannot give %s a login (%s): set ONESCREEN_WEB_DATABASE_URL to one an "
            "administrator made",
            WEB_ROLE,
            str(exc.orig).strip().splitlines()[0],
        )


def downgrade(engine: Engine, *, revision: str) -> None:
    """Take the schema back to `revision` (each revision's downgrade in turn)."""
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at the code's head revision."""
    current = current_revision(engine)
    if current != head_revision():
        raise SchemaOutOfDate(
            f"database schema is at {current or 'nothing'}, code expects {head_revision()}: "
            "run `python cli.py db upgrade`"
        )
