"""Playbooks (预案): the tasks a raised warning level made, their owners, due times and progress.

Tasks are made by the database when a district's level rises (revision 0013's trigger on
warning_level_change), so a level raised by the rules, by an operator or by the CLI makes the
same tasks exactly once. People then complete, reopen or hand tasks over here, in their scope
(row-level security), each change audited.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.access import write_audit
from data.dispatch import Suggestion, suggest_for_point
from data.incidents import IncidentActionError, checked_assignee
from data.resources import ResourceError

TASK_ACTIONS = ("done", "reopen", "cancel", "owner")
MAX_NOTE_CHARS = 2000
_TASK_SQL = (
    "SELECT t.id, t.topic_code, t.district_adcode, t.level, t.status, t.owner, t.created_at,"
    " t.due_at, t.done_at, t.done_by, t.note, a.text_zh, a.text_en, a.kind_code, a.seq,"
    " t.status = 'open' AND t.due_at < now() AS overdue,"
    " d.code AS target_code, st.name_zh AS target_street_zh, st.name_en AS target_street_en,"
    " ST_X(t.target) AS target_lon, ST_Y(t.target) AS target_lat,"
    " (SELECT count(*) FROM resource r WHERE r.task_id = t.id"
    "  AND r.status IN ('dispatched', 'en_route', 'on_site')) AS units"
    " FROM playbook_task t JOIN playbook_action a ON a.id = t.action_id"
    " LEFT JOIN device d ON d.id = t.target_device_id"
    " LEFT JOIN street st ON st.code = d.street_code"
)


def playbook(engine: Engine, *, topic: str) -> list[dict[str, Any]]:
    """A scenario's playbook: its actions by level, IV first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT level, seq, text_zh, text_en, kind_code, per_target, due_min"
                " FROM playbook_action WHERE topic_code = :topic ORDER BY level DESC, seq"
            ),
            {"topic": topic},
        ).mappings()
        return [dict(row) for row in rows]


def tasks(
    engine: Engine,
    *,
    topic: str,
    district: str | None = None,
    since_hours: int = 48,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """A scenario's tasks in scope (of one district), open ones first, most urgent first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"{_TASK_SQL} WHERE t.topic_code = :topic"
                " AND (CAST(:district AS text) IS NULL OR t.district_adcode = :district)"
                " AND (t.status = 'open' OR t.done_at > now() - make_interval(hours => :hours))"
                " ORDER BY t.status <> 'open', t.due_at, t.level, a.seq, t.id LIMIT :limit"
            ),
            {"topic": topic, "district": district, "hours": since_hours, "limit": limit},
        ).mappings()
        return [dict(row) for row in rows]


def progress(engine: Engine, *, district: str | None = None) -> dict[str, dict[str, int]]:
    """Per scenario, the tasks of its live playbooks: done, open, overdue, total (cancelled
    tasks are not counted; done ones count while their scenario still has tasks open)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT topic_code, count(*) FILTER (WHERE status = 'done') AS done,"
                " count(*) FILTER (WHERE status = 'open') AS open,"
                " count(*) FILTER (WHERE status = 'open' AND due_at < now()) AS overdue"
                " FROM playbook_task t WHERE status <> 'cancelled'"
                " AND (CAST(:district AS text) IS NULL OR district_adcode = :district)"
                " AND created_at >= coalesce((SELECT min(created_at) FROM playbook_task o"
                "   WHERE o.topic_code = t.topic_code AND o.status = 'open'"
                "   AND (CAST(:district AS text) IS NULL OR o.district_adcode = :district)),"
                "   now())"
                " GROUP BY topic_code"
            ),
            {"district": district},
        ).all()
    return {
        row.topic_code: {
            "done": int(row.done),
            "open": int(row.open),
            "overdue": int(row.overdue),
            "total": int(row.done) + int(row.open),
        }
        for row in rows
    }


def task_suggestions(engine: Engine, *, task_id: int, k: int = 3) -> list[Suggestion]:
    """The units to suggest for an open task that names a kind of unit (none otherwise)."""
    with engine.connect() as conn:
        task = conn.execute(
            sa.text(
                "SELECT ST_X(p) AS lon, ST_Y(p) AS lat, t.district_adcode, t.topic_code,"
                " a.kind_code FROM playbook_task t JOIN playbook_action a ON a.id = t.action_id"
                " JOIN district d ON d.adcode = t.district_adcode"
                " CROSS JOIN LATERAL (SELECT coalesce(t.target, ST_PointOnSurface(d.geom)) AS p) x"
                " WHERE t.id = :id AND t.status = 'open'"
            ),
            {"id": task_id},
        ).one_or_none()
        if task is None or task.kind_code is None:
            return []
        found = suggest_for_point(
            conn,
            lon=task.lon,
            lat=task.lat,
            district=task.district_adcode,
            skill=task.topic_code,
            k=k * 4,
        )
    return [s for s in found if s.kind_code == task.kind_code][:k] or found[:k]


