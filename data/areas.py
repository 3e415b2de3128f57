"""Per-area figures for the choropleths: districts, streets and H3 cells, from the status
snapshot, live incident counts and rollups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from data.asof import Timed, replaying, timed
from data.checks import ALARM_KINDS, check_scope
from data.clock import at_or_now

_AREA_METRICS_SQL = """
    WITH status AS (
        SELECT {key} AS code,
               sum(devices_total) AS total, sum(devices_online) AS online,
               sum(devices_warning) AS warning, sum(devices_alarm) AS alarm
        FROM {street_status}
        WHERE (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
        GROUP BY 1
    ),
    live AS (
        SELECT {incident_key} AS code,
               sum(n) FILTER (WHERE alarm) AS open_total,
               sum(n) FILTER (WHERE alarm AND severity = 'critical') AS critical,
               sum(n) FILTER (WHERE alarm AND severity = 'major') AS major,
               sum(n) FILTER (WHERE alarm AND severity = 'minor') AS minor,
               sum(n) FILTER (WHERE kind = 'forecast') AS forecasts,
               sum(n) FILTER (WHERE kind = 'health') AS health
        FROM (SELECT *, kind = ANY(CAST(:alarm_kinds AS text[])) AS alarm FROM {incident_live}) c
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
           ST_X(a.label_point), ST_Y(a.label_point),
           coalesce(l.forecasts, 0), coalesce(l.health, 0)
    FROM {table} a
    LEFT JOIN status s ON s.code = a.code
    LEFT JOIN live l ON l.code = a.code
    LEFT JOIN recent r ON r.code = a.code
    WHERE (CAST(:district AS text) IS NULL OR {district_filter} = :district)
    ORDER BY a.code
"""

_DISTRICT_METRICS_SQL = timed(
    _AREA_METRICS_SQL,
    key="district_adcode",
    incident_key="district_adcode",
    approximate="false",
    table="(SELECT adcode AS code, * FROM district)",
    district_filter="a.adcode",
)
_STREET_METRICS_SQL = timed(
    _AREA_METRICS_SQL,
    key="street_code",
    incident_key="street_code",
    approximate="a.approximate",
    table="street",
    district_filter="a.district_adcode",
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
    # live 预警 (forecast incidents) and device-health incidents; not in the alarm figures above
    open_forecasts: int = 0
    open_health: int = 0

    @property
    def online_rate(self) -> float | None:
        """Share of the area's devices online; None for an area without devices."""
        return self.devices_online / self.devices_total if self.devices_total else None

    @property
    def incidents_per_100km2(self) -> float:
        """Open incidents per 100 km² of the area."""
        return self.open_incidents / self.area_km2 * 100 if self.area_km2 else 0.0

    @property
    def forecast_only(self) -> bool:
        """A live 预警 and no open alarm: the map shows the area in the 预警 style."""
        return self.open_forecasts > 0 and self.open_incidents == 0


def _area_metrics(
    engine: Engine,
    statement: Timed,
    *,
    district: str | None,
    category: str | None,
    at: datetime | None,
    replay: bool,
) -> list[AreaMetric]:
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        rows = conn.execute(
            statement.of(replaying(at, replay)),
            {
                "at": moment,
                "district": district,
                "category": category,
                "alarm_kinds": list(ALARM_KINDS),
            },
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
            open_forecasts=int(r[16]),
            open_health=int(r[17]),
        )
        for r in rows
    ]


def district_metrics(
    engine: Engine,
    *,
    category: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> list[AreaMetric]:
    """Per-district figures for the city choropleth (16 rows) (`replay`: as they stood at
    `at`)."""
    check_scope(category=category)
    return _area_metrics(
        engine, _DISTRICT_METRICS_SQL, district=None, category=category, at=at, replay=replay
    )


def street_metrics(
    engine: Engine,
    *,
    district: str,
    category: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> list[AreaMetric]:
    """Per-street/town figures of one district (approximate areas flagged) (`replay`: as they
    stood at `at`)."""
    check_scope(district=district, category=category)
    return _area_metrics(
        engine, _STREET_METRICS_SQL, district=district, category=category, at=at, replay=replay
    )


_CELL_METRICS_SQL = timed(
    """
    SELECT c.cell, c.street_code,
           sum(c.devices_total), sum(c.devices_online), sum(c.devices_warning),
           sum(c.devices_alarm)
    FROM {cell_status} c
    WHERE c.district_adcode = :district
      AND (CAST(:category AS text) IS NULL OR c.category_code = :category)
    GROUP BY c.cell, c.street_code
    ORDER BY c.cell
    """
)


def cell_metrics(
    engine: Engine,
    *,
    district: str,
    category: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> pd.DataFrame:
    """Per-H3-cell device counts of a district (cell as int64; geometry comes from grid_cells)
    (`replay`: as they stood at `at`)."""
    check_scope(district=district, category=category)
    with engine.connect() as conn:
        rows = conn.execute(
            _CELL_METRICS_SQL.of(replaying(at, replay)),
            {"district": district, "category": category, "at": at},
        ).all()
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
