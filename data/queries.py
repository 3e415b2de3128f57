"""Read queries for the pages: KPIs, area metrics, devices, time series, incidents.

Every figure a wall shows repeatedly reads precomputed tables (status snapshots, rollups, the
latest-state table, partial incident indexes), so its cost does not grow with the device count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

SEVERITIES = ("critical", "major", "minor")
INCIDENT_STATUSES = ("open", "acknowledged", "resolved")
DEVICE_STATES = ("normal", "warning", "alarm", "offline", "maintenance")
_DISTRICT_RE = re.compile(r"^3101[0-9]{2}$")
_STREET_RE = re.compile(r"^3101[0-9]{5}$")
_CATEGORY_RE = re.compile(r"^[a-z_]{2,32}$")


class InvalidQuery(ValueError):
    """A query argument is malformed (the message names it); nothing was sent to the database."""


def _check_scope(
    *, district: str | None = None, street: str | None = None, category: str | None = None
) -> None:
    if district is not None and not _DISTRICT_RE.match(district):
        raise InvalidQuery(f"district must be a 6-digit Shanghai adcode (3101xx), not {district!r}")
    if street is not None and not _STREET_RE.match(street):
        raise InvalidQuery(f"street must be a 9-digit street/town code, not {street!r}")
    if category is not None and not _CATEGORY_RE.match(category):
        raise InvalidQuery(f"category must be a category code such as 'flood', not {category!r}")


def _check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidQuery("start and end must be timezone-aware datetimes")
    if end <= start:
        raise InvalidQuery("end must be after start")
    if end - start > timedelta(days=400):
        raise InvalidQuery("time windows are limited to 400 days")


def _now(conn: sa.Connection, at: datetime | None) -> datetime:
    return at if at is not None else conn.execute(sa.text("SELECT now()")).scalar_one()


def database_now(engine: Engine) -> datetime:
    """The database's clock (the simulator and ingest stamp readings with it)."""
    with engine.connect() as conn:
        return _now(conn, None)


# KPIs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpis:
    """Status tiles for the city or one area."""

    devices_total: int
    devices_online: int
    devices_warning: int
    devices_alarm: int
    readings_today: int
    readings_yesterday: int
    open_by_severity: dict[str, int]
    opened_today: int
    opened_yesterday: int
    resolved_today: int
    resolved_yesterday: int
    mean_minutes_to_resolve: float | None
    mean_minutes_to_resolve_yesterday: float | None
    status_as_of: datetime | None
    at: datetime
    mean_minutes_to_acknowledge: float | None = None
    mean_minutes_to_acknowledge_yesterday: float | None = None

    @property
    def online_rate(self) -> float | None:
        return self.devices_online / self.devices_total if self.devices_total else None

    @property
    def open_total(self) -> int:
        return sum(self.open_by_severity.values())


