"""Scenario (专题) figures: each measurand's devices against their own lines now, and where the
highest and lowest readings are; within the reader's access scope like every read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.asof import replaying, timed
from data.checks import InvalidQuery, check_measurands, check_scope
from data.clock import at_or_now

# an active device's latest reading, online as on the maps (data/devices._DEVICE_STATE_SQL):
# heard from within three intervals (at least ten minutes)
_LATEST_CTE = """
WITH latest AS MATERIALIZED (
    SELECT t.measurand, t.value_kind, t.unit, t.decimals, t.normal_min, t.normal_max,
           t.alarm_min, t.alarm_max, d.id, d.street_code, d.district_adcode, l.value,
           coalesce(l.ts > CAST(:at AS timestamptz)
                    - status_window(t.interval_s), false) AS online
    FROM device_type t
    JOIN device d ON d.type_id = t.id AND d.status = 'active'
    LEFT JOIN {latest}
    WHERE t.measurand = ANY(CAST(:measurands AS text[]))
      AND (CAST(:district AS text) IS NULL OR d.district_adcode = :district)
)
"""

# each device against its own type's lines (models of one measurand may differ), and where the
# highest and lowest online readings are (ties: the lowest device id); one scan of the devices
_NOW_SQL = timed(
    _LATEST_CTE
    + """
