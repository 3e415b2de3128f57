"""The after-action review (复盘评估) of an area and a time window: what happened, how fast it
was seen, acknowledged, staffed and resolved, from the histories the platform already keeps.

Every figure is of what was known by the window's end (an incident acknowledged after it counts
as unacknowledged), so a review of a past window reads the same whenever it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.checks import InvalidQuery, check_scope, check_window

MAX_SPAN = timedelta(days=31)
LOG_LIMIT = 50_000
# the incidents under review: alarms, anomalies and sensor-health findings opened in the window
# (预警 are the early warnings, reviewed on their own)
_AREA = (
    "(CAST(:district AS text) IS NULL OR i.district_adcode = :district)"
    " AND (CAST(:street AS text) IS NULL OR i.street_code = :street)"
)
_IN_WINDOW = f"i.opened_at >= :start AND i.opened_at < :end AND {_AREA}"

_INCIDENTS_SQL = sa.text(
    f"""
SELECT i.id, i.kind, i.severity, i.category_code, i.district_adcode, i.street_code,
       coalesce(i.assignee, '') AS team, i.title_zh, i.title_en, i.opened_at,
       CASE WHEN i.acknowledged_at < :end THEN i.acknowledged_at END AS acknowledged_at,
       CASE WHEN i.resolved_at < :end THEN i.resolved_at END AS resolved_at,
       i.lead_s, i.foreseen_by,
       (SELECT count(*) FROM resource_event r WHERE r.incident_id = i.id
          AND r.kind = 'dispatched' AND r.at < :end) AS units_sent
FROM incident i
WHERE i.kind <> 'forecast' AND {_IN_WINDOW}
ORDER BY i.opened_at, i.id
LIMIT :limit
"""
)

# per district or per team: how many, how many acknowledged and resolved by the end, and the
# mean and median seconds each took
_HANDLING_SQL = """
SELECT {key} AS key, count(*) AS incidents,
       count(*) FILTER (WHERE i.severity = 'critical') AS critical,
       count(i.acknowledged_at) FILTER (WHERE i.acknowledged_at < :end) AS acknowledged,
       avg(extract(epoch FROM i.acknowledged_at - i.opened_at))
           FILTER (WHERE i.acknowledged_at < :end) AS mtta_s,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM i.acknowledged_at - i.opened_at))
           FILTER (WHERE i.acknowledged_at < :end) AS p50_ack_s,
       count(i.resolved_at) FILTER (WHERE i.resolved_at < :end) AS resolved,
       avg(extract(epoch FROM i.resolved_at - i.opened_at))
           FILTER (WHERE i.resolved_at < :end) AS mttr_s,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM i.resolved_at - i.opened_at))
           FILTER (WHERE i.resolved_at < :end) AS p50_resolve_s
FROM incident i
WHERE i.kind <> 'forecast' AND {where}
GROUP BY 1 ORDER BY count(*) DESC, 1
"""
_BY_DISTRICT_SQL = sa.text(_HANDLING_SQL.format(key="i.district_adcode", where=_IN_WINDOW))
_BY_TEAM_SQL = sa.text(_HANDLING_SQL.format(key="coalesce(i.assignee, '')", where=_IN_WINDOW))

_MIX_SQL = sa.text(
    f"""
SELECT i.category_code, i.severity, count(*) AS n
FROM incident i WHERE i.kind <> 'forecast' AND {_IN_WINDOW}
GROUP BY 1, 2 ORDER BY 1, 2
"""
)

_TIMELINE_SQL = sa.text(
    f"""
SELECT date_bin(CAST(:bucket AS interval), i.opened_at,
                date_trunc('hour', CAST(:start AS timestamptz))) AS at,
       i.severity, count(*) AS n
FROM incident i WHERE i.kind <> 'forecast' AND {_IN_WINDOW}
GROUP BY 1, 2 ORDER BY 1, 2
"""
)

# 预警 opened in the window, and the alarms of the window that one of them foresaw
_EARLY_SQL = sa.text(
    f"""
SELECT count(*) FILTER (WHERE i.kind = 'forecast') AS forecasts,
       count(*) FILTER (WHERE i.kind = 'alarm') AS alarms,
       count(*) FILTER (WHERE i.kind = 'alarm' AND i.foreseen_by IS NOT NULL) AS foreseen,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY i.lead_s)
           FILTER (WHERE i.kind = 'alarm' AND i.foreseen_by IS NOT NULL) AS p50_lead_s,
       max(i.lead_s) FILTER (WHERE i.kind = 'alarm' AND i.foreseen_by IS NOT NULL) AS max_lead_s
FROM incident i WHERE {_IN_WINDOW}
"""
)

# the levels that changed in the window: the area's district(s) and the city's own
_LEVELS_SQL = sa.text(
    """
SELECT c.at, c.topic_code, c.district_adcode, c.from_level, c.to_level, c.source, c.actor,
       c.reason
FROM warning_level_change c
WHERE c.at >= :start AND c.at < :end
  AND (CAST(:district AS text) IS NULL OR c.district_adcode IN (:district, ''))
ORDER BY c.at, c.id
"""
)

# each unit sent in the window to an incident of the area, and when it arrived (its first
# arrival after being sent, before the window's end)
_UNITS_SQL = sa.text(
    f"""
SELECT e.at AS dispatched_at, e.actor, u.code AS unit, u.kind_code, i.id AS incident_id,
       i.district_adcode, i.severity,
       (SELECT min(a.at) FROM resource_event a WHERE a.resource_id = e.resource_id
          AND a.kind = 'arrived' AND a.at >= e.at AND a.at < :end
          AND a.incident_id = e.incident_id) AS arrived_at, e.eta_s