_KPI_SQL = sa.text(
    """
    WITH scope AS (
        SELECT city_day(CAST(:at AS timestamptz)) AS today,
               city_midnight(city_day(CAST(:at AS timestamptz))) AS midnight
    ),
    devices AS (
        SELECT coalesce(sum(devices_total), 0) AS total,
               coalesce(sum(devices_online), 0) AS online,
               coalesce(sum(devices_warning), 0) AS warning,
               coalesce(sum(devices_alarm), 0) AS alarm
        FROM street_status
        WHERE (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    readings AS (
        SELECT coalesce(sum(n_readings) FILTER (WHERE day = scope.today), 0) AS today,
               coalesce(sum(n_readings) FILTER (WHERE day = scope.today - 1), 0) AS yesterday
        FROM rollup_district_daily, scope
        WHERE CAST(:street AS text) IS NULL
          AND day IN (scope.today, scope.today - 1)
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    street_readings AS (
        SELECT coalesce(sum(n_readings) FILTER (WHERE bucket >= scope.midnight), 0) AS today,
               coalesce(sum(n_readings) FILTER (WHERE bucket < scope.midnight), 0) AS yesterday
        FROM rollup_street_15m, scope
        WHERE CAST(:street AS text) IS NOT NULL AND street_code = :street
          AND bucket >= scope.midnight - interval '1 day'
          AND bucket < scope.midnight + interval '1 day'
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    live AS (
        SELECT coalesce(sum(n) FILTER (WHERE severity = 'critical'), 0) AS critical,
               coalesce(sum(n) FILTER (WHERE severity = 'major'), 0) AS major,
               coalesce(sum(n) FILTER (WHERE severity = 'minor'), 0) AS minor
        FROM incident_live
        WHERE (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    daily AS (
        SELECT coalesce(sum(opened) FILTER (WHERE day = scope.today), 0) AS opened_today,
               coalesce(sum(opened) FILTER (WHERE day < scope.today), 0) AS opened_yesterday,
               coalesce(sum(resolved) FILTER (WHERE day = scope.today), 0) AS resolved_today,
               coalesce(sum(resolved) FILTER (WHERE day < scope.today), 0) AS resolved_yesterday,
               sum(resolve_seconds) FILTER (WHERE day = scope.today)
                   / nullif(sum(resolved) FILTER (WHERE day = scope.today), 0) / 60
                   AS mttr_today,
               sum(resolve_seconds) FILTER (WHERE day < scope.today)
                   / nullif(sum(resolved) FILTER (WHERE day < scope.today), 0) / 60
                   AS mttr_yesterday,
               sum(acknowledge_seconds) FILTER (WHERE day = scope.today)
                   / nullif(sum(acknowledged) FILTER (WHERE day = scope.today), 0) / 60
                   AS mtta_today,
               sum(acknowledge_seconds) FILTER (WHERE day < scope.today)
                   / nullif(sum(acknowledged) FILTER (WHERE day < scope.today), 0) / 60
                   AS mtta_yesterday
        FROM incident_daily, scope
        WHERE CAST(:street AS text) IS NULL
          AND day IN (scope.today, scope.today - 1)
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    -- a street's incidents are few: count them directly
    opened AS (
        SELECT count(*) FILTER (WHERE opened_at >= scope.midnight) AS today,
               count(*) FILTER (WHERE opened_at < scope.midnight) AS yesterday
        FROM incident, scope
        WHERE CAST(:street AS text) IS NOT NULL
          AND opened_at >= scope.midnight - interval '1 day' AND opened_at <= :at
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    resolved AS (
        SELECT count(*) FILTER (WHERE resolved_at >= scope.midnight) AS today,
               count(*) FILTER (WHERE resolved_at < scope.midnight) AS yesterday,
               avg(extract(epoch FROM resolved_at - opened_at) / 60)
                   FILTER (WHERE resolved_at >= scope.midnight) AS mttr_today,
               avg(extract(epoch FROM resolved_at - opened_at) / 60)
                   FILTER (WHERE resolved_at < scope.midnight) AS mttr_yesterday
        FROM incident, scope
        WHERE CAST(:street AS text) IS NOT NULL
          AND resolved_at >= scope.midnight - interval '1 day' AND resolved_at <= :at
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    acknowledged AS (
        SELECT avg(extract(epoch FROM acknowledged_at - opened_at) / 60)
                   FILTER (WHERE acknowledged_at >= scope.midnight) AS mtta_today,
               avg(extract(epoch FROM acknowledged_at - opened_at) / 60)
                   FILTER (WHERE acknowledged_at < scope.midnight) AS mtta_yesterday
        FROM incident, scope
        WHERE CAST(:street AS text) IS NOT NULL
          AND acknowledged_at >= scope.midnight - interval '1 day' AND acknowledged_at <= :at
          AND street_code = :street
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    )
    SELECT devices.total, devices.online, devices.warning, devices.alarm,
           CASE WHEN CAST(:street AS text) IS NULL THEN readings.today
                ELSE street_readings.today END,
           CASE WHEN CAST(:street AS text) IS NULL THEN readings.yesterday
                ELSE street_readings.yesterday END,
           live.critical, live.major, live.minor,
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.opened_today
                ELSE opened.today END,
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.opened_yesterday
                ELSE opened.yesterday END,
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.resolved_today
                ELSE resolved.today END,
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.resolved_yesterday
                ELSE resolved.yesterday END,
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.mttr_today
                ELSE resolved.mttr_today END,
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.mttr_yesterday
                ELSE resolved.mttr_yesterday END,
           (SELECT (value #>> '{}')::timestamptz FROM app_meta WHERE key = 'status_as_of'),
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.mtta_today
                ELSE acknowledged.mtta_today END,
           CASE WHEN CAST(:street AS text) IS NULL THEN daily.mtta_yesterday
                ELSE acknowledged.mtta_yesterday END
    FROM devices, readings, street_readings, live, daily, opened, resolved, acknowledged
    """
)


