"""Devices and their readings: an area's devices for the map, one device's detail and series,
and the per-area and per-type series from rollups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.asof import replaying, timed
from data.checks import InvalidQuery, check_scope, check_window
from data.clock import at_or_now
from data.rule_types import Rule, rules_for_type
from data.rules_store import load_rules

_DEVICE_STATE_SQL = """
    CASE
        WHEN d.status = 'maintenance' THEN 'maintenance'
        WHEN l.ts IS NULL
             OR l.ts <= CAST(:at AS timestamptz)
                        - status_window(t.interval_s) THEN 'offline'
        WHEN l.level = 2 THEN 'alarm'
        WHEN l.level = 1 THEN 'warning'
        ELSE 'normal'
    END
"""

# an area's devices with their map state: 'forecast' for an online device, not in alarm, with a
# live 预警 (few rows: the partial index on live incidents by kind)
_MAP_DEVICES_FROM_SQL = f"""
    FROM device d
    JOIN device_type t ON t.id = d.type_id
    LEFT JOIN device_latest l ON l.device_id = d.id
    CROSS JOIN LATERAL (SELECT {_DEVICE_STATE_SQL} AS state) s
    LEFT JOIN (SELECT DISTINCT device_id FROM incident
               WHERE kind = 'forecast' AND status <> 'resolved') f ON f.device_id = d.id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN s.state IN ('normal', 'warning') AND f.device_id IS NOT NULL
                    THEN 'forecast' ELSE s.state END AS state
    ) m
    WHERE d.status <> 'retired'
      AND (CAST(:district AS text) IS NULL OR d.district_adcode = :district)
      AND (CAST(:category AS text) IS NULL OR t.category_code = :category)
