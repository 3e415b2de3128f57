"""Schema migrations (Alembic) run from code, against the engine OneScreen is configured with.

Revision NNNN upgrades with data/sql/NNNN_*.sql, its own copies, frozen once it landed: a later
revision that changes a function runs a copy of its own, and its downgrade runs the earlier
revision's copy of that function.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from data.engine import psycopg_connection
from data.errors import PostgisMissing, SchemaOutOfDate

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQL_DIR = Path(__file__).resolve().parent / "sql"


# Revisions 0001–0005 landed asking for data/sql files by the names those had then, and
# `reading_trigger.sql` meant one text to 0001 and another to 0002. Landed revisions never
# change, so the name they ask for is resolved here, by who asks, to the copy frozen for it.
# (0004 and 0005 also read `002_functions.sql` directly on downgrade: in data/sql that name is
# a link to 0001_functions.sql.)
LANDED_NAMES = {
    ("0001", "001_schema.sql"): "0001_schema.sql",
    ("0001", "reading_trigger.sql"): "0001_reading_trigger.sql",
    ("0001", "002_functions.sql"): "0001_functions.sql",
    ("0002", "003_live.sql"): "0002_live.sql",
    ("0002", "reading_trigger.sql"): "0002_reading_trigger.sql",
    ("0003", "004_displays.sql"): "0003_displays.sql",
    ("0004", "005_access.sql"): "0004_access.sql",
    ("0005", "006_status.sql"): "0005_status.sql",
}
# functions a later revision replaced and whose landed downgrade does not put back: after a
# downgrade arrives at the revision, its own copy runs again (0002 left its reading trigger,
# which feeds rule_inbox, behind at 0001, so a database at 0001 rejected every reading)
RESTORED_AFTER_DOWNGRADE = {"0001": ("0001_reading_trigger.sql",)}


def sql_path(name: str, *, revision: str | None) -> Path:
    """The data/sql file that revision `revision` means by `name`."""
    return SQL_DIR / LANDED_NAMES.get((revision or "", name), name)


def run_sql_file(bind: sa.Connection, name: str) -> None:
    """Execute one file of data/sql verbatim (no bind-parameter parsing, several statements),
    as the revision calling it means it."""
    # landed revisions do not say who they are; each module holds its id in `revision`
    revision = sys._getframe(1).f_globals.get("revision")
    sql = sql_path(name, revision=revision).read_text(encoding="utf-8")
    psycopg_connection(bind).execute(sql)


def function_text(name: str, function: str) -> str:
    """The `CREATE OR REPLACE FUNCTION` statement of `function` in data/sql file `name` (its last
    definition there): how a downgrade puts back a function as an earlier revision wrote it."""
    text = (SQL_DIR / name).read_text(encoding="utf-8")
    start = text.rindex(f"CREATE OR REPLACE FUNCTION {function}(")
    return text[start : text.index("END $$;", start) + len("END $$;")]


def after_step(
    ctx: MigrationContext,
    step: MigrationInfo,
    heads: Collection[Any],
    run_args: Mapping[str, Any],
) -> None:
    """Alembic's `on_version_apply`: after a downgrade, restore what RESTORED_AFTER_DOWNGRADE
    says the revision it arrived at needs."""
    del heads, run_args  # what alembic also passes
    if step.is_upgrade or ctx.connection is None:
        return
    for revision in step.down_revision_ids:
        for name in RESTORED_AFTER_DOWNGRADE.get(revision, ()):
            text = (SQL_DIR / name).read_text(encoding="utf-8")
            psycopg_connection(ctx.connection).execute(text)


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
