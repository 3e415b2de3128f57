"""Handling incidents (线上线下协同处置): acknowledge, assign, note, resolve, reopen.

Every change runs on the web engine inside the caller's scope, so row-level security decides
whether the incident is reachable at all; each is recorded in the incident's event history
(who and when) and in the audit log, in the same transaction as the change itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.access import write_audit

ACTIONS = ("acknowledge", "assign", "note", "resolve", "reopen")
# which statuses each action applies to, the status it leads to (None: unchanged) and the
# event kind it records
_RULES: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "acknowledge": (("open",), "acknowledged", "acknowledged"),
    "assign": (("open", "acknowledged"), None, "assigned"),
    "note": (("open", "acknowledged", "resolved"), None, "note"),
    "resolve": (("open", "acknowledged"), "resolved", "resolved"),
    "reopen": (("acknowledged", "resolved"), "open", "reopened"),
}
MAX_NOTE_CHARS = 2000
_ASSIGNEE_PATTERN = re.compile(r"(user|team):[a-z0-9][a-z0-9._-]{1,63}")
# which of the districts a team (its own district's or a city team) or a person (the city's
# operators and administrators; a district manager of that district) may take incidents of
_TEAM_TAKES = (
    "SELECT d FROM unnest(CAST(:districts AS text[])) AS d WHERE EXISTS (SELECT 1 FROM team"
    " WHERE code = :name AND (district_adcode IS NULL OR district_adcode = d))"
)
_USER_TAKES = (
    "SELECT d FROM unnest(CAST(:districts AS text[])) AS d WHERE EXISTS (SELECT 1 FROM app_user u"
    " WHERE u.username = :name AND u.disabled_at IS NULL AND (u.role IN ('admin', 'operator')"
    "   OR (u.role = 'district_manager' AND EXISTS (SELECT 1 FROM app_user_district ud"
    "       WHERE ud.user_id = u.id AND ud.district_adcode = d))))"
)


class IncidentActionError(ValueError):
    """An incident change that cannot be made; the message says why (and is safe to show)."""


@dataclass(frozen=True)
class Assignee:
    """Someone an incident can be assigned to: a person or a team."""

    key: str  # 'user:<username>' or 'team:<code>'
    label_zh: str
    label_en: str


def allowed_actions(status: str) -> tuple[str, ...]:
    """The actions that apply to an incident in `status`."""
    return tuple(action for action, (froms, _, _) in _RULES.items() if status in froms)


def applies_to(action: str) -> tuple[str, ...]:
    """The statuses an incident may be in for `action`."""
    return _RULES[action][0]


def handle_incident(
    engine: Engine,
    *,
    incident_id: int,
    action: str,
    actor: str,
    note: str = "",
    assignee: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Apply `action` to the incident as `actor` (who must be the engine's current scope's
    actor); returns the incident's new status and assignee. IncidentActionError when the action,
    note or assignee is not acceptable, or the incident is not reachable in this scope."""
    if action not in _RULES:
        raise IncidentActionError(f"unknown action {action!r}")
    if type(incident_id) is not int or not 0 < incident_id < 2**63:
        raise IncidentActionError("no such incident")
    text = checked_note(note, action=action)
    froms, to_status, _ = _RULES[action]
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT status, district_adcode, assignee FROM incident WHERE id = :id FOR UPDATE"
            ),
            {"id": incident_id},
        ).one_or_none()
        if row is None:  # unknown, or outside the caller's districts: the same answer
            raise IncidentActionError("no such incident")
        if row.status not in froms:
            raise IncidentActionError(f"cannot {action} an incident that is {row.status}")
        new_assignee = row.assignee
        if action == "assign":
            new_assignee = checked_assignee(conn, assignee, district=row.district_adcode)
        changed = apply_action(
            conn,
            members=[(incident_id, row.status)],
            action=action,
            actor=actor,
            note=text,
            assignee=new_assignee,
        )
        if changed != 1:  # readable but not changeable: a read-only scope
            raise IncidentActionError("you may not change this incident")
        write_audit(
            conn,
            actor=actor,
            action=f"incident-{action}",
            target=f"incident:{incident_id}",
            district=row.district_adcode,
            address=address,
            detail={"from": row.status, "to": to_status or row.status, "assignee": new_assignee},
        )
    return {"status": to_status or row.status, "assignee": new_assignee}


def checked_note(note: object, *, action: str) -> str:
    """The comment, trimmed; IncidentActionError when too long, or missing where required."""
    text = note.strip() if isinstance(note, str) else ""
    if len(text) > MAX_NOTE_CHARS:
        raise IncidentActionError(f"the note is longer than {MAX_NOTE_CHARS} characters")
    if action != "assign" and not text:
        raise IncidentActionError("a comment is required")
    return text


