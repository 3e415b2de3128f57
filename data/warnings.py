"""An operator raising or lowering a scenario's warning level (revision 0011), with a reason,
for some hours, or handing it back to the rules; in the person's scope, logged and audited."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.access import write_audit
from data.checks import InvalidQuery, check_scope
from data.incidents import IncidentActionError
from data.warning_reads import check_topic

MAX_REASON_CHARS = 500
HOURS = (2, 6, 12, 24, 72)
# what the form sends: a level to hold (IV … I, or none) or back to the rules
ACTIONS = {"level-4": 4, "level-3": 3, "level-2": 2, "level-1": 1, "level-0": 0, "auto": None}


def set_warning(
    engine: Engine,
    *,
    action: str,
    actor: str,
    note: str,
    topic: str,
    district: str,
    hours: object = 6,
    address: str | None = None,
    **_unused: object,
) -> dict[str, Any]:
    """Hold `topic`'s level in `district` ('' = the city) at the action's level for `hours`, or
    hand it back to the rules ('auto'); the level in force after. IncidentActionError when the
    request is not acceptable or the level is not the person's to set."""
    level, until_h, reason = _checked(action, note, topic, district, hours)
    with engine.begin() as conn:
        row = _level(conn, topic, district, lock=False)
        if row is None:  # unknown, not yet evaluated, or outside the scope: the same answer
            raise IncidentActionError("no such warning level")
        row = _level(conn, topic, district, lock=True)
        if row is None:  # readable but not the person's to change (read only, or the city's)
            raise IncidentActionError("you may not set this warning level")
        after = conn.execute(
            sa.text(
                "UPDATE warning_level w SET override = :level, override_by = :actor,"
                " override_reason = :reason, override_at = now(),"
                " override_until = now() + :hours * interval '1 hour'"
                " WHERE topic_code = :topic AND district_adcode = :district"
                " RETURNING warning_in_force(w)"
            ),
            {
                **_where(topic, district),
                "level": level,
                "actor": actor,
                "reason": reason,
                "hours": None if level is None else until_h,
            },
        ).one_or_none()
        if after is None:  # readable but not changeable: a read-only scope, or the city's
            raise IncidentActionError("you may not set this warning level")
        if after[0] != row.level:
            conn.execute(
                sa.text(
                    "INSERT INTO warning_level_change (topic_code, district_adcode, from_level,"
                    " to_level, source, actor, reason)"
                    " VALUES (:topic, :district, :from_level, :to_level, 'operator', :actor,"
                    " :reason)"
                ),
                {
                    **_where(topic, district),
                    "from_level": row.level,
                    "to_level": after[0],
                    "actor": actor,
                    "reason": reason,
                },
            )
        write_audit(
            conn,
            actor=actor,
            action="warning-auto" if level is None else "warning-set",
            target=f"warning:{topic}:{district or 'city'}",
            district=district or None,
            address=address,
            detail={"from": row.level, "to": after[0], "hours": until_h, "reason": reason},
        )
    return {"level": after[0]}


def _level(conn: sa.Connection, topic: str, district: str, *, lock: bool) -> sa.Row[Any] | None:
    """The level in force as the person may read it, or (`lock`) change it."""
    return conn.execute(
        sa.text(
            "SELECT warning_in_force(w) AS level FROM warning_level w"
            " WHERE topic_code = :topic AND district_adcode = :district"
            + (" FOR UPDATE" if lock else "")
        ),
        _where(topic, district),
    ).one_or_none()


def _where(topic: str, district: str) -> dict[str, str]:
    return {"topic": topic, "district": district}


def _checked(
    action: object, note: object, topic: object, district: object, hours: object
) -> tuple[int | None, int, str]:
    """The level, hours and reason of a request; IncidentActionError when one is not right."""
    if not isinstance(action, str) or action not in ACTIONS:
        raise IncidentActionError("choose a warning level")
    try:
        check_topic(topic)
        if district != "":
            check_scope(district=district if isinstance(district, str) else "?")
    except InvalidQuery as exc:
        raise IncidentActionError(str(exc)) from None
    reason = note.strip() if isinstance(note, str) else ""
    if not reason:
        raise IncidentActionError("say why the level is set")
    if len(reason) > MAX_REASON_CHARS:
        raise IncidentActionError(f"the reason is longer than {MAX_REASON_CHARS} characters")
    if type(hours) is not int or hours not in HOURS:
        raise IncidentActionError(f"hold the level for {', '.join(map(str, HOURS))} hours")
    return ACTIONS[action], hours, reason
