"""Dispatch (调度): which unit should go, sending it, its arrival and release, and coverage.

Travel time is an estimate, and every screen says so: straight-line distance × the destination
district's detour factor at its typical road speed (travel_model) × the kind's speed ratio, plus
the kind's turnout time. Suggestions are the k fastest suitable available units under that
model, with a unit of the incident's own district put first when it is nearly as fast (it knows
the streets, and the district keeps its neighbours' units for their own calls).

Every change runs in the caller's scope (row-level security decides which units and incidents
are reachable) and is written to the unit's history, the incident's history and the audit log in
the same transaction; of two people sending the same unit, one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.access import write_audit
from data.resources import ResourceError

# candidates the exact travel time is computed for, nearest first by the spatial index: in a
# storm the near units are out and a faster kind may be further away (at 48, 6 % of a seed-scale
# drill's first suggestions missed the fastest; bench/dispatch.py)
POOL = 160
MAX_SUGGESTIONS = 20
# a unit of the incident's district goes first when at most this much slower than the fastest
PREFER_LOCAL_S = 120
PREFER_LOCAL_RATIO = 0.10
# a dispatched unit within this many metres of its target has arrived
ARRIVE_M = 150
COVERAGE_TARGET_S = 15 * 60

# a district without a travel_model row (a new one) travels at these
DEFAULT_DETOUR = 1.4
DEFAULT_SPEED_KMH = 25
# seconds from a unit `u` (with kind `k`) to the point `p` ending in district model `tm` (which
# may be missing: a LEFT JOIN)
TRAVEL_S = (
    "(k.turnout_s + ST_Distance(geography(u.geom), geography(p))"
    f" * coalesce(tm.detour, {DEFAULT_DETOUR})"
    f" / (coalesce(tm.speed_kmh, {DEFAULT_SPEED_KMH}) * k.speed_ratio / 3.6))"
)
_CANDIDATES = f"""
SELECT u.id, u.code, u.name_zh, u.name_en, u.kind_code, k.name_zh AS kind_zh,
       k.name_en AS kind_en, u.district_adcode, u.lent_to, ST_X(u.geom) AS lon,
       ST_Y(u.geom) AS lat, ST_Distance(geography(u.geom), geography(p)) AS metres,
       {TRAVEL_S} AS eta_s
FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS p) AS target
LEFT JOIN travel_model tm ON tm.district_adcode = :district
CROSS JOIN LATERAL (
    SELECT r.* FROM resource r
    WHERE r.status = 'available'
      AND r.kind_code IN (SELECT code FROM resource_kind
                          WHERE class <> 'facility' AND :skill = ANY(skills))
    ORDER BY r.geom <-> target.p LIMIT :pool
) AS u
JOIN resource_kind k ON k.code = u.kind_code
"""


@dataclass(frozen=True)
class Suggestion:
    """A unit that could go, and how long it would take (estimated)."""

    resource_id: int
    code: str
    name_zh: str
    name_en: str
    kind_code: str
    kind_zh: str
    kind_en: str
    district_adcode: str | None
    lon: float
    lat: float
    metres: float
    eta_s: float
    local: bool  # of the destination's district (its own or lent to it)
    fastest: bool  # the fastest of all suitable available units in scope


def rank(candidates: list[dict[str, Any]], *, district: str, k: int) -> list[Suggestion]:
    """The k to suggest: fastest first, a local unit moved ahead of faster outsiders when it
    is within PREFER_LOCAL_S or PREFER_LOCAL_RATIO of the fastest."""
    if not candidates:
        return []
    ordered = sorted(candidates, key=lambda c: (c["eta_s"], c["code"]))
    best = ordered[0]["eta_s"]
    slack = max(PREFER_LOCAL_S, best * PREFER_LOCAL_RATIO)

    def is_local(c: dict[str, Any]) -> bool:
        return district in (c["district_adcode"], c["lent_to"])

    close_local = [c for c in ordered if is_local(c) and c["eta_s"] <= best + slack]
    chosen = close_local[:1] + [c for c in ordered if c not in close_local[:1]]
    return [
        Suggestion(
            resource_id=int(c["id"]),
            code=c["code"],
            name_zh=c["name_zh"],
            name_en=c["name_en"],
            kind_code=c["kind_code"],
            kind_zh=c["kind_zh"],
            kind_en=c["kind_en"],
            district_adcode=c["district_adcode"],
            lon=float(c["lon"]),
            lat=float(c["lat"]),
            metres=float(c["metres"]),
            eta_s=float(c["eta_s"]),
            local=is_local(c),
            fastest=c is ordered[0],
        )
        for c in chosen[:k]
    ]


def suggest_for_point(
    conn: sa.Connection, *, lon: float, lat: float, district: str, skill: str, k: int = 5
) -> list[Suggestion]:
    """The k units to suggest for a job of scenario `skill` at a point of `district`."""
    rows = conn.execute(
        sa.text(_CANDIDATES),
        {"lon": lon, "lat": lat, "district": district, "skill": skill, "pool": POOL},
    ).mappings()
    return rank([dict(row) for row in rows], district=district, k=k)


def suggest_units(engine: Engine, *, incident_id: int, k: int = 5) -> list[Suggestion]:
    """The units to suggest for an open incident in scope (none for an unknown or closed one)."""
    _check_id(incident_id, "incident")
    k = max(1, min(int(k), MAX_SUGGESTIONS))
    with engine.connect() as conn:
        place = conn.execute(
            sa.text(
                "SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, district_adcode, category_code"
                " FROM incident WHERE id = :id AND status <> 'resolved'"
            ),
            {"id": incident_id},
        ).one_or_none()
        if place is None:
            return []
        return suggest_for_point(
            conn,
            lon=place.lon,
            lat=place.lat,
            district=place.district_adcode,
            skill=place.category_code,
            k=k,
        )


def _check_id(value: object, what: str) -> int:
    """A positive bigint id, or ResourceError."""
    if type(value) is not int or not 0 < value < 2**63:
        raise ResourceError(f"no such {what}")
    return value


def _job(conn: sa.Connection, *, incident_id: int | None, task_id: int | None) -> Any:
    """Where the job is: an open incident or an open task in scope; ResourceError if neither."""
    if (incident_id is None) == (task_id is None):
        raise ResourceError("send a unit to an incident or to a task")
    if incident_id is not None:
        job = conn.execute(
            sa.text(
                "SELECT geom, district_adcode FROM incident WHERE id = :id AND status <> 'resolved'"
            ),
            {"id": _check_id(incident_id, "incident")},
        ).one_or_none()
    else:
        job = conn.execute(
            sa.text(
                "SELECT coalesce(t.target, ST_PointOnSurface(d.geom)) AS geom, t.district_adcode"
                " FROM playbook_task t JOIN district d ON d.adcode = t.district_adcode"
                " WHERE t.id = :id AND t.status = 'open'"
            ),
            {"id": _check_id(task_id, "task")},
        ).one_or_none()
    if job is None:
        raise ResourceError("no such open incident or task")
    return job


def dispatch_unit(
    engine: Engine,
    *,
    resource_id: int,
    actor: str,
    incident_id: int | None = None,
    task_id: int | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Send an available unit to an incident or task; its estimated arrival. ResourceError when
    the unit is not available (another dispatcher was first) or not reachable in this scope."""
    _check_id(resource_id, "unit")
    with engine.begin() as conn:
        job = _job(conn, incident_id=incident_id, task_id=task_id)
        sent = conn.execute(
            sa.text(
                "UPDATE resource u SET status = 'dispatched', incident_id = :incident,"
                " task_id = :task, target = CAST(:p AS geometry), dispatched_at = now(),"
                f" eta_at = now() + make_interval(secs => {TRAVEL_S}), arrived_at = NULL,"
                " changed_at = now()"
                " FROM resource_kind k CROSS JOIN (SELECT CAST(:p AS geometry) AS p) AS j"
                " LEFT JOIN travel_model tm ON tm.district_adcode = :district"
                " WHERE u.id = :id AND u.status = 'available' AND k.code = u.kind_code"
                " AND k.class <> 'facility'"
                f" RETURNING u.code, u.name_zh, u.district_adcode, {TRAVEL_S} AS eta_s, u.eta_at"
            ),
            {
                "id": resource_id,
                "incident": incident_id,
                "task": task_id,
                "p": job.geom,
                "district": job.district_adcode,
            },
        ).one_or_none()
        if sent is None:
            raise ResourceError("that unit is not available (already sent, off duty, or not yours)")
        eta_s = round(sent.eta_s)
        note = f"{sent.code} {sent.name_zh} · ETA ~{max(1, round(eta_s / 60))} min (est.)"
        record_change(
            conn,
            resource_id=resource_id,
            kind="dispatched",
            actor=actor,
            from_status="available",
            to_status="dispatched",
            incident_id=incident_id,
            task_id=task_id,
            eta_s=eta_s,
            note=note,
        )
        write_audit(
            conn,
            actor=actor,
            action="unit-dispatch",
            target=f"unit:{sent.code}",
            district=job.district_adcode,
            address=address,
            detail={"incident": incident_id, "task": task_id, "eta_s": eta_s},
        )
    return {"code": sent.code, "eta_s": eta_s, "eta_at": sent.eta_at}


