"""Reading events (revision 0009): each as one line with its members counted as the reader may
see them, and the feed's lines — events and the incidents that belong to none."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from data.asof import replaying, timed
from data.checks import INCIDENT_STATUSES, SEVERITIES, InvalidQuery, check_scope, check_window
from data.frames import stack
from data.incident_reads import INCIDENT_KINDS, incident_list

# an event's members are counted within the view (and, by incident's policy, the reader's
# scope): a district manager learns nothing of other districts' members
_EVENTS_SQL = timed(
    """
SELECT g.id, g.category_code, t.event_zh, t.event_en, g.status AS event_status,
       m.members, m.live, m.unacknowledged, m.criticals_open, m.forecasts, m.next_breach,
       (ARRAY['critical', 'major', 'minor'])[m.worst] AS severity, 'alarm' AS kind,
       CASE WHEN m.unacknowledged > 0 THEN 'open' WHEN m.live > 0 THEN 'acknowledged'
            ELSE 'resolved' END AS status,
       m.first_at AS opened_at, m.last_at, m.n_streets,
       array_length(m.districts, 1) AS n_districts, m.districts AS district_codes,
       ARRAY(SELECT d.name_zh FROM district d WHERE d.adcode = ANY(m.districts)
             ORDER BY d.adcode) AS districts_zh,
       ARRAY(SELECT d.name_en FROM district d WHERE d.adcode = ANY(m.districts)
             ORDER BY d.adcode) AS districts_en
FROM incident_group g
JOIN topic t ON t.code = g.category_code
CROSS JOIN LATERAL (
    SELECT count(*) AS members,
           count(*) FILTER (WHERE i.status <> 'resolved') AS live,
           count(*) FILTER (WHERE i.status = 'open') AS unacknowledged,
           count(*) FILTER (WHERE i.status <> 'resolved' AND i.severity = 'critical'
                            AND i.kind = 'alarm') AS criticals_open,
           min(array_position(ARRAY['critical', 'major', 'minor'], i.severity)) AS worst,
           -- its live 预警 and the soonest breach they foresee: said on the event's own line
           count(*) FILTER (WHERE i.kind = 'forecast' AND i.status <> 'resolved') AS forecasts,
           min(i.expected_at) FILTER (WHERE i.kind = 'forecast' AND i.status <> 'resolved')
               AS next_breach,
           min(i.opened_at) AS first_at, max(i.opened_at) AS last_at,
           count(DISTINCT i.street_code) AS n_streets,
           array_agg(DISTINCT i.district_adcode) AS districts
    FROM {group_members}
      AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)
      AND (CAST(:street AS text) IS NULL OR i.street_code = :street)
) m
WHERE {group_live} AND g.last_member_at >= :start AND g.opened_at < :end
  AND (CAST(:district AS text) IS NULL OR :district = ANY(g.districts))
  AND (CAST(:street AS text) IS NULL OR :street = ANY(g.streets))
  AND (CAST(:category AS text) IS NULL OR g.category_code = :category)
  AND (CAST(:group_id AS bigint) IS NULL OR g.id = :group_id)
  AND m.members > 0
ORDER BY (m.criticals_open > 0 AND :pin) DESC, m.last_at DESC, g.id DESC
LIMIT :limit
"""
)


# the kinds of incident a wall's feed shows: what the room acts on (sensors that lie are for
# the maintenance crews; wall attention leaves them out too)
WALL_KINDS = ("alarm", "forecast", "anomaly")
# which incidents a read takes (severities, statuses): all; those a wall's feed never lets
# scroll away (open or acknowledged 紧急 alarms)
_ALL = (SEVERITIES, INCIDENT_STATUSES)
_PINNED = (("critical",), ("open", "acknowledged"))


def event_list(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    pin_critical: bool = False,
    limit: int = 100,
    group_id: int | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> pd.DataFrame:
    """Events with a member in the window and the view (or the one event `group_id`), newest
    activity first (those with an open 紧急 alarm first when `pin_critical`), their members
    counted within the view (`replay`: as they stood at `at`)."""
    check_scope(district=district, street=street, category=category)
    check_window(start, end)
    if not 1 <= limit <= 10_000:
        raise InvalidQuery("limit must be between 1 and 10000")
    if group_id is not None and (type(group_id) is not int or not 0 < group_id < 2**63):
        raise InvalidQuery("no such event")
    with engine.connect() as conn:
        result = conn.execute(
            _EVENTS_SQL.of(replaying(at, replay)),
            {
                "start": start,
                "end": end,
                "district": district,
                "street": street,
                "category": category,
                "pin": pin_critical,
                "limit": limit,
                "group_id": group_id,
                "at": at,
            },
        )
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def feed_lines(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    pin_critical: bool = False,
    limit: int = 30,
    kinds: tuple[str, ...] = INCIDENT_KINDS,
    at: datetime | None = None,
    replay: bool = False,
) -> pd.DataFrame:
    """The feed: one line per event and per incident in no event, newest activity first (with
    `pin_critical`, lines holding an open 紧急 alarm first, however many came after); column
    `line` says which, `last_at` orders them; single incidents of `kinds` only; `replay`: as
    the feed stood at `at` (the window should end there)."""
    events = event_list(
        engine,
        start=start,
        end=end,
        district=district,
        street=street,
        category=category,
        pin_critical=pin_critical,
        limit=limit,
        at=at,
        replay=replay,
    ).assign(line="event")
    singles = [
        incident_list(
            engine,
            start=start,
            end=end,
            district=district,
            street=street,
            category=category,
            limit=limit,
            grouped=False,
            severities=severities,
            statuses=statuses,
            kinds=wanted,
            at=at,
            replay=replay,
        )
        for (severities, statuses), wanted in (
            ((_ALL, kinds), (_PINNED, ("alarm",))) if pin_critical else ((_ALL, kinds),)
        )
    ]
    incidents = stack(singles)
    incidents = incidents.assign(line="incident", last_at=incidents["opened_at"])
    lines = stack([events, incidents]) if not events.empty else incidents
    return order_lines(lines, pin_critical=pin_critical, limit=limit)


def order_lines(lines: pd.DataFrame, *, pin_critical: bool, limit: int) -> pd.DataFrame:
    """Feed lines newest activity first (`last_at`, when there), one per event or incident, at
    most `limit`; with `pin_critical` the lines holding an open or acknowledged 紧急 alarm
    first (a wall's feed never lets one scroll away)."""
    if lines.empty:
        return lines
    if "line" not in lines:
        lines = lines.assign(line="incident")
    if "last_at" in lines:
        lines = lines.sort_values("last_at", ascending=False, kind="stable")
    lines = lines.reset_index(drop=True)
    kind = lines["kind"].fillna("alarm") if "kind" in lines else pd.Series("alarm", lines.index)
    live_critical = (
        (lines["line"] == "incident")
        & (lines["severity"] == "critical")
        & (lines["status"] != "resolved")
        & (kind == "alarm")
    )
    if "criticals_open" in lines:
        live_critical |= (lines["line"] == "event") & (lines["criticals_open"].fillna(0) > 0)
    ordered = pd.concat([lines[live_critical], lines[~live_critical]]) if pin_critical else lines
    return ordered.drop_duplicates(subset=["line", "id"]).head(limit).reset_index(drop=True)
