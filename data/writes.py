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

from data.engine import psycopg_connection

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


def _copy_binary(conn: sa.Connection, *, table: str, batch: ReadingBatch) -> None:
    data = readings_copy_payload(batch)
    cursor = psycopg_connection(conn).cursor()
    with cursor.copy(f"COPY {table} {READING_COLUMNS} FROM STDIN (FORMAT BINARY)") as copy:
        # a few large writes: psycopg sends each as CopyData messages
        view = memoryview(data)
        step = 8 << 20
        for offset in range(0, len(data), step):
            copy.write(view[offset : offset + step])


def copy_readings(conn: sa.Connection, batch: ReadingBatch) -> int:
    """COPY a batch into `reading` (rollups and latest state follow via the insert trigger)."""
    if len(batch) == 0:
        return 0
    start, end = batch.time_range()
    ensure_reading_partitions(conn, start=start, end=end)
    _copy_binary(conn, table="reading", batch=batch)
    return len(batch)


class UnknownDevices(ValueError):
    """A batch names device ids the store does not know; nothing of it was written."""


@dataclass(frozen=True)
class DeviceIndex:
    """Device attributes as sorted arrays, for vectorised look-ups by device id."""

    ids: np.ndarray
    type_id: np.ndarray
    street: np.ndarray  # index into street_codes
    district: np.ndarray  # index into district_codes
    category: np.ndarray  # index into category_codes
    normal_min: np.ndarray
    normal_max: np.ndarray
    alarm_min: np.ndarray  # NaN where the type has no lower alarm
    alarm_max: np.ndarray
    street_codes: np.ndarray
    district_codes: np.ndarray
    category_codes: np.ndarray


def load_device_index(conn: sa.Connection, *, low: int = 0, high: int = 2**62) -> DeviceIndex:
    """Attributes and thresholds of devices with ids in [low, high]."""
    result = conn.execute(
        sa.text(
            "SELECT d.id, d.type_id, d.street_code, d.district_adcode, t.category_code,"
            " t.normal_min, t.normal_max, t.alarm_min, t.alarm_max"
            " FROM device d JOIN device_type t ON t.id = d.type_id"
            " WHERE d.id BETWEEN :low AND :high ORDER BY d.id"
        ),
        {"low": int(low), "high": int(high)},
    )
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    streets, street_index = np.unique(frame["street_code"].to_numpy(dtype=str), return_inverse=True)
    districts, district_index = np.unique(
        frame["district_adcode"].to_numpy(dtype=str), return_inverse=True
    )
    categories, category_index = np.unique(
        frame["category_code"].to_numpy(dtype=str), return_inverse=True
    )
    return DeviceIndex(
        ids=frame["id"].to_numpy(dtype=np.int64),
        type_id=frame["type_id"].to_numpy(dtype=np.int64),
        street=street_index,
        district=district_index,
        category=category_index,
        normal_min=frame["normal_min"].to_numpy(dtype=float),
        normal_max=frame["normal_max"].to_numpy(dtype=float),
        alarm_min=frame["alarm_min"].astype(float).to_numpy(),
        alarm_max=frame["alarm_max"].astype(float).to_numpy(),
        street_codes=streets,
        district_codes=districts,
        category_codes=categories,
    )


def reading_levels(
    value: np.ndarray,
    *,
    normal_min: np.ndarray,
    normal_max: np.ndarray,
    alarm_min: np.ndarray,
    alarm_max: np.ndarray,
) -> np.ndarray:
    """0 normal / 1 warning / 2 alarm per reading: the SQL function reading_level, vectorised."""
    level = np.where((value > normal_max) | (value < normal_min), 1, 0).astype(np.int8)
    with np.errstate(invalid="ignore"):
        beyond = (value > alarm_max) | (value < alarm_min)  # NaN thresholds compare False
    level[beyond] = 2
    return level


