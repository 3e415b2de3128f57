"""Storage side of events (revision 0009): the scenarios' grouping parameters, street
neighbours, the incidents waiting to be grouped, and the writes of a grouping plan; run by the
rules pass in its transaction, as the owner."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from data.event_types import Candidate, Group, GroupingPlan, GroupingWrites, Topic
from data.rule_types import US
from data.rules_store import ACTOR


def has_event_groups(conn: sa.Connection) -> bool:
    """Whether the schema has events (revision 0009 or later)."""
    return bool(conn.execute(sa.text("SELECT to_regclass('incident_group') IS NOT NULL")).scalar())


def load_topics(conn: sa.Connection) -> dict[str, Topic]:
    """Every scenario's grouping parameters."""
    rows = conn.execute(
        sa.text("SELECT code, group_min_members, group_street_min, group_gap_s FROM topic")
    ).all()
    return {
        code: Topic(code=code, min_members=minimum, street_min=street_min, gap_us=gap * US)
        for code, minimum, street_min, gap in rows
    }


def load_neighbours(conn: sa.Connection) -> dict[str, frozenset[str]]:
    """Each street's neighbours."""
    pairs: dict[str, set[str]] = {}
    for street, neighbour in conn.execute(
        sa.text("SELECT street_code, neighbour_code FROM street_neighbour")
    ).tuples():
        pairs.setdefault(street, set()).add(neighbour)
    return {street: frozenset(near) for street, near in pairs.items()}


def load_fleet(conn: sa.Connection) -> dict[tuple[str, str], int]:
    """Each grouped scenario's active devices by street."""
    rows = conn.execute(
        sa.text(
            "SELECT t.category_code, d.street_code, count(*) FROM device d"
            " JOIN device_type t ON t.id = d.type_id"
            " JOIN topic p ON p.code = t.category_code AND p.group_min_members IS NOT NULL"
            " WHERE d.status = 'active' AND d.street_code IS NOT NULL GROUP BY 1, 2"
        )
    ).tuples()
    return {(category, street): int(n) for category, street, n in rows}


def grouping_candidates(conn: sa.Connection, *, since: datetime) -> list[Candidate]:
    """Ungrouped incidents of grouped scenarios opened since `since` (any status: an alarm that
    came and went in a storm belongs to it too); incidents without a street stay single."""
    rows = conn.execute(
        sa.text(
            "SELECT i.id, i.category_code, i.street_code,"
            " (extract(epoch FROM i.opened_at) * 1e6)::bigint, coalesce(i.device_id, -i.id)"
            " FROM incident i JOIN topic t ON t.code = i.category_code"
            " WHERE i.group_id IS NULL AND i.opened_at >= :since"
            "   AND t.group_min_members IS NOT NULL AND i.kind = ANY(t.group_kinds)"
            "   AND i.street_code IS NOT NULL"
        ),
        {"since": since},
    ).tuples()
    return [Candidate(id=i, category=c, street=s, opened_us=o, device=d) for i, c, s, o, d in rows]


def active_groups(conn: sa.Connection, *, since: datetime) -> list[Group]:
    """The events still taking members, with their members opened since `since` by street."""
    rows = conn.execute(
        sa.text(
            "SELECT id, category_code, streets, (extract(epoch FROM opened_at) * 1e6)::bigint,"
            " (extract(epoch FROM last_member_at) * 1e6)::bigint"
            " FROM incident_group WHERE status = 'active'"
        )
    ).tuples()
    groups = {
        i: Group(id=i, category=c, streets=set(s), opened_us=o, last_us=last)
        for i, c, s, o, last in rows
    }
    if groups:
        for group_id, street, opened, devices in conn.execute(
            sa.text(
                "SELECT group_id, street_code,"
                " array_agg((extract(epoch FROM opened_at) * 1e6)::bigint ORDER BY opened_at),"
                " array_agg(coalesce(device_id, -id) ORDER BY opened_at)"
                " FROM incident WHERE group_id = ANY(:ids) AND opened_at >= :since"
                "   AND street_code IS NOT NULL GROUP BY 1, 2"
            ),
            {"ids": list(groups), "since": since},
        ).tuples():
            groups[group_id].recent[street] = list(zip(opened, devices, strict=True))
    return list(groups.values())


