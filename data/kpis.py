"""Status tiles (KPIs) of the city or one area, from the status snapshot, rollups and the
incident counters: the cost does not grow with the device count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.checks import ALARM_KINDS, check_scope
from data.clock import at_or_now


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
    # 预警 (forecast incidents) live in scope, and the earliest breach they expect
    forecasts_open: int = 0
    forecast_next: datetime | None = None
    # device-health incidents (sensors that lie) live in scope
    health_open: int = 0

    @property
    def online_rate(self) -> float | None:
        """Share of the devices in scope online; None when there are none."""
        return self.devices_online / self.devices_total if self.devices_total else None

    @property
    def open_total(self) -> int:
        """Open alarm incidents (alarms and anomalies) of every severity."""
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
        SELECT coalesce(sum(n) FILTER (WHERE severity = 'critical' AND alarm), 0) AS critical,
               coalesce(sum(n) FILTER (WHERE severity = 'major' AND alarm), 0) AS major,
               coalesce(sum(n) FILTER (WHERE severity = 'minor' AND alarm), 0) AS minor,
               coalesce(sum(n) FILTER (WHERE kind = 'health'), 0) AS health
        FROM (SELECT *, kind = ANY(CAST(:alarm_kinds AS text[])) AS alarm FROM incident_live) c
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
          AND kind = ANY(CAST(:alarm_kinds AS text[]))
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
          AND kind = ANY(CAST(:alarm_kinds AS text[]))
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
          AND kind = ANY(CAST(:alarm_kinds AS text[]))
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
          AND kind = ANY(CAST(:alarm_kinds AS text[]))
          AND street_code = :street
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    -- live 预警 are few (the partial index on kind, expected_at): read them directly
    forecasts AS (
        SELECT count(*) AS n, min(expected_at) AS next
        FROM incident
        WHERE kind = 'forecast' AND status <> 'resolved'
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
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
                ELSE acknowledged.mtta_yesterday END,
           forecasts.n, forecasts.next, live.health
    FROM devices, readings, street_readings, live, daily, opened, resolved, acknowledged,
         forecasts
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
    check_scope(district=district, street=street, category=category)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        row = conn.execute(
            _KPI_SQL,
            {
                "at": moment,
                "district": district,
                "street": street,
                "category": category,
                "alarm_kinds": list(ALARM_KINDS),
            },
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
        forecasts_open=int(row[18]),
        forecast_next=row[19],
        health_open=int(row[20]),
    )


def city_kpis(engine: Engine, *, category: str | None = None, at: datetime | None = None) -> Kpis:
    """KPIs for the whole city."""
    return area_kpis(engine, category=category, at=at)