FROM resource_event e
JOIN resource u ON u.id = e.resource_id
JOIN incident i ON i.id = e.incident_id
WHERE e.kind = 'dispatched' AND e.at >= :start AND e.at < :end AND {_AREA}
ORDER BY e.at, e.id
"""
)

_TASKS_SQL = sa.text(
    """
SELECT k.id, k.topic_code, k.district_adcode, k.level, a.text_zh, a.text_en, k.owner,
       k.created_at, k.due_at,
       CASE WHEN k.done_at < :end THEN k.status ELSE 'open' END AS status,
       CASE WHEN k.done_at < :end THEN k.done_at END AS done_at, k.done_by
FROM playbook_task k JOIN playbook_action a ON a.id = k.action_id
WHERE k.created_at >= :start AND k.created_at < :end
  AND (CAST(:district AS text) IS NULL OR k.district_adcode = :district)
ORDER BY k.created_at, k.id
"""
)

# each loan of a city reserve unit made or ended in the window touching the area's district (a
# loan is a district's, so a street's review shows its district's)
_LOANS_SQL = sa.text(
    """
SELECT e.at, u.code AS unit, u.kind_code, e.lent_to, e.from_lent_to, e.actor
FROM resource_event e
JOIN resource u ON u.id = e.resource_id
WHERE e.kind = 'lent' AND e.at >= :start AND e.at < :end
  AND (CAST(:district AS text) IS NULL OR :district IN (e.lent_to, e.from_lent_to))
ORDER BY e.at, e.id
"""
)

_LOG_SQL = sa.text(
    f"""
SELECT e.at, e.kind, e.actor, e.from_status, e.to_status, e.note, i.id AS incident_id,
       i.title_zh, i.title_en, i.district_adcode, i.severity
FROM incident_event e JOIN incident i ON i.id = e.incident_id
WHERE e.at >= :start AND e.at < :end AND {_AREA}
ORDER BY e.at, e.id
LIMIT :limit
"""
)


@dataclass(frozen=True)
class Review:
    """What the review of an area and a window shows; frames are empty when nothing happened."""

    start: datetime
    end: datetime
    district: str | None
    street: str | None
    bucket: timedelta
    mix: pd.DataFrame
    timeline: pd.DataFrame
    by_district: pd.DataFrame
    by_team: pd.DataFrame
    early: dict[str, Any]
    levels: pd.DataFrame
    units: pd.DataFrame
    tasks: pd.DataFrame
    log: pd.DataFrame
    loans: pd.DataFrame


def review_bucket(span: timedelta) -> timedelta:
    """The timeline's step: about 24 to 72 bars whatever the window."""
    for step in (timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=1)):
        if span <= step * 72:
            return step
    return timedelta(hours=6) if span <= timedelta(days=18) else timedelta(days=1)


def check_review(
    *, start: datetime, end: datetime, district: str | None, street: str | None
) -> None:
    """Raise InvalidQuery unless the window and the area can be reviewed."""
    check_window(start, end)
    check_scope(district=district, street=street)
    if end - start > MAX_SPAN:
        raise InvalidQuery("a review covers at most 31 days")
    if street is not None and district is not None and not street.startswith(district):
        raise InvalidQuery(f"street {street} is not in district {district}")


def _frame(conn: sa.Connection, sql: sa.TextClause, params: dict[str, Any]) -> pd.DataFrame:
    """The rows as a frame, every moment column a UTC datetime column (even when all NULL)."""
    result = conn.execute(sql, params)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in frame.columns:
        if column == "at" or column.endswith("_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def review(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    log_limit: int = 500,
) -> Review:
    """The review of the area (the city, a district or a street) over [start, end), as the
    reader's access scope lets them see it."""
    check_review(start=start, end=end, district=district, street=street)
    if not 1 <= log_limit <= LOG_LIMIT:
        raise InvalidQuery(f"log_limit must be between 1 and {LOG_LIMIT}")
    if street is not None and district is None:
        district = street[:6]
    bucket = review_bucket(end - start)
    params = {"start": start, "end": end, "district": district, "street": street}
    with engine.connect() as conn:
        early = conn.execute(_EARLY_SQL, params).mappings().one()
        return Review(
            start=start,
            end=end,
            district=district,
            street=street,
            bucket=bucket,
            mix=_frame(conn, _MIX_SQL, params),
            timeline=_frame(conn, _TIMELINE_SQL, {**params, "bucket": bucket}),
            by_district=_frame(conn, _BY_DISTRICT_SQL, params),
            by_team=_frame(conn, _BY_TEAM_SQL, params),
            early=dict(early),
            levels=_frame(conn, _LEVELS_SQL, params),
            units=_frame(conn, _UNITS_SQL, params),
            tasks=_frame(conn, _TASKS_SQL, params),
            log=_frame(conn, _LOG_SQL, {**params, "limit": log_limit}),
            loans=_frame(conn, _LOANS_SQL, params),
        )


def review_incidents(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    limit: int = 200_000,
) -> pd.DataFrame:
    """One row per incident under review, with the times every figure derives from: the
    review's CSV."""
    check_review(start=start, end=end, district=district, street=street)
    if not 1 <= limit <= 200_000:
        raise InvalidQuery("limit must be between 1 and 200000")
    params = {"start": start, "end": end, "district": district, "street": street, "limit": limit}
    with engine.connect() as conn:
        return _frame(conn, _INCIDENTS_SQL, params)