def apply_action(
    conn: sa.Connection,
    *,
    members: list[tuple[int, str]],
    action: str,
    actor: str,
    note: str,
    assignee: str | None,
) -> int:
    """Move the incidents (id, their status now) as `action` does and record each in its
    history; how many changed (a note changes only the history). The caller has locked them."""
    _, to_status, kind = _RULES[action]
    ids = [incident_id for incident_id, _ in members]
    changed = len(ids)
    if action == "assign":  # the status stays: only who has it changes
        changed = conn.execute(
            sa.text("UPDATE incident SET assignee = :assignee WHERE id = ANY(:ids)"),
            {"ids": ids, "assignee": assignee},
        ).rowcount
    elif action != "note":
        changed = conn.execute(
            sa.text(
                "UPDATE incident SET status = :status,"
                " acknowledged_at = CASE WHEN :status IN ('acknowledged', 'resolved')"
                "   THEN coalesce(acknowledged_at, now()) ELSE acknowledged_at END,"
                " resolved_at = CASE WHEN :status <> 'resolved' THEN NULL"
                "   ELSE coalesce(resolved_at, now()) END"
                " WHERE id = ANY(:ids)"
            ),
            {"ids": ids, "status": to_status},
        ).rowcount
    # the history rows' insert is guarded by the database too (own actor, reachable incident)
    conn.execute(
        sa.text(
            "INSERT INTO incident_event"
            " (incident_id, at, kind, actor, from_status, to_status, note, assignee)"
            " SELECT m.id, now(), :kind, :actor, m.status, :to_status, :note, :assignee"
            " FROM unnest(CAST(:ids AS bigint[]), CAST(:froms AS text[])) AS m(id, status)"
        ),
        {
            "ids": ids,
            "froms": [status for _, status in members],
            "kind": kind,
            "actor": actor,
            "to_status": to_status,
            "note": note or None,
            "assignee": assignee if action == "assign" else None,
        },
    )
    return changed


def assignee_districts(conn: sa.Connection, assignee: object, *, districts: list[str]) -> set[str]:
    """Which of `districts` the person or team `assignee` may take incidents of."""
    if not isinstance(assignee, str) or not _ASSIGNEE_PATTERN.fullmatch(assignee):
        raise IncidentActionError("choose a person or team to assign to")
    kind, name = assignee.split(":", 1)
    sql = _TEAM_TAKES if kind == "team" else _USER_TAKES
    rows = conn.execute(sa.text(sql), {"districts": districts, "name": name}).scalars()
    return set(rows)


def checked_assignee(conn: sa.Connection, assignee: object, *, district: str) -> str:
    """`assignee`, when that person or team may take incidents of `district`."""
    if district not in assignee_districts(conn, assignee, districts=[district]):
        raise IncidentActionError("that person or team cannot take incidents of this district")
    assert isinstance(assignee, str)  # assignee_districts refused anything else
    return assignee


def assignees(engine: Engine, *, district: str) -> list[Assignee]:
    """Who incidents of `district` can be assigned to: its and the city's teams, its district
    managers, the city's operators and administrators."""
    with engine.connect() as conn:
        teams = conn.execute(
            sa.text(
                "SELECT code, name_zh, name_en FROM team"
                " WHERE district_adcode IS NULL OR district_adcode = :district"
                " ORDER BY district_adcode NULLS LAST, code"
            ),
            {"district": district},
        ).all()
        people = conn.execute(
            sa.text(
                "SELECT u.username, u.display_name, u.role FROM app_user u"
                " WHERE u.disabled_at IS NULL AND (u.role IN ('admin', 'operator')"
                "   OR (u.role = 'district_manager' AND EXISTS (SELECT 1 FROM app_user_district d"
                "       WHERE d.user_id = u.id AND d.district_adcode = :district)))"
                " ORDER BY u.role = 'district_manager' DESC, u.username"
            ),
            {"district": district},
        ).all()
    return [Assignee(f"team:{t.code}", t.name_zh, t.name_en) for t in teams] + [
        Assignee(
            f"user:{p.username}",
            p.display_name or p.username,
            p.display_name or p.username,
        )
        for p in people
    ]


def create_team(
    engine: Engine, *, code: str, name_zh: str, name_en: str, district: str | None = None
) -> None:
    """Add (or rename) a team incidents can be assigned to; district None = a city team."""
    if not isinstance(code, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{1,63}", code):
        raise IncidentActionError("team code must be 2-64 of a-z, 0-9, '_' or '-'")
    if not name_zh.strip() or not name_en.strip():
        raise IncidentActionError("a team needs a Chinese and an English name")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO team (code, name_zh, name_en, district_adcode)"
                " VALUES (:code, :name_zh, :name_en, :district)"
                " ON CONFLICT (code) DO UPDATE SET name_zh = excluded.name_zh,"
                " name_en = excluded.name_en, district_adcode = excluded.district_adcode"
            ),
            {"code": code, "name_zh": name_zh, "name_en": name_en, "district": district},
        )


def ensure_default_teams(engine: Engine) -> int:
    """Each district's city-operations centre and the city's specialist teams, if missing;
    how many were added."""
    with engine.begin() as conn:
        added = conn.execute(
            sa.text(
                "INSERT INTO team (code, name_zh, name_en, district_adcode)"
                " SELECT 'ops-' || adcode, name_zh || '城运中心',"
                "        name_en || ' operations centre', adcode FROM district"
                " ON CONFLICT (code) DO NOTHING"
            )
        ).rowcount
        for code, name_zh, name_en in (
            ("city-flood", "市防汛指挥部", "City flood control HQ"),
            ("city-gas", "燃气抢修队", "Gas emergency crew"),
            ("city-water", "供水抢修队", "Water mains crew"),
            ("city-power", "电力抢修队", "Power repair crew"),
        ):
            added += conn.execute(
                sa.text(
                    "INSERT INTO team (code, name_zh, name_en) VALUES (:code, :zh, :en)"
                    " ON CONFLICT (code) DO NOTHING"
                ),
                {"code": code, "zh": name_zh, "en": name_en},
            ).rowcount
    return added