def area_kpis(
    engine: Engine,
    *,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    at: datetime | None = None,
) -> Kpis:
    """KPIs for the whole city, a district or a street, optionally one category."""
    _check_scope(district=district, street=street, category=category)
    with engine.connect() as conn:
        moment = _now(conn, at)
        row = conn.execute(
            _KPI_SQL,
            {"at": moment, "district": district, "street": street, "category": category},
        ).one()
    return Kpis(
        devices_total=int(row[0]),
        devices_online=int(row[1]),
        devices_warning=int(row[2]),
        devices_alarm=int(row[3]),
        readings_today=int(row[4]),
        readings_yesterday=int(row[5]),
        open_by_severity={"critical": int(row[6]), "major": int(row[7]), "minor": int(row[8])},
        opened_today=int(row[9]),
        opened_yesterday=int(row[10]),
        resolved_today=int(row[11]),
        resolved_yesterday=int(row[12]),
        mean_minutes_to_resolve=None if row[13] is None else float(row[13]),
        mean_minutes_to_resolve_yesterday=None if row[14] is None else float(row[14]),
        status_as_of=row[15],
        at=moment,
        mean_minutes_to_acknowledge=None if row[16] is None else float(row[16]),
        mean_minutes_to_acknowledge_yesterday=None if row[17] is None else float(row[17]),
    )


def city_kpis(engine: Engine, *, category: str | None = None, at: datetime | None = None) -> Kpis:
    """KPIs for the whole city."""
    return area_kpis(engine, category=category, at=at)


# Area metrics for choropleths -------------------------------------------------------------------

_AREA_METRICS_SQL = """
    WITH status AS (
        SELECT {key} AS code,
               sum(devices_total) AS total, sum(devices_online) AS online,
               sum(devices_warning) AS warning, sum(devices_alarm) AS alarm
        FROM street_status
        WHERE (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
        GROUP BY 1
    ),
    live AS (
        SELECT {incident_key} AS code,
               sum(n) AS open_total,
               sum(n) FILTER (WHERE severity = 'critical') AS critical,
               sum(n) FILTER (WHERE severity = 'major') AS major,
               sum(n) FILTER (WHERE severity = 'minor') AS minor
        FROM incident_live
        WHERE (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
        GROUP BY 1
    ),
    recent AS (
        SELECT {key} AS code, sum(n_readings) AS readings
        FROM rollup_street_15m
        WHERE bucket >= bucket_15m(CAST(:at AS timestamptz) - interval '1 hour')
          AND bucket <= :at
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
        GROUP BY 1
    )
    SELECT a.code, a.name_zh, a.name_en, a.area_km2, {approximate},
           coalesce(s.total, 0), coalesce(s.online, 0), coalesce(s.warning, 0),
           coalesce(s.alarm, 0),
           coalesce(l.open_total, 0), coalesce(l.critical, 0), coalesce(l.major, 0),
           coalesce(l.minor, 0), coalesce(r.readings, 0),
           ST_X(a.label_point), ST_Y(a.label_point)
    FROM {table} a
    LEFT JOIN status s ON s.code = a.code
    LEFT JOIN live l ON l.code = a.code
    LEFT JOIN recent r ON r.code = a.code
    WHERE (CAST(:district AS text) IS NULL OR {district_filter} = :district)
    ORDER BY a.code
"""

_DISTRICT_METRICS_SQL = sa.text(
    _AREA_METRICS_SQL.format(
        key="district_adcode",
        incident_key="district_adcode",
        approximate="false",
        table="(SELECT adcode AS code, * FROM district)",
        district_filter="a.adcode",
    )
)
_STREET_METRICS_SQL = sa.text(
    _AREA_METRICS_SQL.format(
        key="street_code",
        incident_key="street_code",
        approximate="a.approximate",
        table="street",
        district_filter="a.district_adcode",
    )
)


