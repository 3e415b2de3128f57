"""The database's clock: what "now" means for a read."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.checks import InvalidQuery

CITY_TZ = ZoneInfo("Asia/Shanghai")


def at_or_now(conn: sa.Connection, at: datetime | None) -> datetime:
    """`at` when given, else the database's now() on `conn`."""
    return at if at is not None else conn.execute(sa.text("SELECT now()")).scalar_one()


def database_now(engine: Engine) -> datetime:
    """The database's clock (the simulator and ingest stamp readings with it)."""
    with engine.connect() as conn:
        return at_or_now(conn, None)


def parse_moment(text: str) -> datetime:
    """A moment as written in a URL or on the command line: ISO 8601, Beijing time unless it
    says otherwise ("2026-12-03T20:00", "2026-12-03 20:00", "2026-12-03T12:00Z")."""
    try:
        moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"not a date and time: {str(text)[:40]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=CITY_TZ)
