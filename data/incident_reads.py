"""Reading incidents: timelines, lists, one incident with its history, and what is new for a
wall (high-water marks). Handling them is data/incidents.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.asof import replaying, source
from data.checks import (
    ALARM_KINDS,
    INCIDENT_STATUSES,
    SEVERITIES,
    InvalidQuery,
    check_scope,
    check_window,
)

# incident.kind (revision 0006): alarm = threshold/offline rules; forecast = 预警 (a breach of the
# alarm limit is expected); anomaly = a device away from its own normal; health = a sensor that lies
INCIDENT_KINDS = ("alarm", "forecast", "anomaly", "health")
# the kinds that stand beside a device's readings as "why" (an alarm says so by its title)
FINDING_KINDS = ("forecast", "anomaly", "health")


def _check_timeline(
    start: datetime,
    end: datetime,
    bucket_minutes: int,
    *,
    district: str | None,
    street: str | None,
    category: str | None,
) -> None:
    check_scope(district=district, street=street, category=category)
    check_window(start, end)
    if bucket_minutes not in (15, 30, 60, 180, 360, 1440):
        raise InvalidQuery("bucket_minutes must be one of 15, 30, 60, 180, 360, 1440")


# incidents opened per bucket: the quarter-hour counters (revision 0015) for the window's whole
# quarter-hours, the raw incidents only for its partial first and last ones
def _place(alias: str) -> str:
    """The optional district, street and category filters on table `alias`."""
    return "".join(
        f"          AND (CAST(:{name} AS text) IS NULL OR {alias}.{column} = :{name})\n"
        for name, column in (
            ("district", "district_adcode"),
            ("street", "street_code"),
            ("category", "category_code"),
        )
    )


_TIMELINE_SQL = f"""
    SELECT date_bin(:bucket * interval '1 minute', t.at, timestamptz '2000-01-01 00:00:00+08')
               AS bucket, t.severity, t.category_code, sum(t.n)::bigint
    FROM (
        SELECT r.bucket AS at, r.severity, r.category_code, r.n
        FROM incident_opened_15m r
        WHERE r.bucket >= :inner_start AND r.bucket < :inner_end AND r.kind = ANY(:kinds)
{_place("r")}        UNION ALL
        SELECT i.opened_at, i.severity, i.category_code, 1
        FROM incident i
        WHERE ((i.opened_at >= :start AND i.opened_at < :inner_start)
               OR (i.opened_at >= :inner_end AND i.opened_at < :end))
          AND i.kind = ANY(:kinds)
{_place("i")}    ) t
    WHERE t.n <> 0
    GROUP BY 1, 2, 3
    HAVING sum(t.n) > 0
    ORDER BY 1, 2, 3
"""
# the handling lines likewise: counters (revision 0017) inside, events at the two edges
_HANDLING_SQL = f"""
    SELECT date_bin(:bucket * interval '1 minute', t.at, timestamptz '2000-01-01 00:00:00+08')
               AS bucket, t.kind, sum(t.n)::bigint
    FROM (
        SELECT r.bucket AS at, r.event_kind AS kind, r.n
        FROM incident_handled_15m r
        WHERE r.bucket >= :inner_start AND r.bucket < :inner_end AND r.incident_kind = ANY(:kinds)
{_place("r")}        UNION ALL
        SELECT e.at, e.kind, 1
        FROM incident_event e JOIN incident i ON i.id = e.incident_id
        WHERE ((e.at >= :start AND e.at < :inner_start) OR (e.at >= :inner_end AND e.at < :end))
          AND e.kind IN ('acknowledged', 'resolved', 'reopened') AND i.kind = ANY(:kinds)
{_place("i")}    ) t
    GROUP BY 1, 2
    HAVING sum(t.n) > 0
    ORDER BY 1, 2