@dataclass(frozen=True)
class AreaMetric:
    """One district's or street's figures for a choropleth and its hover card."""

    code: str
    name_zh: str
    name_en: str
    area_km2: float
    approximate: bool
    devices_total: int
    devices_online: int
    devices_warning: int
    devices_alarm: int
    open_incidents: int
    open_critical: int
    open_major: int
    open_minor: int
    readings_last_hour: int
    label_lon: float
    label_lat: float

    @property
    def online_rate(self) -> float | None:
        return self.devices_online / self.devices_total if self.devices_total else None

    @property
    def incidents_per_100km2(self) -> float:
        return self.open_incidents / self.area_km2 * 100 if self.area_km2 else 0.0


def _area_metrics(
    engine: Engine,
    statement: sa.TextClause,
    *,
    district: str | None,
    category: str | None,
    at: datetime | None,
) -> list[AreaMetric]:
    with engine.connect() as conn:
        moment = _now(conn, at)
        rows = conn.execute(
            statement, {"at": moment, "district": district, "category": category}
        ).all()
    return [
        AreaMetric(
            code=r[0],
            name_zh=r[1],
            name_en=r[2],
            area_km2=float(r[3]),
            approximate=bool(r[4]),
            devices_total=int(r[5]),
            devices_online=int(r[6]),
            devices_warning=int(r[7]),
            devices_alarm=int(r[8]),
            open_incidents=int(r[9]),
            open_critical=int(r[10]),
            open_major=int(r[11]),
            open_minor=int(r[12]),
            readings_last_hour=int(r[13]),
            label_lon=float(r[14]),
            label_lat=float(r[15]),
        )
        for r in rows
    ]


def district_metrics(
    engine: Engine, *, category: str | None = None, at: datetime | None = None
) -> list[AreaMetric]:
    """Per-district figures for the city choropleth (16 rows)."""
    _check_scope(category=category)
    return _area_metrics(engine, _DISTRICT_METRICS_SQL, district=None, category=category, at=at)


def street_metrics(
    engine: Engine, *, district: str, category: str | None = None, at: datetime | None = None
) -> list[AreaMetric]:
    """Per-street/town figures of one district (approximate areas flagged)."""
    _check_scope(district=district, category=category)
    return _area_metrics(engine, _STREET_METRICS_SQL, district=district, category=category, at=at)


_CELL_METRICS_SQL = sa.text(
    """
    SELECT c.cell, c.street_code,
           sum(c.devices_total), sum(c.devices_online), sum(c.devices_warning),
           sum(c.devices_alarm)
    FROM cell_status c
    WHERE c.district_adcode = :district
      AND (CAST(:category AS text) IS NULL OR c.category_code = :category)
    GROUP BY c.cell, c.street_code
    ORDER BY c.cell
    """
)


def cell_metrics(engine: Engine, *, district: str, category: str | None = None) -> pd.DataFrame:
    """Per-H3-cell device counts of a district (cell as int64; geometry comes from grid_cells)."""
    _check_scope(district=district, category=category)
    with engine.connect() as conn:
        rows = conn.execute(_CELL_METRICS_SQL, {"district": district, "category": category}).all()
    frame = pd.DataFrame(
        rows,
        columns=[
            "cell",
            "street_code",
            "devices_total",
            "devices_online",
            "devices_warning",
            "devices_alarm",
        ],
    )
    return frame.astype(
        {
            "cell": "int64",
            "devices_total": "int64",
            "devices_online": "int64",
            "devices_warning": "int64",
            "devices_alarm": "int64",
        }
    )


# Devices ---------------------------------------------------------------------------------------

_DEVICE_STATE_SQL = """
    CASE
        WHEN d.status = 'maintenance' THEN 'maintenance'
        WHEN l.ts IS NULL
             OR l.ts <= CAST(:at AS timestamptz)
                        - greatest(3 * t.interval_s, 600) * interval '1 second' THEN 'offline'
        WHEN l.level = 2 THEN 'alarm'
        WHEN l.level = 1 THEN 'warning'
        ELSE 'normal'
    END
"""

