"""Reading warning levels (revision 0011): each scenario's level in force for the city and the
districts in the reader's scope, with why it holds and who set it; and the rules behind them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.asof import replaying
from data.checks import InvalidQuery, check_scope

_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class WarningNow:
    """A scenario's level in one district ('' = the city) as it stands."""

    topic: str
    district: str
    level: int | None  # in force: 1 = I 红 … 4 = IV 蓝, None = no warning
    computed: int | None
    override: int | None  # an operator's level in force (0 = "no warning"), else None
    override_by: str | None
    override_reason: str | None
    override_until: datetime | None
    why: list[dict[str, Any]]
    calm_since: datetime | None
    since: datetime | None  # when the level in force last changed


def check_topic(topic: object) -> str:
    """The scenario code, or InvalidQuery."""
    if not isinstance(topic, str) or not 2 <= len(topic) <= 32 or set(topic) - _TOPIC_CHARS:
        raise InvalidQuery("a scenario is a short lower-case code")
    return topic


# a level as it stood at :at, from its history: the last change by then (an operator's level is
# said as theirs; what the rules computed beneath it and why are not kept)
_LEVELS_AT = sa.text(
    "SELECT w.topic_code, w.district_adcode, c.to_level AS level,"
    " CASE WHEN c.source <> 'operator' THEN c.to_level END AS computed,"
    " CASE WHEN c.source = 'operator' THEN coalesce(c.to_level, 0) END AS override,"
    " CASE WHEN c.source = 'operator' THEN c.actor END AS override_by,"
    " CASE WHEN c.source = 'operator' THEN c.reason END AS override_reason,"
    " NULL::timestamptz AS override_until, '[]'::jsonb AS why, NULL::timestamptz AS calm_since,"
    " c.at AS since"
    " FROM warning_level w"
    " LEFT JOIN LATERAL (SELECT * FROM warning_level_change c WHERE c.topic_code = w.topic_code"
    "   AND c.district_adcode = w.district_adcode AND c.at <= :at"
    "   ORDER BY c.at DESC, c.id DESC LIMIT 1) c ON true"
    " WHERE CAST(:topic AS text) IS NULL OR w.topic_code = :topic"
    " ORDER BY w.topic_code, w.district_adcode"
)


def warning_levels(
    engine: Engine, *, topic: str | None = None, at: datetime | None = None, replay: bool = False
) -> list[WarningNow]:
    """Levels of one scenario (or all) for the city and the districts the reader may see
    (`replay`: as they stood at `at`)."""
    if topic is not None:
        check_topic(topic)
    if replaying(at, replay):
        with engine.connect() as conn:
            return [
                WarningNow(*row) for row in conn.execute(_LEVELS_AT, {"topic": topic, "at": at})
            ]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT w.topic_code, w.district_adcode, warning_in_force(w) AS level,"
                " w.computed,"
                " CASE WHEN w.override_until > now() THEN w.override END AS override,"
                " w.override_by, w.override_reason, w.override_until, w.why, w.calm_since,"
                " (SELECT max(c.at) FROM warning_level_change c WHERE c.topic_code = w.topic_code"
                "   AND c.district_adcode = w.district_adcode) AS since"
                " FROM warning_level w"
                " WHERE CAST(:topic AS text) IS NULL OR w.topic_code = :topic"
                " ORDER BY w.topic_code, w.district_adcode"
            ),
            {"topic": topic},
        ).all()
    return [WarningNow(*row) for row in rows]


def warning_rules(engine: Engine, *, topic: str) -> list[dict[str, Any]]:
    """The enabled rules of a scenario, most severe level first: what makes each level."""
    check_topic(topic)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT level, note_zh, note_en FROM warning_rule"
                " WHERE enabled AND topic_code = :topic ORDER BY level, id"
            ),
            {"topic": topic},
        ).mappings()
        return [dict(row) for row in rows]


def warning_rises(
    engine: Engine, *, after: int, before: int, district: str | None = None
) -> list[dict[str, Any]]:
    """Rises of the level in force (from none or a milder level) of the city, or of `district`,
    logged by transactions between the marks `after` and `before` (xid8, as the walls' incident
    news): what takes a wall's attention, oldest first, at most ten."""
    if district is not None:
        check_scope(district=district)
    if not (0 <= after < 2**63 and 0 <= before < 2**63):
        raise InvalidQuery("marks out of range")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT c.id, c.at, c.topic_code, c.district_adcode, c.from_level, c.to_level,"
                " c.source, c.reason"
                " FROM warning_level_change c"
                " WHERE c.written_xid >= CAST(:after AS xid8)"
                "   AND c.written_xid < CAST(:before AS xid8)"
                "   AND c.district_adcode = :place AND c.to_level IS NOT NULL"
                "   AND (c.from_level IS NULL OR c.to_level < c.from_level)"
                " ORDER BY c.id LIMIT 10"
            ),
            {"after": str(after), "before": str(before), "place": district or ""},
        ).mappings()
        return [dict(row) for row in rows]
