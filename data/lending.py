"""Lending the city's reserve units (市级储备力量借调): a city unit (no home district) lent to a
district is that district's to see and send until the city takes it back.

Who may lend is the database's to say (revision 0018): a session serving the whole city, or the
owner's (the CLI, the demo's duty officer); a district's session is refused. Here are the rules
of the trade itself: a unit out on a job is neither lent nor taken back (its district would lose
sight of a unit working for it), and a unit lent to one district is taken back before it is lent
to another (two duty officers lending the same unit at once: the second hears so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.access import write_audit
from data.resources import BUSY, ResourceError

INSUFFICIENT_PRIVILEGE = "42501"
# a unit of the city's reserve that is free to lend (as `r`)
_FREE_RESERVE = "r.district_adcode IS NULL AND r.lent_to IS NULL AND r.status = 'available'"


@dataclass(frozen=True)
class Loan:
    """A unit lent (or taken back), as it now is."""

    code: str
    name_zh: str
    name_en: str
    lent_to: str | None


def lend_unit(
    engine: Engine, *, code: str, district: str | None, actor: str, address: str | None = None
) -> Loan:
    """Lend a city unit to `district` (None: take it back), audited; ResourceError if it may not."""
    with engine.begin() as conn:
        if district is not None and not _is_district(conn, district):
            raise ResourceError(f"unknown district {district!r}")
        try:
            row = conn.execute(
                sa.text(
                    "WITH was AS (SELECT id, lent_to FROM resource WHERE code = :code FOR UPDATE)"
                    " UPDATE resource r SET lent_to = :district, changed_at = now(),"
                    " lent_by = CASE WHEN CAST(:district AS text) IS NULL THEN NULL ELSE :actor END"
                    " FROM was WHERE r.id = was.id AND r.district_adcode IS NULL"
                    " AND r.status <> ALL(CAST(:busy AS text[]))"
                    " AND (CAST(:district AS text) IS NULL OR r.lent_to IS NULL"
                    "      OR r.lent_to = :district)"
                    " RETURNING r.id, r.code, r.name_zh, r.name_en, r.lent_to, r.status,"
                    " was.lent_to AS was_lent_to"
                ),
                {"code": code, "district": district, "busy": list(BUSY), "actor": actor[:100]},
            ).one_or_none()
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
                raise ResourceError("only the city lends units or takes them back") from None
            raise
        if row is None:
            raise ResourceError(_why_not(conn, code=code, district=district))
        if row.was_lent_to != district:
            _record_loan(conn, row=row, actor=actor)
        write_audit(
            conn,
            actor=actor,
            action="unit-lend",
            target=f"unit:{code}",
            district=district,
            address=address,
            detail={"lent_to": district},
        )
    return Loan(code=row.code, name_zh=row.name_zh, name_en=row.name_en, lent_to=row.lent_to)


def _record_loan(conn: sa.Connection, *, row: Any, actor: str) -> None:
    """The loan change in the unit's history (what a replay reads)."""
    conn.execute(
        sa.text(
            "INSERT INTO resource_event (resource_id, kind, actor, from_status, to_status,"
            " lent_to, from_lent_to, note) VALUES (:id, 'lent', :actor, :status, :status,"
            " :lent_to, :was, :note)"
        ),
        {
            "id": row.id,
            "actor": actor,
            "status": row.status,
            "lent_to": row.lent_to,
            "was": row.was_lent_to,
            "note": f"{row.code} → {row.lent_to or 'city'}",
        },
    )


def _is_district(conn: sa.Connection, district: str) -> bool:
    """Whether `district` is one of the city's districts."""
    return bool(
        conn.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM district WHERE adcode = :d)"), {"d": district}
        ).scalar_one()
    )