, stats AS (
    SELECT measurand, min(unit) AS unit, min(decimals) AS decimals,
           bool_or(value_kind = 'binary') AS binary,
           min(normal_min) AS normal_min, max(normal_max) AS normal_max,
           min(alarm_min) AS alarm_min, max(alarm_max) AS alarm_max,
           count(*) AS total, count(*) FILTER (WHERE online) AS online,
           count(*) FILTER (WHERE online AND value > normal_max) AS above_normal,
           count(*) FILTER (WHERE online AND value > alarm_max) AS above_alarm,
           count(*) FILTER (WHERE online AND value < normal_min) AS below_normal,
           count(*) FILTER (WHERE online AND value < alarm_min) AS below_alarm,
           max(value) FILTER (WHERE online) AS highest,
           min(value) FILTER (WHERE online) AS lowest
    FROM latest GROUP BY measurand
), alarmed AS (
    -- where and for how many households, of the few beyond their alarm line only (carried
    -- through every device's row, the geometry made the whole read 1.7× slower)
    SELECT l.measurand, l.street_code, d.served, d.geom,
           ST_ClusterDBSCAN(d.geom, eps := :reach_deg, minpoints := 1)
               OVER (PARTITION BY l.measurand) AS patch
    FROM latest l
    -- looked up one by one by key (OFFSET 0 keeps the subquery a loop of index lookups: as a
    -- join, the planner guessed thousands and hashed all 510k devices for five)
    CROSS JOIN LATERAL (SELECT x.served, x.geom FROM device x WHERE x.id = l.id OFFSET 0) d
    WHERE l.online AND (l.value > l.alarm_max OR l.value < l.alarm_min)
), patches AS (
    -- each patch of neighbouring devices beyond their alarm line: the hull around them, and
    -- the reach of a device beyond it (a main's pressure falls around its burst)
    SELECT measurand, ST_Area(ST_Buffer(ST_ConvexHull(ST_Collect(geom))::geography,
                                        :reach_m)) / 1e6 AS km2
    FROM alarmed GROUP BY measurand, patch
), alarm_streets AS (
    SELECT a.measurand, count(DISTINCT a.street_code) AS streets_alarm,
           sum(a.served) AS served_alarm, count(*) FILTER (WHERE a.served IS NULL) AS unserved,
           (SELECT sum(km2) FROM patches p WHERE p.measurand = a.measurand) AS area_km2,
           (SELECT count(*) FROM patches p WHERE p.measurand = a.measurand) AS patches
    FROM alarmed a GROUP BY a.measurand
), top AS (
    SELECT l.measurand, (array_agg(l.street_code ORDER BY l.id))[1] AS street_code,
           (array_agg(l.district_adcode ORDER BY l.id))[1] AS district_adcode
    FROM latest l JOIN stats s ON s.measurand = l.measurand AND l.value = s.highest
    WHERE l.online GROUP BY l.measurand
), bottom AS (
    SELECT l.measurand, (array_agg(l.street_code ORDER BY l.id))[1] AS street_code,
           (array_agg(l.district_adcode ORDER BY l.id))[1] AS district_adcode
    FROM latest l JOIN stats s ON s.measurand = l.measurand AND l.value = s.lowest
    WHERE l.online GROUP BY l.measurand
)
SELECT st.*, coalesce(a.streets_alarm, 0) AS streets_alarm,
       coalesce(a.served_alarm, 0) AS served_alarm, coalesce(a.unserved, 0) AS unserved_alarm,
       coalesce(a.area_km2, 0) AS area_alarm_km2, coalesce(a.patches, 0) AS patches_alarm,
       ts.name_zh AS top_street_zh, ts.name_en AS top_street_en,
       td.name_zh AS top_district_zh, td.name_en AS top_district_en,
       bs.name_zh AS bottom_street_zh, bs.name_en AS bottom_street_en,
       bd.name_zh AS bottom_district_zh, bd.name_en AS bottom_district_en
FROM stats st
LEFT JOIN alarm_streets a ON a.measurand = st.measurand
LEFT JOIN top t ON t.measurand = st.measurand
LEFT JOIN street ts ON ts.code = t.street_code
LEFT JOIN district td ON td.adcode = t.district_adcode
LEFT JOIN bottom b ON b.measurand = st.measurand
LEFT JOIN street bs ON bs.code = b.street_code
LEFT JOIN district bd ON bd.adcode = b.district_adcode
"""
)


# an affected area, approximate: devices beyond their alarm line less than PATCH_GAP_M apart
# are one patch; a patch is the hull around its devices widened by REACH_M, how far a device's
# reading speaks for the mains around it (one device alone: a disc of that radius)
REACH_M = 300
PATCH_GAP_M = 1500
METRES_PER_DEGREE = 111_320  # of latitude; the clustering is in degrees, coarse on purpose


@dataclass(frozen=True)
class Place:
    """A street (when known) and its district, in both languages."""

    street_zh: str | None
    street_en: str | None
    district_zh: str
    district_en: str


@dataclass(frozen=True)
class MeasurandNow:
    """One measurand's active devices now: how many are online, beyond their lines, and the
    extremes with where they are; of those beyond their alarm line, the households they stand
    for (and how many stand for unknown ones) and the approximate area and patches they make."""

    measurand: str
    unit: str
    decimals: int
    binary: bool
    normal_min: float | None
    normal_max: float | None
    alarm_min: float | None
    alarm_max: float | None
    total: int
    online: int
    above_normal: int
    above_alarm: int
    below_normal: int
    below_alarm: int
    streets_alarm: int
    served_alarm: int
    unserved_alarm: int
    area_alarm_km2: float
    patches_alarm: int
    highest: float | None
    lowest: float | None
    highest_at: Place | None
    lowest_at: Place | None


def measurands_now(
    engine: Engine,
    *,
    measurands: tuple[str, ...],
    district: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> dict[str, MeasurandNow]:
    """Each measurand's devices now (of one district, or the reader's whole scope); a
    measurand without active devices is left out (`replay`: from each device's newest reading
    by `at`)."""
    check_scope(district=district)
    check_measurands(measurands)
    with engine.connect() as conn:
        # the read costs little but is estimated dear (the patches' window and geography):
        # JIT compiling it took 1–2 s of a 0.2 s read
        conn.execute(sa.text("SET LOCAL jit = off"))
        params = {
            "measurands": list(measurands),
            "district": district,
            "at": at_or_now(conn, at),
            "reach_m": REACH_M,
            "reach_deg": PATCH_GAP_M / METRES_PER_DEGREE,
        }
        rows = conn.execute(_NOW_SQL.of(replaying(at, replay)), params).mappings().all()
    return {row["measurand"]: _measurand(row) for row in rows}


def _number(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _place(row: sa.RowMapping, side: str) -> Place | None:
    """Where a measurand's extreme is (None when it has no online reading)."""
    if row[f"{side}_district_zh"] is None:
        return None
    return Place(
        row[f"{side}_street_zh"],
        row[f"{side}_street_en"],
        row[f"{side}_district_zh"],
        row[f"{side}_district_en"],
    )


def _measurand(row: sa.RowMapping) -> MeasurandNow:
    """One statistics row as a MeasurandNow, with the places of its extremes."""
    name = str(row["measurand"])
    return MeasurandNow(
        measurand=name,
        unit=str(row["unit"]),
        decimals=int(row["decimals"]),
        binary=bool(row["binary"]),
        normal_min=_number(row["normal_min"]),
        normal_max=_number(row["normal_max"]),
        alarm_min=_number(row["alarm_min"]),
        alarm_max=_number(row["alarm_max"]),
        total=int(row["total"]),
        online=int(row["online"]),
        above_normal=int(row["above_normal"]),
        above_alarm=int(row["above_alarm"]),
        below_normal=int(row["below_normal"]),
        below_alarm=int(row["below_alarm"]),
        streets_alarm=int(row["streets_alarm"]),
        served_alarm=int(row["served_alarm"]),
        unserved_alarm=int(row["unserved_alarm"]),
        area_alarm_km2=float(row["area_alarm_km2"]),
        patches_alarm=int(row["patches_alarm"]),
        highest=_number(row["highest"]),
        lowest=_number(row["lowest"]),
        highest_at=_place(row, "top"),
        lowest_at=_place(row, "bottom"),
    )


# the scenario's devices beyond their own normal line now (online only), the worse first: what
# the scenario's map draws (an underpass filling, a gauge over its warning line, a pump failed)
_BEYOND_SQL = timed(
    """
SELECT d.id, t.measurand, t.name_zh, t.name_en, t.unit, t.decimals, l.value,
       t.normal_min, t.normal_max, t.alarm_min, t.alarm_max,
       ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat, s.name_zh AS street_zh, s.name_en AS street_en,
       coalesce(l.value > t.alarm_max OR l.value < t.alarm_min, false) AS alarm
FROM device_type t
JOIN device d ON d.type_id = t.id AND d.status = 'active'
JOIN {latest}
LEFT JOIN street s ON s.code = d.street_code
WHERE t.measurand = ANY(CAST(:measurands AS text[]))
  AND (CAST(:district AS text) IS NULL OR d.district_adcode = :district)
  AND l.ts > CAST(:at AS timestamptz) - status_window(t.interval_s)
  AND (l.value > t.normal_max OR l.value < t.normal_min)
ORDER BY coalesce(l.value > t.alarm_max OR l.value < t.alarm_min, false) DESC, d.id
LIMIT :limit
"""
)


def beyond_lines(
    engine: Engine,
    *,
    measurands: tuple[str, ...],
    district: str | None = None,
    at: datetime | None = None,
    limit: int = 1500,
    replay: bool = False,
) -> list[dict[str, object]]:
    """The measurands' online devices beyond their normal line now, those beyond their alarm
    line first (at most `limit`), with where they are: the scenario map's points."""
    check_scope(district=district)
    check_measurands(measurands)
    if not 1 <= limit <= 5000:
        raise InvalidQuery("limit must be between 1 and 5000")
    with engine.connect() as conn:
        params = {
            "measurands": list(measurands),
            "district": district,
            "at": at_or_now(conn, at),
            "limit": int(limit),
        }
        return [
            dict(row)
            for row in conn.execute(_BEYOND_SQL.of(replaying(at, replay)), params).mappings()
        ]


# how long a measurand's alarms stay open: the live ones (and the oldest of them) and those
# resolved in the last day (how long they took): restoration and repair times
_TIMES_SQL = sa.text(
    """
SELECT t.measurand,
       count(*) FILTER (WHERE i.status <> 'resolved') AS live,
       min(i.opened_at) FILTER (WHERE i.status <> 'resolved') AS oldest,
       count(*) FILTER (WHERE i.status = 'resolved') AS restored,
       avg(extract(epoch FROM i.resolved_at - i.opened_at))
           FILTER (WHERE i.status = 'resolved') AS mean_s
FROM incident i JOIN device_type t ON t.id = i.type_id
WHERE i.kind = 'alarm' AND t.measurand = ANY(CAST(:measurands AS text[]))
  AND i.opened_at <= :at
  AND (i.status <> 'resolved' OR (i.resolved_at > :since AND i.resolved_at <= :at))
  AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)
GROUP BY t.measurand
"""
)
RESTORE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class AlarmTimes:
    """A measurand's alarms: how many are open and since when the oldest, how many were
    resolved in the last day and their mean time open (seconds; None without any)."""

    measurand: str
    live: int
    oldest_open: datetime | None
    restored: int
    mean_restore_s: float | None
    at: datetime


def alarm_times(
    engine: Engine,
    *,
    measurands: tuple[str, ...],
    district: str | None = None,
    at: datetime | None = None,
) -> dict[str, AlarmTimes]:
    """Each measurand's open alarms and restoration times (of one district, or the reader's
    whole scope, as the incident table's row-level security allows)."""
    check_scope(district=district)
    check_measurands(measurands)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        params = {
            "measurands": list(measurands),
            "district": district,
            "at": moment,
            "since": moment - RESTORE_WINDOW,
        }
        rows = conn.execute(_TIMES_SQL, params).mappings().all()
    return {
        row["measurand"]: AlarmTimes(
            measurand=str(row["measurand"]),
            live=int(row["live"]),
            oldest_open=row["oldest"],
            restored=int(row["restored"]),
            mean_restore_s=_number(row["mean_s"]),
            at=moment,
        )
        for row in rows
    }
