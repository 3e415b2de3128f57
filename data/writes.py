"""Bulk writes: devices, readings (binary COPY), incidents, status refresh, retention, metadata."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

# microseconds between the Unix epoch and PostgreSQL's (2000-01-01)
_PG_OFFSET_US = 946_684_800_000_000

# One row of PostgreSQL's binary COPY format for (bigint, timestamptz, float8, int2):
# a field count, then (length, big-endian value) per field. Built whole by numpy, so formatting
# costs ~nothing next to the server's work.
_READING_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("len_device", ">i4"),
        ("device_id", ">i8"),
        ("len_ts", ">i4"),
        ("ts", ">i8"),
        ("len_value", ">i4"),
        ("value", ">f8"),
        ("len_quality", ">i4"),
        ("quality", ">i2"),
    ]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"

READING_COLUMNS = "(device_id, ts, value, quality)"


@dataclass(frozen=True)
class ReadingBatch:
    """Columnar readings: device ids, UTC timestamps in microseconds since 1970, values, quality."""

    device_id: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray
    quality: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.device_id)
        if not (len(self.ts_us) == len(self.value) == len(self.quality) == n):
            raise ValueError("ReadingBatch columns must have the same length")
        if n and not np.isfinite(self.value).all():
            raise ValueError("ReadingBatch values must be finite numbers")

    def __len__(self) -> int:
        return len(self.device_id)

    def time_range(self) -> tuple[datetime, datetime]:
        """Earliest and latest timestamp of the batch as aware UTC datetimes."""
        low, high = int(self.ts_us.min()), int(self.ts_us.max())
        return _us_to_datetime(low), _us_to_datetime(high)


def _us_to_datetime(us: int) -> datetime:
    return pd.Timestamp(us, unit="us", tz="UTC").to_pydatetime()


def readings_copy_payload(batch: ReadingBatch) -> bytes:
    """The batch as one binary COPY stream."""
    rows = np.empty(len(batch), dtype=_READING_ROW)
    rows["fields"] = 4
    rows["len_device"] = 8
    rows["device_id"] = batch.device_id
    rows["len_ts"] = 8
    rows["ts"] = batch.ts_us.astype(np.int64) - _PG_OFFSET_US
    rows["len_value"] = 8
    rows["value"] = batch.value
    rows["len_quality"] = 2
    rows["quality"] = batch.quality
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def ensure_reading_partitions(conn: sa.Connection, *, start: datetime, end: datetime) -> int:
    """Create the daily partitions that [start, end] needs; returns how many were new."""
    return int(
        conn.execute(
            sa.text("SELECT ensure_reading_partitions(:start, :end)"),
            {"start": start, "end": end},
        ).scalar_one()
    )


def copy_readings(
    conn: sa.Connection,
    batch: ReadingBatch,
    *,
    table: str = "reading",
    payload: bytes | None = None,
) -> int:
    """COPY a batch into `reading` (rollups and latest state follow via the insert trigger)."""
    if len(batch) == 0:
        return 0
    if table not in ("reading", "reading_copy_baseline"):
        raise ValueError(f"unexpected target table {table!r}")
    if table == "reading":
        start, end = batch.time_range()
        ensure_reading_partitions(conn, start=start, end=end)
    data = payload if payload is not None else readings_copy_payload(batch)
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} {READING_COLUMNS} FROM STDIN (FORMAT BINARY)") as copy:
        # a few large writes: psycopg sends each as CopyData messages
        view = memoryview(data)
        step = 8 << 20
        for offset in range(0, len(data), step):
            copy.write(view[offset : offset + step])
    return len(batch)


def insert_readings(conn: sa.Connection, batch: ReadingBatch) -> int:
    """Insert a batch idempotently: a reading already stored (same device and instant) is skipped.

    Returns how many rows were new; the insert trigger counts only those into the rollups.
    """
    if len(batch) == 0:
        return 0
    start, end = batch.time_range()
    ensure_reading_partitions(conn, start=start, end=end)
    result = conn.execute(
        sa.text(
            "INSERT INTO reading (device_id, ts, value, quality)"
            " SELECT d, timestamptz 'epoch' + t * interval '1 microsecond', v, q"
            " FROM unnest(CAST(:d AS bigint[]), CAST(:t AS bigint[]), CAST(:v AS float8[]),"
            "             CAST(:q AS smallint[])) AS b(d, t, v, q)"
            " ON CONFLICT (device_id, ts) DO NOTHING"
        ),
        {
            "d": batch.device_id.astype(np.int64).tolist(),
            "t": batch.ts_us.astype(np.int64).tolist(),
            "v": batch.value.astype(np.float64).tolist(),
            "q": batch.quality.astype(np.int16).tolist(),
        },
    )
    return int(result.rowcount)


def copy_rows(
    conn: sa.Connection, *, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY plain rows (text format) into `table`; geometry columns take EWKT strings."""
    column_list = ", ".join(columns)
    cursor = conn.connection.driver_connection.cursor()
    count = 0
    with cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def insert_devices(conn: sa.Connection, devices: pd.DataFrame) -> int:
    """Insert the devices frame (id, code, type_id, district_adcode, street_code, cell, …)."""
    columns = [
        "id",
        "code",
        "type_id",
        "district_adcode",
        "street_code",
        "cell",
        "installed_on",
        "status",
        "geom",
    ]
    geoms = [
        f"SRID=4326;POINT({lon:.7f} {lat:.7f})"
        for lon, lat in zip(devices["lon"].to_numpy(), devices["lat"].to_numpy(), strict=True)
    ]
    cells = devices["cell"].astype("Int64")
    rows = zip(
        devices["id"].tolist(),
        devices["code"].tolist(),
        devices["type_id"].tolist(),
        devices["district_adcode"].tolist(),
        devices["street_code"].tolist(),
        [None if pd.isna(c) else int(c) for c in cells],
        devices["installed_on"].tolist(),
        devices["status"].tolist(),
        geoms,
        strict=True,
    )
    count = copy_rows(conn, table="device", columns=columns, rows=rows)
    conn.execute(
        sa.text(
            "SELECT setval(pg_get_serial_sequence('device', 'id'),"
            " (SELECT coalesce(max(id), 0) + 1 FROM device), false)"
        )
    )
    return count