def record_change(
    conn: sa.Connection,
    *,
    resource_id: int,
    kind: str,
    actor: str,
    from_status: str | None,
    to_status: str,
    incident_id: int | None,
    task_id: int | None = None,
    eta_s: int | None = None,
    note: str | None = None,
) -> None:
    """A unit's history line, and its incident's (dispatch, arrival, release) when it has one."""
    conn.execute(
        sa.text(
            "INSERT INTO resource_event (resource_id, kind, actor, from_status, to_status,"
            " incident_id, task_id, eta_s, note) VALUES (:rid, :kind, :actor, :from_status,"
            " :to_status, :incident, :task, :eta_s, :note)"
        ),
        {
            "rid": resource_id,
            "kind": kind,
            "actor": actor,
            "from_status": from_status,
            "to_status": to_status,
            "incident": incident_id,
            "task": task_id,
            "eta_s": eta_s,
            "note": note,
        },
    )
    if incident_id is not None and kind in ("dispatched", "arrived", "released"):
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor, note)"
                " SELECT :incident, now(), :kind, :actor,"
                "  coalesce(:note, r.code || ' ' || r.name_zh) FROM resource r WHERE r.id = :rid"
            ),
            {
                "incident": incident_id,
                "kind": kind,
                "actor": actor,
                "note": note,
                "rid": resource_id,
            },
        )


# what each hand-made change applies to and leads to
_MOVES = {
    "arrive": (("dispatched", "en_route"), "on_site", "arrived"),
    "release": (("dispatched", "en_route", "on_site"), "available", "released"),
    "off_duty": (("available",), "off_duty", "status"),
    "on_duty": (("off_duty",), "available", "status"),
}
UNIT_ACTIONS = tuple(_MOVES)


def move_unit(
    engine: Engine, *, resource_id: int, action: str, actor: str, address: str | None = None
) -> str:
    """Arrival by hand, release back to service, off or on duty; the unit's new status."""
    if action not in _MOVES:
        raise ResourceError(f"unknown unit action {action!r}")
    _check_id(resource_id, "unit")
    froms, to_status, kind = _MOVES[action]
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT o.status, o.incident_id, o.task_id, o.code, o.district_adcode"
                " FROM resource o WHERE o.id = :id FOR UPDATE"
            ),
            {"id": resource_id},
        ).one_or_none()
        if row is None:
            raise ResourceError("no such unit")
        if row.status not in froms:
            raise ResourceError(f"cannot {action.replace('_', ' ')} a unit that is {row.status}")
        changed = conn.execute(
            sa.text(
                "UPDATE resource SET status = :to_status, changed_at = now()"
                + _CLEAR_JOB
                + " WHERE id = :id AND status = :from_status"
            ),
            {"id": resource_id, "to_status": to_status, "from_status": row.status},
        ).rowcount
        if changed != 1:  # readable but not changeable: a read-only scope
            raise ResourceError("you may not change this unit")
        record_change(
            conn,
            resource_id=resource_id,
            kind=kind,
            actor=actor,
            from_status=row.status,
            to_status=to_status,
            incident_id=row.incident_id,
            task_id=row.task_id,
        )
        write_audit(
            conn,
            actor=actor,
            action=f"unit-{action.replace('_', '-')}",
            target=f"unit:{row.code}",
            district=row.district_adcode,
            address=address,
            detail={"from": row.status, "to": to_status, "incident": row.incident_id},
        )
    return to_status


