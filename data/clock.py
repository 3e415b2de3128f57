"""The database's clock: what "now" means for a read."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def at_or_now(conn: sa.Connection, at: datetime | None) -> datetime:
    """`at` when given, else the database's now() on `conn`."""
    return at if at is not None else conn.execute(sa.text("SELECT now()")).scalar_one()


def database_now(engine: Engine) -> datetime:
    """The database's clock (the simulator and ingest stamp readings with it)."""
    with engine.connect() as conn:
        return at_or_now(conn, None)