"""

_AREA_DEVICES_SQL = sa.text(
    f"""
    SELECT d.id, d.code, d.type_id, t.category_code, d.street_code,
           ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat, m.state,
           l.ts AS last_ts, l.value AS last_value
    {_MAP_DEVICES_FROM_SQL}
      AND (CAST(:street AS text) IS NULL OR d.street_code = :street)
    ORDER BY d.id
    LIMIT :limit
    """
)

_DEVICES_IN_BOX_SQL = sa.text(
    f"""
    SELECT d.id, ST_X(d.geom), ST_Y(d.geom),
           coalesce(array_position(CAST(:states AS text[]), m.state),
                    cardinality(CAST(:states AS text[]))) - 1 AS rank
    {_MAP_DEVICES_FROM_SQL}
      AND d.geom && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
    ORDER BY rank, d.id
    LIMIT :limit
    """
)


def area_devices(
    engine: Engine,
    *,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    at: datetime | None = None,
    limit: int = 250_000,
) -> pd.DataFrame:
    """Devices of an area for the map: id, code, type, category, position, state, latest value
    (state 'forecast' for an online device, not in alarm, with a live 预警)."""
    check_scope(district=district, street=street, category=category)
    if district is None and street is None:
        raise InvalidQuery("area_devices needs a district or a street (the city is too many)")
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        result = conn.execute(
            _AREA_DEVICES_SQL,
            {
                "at": moment,
                "district": district,
                "street": street,
                "category": category,
                "limit": int(limit),
            },
        )
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if frame.empty:
        return frame
    return frame.astype({"id": "int64", "type_id": "int16", "lon": "float64", "lat": "float64"})


# the map's device clusters by grid cell, from the status counters (revision 0015): what a
# district's devices are costs its cells, not its devices. Maintenance and live 预警 set devices
# apart from the counters' online/offline split; both are few (partial indexes). A replay reads
# the counters as they stood (`cell_status_at`), which keep neither: maintenance shows offline.
_CELL_POINTS_SQL = timed(
    """
    WITH counts AS (
        SELECT s.district_adcode AS district, s.cell, sum(s.devices_total) AS total,
               sum(s.devices_online) AS online, sum(s.devices_warning) AS warning,
               sum(s.devices_alarm) AS alarm
        FROM {cell_status} s
        WHERE (CAST(:district AS text) IS NULL OR s.district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR s.category_code = :category)
        GROUP BY 1, 2
    ),
    aside AS (
        SELECT c.cell, count(*) FILTER (WHERE c.state = 4) AS maintenance,
               count(*) FILTER (WHERE c.state = 1) AS forecast_normal,
               count(*) FILTER (WHERE c.state = 2) AS forecast_warning
        FROM device_counted c
        WHERE NOT {past}
          AND (c.state = 4
               OR (c.state IN (1, 2) AND c.device_id IN (
                   SELECT i.device_id FROM incident i
                   WHERE i.kind = 'forecast' AND i.status <> 'resolved')))
          AND c.cell IS NOT NULL
          AND (CAST(:category AS text) IS NULL OR c.category_code = :category)
        GROUP BY c.cell
    )
    SELECT k.district, k.cell, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat,
           k.alarm,
           coalesce(a.forecast_normal + a.forecast_warning, 0) AS forecast,
           k.warning - coalesce(a.forecast_warning, 0) AS warning,
           k.total - k.online - coalesce(a.maintenance, 0) AS offline,
           coalesce(a.maintenance, 0) AS maintenance,
           k.online - k.warning - k.alarm - coalesce(a.forecast_normal, 0) AS normal
    FROM counts k
    JOIN grid_cell g ON g.cell = k.cell
    CROSS JOIN LATERAL (SELECT ST_Centroid(g.geom) AS geom) p
    LEFT JOIN aside a ON a.cell = k.cell
    ORDER BY k.district, k.cell
    """
)
CELL_STATES = ("alarm", "forecast", "warning", "offline", "maintenance", "normal")


def cell_points(
    engine: Engine,
    *,
    district: str | None = None,
    category: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> dict[str, pd.DataFrame]:
    """Each district's devices counted by grid cell (one district, or every one the scope
    shows; a replay reads one district at `at`): cell, lon, lat of its centre and the count of
    devices in each of CELL_STATES, as the last status pass counted them."""
    check_scope(district=district, category=category)
    if replaying(at, replay) and district is None:
        raise InvalidQuery("a replay's device clusters are read one district at a time")
    with engine.connect() as conn:
        result = conn.execute(
            _CELL_POINTS_SQL.of(replay), {"district": district, "category": category, "at": at}
        )
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    if frame.empty:
        return {}
    frame = frame.astype(
        {"cell": "int64", "lon": "float64", "lat": "float64"}
        | {state: "int64" for state in CELL_STATES}
    )
    return {
        str(code): part.drop(columns="district").reset_index(drop=True)
        for code, part in frame.groupby("district", sort=True)
    }


def devices_in_box(
    engine: Engine,
    *,
    district: str,
    bbox: tuple[float, float, float, float],
    states: Sequence[str],
    category: str | None = None,
    limit: int = 5000,
    at: datetime | None = None,
) -> pd.DataFrame:
    """A district's devices inside bbox (west, south, east, north), worst state first, at most
    `limit`: id, lon, lat and s (the index of the device's map state in `states`)."""
    check_scope(district=district, category=category)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        rows = conn.execute(
            _DEVICES_IN_BOX_SQL,
            {
                "at": moment,
                "district": district,
                "category": category,
                "states": list(states),
                "west": bbox[0],
                "south": bbox[1],
                "east": bbox[2],
                "north": bbox[3],
                "limit": int(limit),
            },
        ).all()
    return pd.DataFrame(
        {
            "id": np.array([r[0] for r in rows], dtype=np.int64),
            "lon": np.array([r[1] for r in rows], dtype=np.float64),
            "lat": np.array([r[2] for r in rows], dtype=np.float64),
            "s": np.array([r[3] for r in rows], dtype=np.int8),
        }
    )


@dataclass(frozen=True)
class DeviceDetail:
    """Everything the device page shows above its chart."""

    id: int
    code: str
    type_id: int
    type_code: str
    type_name_zh: str
    type_name_en: str
    category_code: str
    unit: str
    value_kind: str
    interval_s: int
    normal_min: float
    normal_max: float
    alarm_min: float | None
    alarm_max: float | None
    decimals: int
    district_adcode: str
    district_name_zh: str
    district_name_en: str
    street_code: str
    street_name_zh: str
    street_name_en: str
    status: str
    state: str
    installed_on: object
    lon: float
    lat: float
    last_ts: datetime | None
    last_value: float | None
    last_level: int | None


def device_detail(
    engine: Engine, *, device_id: int, at: datetime | None = None
) -> DeviceDetail | None:
    """One device with its type, thresholds, place and latest reading; None if unknown."""
    if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id <= 0:
        raise InvalidQuery(f"device_id must be a positive integer, not {device_id!r}")
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        row = conn.execute(
            sa.text(
                f"""
                SELECT d.id, d.code, d.type_id, t.code, t.name_zh, t.name_en, t.category_code,
                       t.unit, t.value_kind, t.interval_s, t.normal_min, t.normal_max,
                       t.alarm_min, t.alarm_max, t.decimals,
                       d.district_adcode, di.name_zh, di.name_en,
                       d.street_code, s.name_zh, s.name_en, d.status, {_DEVICE_STATE_SQL},
                       d.installed_on, ST_X(d.geom), ST_Y(d.geom), l.ts, l.value, l.level
                FROM device d
                JOIN device_type t ON t.id = d.type_id
                JOIN district di ON di.adcode = d.district_adcode
                JOIN street s ON s.code = d.street_code
                LEFT JOIN device_latest l ON l.device_id = d.id
                WHERE d.id = :device_id
                """
            ),
            {"device_id": device_id, "at": moment},
        ).one_or_none()
    return None if row is None else DeviceDetail(*row)


def device_series(
    engine: Engine,
    *,
    device_id: int,
    start: datetime,
    end: datetime,
    bucket_seconds: int | None = None,
) -> pd.DataFrame:
    """A device's readings in [start, end): raw, or avg/min/max per bucket when bucket_seconds."""
    check_window(start, end)
    if bucket_seconds is not None and not 60 <= bucket_seconds <= 86400:
        raise InvalidQuery("bucket_seconds must be between 60 and 86400")
    params = {"device_id": int(device_id), "start": start, "end": end}
    if bucket_seconds is None:
        statement = sa.text(
            "SELECT ts, value, value AS value_min, value AS value_max, quality FROM reading"
            " WHERE device_id = :device_id AND ts >= :start AND ts < :end ORDER BY ts"
        )
    else:
        statement = sa.text(
            "SELECT date_bin(:bucket * interval '1 second', ts,"
            "        timestamptz '2000-01-01 00:00:00+08') AS ts,"
            " avg(value) AS value, min(value) AS value_min, max(value) AS value_max,"
            " max(quality) AS quality"
            " FROM reading WHERE device_id = :device_id AND ts >= :start AND ts < :end"
            " GROUP BY 1 ORDER BY 1"
        )
        params["bucket"] = int(bucket_seconds)
    with engine.connect() as conn:
        rows = conn.execute(statement, params).all()
    return pd.DataFrame(rows, columns=["ts", "value", "value_min", "value_max", "quality"])


# A device's learned normal and the 预警 rules that watch it (the device page's forecast) -------


@dataclass(frozen=True)
class DeviceBaseline:
    """A device's learned normal: median and robust spread per hour of day (24 slots) or of the
    week (168, Monday 00:00 Asia/Shanghai first), and where it was learned."""

    slots: int
    median: tuple[float, ...]
    spread: tuple[float, ...]
    source: str  # 'device' | 'street' | 'type'
    days: float
    fitted_at: datetime


def device_baseline(engine: Engine, *, device_id: int) -> DeviceBaseline | None:
    """The device's learned normal (device_baseline), or None before the first fit."""
    if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id <= 0:
        raise InvalidQuery(f"device_id must be a positive integer, not {device_id!r}")
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT slots, median, spread, source, days, fitted_at FROM device_baseline"
                " WHERE device_id = :device_id"
            ),
            {"device_id": device_id},
        ).one_or_none()
    if row is None:
        return None
    return DeviceBaseline(
        slots=int(row[0]),
        median=tuple(float(v) for v in row[1]),
        spread=tuple(float(v) for v in row[2]),
        source=row[3],
        days=float(row[4]),
        fitted_at=row[5],
    )