"""
_QUARTER = timedelta(minutes=15)


def _whole_quarters(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The quarter-hours wholly inside [start, end), as [inner_start, inner_end) (empty when
    none: inner_start == inner_end == end)."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    inner_start = epoch + -((epoch - start) // _QUARTER) * _QUARTER
    inner_end = epoch + ((end - epoch) // _QUARTER) * _QUARTER
    return (inner_start, inner_end) if inner_start < inner_end else (end, end)


def _counted(
    engine: Engine,
    sql: str,
    *,
    start: datetime,
    end: datetime,
    bucket: int,
    district: str | None,
    street: str | None,
    category: str | None,
) -> list[sa.Row[Any]]:
    """The rows of a timeline `sql` that reads quarter-hour counters inside the window and the
    raw rows in its two partial quarters."""
    _check_timeline(start, end, bucket, district=district, street=street, category=category)
    inner_start, inner_end = _whole_quarters(start, end)
    params = {"district": district, "street": street, "category": category}
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(sql),
                {
                    **params,
                    "bucket": bucket,
                    "start": start,
                    "end": end,
                    "inner_start": inner_start,
                    "inner_end": inner_end,
                    # alarm figures: 预警 and device health are drawn apart (forecast_reads.py)
                    "kinds": list(ALARM_KINDS),
                },
            ).all()
        )


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
    where = {"district": district, "street": street, "category": category}
    rows = _counted(engine, _TIMELINE_SQL, start=start, end=end, bucket=bucket_minutes, **where)
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
    """Incidents acknowledged, resolved and reopened per bucket (from the quarter-hour counters
    and, at the window's two partial quarters, the event history)."""
    where = {"district": district, "street": street, "category": category}
    rows = _counted(engine, _HANDLING_SQL, start=start, end=end, bucket=bucket_minutes, **where)
    frame = pd.DataFrame(rows, columns=["bucket", "kind", "events"])
    return frame.astype({"events": "int64"})


# the work queue's rank: live incidents by severity, the unacknowledged above the acknowledged
# of the same severity (open critical = 7 … acknowledged minor = 2), resolved ones last (0)
PRIORITY_RANK = (
    "CASE WHEN i.status = 'resolved' THEN 0"
    " ELSE 2 * array_position(ARRAY['minor','major','critical'], i.severity)"
    " + CASE WHEN i.status = 'open' THEN 1 ELSE 0 END END"
)
# sort keys of incident_list → SQL expressions (severity and status in their natural order)
INCIDENT_ORDER = {
    "priority": PRIORITY_RANK,
    "opened_at": "i.opened_at",
    "severity": "array_position(ARRAY['minor','major','critical'], i.severity)",
    "status": "array_position(ARRAY['resolved','acknowledged','open'], i.status)",
    "category": "i.category_code",
    "district": "i.district_adcode",
}


# incident_list's `grouped` → its condition (events: revision 0009)
_GROUPED = {
    None: "",
    True: " AND i.group_id IS NOT NULL",
    False: " AND i.group_id IS NULL",
}


def _check_list_filters(
    *,
    severities: tuple[str, ...],
    statuses: tuple[str, ...],
    kinds: tuple[str, ...],
    order_by: str,
    ids: dict[str, int | None],
    limit: int,
) -> None:
    """Raise InvalidQuery unless incident_list's filters are known values and in range."""
    if not set(kinds) <= set(INCIDENT_KINDS) or not kinds:
        raise InvalidQuery(f"kinds must be among {INCIDENT_KINDS}")
    if order_by not in INCIDENT_ORDER:
        raise InvalidQuery(f"order_by must be one of {', '.join(INCIDENT_ORDER)}")
    for name, value in ids.items():
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise InvalidQuery(f"{name} must be a positive integer")
    if not set(severities) <= set(SEVERITIES) or not severities:
        raise InvalidQuery(f"severities must be among {SEVERITIES}")
    if not set(statuses) <= set(INCIDENT_STATUSES) or not statuses:
        raise InvalidQuery(f"statuses must be among {INCIDENT_STATUSES}")
    if not 1 <= limit <= 10_000:
        raise InvalidQuery("limit must be between 1 and 10000")


def _waiting(order_by: str, descending: bool) -> str:
    """The queue's second key: within a rank the one waiting longest first (resolved: none)."""
    if order_by != "priority":
        return ""
    return (
        f"CASE WHEN i.status <> 'resolved' THEN i.opened_at END {'ASC' if descending else 'DESC'},"
    )


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
    kinds: tuple[str, ...] = INCIDENT_KINDS,
    order_by: str = "opened_at",
    descending: bool = True,
    limit: int = 100,
    grouped: bool | None = None,
    group_id: int | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> pd.DataFrame:
    """Incidents opened in the window with place names, for tables (newest first by default);
    `grouped` False: only those in no event, True: only events' members; `group_id`: only that
    event's members; `replay`: each as it stood at `at` (status, severity, event)."""
    check_scope(district=district, street=street, category=category)
    check_window(start, end)
    _check_list_filters(
        severities=severities,
        statuses=statuses,
        kinds=kinds,
        order_by=order_by,
        ids={"device_id": device_id, "group_id": group_id},
        limit=limit,
    )
    direction, waiting = "DESC" if descending else "ASC", _waiting(order_by, descending)
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT i.id, i.opened_at, i.severity, i.status, i.category_code, i.rule_code,"
                " i.title_zh, i.title_en, i.district_adcode, di.name_zh AS district_zh,"
                " di.name_en AS district_en, i.street_code, s.name_zh AS street_zh,"
                " s.name_en AS street_en, i.device_id, i.trigger_value, i.threshold,"
                " i.acknowledged_at, i.resolved_at, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,"
                " i.kind, i.expected_at, i.foreseen_by, i.lead_s"
                f" FROM {source('incident', replaying(at, replay))}"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " WHERE i.opened_at >= :start AND i.opened_at < :end"
                "   AND i.severity = ANY(:severities) AND i.status = ANY(:statuses)"
                "   AND i.kind = ANY(:kinds)"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                "   AND (CAST(:street AS text) IS NULL OR i.street_code = :street)"
                "   AND (CAST(:category AS text) IS NULL OR i.category_code = :category)"
                "   AND (CAST(:device_id AS bigint) IS NULL OR i.device_id = :device_id)"
                f"{_GROUPED[grouped]}"
                "   AND (CAST(:group_id AS bigint) IS NULL OR i.group_id = :group_id)"
                f" ORDER BY {INCIDENT_ORDER[order_by]} {direction}, {waiting}"
                " i.opened_at DESC, i.id DESC"
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
                "kinds": list(kinds),
                "device_id": device_id,
                "group_id": group_id,
                "limit": limit,
                "at": at,
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


def incident_detail(
    engine: Engine, *, incident_id: int, at: datetime | None = None, replay: bool = False
) -> dict[str, object] | None:
    """One incident with its device type, place names and thresholds; None if unknown
    (`replay`: as it stood at `at`, None if not yet opened then)."""
    if not isinstance(incident_id, int) or isinstance(incident_id, bool) or incident_id <= 0:
        raise InvalidQuery(f"incident_id must be a positive integer, not {incident_id!r}")
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT i.id, i.opened_at, i.severity, i.status, i.category_code, i.rule_code,"
                " i.title_zh, i.title_en, i.district_adcode, di.name_zh AS district_zh,"
                " di.name_en AS district_en, i.street_code, s.name_zh AS street_zh,"
                " s.name_en AS street_en, i.device_id, d.code AS device_code,"
                " t.name_zh AS type_zh, t.name_en AS type_en, t.unit, t.decimals, t.value_kind,"
                " i.trigger_value, i.threshold, i.acknowledged_at, i.resolved_at, i.assignee,"
                f" {_ASSIGNEE_NAMES}, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,"
                " i.kind, i.expected_at, i.detail, i.foreseen_by, i.lead_s,"
                # the alarm a 预警 foresaw (it supersedes the 预警); RLS keeps it in scope
                " (SELECT a.id FROM incident a WHERE a.foreseen_by = i.id"
                "  ORDER BY a.id LIMIT 1) AS superseded_by"
                f" FROM {source('incident', replaying(at, replay))}"
                f" {_ASSIGNEE_JOINS.format(col='i')}"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " LEFT JOIN device d ON d.id = i.device_id"
                " LEFT JOIN device_type t ON t.id = d.type_id"
                " WHERE i.id = :incident_id"
            ),
            {"incident_id": incident_id, "at": at},
        )
        row = result.mappings().one_or_none()
    return None if row is None else dict(row)