def _pg_array(values: Iterable[object]) -> str:
    """A PostgreSQL array literal; the server parses it far faster than psycopg adapts a list.

    Only for values that need no quoting: numbers, and codes made of letters, digits and '_'.
    """
    return "{" + ",".join(map(str, values)) + "}"


_QUARTER_US = 900 * 1_000_000
_HOUR_US = 3600 * 1_000_000
_DAY_US = 86400 * 1_000_000
_CITY_OFFSET_US = 8 * _HOUR_US  # Asia/Shanghai is UTC+8 all year


def bulk_copy_readings(
    conn: sa.Connection, batch: ReadingBatch, *, devices: DeviceIndex | None = None
) -> int:
    """COPY a batch and apply its rollup and latest-state deltas computed here, vectorised.

    The bulk loader's twin of the insert trigger: the same checks and the same aggregates, but
    the per-row work runs in numpy and only the small aggregates travel to the server. Rows go
    straight into their daily partitions, which does not fire the trigger on `reading` (and
    skips its transition-table capture). Run it inside a transaction: all or nothing.
    """
    if len(batch) == 0:
        return 0
    if devices is None:
        devices = load_device_index(
            conn, low=int(batch.device_id.min()), high=int(batch.device_id.max())
        )
    position = np.searchsorted(devices.ids, batch.device_id)
    position = np.minimum(position, len(devices.ids) - 1) if len(devices.ids) else position
    known = (
        (devices.ids[position] == batch.device_id)
        if len(devices.ids)
        else np.zeros(len(batch), dtype=bool)
    )
    if not known.all():
        unknown = np.unique(batch.device_id[~known])
        raise UnknownDevices(
            f"batch rejected: {int((~known).sum())} reading(s) for {len(unknown)} unknown device "
            f"id(s), e.g. {unknown[:5].tolist()}"
        )
    level = reading_levels(
        batch.value,
        normal_min=devices.normal_min[position],
        normal_max=devices.normal_max[position],
        alarm_min=devices.alarm_min[position],
        alarm_max=devices.alarm_max[position],
    )
    copy_into_partitions(conn, batch)
    _apply_street_rollups(conn, batch, devices, position, level)
    _apply_type_rollups(conn, batch, devices, position, level)
    _apply_latest(conn, batch, level)
    return len(batch)


def copy_into_partitions(
    conn: sa.Connection, batch: ReadingBatch, *, partition_suffix: str = ""
) -> None:
    """Binary COPY straight into the daily partitions of `reading` (no trigger on the parent).

    `partition_suffix` targets the same-named partitions of a twin table (the benchmark's).
    """
    start, end = batch.time_range()
    ensure_reading_partitions(conn, start=start, end=end)
    local_day = (batch.ts_us + _CITY_OFFSET_US) // _DAY_US
    for day in np.unique(local_day):
        rows = local_day == day
        part = ReadingBatch(
            device_id=batch.device_id[rows],
            ts_us=batch.ts_us[rows],
            value=batch.value[rows],
            quality=batch.quality[rows],
        )
        # the naming rule of ensure_reading_partitions(); partition bounds reject any mistake
        day_name = str(np.datetime64(int(day), "D")).replace("-", "")
        _copy_binary(conn, table=f"reading_p{day_name}{partition_suffix}", batch=part)


