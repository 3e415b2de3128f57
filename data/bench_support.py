"""SQL the benchmarks need beside the app's own: a trigger-free twin of `reading` for plain COPY."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.engine import create_db_engine
from data.writes import ReadingBatch, copy_into_partitions, ensure_reading_partitions

BASELINE_TABLE = "reading_copy_baseline"


def fresh_database(cluster_url: str, *, name: str) -> str:
    """Drop and recreate database `name` on the server of `cluster_url`; return its URL."""
    server = cluster_url.rsplit("/", 1)[0]
    admin = create_db_engine(f"{server}/postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def create_copy_baseline(engine: Engine) -> None:
    """A partitioned table shaped like `reading` (same columns and key) with no trigger."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {BASELINE_TABLE}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {BASELINE_TABLE} (LIKE reading INCLUDING DEFAULTS"
                " INCLUDING CONSTRAINTS) PARTITION BY RANGE (ts)"
            )
        )
        conn.execute(sa.text(f"ALTER TABLE {BASELINE_TABLE} ADD PRIMARY KEY (device_id, ts)"))


def copy_into_baseline(engine: Engine, batch: ReadingBatch) -> int:
    """Plain COPY of the batch into the baseline's daily partitions, as the bulk loader does."""
    with engine.begin() as conn:
        _ensure_baseline_partitions(conn, batch)
        copy_into_partitions(conn, batch, partition_suffix="_baseline")
    return len(batch)


def _ensure_baseline_partitions(conn: sa.Connection, batch: ReadingBatch) -> None:
    start, end = batch.time_range()
    ensure_reading_partitions(conn, start=start, end=end)
    missing = conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'reading'::regclass"
            " AND to_regclass(c.relname || '_baseline') IS NULL"
        )
    ).all()
    for name, bound in missing:
        conn.execute(sa.text(f"CREATE TABLE {name}_baseline PARTITION OF {BASELINE_TABLE} {bound}"))


def drop_copy_baseline(engine: Engine) -> None:
    """Remove the baseline table and its partitions."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {BASELINE_TABLE}"))


def settle(engine: Engine) -> None:
    """VACUUM ANALYZE and CHECKPOINT, so timings do not race autovacuum after a bulk load."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        conn.execute(sa.text("CHECKPOINT"))