_AREA_DEVICES_SQL = sa.text(
    f"""
    SELECT d.id, d.code, d.type_id, t.category_code, d.street_code,
           ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat,
           {_DEVICE_STATE_SQL} AS state,
           l.ts AS last_ts, l.value AS last_value
    FROM device d
    JOIN device_type t ON t.id = d.type_id
    LEFT JOIN device_latest l ON l.device_id = d.id
    WHERE d.status <> 'retired'
      AND (CAST(:district AS text) IS NULL OR d.district_adcode = :district)
      AND (CAST(:street AS text) IS NULL OR d.street_code = :street)
      AND (CAST(:category AS text) IS NULL OR t.category_code = :category)
    ORDER BY d.id
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
    """Devices of an area for the map: id, code, type, category, position, state, latest value."""
    _check_scope(district=district, street=street, category=category)
    if district is None and street is None:
        raise InvalidQuery("area_devices needs a district or a street (the city is too many)")
    with engine.connect() as conn:
        moment = _now(conn, at)
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
        moment = _now(conn, at)
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
    _check_window(start, end)
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
    _check_scope(district=district, street=street, category=category)
    _check_window(start, end)
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
    _check_scope(district=district)
    _check_window(start, end)
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


# Incidents -------------------------------------------------------------------------------------


def _check_timeline(
    start: datetime,
    end: datetime,
    bucket_minutes: int,
    *,
    district: str | None,
    street: str | None,
    category: str | None,
) -> None:
    _check_scope(district=district, street=street, category=category)
    _check_window(start, end)
    if bucket_minutes not in (15, 30, 60, 180, 360, 1440):
        raise InvalidQuery("bucket_minutes must be one of 15, 30, 60, 180, 360, 1440")


def incident_timeline(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    bucket_minutes: int = 60,
) -> pd.DataFrame:
    """Incidents opened per bucket, by severity and category, for a stacked timeline."""
    _check_timeline(start, end, bucket_minutes, district=district, street=street, category=category)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT date_bin(:bucket * interval '1 minute', opened_at,"
                "        timestamptz '2000-01-01 00:00:00+08') AS bucket,"
                " severity, category_code, count(*)"
                " FROM incident"
                " WHERE opened_at >= :start AND opened_at < :end"
                "   AND (CAST(:district AS text) IS NULL OR district_adcode = :district)"
                "   AND (CAST(:street AS text) IS NULL OR street_code = :street)"
                "   AND (CAST(:category AS text) IS NULL OR category_code = :category)"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            ),
            {
                "bucket": bucket_minutes,
                "start": start,
                "end": end,
                "district": district,
                "street": street,
                "category": category,
            },
        ).all()
    frame = pd.DataFrame(rows, columns=["bucket", "severity", "category", "incidents"])
    return frame.astype({"incidents": "int64"})


def incident_handling_timeline(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    bucket_minutes: int = 60,
) -> pd.DataFrame:
    """Incidents acknowledged, resolved and reopened per bucket (from the event history)."""
    _check_timeline(start, end, bucket_minutes, district=district, street=street, category=category)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT date_bin(:bucket * interval '1 minute', e.at,"
                "        timestamptz '2000-01-01 00:00:00+08') AS bucket, e.kind, count(*)"
                " FROM incident_event e JOIN incident i ON i.id = e.incident_id"
                " WHERE e.at >= :start AND e.at < :end"
                "   AND e.kind IN ('acknowledged', 'resolved', 'reopened')"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                "   AND (CAST(:street AS text) IS NULL OR i.street_code = :street)"
                "   AND (CAST(:category AS text) IS NULL OR i.category_code = :category)"
                " GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            {
                "bucket": bucket_minutes,
                "start": start,
                "end": end,
                "district": district,
                "street": street,
                "category": category,
            },
        ).all()
    frame = pd.DataFrame(rows, columns=["bucket", "kind", "events"])
    return frame.astype({"events": "int64"})


# sort keys of incident_list → SQL expressions (severity and status in their natural order)
INCIDENT_ORDER = {
    "opened_at": "i.opened_at",
    "severity": "array_position(ARRAY['minor','major','critical'], i.severity)",
    "status": "array_position(ARRAY['resolved','acknowledged','open'], i.status)",
    "category": "i.category_code",
    "district": "i.district_adcode",
}


def incident_list(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    severities: tuple[str, ...] = SEVERITIES,
    statuses: tuple[str, ...] = INCIDENT_STATUSES,
    device_id: int | None = None,
    order_by: str = "opened_at",
    descending: bool = True,
    limit: int = 100,
) -> pd.DataFrame:
    """Incidents opened in the window (newest first by default) with place names, for tables."""
    _check_scope(district=district, street=street, category=category)
    _check_window(start, end)
    if order_by not in INCIDENT_ORDER:
        raise InvalidQuery(f"order_by must be one of {', '.join(INCIDENT_ORDER)}")
    if device_id is not None and (not isinstance(device_id, int) or device_id <= 0):
        raise InvalidQuery("device_id must be a positive integer")
    if not set(severities) <= set(SEVERITIES) or not severities:
        raise InvalidQuery(f"severities must be among {SEVERITIES}")
    if not set(statuses) <= set(INCIDENT_STATUSES) or not statuses:
        raise InvalidQuery(f"statuses must be among {INCIDENT_STATUSES}")
    if not 1 <= limit <= 10_000:
        raise InvalidQuery("limit must be between 1 and 10000")
    direction = "DESC" if descending else "ASC"
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT i.id, i.opened_at, i.severity, i.status, i.category_code, i.rule_code,"
                " i.title_zh, i.title_en, i.district_adcode, di.name_zh AS district_zh,"
                " di.name_en AS district_en, i.street_code, s.name_zh AS street_zh,"
                " s.name_en AS street_en, i.device_id, i.trigger_value, i.threshold,"
                " i.acknowledged_at, i.resolved_at, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat"
                " FROM incident i"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " WHERE i.opened_at >= :start AND i.opened_at < :end"
                "   AND i.severity = ANY(:severities) AND i.status = ANY(:statuses)"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                "   AND (CAST(:street AS text) IS NULL OR i.street_code = :street)"
                "   AND (CAST(:category AS text) IS NULL OR i.category_code = :category)"
                "   AND (CAST(:device_id AS bigint) IS NULL OR i.device_id = :device_id)"
                f" ORDER BY {INCIDENT_ORDER[order_by]} {direction}, i.opened_at DESC, i.id DESC"
                " LIMIT :limit"
            ),
            {
                "start": start,
                "end": end,
                "district": district,
                "street": street,
                "category": category,
                "severities": list(severities),
                "statuses": list(statuses),
                "device_id": device_id,
                "limit": limit,
            },
        )
        return pd.DataFrame(result.all(), columns=list(result.keys()))


# an assignee ('team:<code>' / 'user:<name>') with its readable names
_ASSIGNEE_JOINS = (
    " LEFT JOIN team tm ON 'team:' || tm.code = {col}.assignee"
    " LEFT JOIN app_user au ON 'user:' || au.username = {col}.assignee"
)
_ASSIGNEE_NAMES = (
    "coalesce(tm.name_zh, nullif(au.display_name, ''), au.username) AS assignee_zh,"
    " coalesce(tm.name_en, nullif(au.display_name, ''), au.username) AS assignee_en"
)


def incident_detail(engine: Engine, *, incident_id: int) -> dict[str, object] | None:
    """One incident with its device type, place names and thresholds; None if unknown."""
    if not isinstance(incident_id, int) or isinstance(incident_id, bool) or incident_id <= 0:
        raise InvalidQuery(f"incident_id must be a positive integer, not {incident_id!r}")
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT i.id, i.opened_at, i.severity, i.status, i.category_code, i.rule_code,"
                " i.title_zh, i.title_en, i.district_adcode, di.name_zh AS district_zh,"
                " di.name_en AS district_en, i.street_code, s.name_zh AS street_zh,"
                " s.name_en AS street_en, i.device_id, d.code AS device_code,"
                " t.name_zh AS type_zh, t.name_en AS type_en, t.unit, t.decimals,"
                " i.trigger_value, i.threshold, i.acknowledged_at, i.resolved_at, i.assignee,"
                f" {_ASSIGNEE_NAMES}, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat"
                f" FROM incident i {_ASSIGNEE_JOINS.format(col='i')}"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " LEFT JOIN device d ON d.id = i.device_id"
                " LEFT JOIN device_type t ON t.id = d.type_id"
                " WHERE i.id = :incident_id"
            ),
            {"incident_id": incident_id},
        )
        row = result.mappings().one_or_none()
    return None if row is None else dict(row)


def incident_events(engine: Engine, *, incident_id: int) -> pd.DataFrame:
    """An incident's event history, oldest first."""
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                f"SELECT e.at, e.kind, e.actor, e.from_status, e.to_status, e.note, e.assignee,"
                f" {_ASSIGNEE_NAMES} FROM incident_event e {_ASSIGNEE_JOINS.format(col='e')}"
                " WHERE e.incident_id = :incident_id ORDER BY e.at, e.id"
            ),
            {"incident_id": int(incident_id)},
        )
        return pd.DataFrame(result.all(), columns=list(result.keys()))