def apply_plan(conn: sa.Connection, plan: GroupingPlan, *, now: datetime) -> GroupingWrites:
    """Write a plan: merges first, then members joining, then new events; footprints after."""
    merged = _merge(conn, plan.merge, now=now)
    members = dict(plan.attach)
    for category, ids in plan.new:
        first = min(ids)
        group_id = conn.execute(
            sa.text(
                "INSERT INTO incident_group"
                " (category_code, opened_at, last_member_at, districts, streets)"
                " SELECT :category, opened_at, opened_at, '{}', '{}' FROM incident WHERE id = :id"
                " RETURNING id"
            ),
            {"category": category, "id": first},
        ).scalar_one()
        members.update(dict.fromkeys(ids, group_id))
    grouped = _attach(conn, members, now=now)
    _refresh_footprints(conn, {*members.values(), *plan.merge.values()})
    return GroupingWrites(grouped=grouped, opened=len(plan.new), merged=merged)


def _merge(conn: sa.Connection, merge: dict[int, int], *, now: datetime) -> int:
    """Absorbed events hand their members to the events they merged into."""
    if not merge:
        return 0
    params = {"absorbed": list(merge), "kept": list(merge.values()), "now": now}
    conn.execute(
        sa.text(
            "UPDATE incident i SET group_id = m.kept"
            " FROM unnest(CAST(:absorbed AS bigint[]), CAST(:kept AS bigint[]))"
            "  AS m(absorbed, kept)"
            " WHERE i.group_id = m.absorbed"
        ),
        params,
    )
    return conn.execute(
        sa.text(
            "UPDATE incident_group g SET status = 'merged', merged_into = m.kept, closed_at = :now"
            " FROM unnest(CAST(:absorbed AS bigint[]), CAST(:kept AS bigint[]))"
            "  AS m(absorbed, kept)"
            " WHERE g.id = m.absorbed"
        ),
        params,
    ).rowcount


def _attach(conn: sa.Connection, members: dict[int, int], *, now: datetime) -> int:
    """Incidents join their events, each with a line in its history."""
    if not members:
        return 0
    return conn.execute(
        sa.text(
            "WITH joined AS ("
            " UPDATE incident i SET group_id = m.group_id, grouped_at = :now"
            " FROM unnest(CAST(:ids AS bigint[]), CAST(:groups AS bigint[])) AS m(id, group_id)"
            " WHERE i.id = m.id AND i.group_id IS NULL"
            " RETURNING i.id, i.group_id, i.status)"
            " INSERT INTO incident_event"
            "  (incident_id, at, kind, actor, from_status, to_status, note, group_id)"
            " SELECT id, :now, 'grouped', :actor, status, status,"
            "  '归入事件 #' || group_id || ' · joined event #' || group_id, group_id FROM joined"
        ),
        {"ids": list(members), "groups": list(members.values()), "now": now, "actor": ACTOR},
    ).rowcount


def _refresh_footprints(conn: sa.Connection, group_ids: set[int]) -> None:
    """An event's districts, streets and first and last member, from its members."""
    if not group_ids:
        return
    conn.execute(
        sa.text(
            "UPDATE incident_group g SET districts = f.districts, streets = f.streets,"
            " opened_at = f.first, last_member_at = f.last"
            " FROM (SELECT group_id, array_agg(DISTINCT district_adcode ORDER BY district_adcode)"
            "        AS districts, array_agg(DISTINCT street_code ORDER BY street_code)"
            "        FILTER (WHERE street_code IS NOT NULL) AS streets,"
            "        min(opened_at) AS first, max(opened_at) AS last"
            "       FROM incident WHERE group_id = ANY(:ids) GROUP BY group_id) f"
            " WHERE g.id = f.group_id"
        ),
        {"ids": sorted(group_ids)},
    )


def close_quiet_groups(conn: sa.Connection, *, now: datetime) -> int:
    """Close the events with no live member whose last member is older than their gap."""
    return conn.execute(
        sa.text(
            "UPDATE incident_group g SET status = 'closed', closed_at = :now"
            " FROM topic t"
            " WHERE g.status = 'active' AND t.code = g.category_code"
            "   AND g.last_member_at < :now - make_interval(secs => t.group_gap_s)"
            "   AND NOT EXISTS (SELECT 1 FROM incident i"
            "                   WHERE i.group_id = g.id AND i.status <> 'resolved')"
        ),
        {"now": now},
    ).rowcount