def forecast_rules(
    engine: Engine, *, type_id: int, category: str, value_kind: str
) -> tuple[Rule, ...]:
    """The enabled 预警 rules (kind 'forecast') that apply to a device type, high side first."""
    check_scope(category=category)
    rules = rules_for_type(
        load_rules(engine), type_id=int(type_id), category=category, value_kind=value_kind
    )
    chosen = [rule for rule in rules.values() if rule.kind == "forecast"]
    return tuple(sorted(chosen, key=lambda rule: -(rule.side or 0)))


# Time series of areas --------------------------------------------------------------------------


def area_series(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
) -> pd.DataFrame:
    """Readings, warnings and alarms per 15 minutes for an area and category, from rollups."""
    check_scope(district=district, street=street, category=category)
    check_window(start, end)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT bucket, sum(n_readings), sum(n_warning), sum(n_alarm), sum(n_bad_quality)"
                " FROM rollup_street_15m"
                " WHERE bucket >= bucket_15m(:start) AND bucket < :end"
                "   AND (CAST(:district AS text) IS NULL OR district_adcode = :district)"
                "   AND (CAST(:street AS text) IS NULL OR street_code = :street)"
                "   AND (CAST(:category AS text) IS NULL OR category_code = :category)"
                " GROUP BY bucket ORDER BY bucket"
            ),
            {
                "start": start,
                "end": end,
                "district": district,
                "street": street,
                "category": category,
            },
        ).all()
    frame = pd.DataFrame(rows, columns=["bucket", "readings", "warnings", "alarms", "bad_quality"])
    return frame.astype(
        {"readings": "int64", "warnings": "int64", "alarms": "int64", "bad_quality": "int64"}
    )


def type_series(
    engine: Engine, *, type_id: int, start: datetime, end: datetime, district: str | None = None
) -> pd.DataFrame:
    """Hourly mean/min/max of one device type over a district (or the city), from rollups."""
    check_scope(district=district)
    check_window(start, end)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT bucket, sum(n_readings), sum(value_sum) / nullif(sum(n_readings), 0),"
                " min(value_min), max(value_max), sum(n_alarm)"
                " FROM rollup_district_type_1h"
                " WHERE type_id = :type_id AND bucket >= bucket_1h(:start) AND bucket < :end"
                "   AND (CAST(:district AS text) IS NULL OR district_adcode = :district)"
                " GROUP BY bucket ORDER BY bucket"
            ),
            {"type_id": int(type_id), "start": start, "end": end, "district": district},
        ).all()
    return pd.DataFrame(rows, columns=["bucket", "readings", "mean", "min", "max", "alarms"])