def _apply_street_rollups(
    conn: sa.Connection,
    batch: ReadingBatch,
    devices: DeviceIndex,
    position: np.ndarray,
    level: np.ndarray,
) -> None:
    frame = pd.DataFrame(
        {
            "bucket": batch.ts_us - batch.ts_us % _QUARTER_US,
            "street": devices.street[position],
            "category": devices.category[position],
            "district": devices.district[position],
            "n": 1,
            "warning": level == 1,
            "alarm": level == 2,
            "bad": batch.quality > 0,
        }
    )
    by_street = frame.groupby(["bucket", "street", "category", "district"], sort=True).sum()
    keys = by_street.index.to_frame(index=False)
    conn.execute(
        sa.text(
            "INSERT INTO rollup_street_15m AS r (bucket, street_code, category_code,"
            " district_adcode, n_readings, n_warning, n_alarm, n_bad_quality)"
            " SELECT timestamptz 'epoch' + b * interval '1 microsecond', s, c, d, n, w, a, q"
            " FROM unnest(CAST(:b AS bigint[]), CAST(:s AS text[]), CAST(:c AS text[]),"
            "  CAST(:d AS text[]), CAST(:n AS int[]), CAST(:w AS int[]), CAST(:a AS int[]),"
            "  CAST(:q AS int[])) AS u(b, s, c, d, n, w, a, q)"
            " ORDER BY 1, 2, 3"
            " ON CONFLICT (bucket, street_code, category_code) DO UPDATE SET"
            " n_readings = r.n_readings + excluded.n_readings,"
            " n_warning = r.n_warning + excluded.n_warning,"
            " n_alarm = r.n_alarm + excluded.n_alarm,"
            " n_bad_quality = r.n_bad_quality + excluded.n_bad_quality"
        ),
        {
            "b": _pg_array(keys["bucket"].tolist()),
            "s": _pg_array(devices.street_codes[keys["street"]].tolist()),
            "c": _pg_array(devices.category_codes[keys["category"]].tolist()),
            "d": _pg_array(devices.district_codes[keys["district"]].tolist()),
            "n": _pg_array(by_street["n"].tolist()),
            "w": _pg_array(by_street["warning"].astype(int).tolist()),
            "a": _pg_array(by_street["alarm"].astype(int).tolist()),
            "q": _pg_array(by_street["bad"].astype(int).tolist()),
        },
    )
    # days are Shanghai days: shift to local time before flooring
    keys["day"] = (keys["bucket"] + _CITY_OFFSET_US) // _DAY_US
    daily = (
        pd.concat([keys, by_street.reset_index(drop=True)], axis=1)
        .groupby(["day", "district", "category"], sort=True)[["n", "warning", "alarm"]]
        .sum()
    )
    daily_keys = daily.index.to_frame(index=False)
    conn.execute(
        sa.text(
            "INSERT INTO rollup_district_daily AS r"
            " (day, district_adcode, category_code, n_readings, n_warning, n_alarm)"
            " SELECT date '1970-01-01' + day, d, c, n, w, a"
            " FROM unnest(CAST(:day AS int[]), CAST(:d AS text[]), CAST(:c AS text[]),"
            "  CAST(:n AS bigint[]), CAST(:w AS bigint[]), CAST(:a AS bigint[]))"
            "  AS u(day, d, c, n, w, a)"
            " ORDER BY 1, 2, 3"
            " ON CONFLICT (day, district_adcode, category_code) DO UPDATE SET"
            " n_readings = r.n_readings + excluded.n_readings,"
            " n_warning = r.n_warning + excluded.n_warning,"
            " n_alarm = r.n_alarm + excluded.n_alarm"
        ),
        {
            "day": _pg_array(daily_keys["day"].astype(int).tolist()),
            "d": _pg_array(devices.district_codes[daily_keys["district"]].tolist()),
            "c": _pg_array(devices.category_codes[daily_keys["category"]].tolist()),
            "n": _pg_array(daily["n"].astype(int).tolist()),
            "w": _pg_array(daily["warning"].astype(int).tolist()),
            "a": _pg_array(daily["alarm"].astype(int).tolist()),
        },
    )