def handle_task(
    engine: Engine,
    *,
    task_id: int,
    action: str,
    actor: str,
    note: str = "",
    owner: str | None = None,
    address: str | None = None,
) -> str:
    """Complete, reopen, cancel or hand over a task as `actor`; its new status."""
    if action not in TASK_ACTIONS:
        raise ResourceError(f"unknown task action {action!r}")
    if type(task_id) is not int or not 0 < task_id < 2**63:
        raise ResourceError("no such task")
    text = note.strip()[: MAX_NOTE_CHARS + 1] if isinstance(note, str) else ""
    if len(text) > MAX_NOTE_CHARS:
        raise ResourceError(f"the note is longer than {MAX_NOTE_CHARS} characters")
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT status, owner, district_adcode FROM playbook_task WHERE id = :id FOR UPDATE"
            ),
            {"id": task_id},
        ).one_or_none()
        if row is None:
            raise ResourceError("no such task")
        status, new_owner = _task_move(conn, row, action=action, owner=owner)
        if status == "open" and row.status != "open" and _open_twin(conn, task_id=task_id):
            raise ResourceError("the same action is open again as another task: use that one")
        changed = conn.execute(
            sa.text(
                "UPDATE playbook_task SET status = :status, owner = :owner,"
                " done_at = CASE WHEN :status = 'open' THEN NULL"
                "   ELSE coalesce(done_at, now()) END,"
                " done_by = CASE WHEN :status = 'open' THEN NULL ELSE :actor END,"
                " note = coalesce(nullif(:note, ''), note) WHERE id = :id"
            ),
            {"id": task_id, "status": status, "owner": new_owner, "actor": actor, "note": text},
        ).rowcount
        if changed != 1:
            raise ResourceError("you may not change this task")
        write_audit(
            conn,
            actor=actor,
            action=f"task-{action}",
            target=f"task:{task_id}",
            district=row.district_adcode,
            address=address,
            detail={"from": row.status, "to": status, "owner": new_owner, "note": text or None},
        )
    return status


def _open_twin(conn: sa.Connection, *, task_id: int) -> bool:
    """Whether an open task exists for the same action, district and target as `task_id`."""
    return bool(
        conn.execute(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM playbook_task o JOIN playbook_task t"
                " ON t.id = :id AND o.action_id = t.action_id"
                " AND o.district_adcode = t.district_adcode"
                " AND coalesce(o.target_device_id, 0) = coalesce(t.target_device_id, 0)"
                " WHERE o.status = 'open' AND o.id <> t.id)"
            ),
            {"id": task_id},
        ).scalar_one()
    )


def _task_move(conn: sa.Connection, row: Any, *, action: str, owner: object) -> tuple[str, str]:
    """The status and owner `action` leads to from the task `row`; ResourceError if it cannot."""
    allowed = {"done": ("open",), "cancel": ("open",), "reopen": ("done", "cancelled")}
    if action == "owner":
        try:
            return row.status, checked_assignee(conn, owner, district=row.district_adcode)
        except IncidentActionError as exc:
            raise ResourceError(str(exc)) from None
    if row.status not in allowed[action]:
        verb = {"done": "complete", "cancel": "cancel", "reopen": "reopen"}[action]
        raise ResourceError(f"cannot {verb} a task that is {row.status}")
    to_status = {"done": "done", "cancel": "cancelled", "reopen": "open"}[action]
    return to_status, row.owner


def unstaffed_tasks(engine: Engine, *, limit: int = 5) -> list[int]:
    """Open tasks that name a kind of unit and have none sent, most urgent first."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT t.id FROM playbook_task t JOIN playbook_action a ON a.id = t.action_id"
                    " WHERE t.status = 'open' AND a.kind_code IS NOT NULL"
                    " AND NOT EXISTS (SELECT 1 FROM resource_event e WHERE e.task_id = t.id"
                    "   AND e.kind = 'dispatched')"
                    " ORDER BY t.due_at, t.id LIMIT :limit"
                ),
                {"limit": limit},
            ).scalars()
        )


def drill_complete_tasks(engine: Engine, *, actor: str, after_minutes: int = 6) -> int:
    """A drill's (the demo's) duty officer closing tasks: those whose unit is on site, and
    those no unit does `after_minutes` after they appeared; audited as `actor`."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text(
                "UPDATE playbook_task t SET status = 'done', done_at = now(), done_by = :actor"
                " FROM playbook_action a WHERE a.id = t.action_id AND t.status = 'open' AND ("
                "  EXISTS (SELECT 1 FROM resource r WHERE r.task_id = t.id"
                "          AND r.status = 'on_site')"
                "  OR (a.kind_code IS NULL"
                "      AND t.created_at < now() - make_interval(mins => :after)))"
                " RETURNING t.id, t.district_adcode"
            ),
            {"actor": actor, "after": after_minutes},
        ).all()
        for row in rows:
            write_audit(
                conn,
                actor=actor,
                action="task-done",
                target=f"task:{row.id}",
                district=row.district_adcode,
                detail={"from": "open", "to": "done"},
            )
    return len(rows)
