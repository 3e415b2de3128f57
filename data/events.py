"""Handling an event (revision 0009) as one: acknowledge, assign or annotate its members.

Each runs on the web engine inside the caller's scope, as handling one incident does: row-level
security decides which members the caller reaches (a district manager acts on their district's
members only, and learns nothing of the others), each changed member gets its own history line,
and one audit line records the whole, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.access import write_audit
from data.incidents import (
    IncidentActionError,
    applies_to,
    apply_action,
    assignee_districts,
    checked_note,
)

# what an event can be handled by; resolving stays per incident (each needs its own check)
EVENT_ACTIONS = ("acknowledge", "assign", "note")
# an event's live members: a note goes to those still being handled
_LIVE = ("open", "acknowledged")
# a merged event's line may still be open in a browser: it leads to the event it joined
_MAX_MERGES = 8


@dataclass(frozen=True)
class EventChange:
    """What handling an event did: members changed, members the assignee could not take."""

    event_id: int
    changed: int
    skipped: int
    districts: tuple[str, ...]


def handle_event(
    engine: Engine,
    *,
    group_id: int,
    action: str,
    actor: str,
    note: str = "",
    assignee: str | None = None,
    address: str | None = None,
) -> EventChange:
    """Apply `action` to every member of the event the caller's scope reaches and the action
    applies to; IncidentActionError when nothing could be done, saying why."""
    if action not in EVENT_ACTIONS:
        raise IncidentActionError(f"unknown action {action!r}")
    if type(group_id) is not int or not 0 < group_id < 2**63:
        raise IncidentActionError("no such event")
    text = checked_note(note, action=action)
    with engine.begin() as conn:
        event_id = _reachable_event(conn, group_id)
        froms = _LIVE if action == "note" else applies_to(action)
        # locked in id order, as every bulk change does, so two never wait on each other
        members = conn.execute(
            sa.text(
                "SELECT id, status, district_adcode FROM incident"
                " WHERE group_id = :g AND status = ANY(:froms) ORDER BY id FOR UPDATE"
            ),
            {"g": event_id, "froms": list(froms)},
        ).all()
        if not members:
            raise IncidentActionError(_nothing_to_do(conn, action))
        taken = members
        if action == "assign":
            districts = sorted({m.district_adcode for m in members})
            allowed = assignee_districts(conn, assignee, districts=districts)
            taken = [m for m in members if m.district_adcode in allowed]
            if not taken:
                raise IncidentActionError(
                    "that person or team cannot take incidents of this event's districts"
                )
        changed = apply_action(
            conn,
            members=[(m.id, m.status) for m in taken],
            action=action,
            actor=actor,
            note=f"#{event_id} · {text}" if text else "",
            assignee=assignee,
        )
        touched = tuple(sorted({m.district_adcode for m in taken}))
        write_audit(
            conn,
            actor=actor,
            action=f"event-{action}",
            target=f"event:{event_id}",
            district=touched[0] if len(touched) == 1 else None,
            address=address,
            detail={
                "members": changed,
                "skipped": len(members) - len(taken),
                "districts": list(touched),
                "assignee": assignee if action == "assign" else None,
            },
        )
    return EventChange(event_id, changed, len(members) - len(taken), touched)


def _reachable_event(conn: sa.Connection, group_id: int) -> int:
    """The event the id names (or, if merged, the one it joined), when the scope reaches it."""
    for _ in range(_MAX_MERGES):
        row = conn.execute(
            sa.text("SELECT status, merged_into FROM incident_group WHERE id = :g"),
            {"g": group_id},
        ).one_or_none()
        if row is None:  # unknown, or none of its districts is the caller's: the same answer
            raise IncidentActionError("no such event")
        if row.status != "merged":
            return group_id
        group_id = int(row.merged_into)
    raise IncidentActionError("no such event")


def _nothing_to_do(conn: sa.Connection, action: str) -> str:
    """Why no member was taken: a read-only scope, or none in a status the action applies to."""
    if not conn.execute(sa.text("SELECT onescreen_can_act()")).scalar_one():
        return "you may not change this event's incidents"
    if action == "acknowledge":
        return "every alarm of this event you can reach is already acknowledged"
    return "no alarm of this event you can reach is still being handled"