def incident_events(
    engine: Engine, *, incident_id: int, at: datetime | None = None, replay: bool = False
) -> pd.DataFrame:
    """An incident's event history, oldest first (`replay`: what had happened by `at`)."""
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                f"SELECT e.at, e.kind, e.actor, e.from_status, e.to_status, e.note, e.assignee,"
                f" {_ASSIGNEE_NAMES} FROM incident_event e {_ASSIGNEE_JOINS.format(col='e')}"
                " WHERE e.incident_id = :incident_id"
                "   AND (NOT CAST(:past AS boolean) OR e.at <= :at) ORDER BY e.at, e.id"
            ),
            {"incident_id": int(incident_id), "past": replaying(at, replay), "at": at},
        )
        return pd.DataFrame(result.all(), columns=list(result.keys()))


# Maps: every live critical and major incident as a point ---------------------------------------

# severities drawn as markers on the maps (minor ones stay in the lists and the colours)
MARKER_SEVERITIES = ("critical", "major")


# seed scale keeps ~1,200 live; past this the most urgent, then newest, are drawn (criticals first)
MARKER_LIMIT = 2500


def live_incident_points(
    engine: Engine,
    *,
    district: str | None = None,
    limit: int = MARKER_LIMIT,
    at: datetime | None = None,
    replay: bool = False,
) -> pd.DataFrame:
    """Live (open or acknowledged) critical and major alarms with their point, critical and
    newest first: the markers drawn on top of the maps (`replay`: those live at `at`)."""
    check_scope(district=district)
    if not 1 <= limit <= 5000:
        raise InvalidQuery("limit must be between 1 and 5000")
    with engine.connect() as conn:
        # the partial index of live incidents (district, severity) bounds the scan to what is
        # live, whatever the table's history; RLS keeps it to the reader's districts
        result = conn.execute(
            sa.text(
                "SELECT i.id, i.severity, i.status, i.category_code, i.title_zh, i.title_en,"
                " i.district_adcode, i.street_code, i.opened_at,"
                " ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat"
                f" FROM {source('live_incident', replaying(at, replay))}"
                " WHERE i.severity = ANY(:severities)"
                "   AND i.kind = ANY(:kinds)"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                " ORDER BY array_position(ARRAY['critical','major'], i.severity),"
                "   i.opened_at DESC, i.id DESC LIMIT :limit"
            ),
            {
                "severities": list(MARKER_SEVERITIES),
                # alarms only: 预警 have their own outline, sensor health is for the crews
                "kinds": list(ALARM_KINDS),
                "district": district,
                "limit": int(limit),
                "at": at,
            },
        )
        return pd.DataFrame(result.all(), columns=list(result.keys()))