def insert_incidents(conn: sa.Connection, incidents: pd.DataFrame, events: pd.DataFrame) -> int:
    """Insert generated incidents and their event history (ids are the frame's `id`)."""
    incident_columns = [
        "id",
        "device_id",
        "type_id",
        "category_code",
        "district_adcode",
        "street_code",
        "rule_code",
        "severity",
        "status",
        "title_zh",
        "title_en",
        "trigger_value",
        "threshold",
        "opened_at",
        "acknowledged_at",
        "resolved_at",
    ]
    frame = incidents[incident_columns].astype(object).where(incidents[incident_columns].notna(), None)
    geoms = [
        f"SRID=4326;POINT({lon:.7f} {lat:.7f})"
        for lon, lat in zip(incidents["lon"], incidents["lat"], strict=True)
    ]
    rows = (
        [*values, geom]
        for values, geom in zip(frame.itertuples(index=False, name=None), geoms, strict=True)
    )
    count = copy_rows(conn, table="incident", columns=[*incident_columns, "geom"], rows=rows)
    event_columns = ["incident_id", "at", "kind", "actor", "from_status", "to_status", "note"]
    event_frame = events[event_columns].astype(object).where(events[event_columns].notna(), None)
    copy_rows(
        conn,
        table="incident_event",
        columns=event_columns,
        rows=event_frame.itertuples(index=False, name=None),
    )
    conn.execute(
        sa.text(
            "SELECT setval(pg_get_serial_sequence('incident', 'id'),"
            " (SELECT coalesce(max(id), 0) + 1 FROM incident), false)"
        )
    )
    return count


def refresh_status(engine: Engine, *, at: datetime | None = None) -> int:
    """Recompute the per-street and per-cell device status snapshot; returns devices counted."""
    with engine.begin() as conn:
        if at is None:
            return int(conn.execute(sa.text("SELECT refresh_status()")).scalar_one())
        return int(conn.execute(sa.text("SELECT refresh_status(:at)"), {"at": at}).scalar_one())


def apply_retention(
    engine: Engine, *, today: date, reading_days: int, rollup_days: int
) -> list[str]:
    """Drop reading partitions and rollup rows older than the retention settings."""
    with engine.begin() as conn:
        dropped = list(
            conn.execute(
                sa.text("SELECT drop_reading_partitions_before(:keep_from)"),
                {"keep_from": today - timedelta(days=reading_days - 1)},
            ).scalars()
        )
        cutoff = {"cutoff": today - timedelta(days=rollup_days - 1)}
        conn.execute(
            sa.text("DELETE FROM rollup_street_15m WHERE bucket < city_midnight(:cutoff)"), cutoff
        )
        conn.execute(
            sa.text("DELETE FROM rollup_district_type_1h WHERE bucket < city_midnight(:cutoff)"),
            cutoff,
        )
        conn.execute(sa.text("DELETE FROM rollup_district_daily WHERE day < :cutoff"), cutoff)
    return dropped


def clear_city(engine: Engine) -> None:
    """Remove every device, reading, rollup and incident (reference geography stays)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "TRUNCATE incident_event, incident, cell_status, street_status,"
                " rollup_district_daily, rollup_district_type_1h, rollup_street_15m,"
                " device_latest, reading, device"
            )
        )
        conn.execute(sa.text("SELECT drop_reading_partitions_before('infinity'::date)"))
        conn.execute(sa.text("DELETE FROM app_meta WHERE key IN ('seed', 'status_as_of')"))


def has_devices(engine: Engine) -> bool:
    """True when any device is stored."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM device)")).scalar_one()


def get_meta(engine: Engine, *, key: str) -> Any | None:
    """A value from app_meta, or None."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT value FROM app_meta WHERE key = :key"), {"key": key}
        ).scalar_one_or_none()


def set_meta(conn: sa.Connection, *, key: str, value: Any) -> None:
    """Store a JSON value in app_meta."""
    conn.execute(
        sa.text(
            "INSERT INTO app_meta (key, value, updated_at)"
            " VALUES (:key, CAST(:value AS jsonb), now())"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"
        ),
        {"key": key, "value": json.dumps(value, default=str)},
    )


def analyze(engine: Engine) -> None:
    """Refresh planner statistics after a bulk load."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
