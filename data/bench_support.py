"""SQL the benchmarks need beside the app's own: a trigger-free twin of `reading` for plain COPY."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.writes import ReadingBatch, copy_readings, readings_copy_payload

BASELINE_TABLE = "reading_copy_baseline"


def create_copy_baseline(engine: Engine) -> None:
    """A partitioned table shaped like `reading` (same key and partitions) but with no trigger."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {BASELINE_TABLE}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {BASELINE_TABLE} (LIKE reading INCLUDING DEFAULTS"
                " INCLUDING CONSTRAINTS) PARTITION BY RANGE (ts)"
            )
        )
        conn.execute(sa.text(f"ALTER TABLE {BASELINE_TABLE} ADD PRIMARY KEY (device_id, ts)"))
        bounds = conn.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'reading'::regclass"
            )
        ).all()
        for name, bound in bounds:
            conn.execute(
                sa.text(f"CREATE TABLE {name}_baseline PARTITION OF {BASELINE_TABLE} {bound}")
            )


def copy_into_baseline(engine: Engine, batch: ReadingBatch, *, payload: bytes) -> int:
    """Plain COPY of a prepared payload into the baseline table."""
    with engine.begin() as conn:
        return copy_readings(conn, batch, table=BASELINE_TABLE, payload=payload)


def drop_copy_baseline(engine: Engine) -> None:
    """Remove the baseline table and its partitions."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {BASELINE_TABLE}"))


def delete_readings_of(engine: Engine, *, device_ids: list[int]) -> None:
    """Remove readings of some devices (the bench writes the same rows twice)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM reading WHERE device_id = ANY(:ids)"), {"ids": device_ids}
        )


__all__ = [
    "BASELINE_TABLE",
    "copy_into_baseline",
    "create_copy_baseline",
    "delete_readings_of",
    "drop_copy_baseline",
    "readings_copy_payload",
]