def _apply_type_rollups(
    conn: sa.Connection,
    batch: ReadingBatch,
    devices: DeviceIndex,
    position: np.ndarray,
    level: np.ndarray,
) -> None:
    frame = pd.DataFrame(
        {
            "bucket": batch.ts_us - batch.ts_us % _HOUR_US,
            "district": devices.district[position],
            "type_id": devices.type_id[position],
            "value": batch.value,
            "warning": (level == 1).astype(np.int64),
            "alarm": (level == 2).astype(np.int64),
        }
    )
    grouped = frame.groupby(["district", "type_id", "bucket"], sort=True)
    stats = grouped["value"].agg(["size", "sum", "min", "max"])
    flags = grouped[["warning", "alarm"]].sum()
    keys = stats.index.to_frame(index=False)
    conn.execute(
        sa.text(
            "INSERT INTO rollup_district_type_1h AS r (bucket, district_adcode, type_id,"
            " n_readings, n_warning, n_alarm, value_sum, value_min, value_max)"
            " SELECT timestamptz 'epoch' + b * interval '1 microsecond', d, t, n, w, a, s, lo, hi"
            " FROM unnest(CAST(:b AS bigint[]), CAST(:d AS text[]), CAST(:t AS smallint[]),"
            "  CAST(:n AS int[]), CAST(:w AS int[]), CAST(:a AS int[]),"
            "  CAST(:s AS float8[]), CAST(:lo AS float8[]), CAST(:hi AS float8[]))"
            "  AS u(b, d, t, n, w, a, s, lo, hi)"
            " ORDER BY 2, 3, 1"
            " ON CONFLICT (district_adcode, type_id, bucket) DO UPDATE SET"
            " n_readings = r.n_readings + excluded.n_readings,"
            " n_warning = r.n_warning + excluded.n_warning,"
            " n_alarm = r.n_alarm + excluded.n_alarm,"
            " value_sum = r.value_sum + excluded.value_sum,"
            " value_min = least(r.value_min, excluded.value_min),"
            " value_max = greatest(r.value_max, excluded.value_max)"
        ),
        {
            "b": _pg_array(keys["bucket"].tolist()),
            "d": _pg_array(devices.district_codes[keys["district"]].tolist()),
            "t": _pg_array(keys["type_id"].astype(int).tolist()),
            "n": _pg_array(stats["size"].astype(int).tolist()),
            "w": _pg_array(flags["warning"].astype(int).tolist()),
            "a": _pg_array(flags["alarm"].astype(int).tolist()),
            "s": _pg_array(stats["sum"].tolist()),
            "lo": _pg_array(stats["min"].tolist()),
            "hi": _pg_array(stats["max"].tolist()),
        },
    )


def _apply_latest(conn: sa.Connection, batch: ReadingBatch, level: np.ndarray) -> None:
    same_device = batch.device_id[1:] == batch.device_id[:-1]
    in_order = bool(
        np.all(batch.device_id[1:] >= batch.device_id[:-1])
        and np.all(batch.ts_us[1:][same_device] > batch.ts_us[:-1][same_device])
    )
    # generator batches arrive sorted by device and time; sort only what is not
    order = np.arange(len(batch)) if in_order else np.lexsort((batch.ts_us, batch.device_id))
    ids = batch.device_id[order]
    last = np.flatnonzero(np.append(ids[1:] != ids[:-1], True))
    pick = order[last]
    conn.execute(
        sa.text(
            "INSERT INTO device_latest AS l (device_id, ts, value, quality, level)"
            " SELECT d, timestamptz 'epoch' + t * interval '1 microsecond', v, q, lv"
            " FROM unnest(CAST(:d AS bigint[]), CAST(:t AS bigint[]), CAST(:v AS float8[]),"
            "  CAST(:q AS smallint[]), CAST(:lv AS smallint[])) AS u(d, t, v, q, lv)"
            " ORDER BY 1"
            " ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, value = excluded.value,"
            " quality = excluded.quality, level = excluded.level,"
            # as the reading trigger (revision 0015): stale for the status pass
            " dirty = l.dirty OR l.counted IS DISTINCT FROM excluded.level"
            " WHERE excluded.ts >= l.ts"
        ),
        {
            "d": _pg_array(batch.device_id[pick].tolist()),
            "t": _pg_array(batch.ts_us[pick].tolist()),
            "v": _pg_array(batch.value[pick].tolist()),
            "q": _pg_array(batch.quality[pick].astype(int).tolist()),
            "lv": _pg_array(level[pick].astype(int).tolist()),
        },
    )


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
    cursor = psycopg_connection(conn).cursor()
    count = 0
    with cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def insert_devices(conn: sa.Connection, devices: pd.DataFrame) -> int:
    """Insert the devices frame (id, code, type_id, district_adcode, street_code, cell, …,
    served when known)."""
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
        "served",
    ]
    geoms = [
        f"SRID=4326;POINT({lon:.7f} {lat:.7f})"
        for lon, lat in zip(devices["lon"].to_numpy(), devices["lat"].to_numpy(), strict=True)
    ]
    cells = devices["cell"].astype("Int64")
    served = devices["served"] if "served" in devices else pd.Series(pd.NA, index=devices.index)
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
        [None if pd.isna(n) else int(n) for n in served.astype("Int64")],
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


