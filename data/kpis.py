"""Status tiles (KPIs) of the city or one area, from the status snapshot, rollups and the
incident counters: the cost does not grow with the device count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.asof import replaying, timed
from data.cache import fresh_for
from data.checks import ALARM_KINDS, check_scope
from data.clock import CITY_TZ, at_or_now


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


# A read of the past counts incidents from the table (the daily counters hold whole days) and
# readings to its last whole quarter hour (the rollups cannot say which of a quarter's readings
# had come by then)
_KPI_SQL = timed(
    """
    WITH scope AS (
        SELECT city_day(CAST(:at AS timestamptz)) AS today,
               city_midnight(city_day(CAST(:at AS timestamptz))) AS midnight,
               CASE WHEN {past} THEN bucket_15m(CAST(:at AS timestamptz))
                    ELSE 'infinity'::timestamptz END AS cut,
               date_trunc('hour', CAST(:at AS timestamptz)) AS hour
    ),
    devices AS (
        SELECT coalesce(sum(devices_total), 0) AS total,
               coalesce(sum(devices_online), 0) AS online,
               coalesce(sum(devices_warning), 0) AS warning,
               coalesce(sum(devices_alarm), 0) AS alarm
        FROM {street_status}
        WHERE (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    readings AS (
        SELECT coalesce(sum(n_readings) FILTER (WHERE day = scope.today), 0) AS today,
               coalesce(sum(n_readings) FILTER (WHERE day = scope.today - 1), 0) AS yesterday
        FROM rollup_district_daily, scope
        WHERE CAST(:street AS text) IS NULL AND NOT {past}
          AND day IN (scope.today, scope.today - 1)
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    street_readings AS (
        SELECT coalesce(sum(n_readings) FILTER (WHERE bucket >= scope.midnight), 0) AS today,
               coalesce(sum(n_readings) FILTER (WHERE bucket < scope.midnight), 0) AS yesterday
        FROM rollup_street_15m, scope
        WHERE CAST(:street AS text) IS NOT NULL AND street_code = :street
          AND ((bucket >= scope.midnight AND bucket < scope.midnight + interval '1 day'
                AND bucket < scope.cut)
               OR (bucket >= scope.midnight - interval '1 day' AND bucket < scope.midnight
                   AND bucket < scope.cut - interval '1 day'))
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    -- the past's readings to its last whole quarter hour: whole hours from the hourly rollups,
    -- the hour under way from the 15-minute ones
    past_hours AS (
        SELECT r.bucket, r.n_readings
        FROM rollup_district_type_1h r JOIN device_type t ON t.id = r.type_id, scope
        WHERE {past} AND CAST(:street AS text) IS NULL
          AND ((r.bucket >= scope.midnight AND r.bucket < scope.hour)
               OR (r.bucket >= scope.midnight - interval '1 day'
                   AND r.bucket < scope.hour - interval '1 day'))
          AND (CAST(:district AS text) IS NULL OR r.district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR t.category_code = :category)
        UNION ALL
        SELECT q.bucket, q.n_readings
        FROM rollup_street_15m q, scope
        WHERE {past} AND CAST(:street AS text) IS NULL
          AND ((q.bucket >= greatest(scope.hour, scope.midnight) AND q.bucket < scope.cut)
               OR (q.bucket >= greatest(scope.hour, scope.midnight) - interval '1 day'
                   AND q.bucket < scope.cut - interval '1 day'))
          AND (CAST(:district AS text) IS NULL OR q.district_adcode = :district)
          AND (CAST(:category AS text) IS NULL OR q.category_code = :category)
    ),
    past_readings AS (
        SELECT coalesce(sum(n_readings) FILTER (WHERE bucket >= scope.midnight), 0) AS today,
               coalesce(sum(n_readings) FILTER (WHERE bucket < scope.midnight), 0) AS yesterday
        FROM past_hours, scope
    ),
    live AS (
        SELECT coalesce(sum(n) FILTER (WHERE severity = 'critical' AND alarm), 0) AS critical,
               coalesce(sum(n) FILTER (WHERE severity = 'major' AND alarm), 0) AS major,
               coalesce(sum(n) FILTER (WHERE severity = 'minor' AND alarm), 0) AS minor,
               coalesce(sum(n) FILTER (WHERE kind = 'health'), 0) AS health
        FROM (SELECT *, kind = ANY(CAST(:alarm_kinds AS text[])) AS alarm FROM {incident_live}) c
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
        WHERE CAST(:street AS text) IS NULL AND NOT {past}
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
        WHERE (CAST(:street AS text) IS NOT NULL OR {past})
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
        WHERE (CAST(:street AS text) IS NOT NULL OR {past})
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
        WHERE (CAST(:street AS text) IS NOT NULL OR {past})
          AND acknowledged_at >= scope.midnight - interval '1 day' AND acknowledged_at <= :at
          AND kind = ANY(CAST(:alarm_kinds AS text[]))
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    -- live 预警 are few (the partial index on kind, expected_at): read them directly
    forecasts AS (
        SELECT count(*) AS n, min(i.expected_at) AS next
        FROM {live_incident}
        WHERE i.kind = 'forecast'
          AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR i.street_code = :street)
          AND (CAST(:category AS text) IS NULL OR i.category_code = :category)
    )
    SELECT devices.total, devices.online, devices.warning, devices.alarm,
           CASE WHEN CAST(:street AS text) IS NOT NULL THEN street_readings.today
                WHEN {past} THEN past_readings.today ELSE readings.today END,
           CASE WHEN CAST(:street AS text) IS NOT NULL THEN street_readings.yesterday
                WHEN {past} THEN past_readings.yesterday ELSE readings.yesterday END,
           live.critical, live.major, live.minor,
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.opened_today
                ELSE opened.today END,
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.opened_yesterday
                ELSE opened.yesterday END,
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.resolved_today
                ELSE resolved.today END,
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.resolved_yesterday
                ELSE resolved.yesterday END,
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.mttr_today
                ELSE resolved.mttr_today END,
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.mttr_yesterday
                ELSE resolved.mttr_yesterday END,
           {status_as_of},
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.mtta_today
                ELSE acknowledged.mtta_today END,
           CASE WHEN CAST(:street AS text) IS NULL AND NOT {past} THEN daily.mtta_yesterday
                ELSE acknowledged.mtta_yesterday END,
           forecasts.n, forecasts.next, live.health
    FROM devices, readings, street_readings, past_readings, live, daily, opened, resolved,
         acknowledged, forecasts
    """
)


def area_kpis(
    engine: Engine,
    *,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> Kpis:
    """KPIs for the whole city, a district or a street, optionally one category (`replay`: as
    they stood at `at`)."""
    check_scope(district=district, street=street, category=category)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        row = conn.execute(
            _KPI_SQL.of(replaying(at, replay)),
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


def city_kpis(
    engine: Engine,
    *,
    category: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> Kpis:
    """KPIs for the whole city."""
    return area_kpis(engine, category=category, at=at, replay=replay)


# Trends behind the tiles ------------------------------------------------------------------------
# Hourly figures of the last day and of yesterday up to the same hour, from the hourly rollups
# (a street's from its 15-minute rollups) and the incident indexes: a few hundred rows at most.

TREND_HOURS = 24
# the series are hourly and the changes count completed hours (the open incidents' excepted):
# a minute-old copy shows the same lines, and a 5-s refresh no longer reads them every time
TREND_FRESH_S = 60.0

_READINGS_BY_HOUR = sa.text(
    """
    SELECT r.bucket AS hour, sum(r.n_readings) AS n
    FROM rollup_district_type_1h r JOIN device_type t ON t.id = r.type_id
    WHERE r.bucket >= :since AND r.bucket <= :at
      AND (CAST(:district AS text) IS NULL OR r.district_adcode = :district)
      AND (CAST(:category AS text) IS NULL OR t.category_code = :category)
    GROUP BY r.bucket
    """
)

_STREET_READINGS_BY_HOUR = sa.text(
    """
    SELECT date_trunc('hour', bucket) AS hour, sum(n_readings) AS n
    FROM rollup_street_15m
    WHERE street_code = :street AND bucket >= :since AND bucket <= :at
      AND (CAST(:category AS text) IS NULL OR category_code = :category)
    GROUP BY 1
    """
)

_INCIDENTS_BY_HOUR = sa.text(
    """
    WITH scoped AS (
        SELECT opened_at, resolved_at FROM incident
        WHERE kind = ANY(CAST(:alarm_kinds AS text[]))
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    ),
    opened AS (
        SELECT date_trunc('hour', opened_at) AS hour, count(*) AS n FROM scoped
        WHERE opened_at >= :since AND opened_at <= :at GROUP BY 1
    ),
    resolved AS (
        SELECT date_trunc('hour', resolved_at) AS hour, count(*) AS n,
               sum(extract(epoch FROM resolved_at - opened_at)) AS seconds
        FROM scoped WHERE resolved_at >= :since AND resolved_at <= :at GROUP BY 1
    )
    SELECT coalesce(o.hour, r.hour), coalesce(o.n, 0), coalesce(r.n, 0), r.seconds
    FROM opened o FULL JOIN resolved r ON r.hour = o.hour
    """
)

# open incidents at each instant of :ends (live ones, or resolved since the earliest instant)
_OPEN_AT = sa.text(
    """
    WITH candidates AS (
        SELECT opened_at, resolved_at FROM incident
        WHERE (status <> 'resolved' OR resolved_at > :earliest)
          AND kind = ANY(CAST(:alarm_kinds AS text[]))
          AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
          AND (CAST(:street AS text) IS NULL OR street_code = :street)
          AND (CAST(:category AS text) IS NULL OR category_code = :category)
    )
    SELECT e.at, count(c.opened_at)
    FROM unnest(CAST(:ends AS timestamptz[])) AS e(at)
    LEFT JOIN candidates c
      ON c.opened_at <= e.at AND (c.resolved_at IS NULL OR c.resolved_at > e.at)
    GROUP BY e.at
    """
)


@dataclass(frozen=True)
class TileTrends:
    """Per tile: the hourly series of the last day (oldest first, the last hour under way) and
    the (now, same time yesterday) pair its change is written from."""

    hours: tuple[datetime, ...]
    series: dict[str, tuple[float | None, ...]]
    changes: dict[str, tuple[float | None, float | None]]
    at: datetime


def trend_hours(at: datetime) -> tuple[datetime, ...]:
    """The starts of the last TREND_HOURS hours, the one under way last."""
    current = at.replace(minute=0, second=0, microsecond=0)
    return tuple(current - timedelta(hours=back) for back in range(TREND_HOURS - 1, -1, -1))


def _midnight(at: datetime) -> datetime:
    """The Shanghai midnight that began `at`'s day."""
    return at.astimezone(CITY_TZ).replace(hour=0, minute=0, second=0, microsecond=0)


def _so_far(by_hour: dict[datetime, float], at: datetime) -> tuple[float, float]:
    """Totals over today's completed hours, and over the same hours of yesterday."""
    midnight, current = _midnight(at), at.replace(minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    today = sum(v for h, v in by_hour.items() if midnight <= h < current)
    yesterday = sum(v for h, v in by_hour.items() if midnight - day <= h < current - day)
    return today, yesterday


@fresh_for(TREND_FRESH_S)
def tile_trends(
    engine: Engine,
    *,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    at: datetime | None = None,
) -> TileTrends:
    """The tiles' last-day series and their changes against the same time yesterday."""
    check_scope(district=district, street=street, category=category)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        hours = trend_hours(moment)
        since = min(hours[0], _midnight(moment) - timedelta(days=1))
        scope = {"district": district, "street": street, "category": category}
        timing = {"since": since, "at": moment}
        readings_sql = _READINGS_BY_HOUR if street is None else _STREET_READINGS_BY_HOUR
        readings = {h: float(n) for h, n in conn.execute(readings_sql, {**timing, **scope})}
        kinds = {"alarm_kinds": list(ALARM_KINDS)}
        incidents = conn.execute(_INCIDENTS_BY_HOUR, {**timing, **scope, **kinds}).all()
        ends = [*(h + timedelta(hours=1) for h in hours[:-1]), moment, moment - timedelta(days=1)]
        open_rows = conn.execute(
            _OPEN_AT, {**scope, **kinds, "ends": ends, "earliest": min(ends)}
        ).all()
    open_at: dict[datetime, int] = {end: int(n) for end, n in open_rows}
    opened = {h: float(n) for h, n, _r, _s in incidents}
    resolved = {h: float(r) for h, _n, r, _s in incidents}
    seconds = {h: float(s) for h, _n, _r, s in incidents if s is not None}
    resolved_now, resolved_then = _so_far(resolved, moment)
    seconds_now, seconds_then = _so_far(seconds, moment)
    return TileTrends(
        hours=hours,
        series={
            "readings_today": tuple(readings.get(h, 0.0) for h in hours),
            "open_incidents": tuple(float(open_at.get(end, 0)) for end in ends[:-1]),
            "resolved_today": tuple(resolved.get(h, 0.0) for h in hours),
            "mttr": tuple(
                seconds[h] / resolved[h] / 60 if resolved.get(h) and h in seconds else None
                for h in hours
            ),
            "opened": tuple(opened.get(h, 0.0) for h in hours),
        },
        changes={
            "readings_today": _so_far(readings, moment),
            "open_incidents": (float(open_at.get(moment, 0)), float(open_at.get(ends[-1], 0))),
            "resolved_today": (resolved_now, resolved_then),
            "mttr": (
                seconds_now / resolved_now / 60 if resolved_now else None,
                seconds_then / resolved_then / 60 if resolved_then else None,
            ),
        },
        at=moment,
    )