def _why_not(conn: sa.Connection, *, code: str, district: str | None) -> str:
    """Why unit `code` could not be lent to `district` or taken back (as this scope sees it)."""
    row = conn.execute(
        sa.text("SELECT district_adcode, lent_to, status FROM resource WHERE code = :code"),
        {"code": code},
    ).one_or_none()
    if row is None or row.district_adcode is not None:
        return f"no city unit {code!r} (only city units are lent)"
    if row.status in BUSY:
        return f"{code} is out on a job: lend it or take it back once it is free"
    if district is not None and row.lent_to not in (None, district):
        return f"{code} is lent to {row.lent_to}: take it back before lending it elsewhere"
    return "you may not lend or take back units"  # seen, not changeable: a read-only scope


def lendable_units(
    engine: Engine, *, district: str, skill: str | None = None, limit: int = 5
) -> list[dict[str, Any]]:
    """The city's available reserve units (of a scenario) nearest to `district`, with how far."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.code, r.kind_code, r.name_zh, r.name_en, r.capacity,"
                " ST_Distance(r.geom::geography, d.label_point::geography) AS metres"
                " FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
                " JOIN district d ON d.adcode = :district"
                f" WHERE {_FREE_RESERVE}"
                " AND (CAST(:skill AS text) IS NULL OR :skill = ANY(k.skills))"
                " ORDER BY metres, r.code LIMIT :limit"
            ),
            {"district": district, "skill": skill, "limit": limit},
        ).mappings()
        return [dict(row) for row in rows]


def reserve_requests(engine: Engine, *, limit: int = 3) -> list[tuple[str, str]]:
    """(unit code, district): for each district whose open playbook tasks call for a kind the
    city holds in reserve and that has none of it lent yet, the nearest such available unit that
    no district before it in this answer took."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "WITH wanted AS (SELECT DISTINCT ON (t.district_adcode, a.kind_code)"
                "   t.district_adcode, a.kind_code, coalesce(t.target, d.label_point) AS p"
                "   FROM playbook_task t JOIN playbook_action a ON a.id = t.action_id"
                "   JOIN district d ON d.adcode = t.district_adcode"
                "   WHERE t.status = 'open' AND a.kind_code IS NOT NULL"
                "   AND NOT EXISTS (SELECT 1 FROM resource l"
                "     WHERE l.lent_to = t.district_adcode AND l.kind_code = a.kind_code)"
                "   ORDER BY t.district_adcode, a.kind_code, t.due_at, t.id)"
                " SELECT w.district_adcode, w.kind_code, u.code FROM wanted w"
                " CROSS JOIN LATERAL (SELECT r.code,"
                "   ST_Distance(r.geom::geography, w.p::geography) AS far FROM resource r"
                f"   WHERE {_FREE_RESERVE} AND r.kind_code = w.kind_code"
                "   ORDER BY far, r.code LIMIT :choices) u"
                " ORDER BY w.district_adcode, w.kind_code, u.far, u.code"
            ),
            {"choices": limit + 1},
        ).all()
    # each request takes its nearest unit not yet taken (districts in code order)
    taken: dict[str, str] = {}
    served: set[tuple[str, str]] = set()
    for district, kind, code in rows:
        if (district, kind) not in served and code not in taken:
            taken[code] = district
            served.add((district, kind))
    return list(taken.items())[:limit]


def idle_loans(engine: Engine, *, lent_by: str) -> list[str]:
    """Units `lent_by` lent that are free again where no open task of their district calls for
    their kind."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT r.code FROM resource r WHERE r.lent_to IS NOT NULL"
                    " AND r.lent_by = :lent_by"
                    " AND r.status = 'available' AND r.incident_id IS NULL AND r.task_id IS NULL"
                    " AND NOT EXISTS (SELECT 1 FROM playbook_task t"
                    "   JOIN playbook_action a ON a.id = t.action_id"
                    "   WHERE t.status = 'open' AND t.district_adcode = r.lent_to"
                    "   AND a.kind_code = r.kind_code)"
                    " ORDER BY r.code"
                ),
                {"lent_by": lent_by},
            ).scalars()
        )