# Walls: which critical incidents are new -------------------------------------------------------


@dataclass(frozen=True)
class IncidentMarks:
    """Where a wall's news stands: every transaction below `settled` (a PostgreSQL xid8) had
    ended when it last asked, and what they wrote has been told (revision 0010)."""

    settled: int


# the oldest transaction still running: every one below it has committed or rolled back
_SETTLED = "pg_snapshot_xmin(pg_current_snapshot())"


def _read_marks(conn: sa.Connection) -> IncidentMarks:
    """The marks as seen by `conn` now."""
    value = conn.execute(sa.text(f"SELECT CAST({_SETTLED} AS text)")).scalar_one()
    return IncidentMarks(settled=int(value))


def incident_marks(engine: Engine) -> IncidentMarks:
    """The marks of now: news from here on."""
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
    check_scope(district=district)
    if not 1 <= limit <= 200:
        raise InvalidQuery("limit must be between 1 and 200")
    if not 0 <= after.settled < 2**63:
        raise InvalidQuery("marks out of range")
    with engine.connect() as conn:
        marks = _read_marks(conn)
        # news is what transactions that ended since the last question wrote: an incident
        # inserted (whoever inserts it) or an event that makes it critical and live again. By
        # transaction, not by id, so a row whose id is older than its commit is not skipped.
        result = conn.execute(
            sa.text(
                "WITH fresh AS ("
                "  SELECT id FROM incident"
                "  WHERE written_xid >= CAST(:after AS xid8) AND written_xid < CAST(:mark AS xid8)"
                "  UNION SELECT incident_id FROM incident_event"
                "  WHERE written_xid >= CAST(:after AS xid8) AND written_xid < CAST(:mark AS xid8)"
                "    AND kind IN ('reopened', 'escalated'))"
                " SELECT i.id, i.opened_at, i.severity, i.status, i.category_code,"
                " i.title_zh, i.title_en, i.district_adcode, di.name_zh AS district_zh,"
                " di.name_en AS district_en, i.street_code, s.name_zh AS street_zh,"
                " s.name_en AS street_en, i.device_id, i.trigger_value, i.threshold,"
                " ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.kind, i.expected_at, i.group_id"
                " FROM incident i JOIN fresh f ON f.id = i.id"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " WHERE i.severity = 'critical' AND i.status = 'open'"
                # 预警 take the wall when their breach comes near (imminent_forecasts), not when
                # opened; sensors that lie are for the maintenance crews, not the room
                "   AND i.kind IN ('alarm', 'anomaly')"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                " ORDER BY i.opened_at DESC, i.id DESC LIMIT :limit"
            ),
            {
                "after": str(int(after.settled)),
                "mark": str(marks.settled),
                "district": district,
                "limit": limit,
            },
        )
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    return frame.iloc[::-1].reset_index(drop=True), marks