# Reference look-ups (allow-lists for callbacks) -------------------------------------------------


def district_codes(engine: Engine) -> dict[str, tuple[str, str]]:
    """adcode → (name_zh, name_en) of every district."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT adcode, name_zh, name_en FROM district ORDER BY adcode")
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def category_codes(engine: Engine) -> dict[str, tuple[str, str]]:
    """category code → (name_zh, name_en), in display order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT code, name_zh, name_en FROM device_category ORDER BY sort_order")
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def street_names(engine: Engine, *, district: str) -> dict[str, tuple[str, str, bool]]:
    """street code → (name_zh, name_en, approximate) of one district's streets/towns."""
    _check_scope(district=district)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT code, name_zh, name_en, approximate FROM street"
                " WHERE district_adcode = :district ORDER BY code"
            ),
            {"district": district},
        )
        return {r[0]: (r[1], r[2], bool(r[3])) for r in rows}


def grid_cell_ids(engine: Engine) -> np.ndarray:
    """Every H3 cell id in the grid, as int64."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT cell FROM grid_cell")).scalars().all()
    return np.asarray(rows, dtype=np.int64)


# Boundaries for the maps ----------------------------------------------------------------------

BOUNDARY_LEVELS = ("city", "districts", "streets", "grid")

# Simplification tolerances in degrees (~20 m and ~10 m at Shanghai): invisible at city and
# district zoom, and far smaller than the slivers a coarser per-polygon simplification would open
# between neighbours.
_DISTRICT_TOLERANCE = 0.0002
_STREET_TOLERANCE = 0.0001

_BOUNDARY_SQL = {
    "city": """
        SELECT 'city' AS code, '上海市' AS name_zh, 'Shanghai' AS name_en,
               NULL::text AS district_adcode, false AS approximate,
               ST_SimplifyPreserveTopology(geom, {district_tol}) AS geom
        FROM city_outline
    """,
    "districts": """
        SELECT adcode AS code, name_zh, name_en, adcode AS district_adcode,
               false AS approximate, ST_SimplifyPreserveTopology(geom, {district_tol}) AS geom
        FROM district
        WHERE CAST(:district AS text) IS NULL OR adcode = :district
    """,
    "streets": """
        SELECT code, name_zh, name_en, district_adcode, approximate,
               ST_SimplifyPreserveTopology(geom, {street_tol}) AS geom
        FROM street
        WHERE CAST(:district AS text) IS NULL OR district_adcode = :district
    """,
    "grid": """
        SELECT cell::text AS code, NULL::text AS name_zh, NULL::text AS name_en,
               district_adcode, false AS approximate, geom
        FROM grid_cell
        WHERE CAST(:district AS text) IS NULL OR district_adcode = :district
    """,
}


def boundaries_geojson(engine: Engine, *, level: str, district: str | None = None) -> str:
    """A GeoJSON FeatureCollection (text) of one boundary level, built and simplified in PostGIS.

    Feature ids are the area codes, so map styling can key on them; coordinates have 6 decimals
    (~0.1 m).
    """
    if level not in BOUNDARY_LEVELS:
        raise InvalidQuery(f"level must be one of {', '.join(BOUNDARY_LEVELS)}, not {level!r}")
    _check_scope(district=district)
    inner = _BOUNDARY_SQL[level].format(
        district_tol=_DISTRICT_TOLERANCE, street_tol=_STREET_TOLERANCE
    )
    statement = sa.text(
        "SELECT json_build_object('type', 'FeatureCollection', 'features',"
        " coalesce(json_agg(json_build_object("
        "   'type', 'Feature', 'id', b.code,"
        "   'properties', json_build_object('code', b.code, 'name_zh', b.name_zh,"
        "       'name_en', b.name_en, 'district', b.district_adcode,"
        "       'approximate', b.approximate),"
        "   'geometry', ST_AsGeoJSON(b.geom, 6)::json) ORDER BY b.code), '[]'::json))::text"
        f" FROM ({inner}) b"
    )
    with engine.connect() as conn:
        return conn.execute(statement, {"district": district}).scalar_one()


def reference_version(engine: Engine) -> str:
    """Changes whenever reference geography is (re)loaded or streets are imported."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT coalesce(max(updated_at)::text, 'none') FROM app_meta"
                " WHERE key IN ('reference', 'streets_imported')"
            )
        ).scalar_one()