# releasing ends the job: no target, no incident or task, no times
_CLEAR_JOB = (
    ", incident_id = CASE WHEN :to_status = 'available' THEN NULL ELSE incident_id END,"
    " task_id = CASE WHEN :to_status = 'available' THEN NULL ELSE task_id END,"
    " target = CASE WHEN :to_status = 'available' THEN NULL ELSE target END,"
    " dispatched_at = CASE WHEN :to_status = 'available' THEN NULL ELSE dispatched_at END,"
    " eta_at = CASE WHEN :to_status = 'available' THEN NULL ELSE eta_at END,"
    " arrived_at = CASE WHEN :to_status = 'available' THEN NULL"
    "   WHEN :to_status = 'on_site' THEN now() ELSE arrived_at END"
)


def has_resources(conn: sa.Connection) -> bool:
    """Whether the schema has units (revision 0013 or later)."""
    return bool(conn.execute(sa.text("SELECT to_regclass('resource') IS NOT NULL")).scalar_one())


def release_finished(conn: sa.Connection, *, actor: str) -> int:
    """Return to service the units whose incident was resolved or task closed; how many."""
    rows = conn.execute(
        sa.text(
            "UPDATE resource r SET status = 'available', incident_id = NULL, task_id = NULL,"
            " target = NULL, dispatched_at = NULL, eta_at = NULL, arrived_at = NULL,"
            " changed_at = now()"
            " FROM resource o WHERE o.id = r.id"
            " AND r.status IN ('dispatched', 'en_route', 'on_site')"
            " AND (EXISTS (SELECT 1 FROM incident i WHERE i.id = r.incident_id"
            "              AND i.status = 'resolved')"
            "   OR EXISTS (SELECT 1 FROM playbook_task t WHERE t.id = r.task_id"
            "              AND t.status <> 'open'))"
            " RETURNING r.id, o.status, o.incident_id, o.task_id"
        )
    ).all()
    for row in rows:
        record_change(
            conn,
            resource_id=row.id,
            kind="released",
            actor=actor,
            from_status=row.status,
            to_status="available",
            incident_id=row.incident_id,
            task_id=row.task_id,
            note="job closed",
        )
    return len(rows)


def units_on_job(
    engine: Engine, *, incident_id: int | None = None, task_id: int | None = None
) -> list[dict[str, Any]]:
    """The units sent to an incident or task (in scope), with their position and ETA."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.id, r.code, r.name_zh, r.name_en, r.kind_code, k.name_zh AS kind_zh,"
                " k.name_en AS kind_en, r.status, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat,"
                " ST_X(r.target) AS target_lon, ST_Y(r.target) AS target_lat,"
                " r.dispatched_at, r.eta_at, r.arrived_at,"
                " ST_Distance(geography(r.geom), geography(r.target)) AS metres_left"
                " FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
                " WHERE (r.incident_id = :incident OR r.task_id = :task)"
                " AND r.status IN ('dispatched', 'en_route', 'on_site') ORDER BY r.dispatched_at"
            ),
            {"incident": incident_id, "task": task_id},
        ).mappings()
        return [dict(row) for row in rows]


def coverage(
    engine: Engine, *, skill: str, target_s: int = COVERAGE_TARGET_S
) -> list[dict[str, Any]]:
    """Per street in scope: the estimated time of the fastest available unit serving `skill`
    (None: none in scope), and whether that is beyond `target_s` — the blind spots."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT s.code, s.name_zh, s.name_en, s.district_adcode, best.eta_s, best.code"
                " AS unit_code FROM street s"
                " LEFT JOIN travel_model tm ON tm.district_adcode = s.district_adcode"
                " CROSS JOIN LATERAL (SELECT ST_PointOnSurface(s.geom) AS p) AS c"
                " LEFT JOIN LATERAL ("
                f"   SELECT u.code, {TRAVEL_S.replace('(p)', '(c.p)')} AS eta_s"
                "   FROM (SELECT r.* FROM resource r WHERE r.status = 'available'"
                "         AND r.kind_code IN (SELECT code FROM resource_kind"
                "             WHERE class <> 'facility' AND :skill = ANY(skills))"
                "         ORDER BY r.geom <-> c.p LIMIT 8) AS u"
                "   JOIN resource_kind k ON k.code = u.kind_code ORDER BY 2 LIMIT 1"
                " ) AS best ON true"
                # the owner (no scope set) sees the city; the web its scope's streets
                " WHERE coalesce(current_setting('onescreen.scope', true), '*') = '*'"
                "   OR onescreen_scope_allows(s.district_adcode)"
                " ORDER BY s.code"
            ),
            {"skill": skill},
        ).mappings()
        return [{**row, "blind": row["eta_s"] is None or row["eta_s"] > target_s} for row in rows]