def incident_watch(engine: Engine, *, incident_ids: list[int]) -> dict[int, tuple[str, int | None]]:
    """incident id → (status, event id or None) of the given incidents (unknown ids are left
    out): what a wall waiting to show them needs to know."""
    wanted = [int(i) for i in incident_ids][:200]
    if not wanted:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, status, group_id FROM incident WHERE id = ANY(:ids)"),
            {"ids": wanted},
        ).all()
    return {int(row[0]): (row[1], None if row[2] is None else int(row[2])) for row in rows}


def incident_statuses(engine: Engine, *, incident_ids: list[int]) -> dict[int, str]:
    """incident id → status of the given incidents (unknown ids are left out)."""
    return {
        key: state for key, (state, _) in incident_watch(engine, incident_ids=incident_ids).items()
    }


# Early warning: what a device's page, a wall and a kiosk show of 预警 and findings ------------

_LIVE_COLUMNS = (
    "i.id, i.opened_at, i.severity, i.status, i.category_code, i.title_zh, i.title_en,"
    " i.district_adcode, di.name_zh AS district_zh, di.name_en AS district_en, i.street_code,"
    " s.name_zh AS street_zh, s.name_en AS street_en, i.device_id, i.trigger_value,"
    " i.threshold, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.kind, i.expected_at"
)


def device_findings(engine: Engine, *, device_id: int) -> pd.DataFrame:
    """A device's live 预警, anomaly and device-health incidents with their why, newest first."""
    if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id <= 0:
        raise InvalidQuery(f"device_id must be a positive integer, not {device_id!r}")
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT id, kind, severity, status, rule_code, title_zh, title_en, opened_at,"
                " expected_at, detail FROM incident"
                " WHERE device_id = :device_id AND status <> 'resolved'"
                "   AND kind = ANY(:kinds)"
                " ORDER BY opened_at DESC, id DESC LIMIT 20"
            ),
            {"device_id": device_id, "kinds": list(FINDING_KINDS)},
        )
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def imminent_forecasts(
    engine: Engine,
    *,
    within_s: int = 1800,
    district: str | None = None,
    limit: int = 20,
) -> pd.DataFrame:
    """Open critical 预警 whose breach is expected within `within_s` (or overdue), soonest first:
    what takes a wall's attention (the wall itself remembers which it has shown)."""
    check_scope(district=district)
    if not 60 <= within_s <= 86_400:
        raise InvalidQuery("within_s must be between 60 and 86400")
    if not 1 <= limit <= 200:
        raise InvalidQuery("limit must be between 1 and 200")
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                f"SELECT {_LIVE_COLUMNS} FROM incident i"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " WHERE i.kind = 'forecast' AND i.status = 'open' AND i.severity = 'critical'"
                "   AND i.expected_at <= now() + :within * interval '1 second'"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                " ORDER BY i.expected_at, i.id LIMIT :limit"
            ),
            {"within": int(within_s), "district": district, "limit": int(limit)},
        )
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def forecast_summary(engine: Engine, *, district: str | None = None) -> pd.DataFrame:
    """Live 预警 per street and category: how many and the earliest expected breach (no device,
    no title: what a public kiosk may show)."""
    check_scope(district=district)
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT i.district_adcode, di.name_zh AS district_zh, di.name_en AS district_en,"
                " i.street_code, s.name_zh AS street_zh, s.name_en AS street_en,"
                " i.category_code, count(*) AS forecasts, min(i.expected_at) AS earliest"
                " FROM incident i"
                " JOIN district di ON di.adcode = i.district_adcode"
                " LEFT JOIN street s ON s.code = i.street_code"
                " WHERE i.kind = 'forecast' AND i.status <> 'resolved'"
                "   AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
                " GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY earliest, 1, 4, 7 LIMIT 50"
            ),
            {"district": district},
        )
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    return frame.astype({"forecasts": "int64"}) if not frame.empty else frame