def _nulls_as_none(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values (NaN, NaT) as None, which COPY writes as NULL."""
    # pandas takes None as the scalar `other`; pandas-stubs leave it out of the overloads
    nulls: pd.DataFrame = frame.astype(object).where(frame.notna(), None)  # type: ignore[call-overload]
    return nulls


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
    frame = _nulls_as_none(incidents[incident_columns])
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
    event_frame = _nulls_as_none(events[event_columns])
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


# day-partitioned tables, dropped a day at a time by retention
HISTORY_TABLES = ("reading", "status_history", "cell_status_history", "resource_track")


def rebuild_status_history(
    engine: Engine, *, start: datetime, end: datetime, every: timedelta = timedelta(hours=1)
) -> int:
    """Full status frames from the readings every `every` over [start, end) (a seeded past, so
    it replays with its devices as they were); returns how many were written."""
    moments = []
    moment = start.replace(minute=0, second=0, microsecond=0) + every
    while moment < end:
        moments.append(moment)
        moment += every
    for moment in moments:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT status_frame_from_readings(:at)"), {"at": moment})
    return len(moments)


def apply_retention(
    engine: Engine, *, today: date, reading_days: int, rollup_days: int
) -> list[str]:
    """Drop reading partitions and rollup rows older than the retention settings."""
    with engine.begin() as conn:
        keep_from = {"keep_from": today - timedelta(days=reading_days - 1)}
        dropped: list[str] = []
        # replay history (revision 0014) is kept as long as the readings it was made from
        for table in HISTORY_TABLES:
            dropped += conn.execute(
                sa.text("SELECT drop_day_partitions_before(CAST(:table AS regclass), :keep_from)"),
                {"table": table, **keep_from},
            ).scalars()
        conn.execute(
            sa.text("DELETE FROM status_refresh WHERE at < city_midnight(:keep_from)"), keep_from
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
    """Remove every device, reading, rollup, incident and unit (reference geography stays)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                # a new city's warning levels start from none, so its playbooks start too
                "TRUNCATE resource_event, resource, playbook_task, warning_level_change,"
                " warning_level, rule_inbox, rule_state,"
                " incident_event, incident, incident_live,"
                " incident_daily, cell_status,"
                " street_status, status_refresh, status_history, cell_status_history,"
                " resource_track,"
                " rollup_district_daily, rollup_district_type_1h, rollup_street_15m,"
                " device_counted, status_device_change, incident_opened_15m, incident_handled_15m,"
                " device_latest, reading, device"
            )
        )
        conn.execute(sa.text("DELETE FROM ingest_token WHERE device_id IS NOT NULL"))
        conn.execute(sa.text("SELECT drop_reading_partitions_before('infinity'::date)"))
        conn.execute(sa.text("DELETE FROM app_meta WHERE key IN ('seed', 'status_as_of')"))


def has_devices(engine: Engine) -> bool:
    """True when any device is stored."""
    with engine.connect() as conn:
        exists: bool = conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM device)")).scalar_one()
    return exists


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