def fleet_state(engine: Engine) -> list[dict[str, Any]]:
    """Every moving unit's position, where it is heading (its job, else home) and how fast it
    goes there (the destination district's road speed × the kind's ratio): what a fleet
    simulator drives. A dispatched unit heads out once its turnout time has passed."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.id, r.code, r.status, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat,"
                " ST_X(coalesce(r.target, r.home)) AS to_lon,"
                " ST_Y(coalesce(r.target, r.home)) AS to_lat,"
                " coalesce(tm.speed_kmh, 25) * k.speed_ratio AS kmh,"
                " r.status IN ('dispatched', 'en_route') AND now() - r.dispatched_at"
                "   >= make_interval(secs => k.turnout_s) AS going,"
                " r.status = 'available' AND NOT ST_DWithin(geography(r.geom),"
                "   geography(r.home), 100) AS returning,"
                " r.status = 'on_site' AND now() - r.arrived_at > interval '45 minutes'"
                "   AS done_on_site"
                " FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
                " LEFT JOIN incident i ON i.id = r.incident_id"
                " LEFT JOIN playbook_task t ON t.id = r.task_id"
                " LEFT JOIN travel_model tm ON tm.district_adcode = coalesce(i.district_adcode,"
                "   t.district_adcode, r.lent_to, r.district_adcode)"
                " WHERE k.class <> 'facility' ORDER BY r.code"
            )
        ).mappings()
        return [dict(row) for row in rows]


def unstaffed_incidents(engine: Engine, *, within_minutes: int = 60, limit: int = 5) -> list[int]:
    """Open critical alarms of the last `within_minutes` that a unit serves and none was sent
    to, oldest first: what a duty officer dispatches to at once (majors wait for a person)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT i.id FROM incident i WHERE i.status <> 'resolved'"
                    " AND i.kind = 'alarm' AND i.severity = 'critical'"
                    " AND i.opened_at > now() - make_interval(mins => :within)"
                    " AND i.category_code IN (SELECT unnest(skills) FROM resource_kind"
                    "   WHERE class <> 'facility')"
                    " AND NOT EXISTS (SELECT 1 FROM resource_event e"
                    "   WHERE e.incident_id = i.id AND e.kind = 'dispatched')"
                    " ORDER BY i.opened_at LIMIT :limit"
                ),
                {"within": within_minutes, "limit": limit},
            ).scalars()
        )


def event_lead(engine: Engine, *, event_id: int) -> int | None:
    """The member of an event (in scope) a unit goes to first: its open critical alarms before
    its majors, the oldest first; None when nothing of it is open."""
    _check_id(event_id, "event")
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT i.id FROM incident i JOIN incident_group g ON g.id = i.group_id"
                " WHERE (g.id = :id OR g.merged_into = :id) AND i.status <> 'resolved'"
                " ORDER BY i.kind <> 'alarm', i.severity <> 'critical', i.severity <> 'major',"
                " i.opened_at, i.id LIMIT 1"
            ),
            {"id": event_id},
        ).scalar_one_or_none()