# Walls: where areas are, and which critical incidents are new -----------------------------------


def area_bounds(engine: Engine, *, district: str | None = None) -> dict[str, list[list[float]]]:
    """code → [[south, west], [north, east]]: every district (and the city), or one district's
    streets."""
    _check_scope(district=district)
    if district is None:
        statement = sa.text(
            "SELECT adcode, ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e)"
            " FROM (SELECT adcode, ST_Envelope(geom) AS e FROM district) d"
            " UNION ALL SELECT 'city', ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e)"
            " FROM (SELECT ST_Envelope(geom) AS e FROM city_outline) c"
        )
    else:
        statement = sa.text(
            "SELECT code, ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e)"
            " FROM (SELECT code, ST_Envelope(geom) AS e FROM street"
            "       WHERE district_adcode = :district) s"
        )
    with engine.connect() as conn:
        rows = conn.execute(statement, {"district": district}).all()
    return {
        row[0]: [[round(row[1], 5), round(row[2], 5)], [round(row[3], 5), round(row[4], 5)]]
        for row in rows
    }


def street_districts(engine: Engine) -> dict[str, str]:
    """street code → district adcode of every street/town."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT code, district_adcode FROM street")).all())


@dataclass(frozen=True)
class IncidentMarks:
    """The newest incident and incident event ids: what a wall has already seen."""

    incident: int
    event: int


_MARKS = sa.text(
    "SELECT (SELECT coalesce(max(id), 0) FROM incident),"
    " (SELECT coalesce(max(id), 0) FROM incident_event)"
)


def _read_marks(conn: sa.Connection) -> IncidentMarks:
    """The high-water marks as seen by `conn`."""
    row = conn.execute(_MARKS).one()
    return IncidentMarks(incident=int(row[0]), event=int(row[1]))


def incident_marks(engine: Engine) -> IncidentMarks:
    """The current high-water marks of incidents and their events."""
    with engine.connect() as conn:
        return _read_marks(conn)


def new_critical_incidents(
    engine: Engine,
    *,
    after: IncidentMarks,
    district: str | None = None,
    limit: int = 20,
) -> tuple[pd.DataFrame, IncidentMarks]:
    """Live critical incidents opened, reopened or escalated to critical since `after` (oldest
    first), and the marks to ask from next time."""
    _check_scope(district=district)
    if not 1 <= limit <= 200:
        raise InvalidQuery("limit must be between 1 and 200")
    with engine.connect() as conn:
        marks = _read_marks(conn)
        # an incident becomes news by being inserted (whoever inserts it) or by an event that
        # makes it critical and live again; both marks bound the scan to what is new
        result = conn.execute(
            sa.text(
                "WITH fresh AS ("
                "  SELECT id FROM incident WHERE id > :after_incident AND id <= :incident_mark"
                "  UNION SELECT incident_id FROM incident_event"
                "  WHERE id > :after_event AND id <= :event_mark"
                "    AND kind IN ('reopened', 'escalated'))"
                " SELECT i.id, i.opened_at, i.severity, i.status, i.category_code,"
                " i.title_zh, i.title_en, i.district_adcode, di.name_zh AS district_zh,"
                " di.name_en AS district_en, i.street_code, s.name_zh AS street_zh,"
                " s.name_en AS street_en, i.device_id, i.trigger_value, i.threshold,"
                " ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat"
                " FROM incident i JOIN fresh f ON f.id = i.id"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " WHERE i.severity = 'critical' AND i.status = 'open'"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                " ORDER BY i.opened_at DESC, i.id DESC LIMIT :limit"
            ),
            {
                "after_incident": int(after.incident),
                "after_event": int(after.event),
                "incident_mark": marks.incident,
                "event_mark": marks.event,
                "district": district,
                "limit": limit,
            },
        )
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    return frame.iloc[::-1].reset_index(drop=True), marks


def incident_statuses(engine: Engine, *, incident_ids: list[int]) -> dict[int, str]:
    """incident id → status of the given incidents (unknown ids are left out)."""
    wanted = [int(i) for i in incident_ids][:200]
    if not wanted:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, status FROM incident WHERE id = ANY(:ids)"), {"ids": wanted}
        ).all()
    return {int(row[0]): row[1] for row in rows}
