"""Storage side of warning levels (revision 0011): the rules, what each district's devices and
live alarms count against them now, the levels as stored, and the evaluation's writes."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from data.warning_types import LevelState, LevelUpdate, WarningRule

# each rule's devices passing its test (online as on the maps: heard within three intervals,
# at least ten minutes), and live alarms of its scenario, by district (or by street, for the
# rules of a place); one statement
_COUNTS_SQL = sa.text(
    """
WITH r AS (SELECT * FROM warning_rule WHERE enabled), hits AS (
    SELECT r.id, d.district_adcode, CASE WHEN r.per_street THEN d.street_code END AS street,
           count(*) AS n
    FROM r
    JOIN device_type t ON t.measurand = ANY(r.measurands)
    JOIN device d ON d.type_id = t.id AND d.status = 'active'
    JOIN device_latest l ON l.device_id = d.id
    WHERE l.ts > CAST(:now AS timestamptz) - greatest(3 * t.interval_s, 600) * interval '1 second'
      AND CASE r.test
            WHEN 'beyond_normal' THEN l.value > t.normal_max OR l.value < t.normal_min
            WHEN 'beyond_alarm' THEN l.value > t.alarm_max OR l.value < t.alarm_min
            WHEN 'at_least' THEN l.value >= r.threshold
            WHEN 'at_most' THEN l.value <= r.threshold
          END
    GROUP BY 1, 2, 3
    UNION ALL
    SELECT r.id, i.district_adcode, CASE WHEN r.per_street THEN i.street_code END, count(*)
    FROM r JOIN incident i ON i.category_code = r.topic_code AND i.status <> 'resolved'
      AND i.severity = ANY(r.severities) AND i.kind IN ('alarm', 'anomaly')
      AND (r.within_s IS NULL
           OR i.opened_at > CAST(:now AS timestamptz) - r.within_s * interval '1 second')
    WHERE r.test = 'live_incidents'
    GROUP BY 1, 2, 3
)
-- per-street rules count their district's busiest street
SELECT id, district_adcode, max(n) AS n FROM hits GROUP BY id, district_adcode
"""
)

_SAVE_SQL = sa.text(
    """
INSERT INTO warning_level AS w (topic_code, district_adcode, computed, computed_at, why,
                                calm_since, override, override_until)
SELECT s.topic, s.district, s.computed, CAST(:now AS timestamptz), s.why, s.calm_since,
       s.override, s.override_until
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS s(topic text, district text, computed smallint,
     why jsonb, calm_since timestamptz, override smallint, override_until timestamptz)
ON CONFLICT (topic_code, district_adcode) DO UPDATE SET
    computed = excluded.computed, computed_at = excluded.computed_at, why = excluded.why,
    calm_since = excluded.calm_since, override = excluded.override,
    override_until = excluded.override_until,
    override_by = CASE WHEN excluded.override IS NULL THEN NULL ELSE w.override_by END,
    override_reason = CASE WHEN excluded.override IS NULL THEN NULL ELSE w.override_reason END,
    override_at = CASE WHEN excluded.override IS NULL THEN NULL ELSE w.override_at END
"""
)


def has_warnings(conn: sa.Connection) -> bool:
    """Whether the schema has warning levels (revision 0011 or later)."""
    return bool(
        conn.execute(sa.text("SELECT to_regclass('warning_rule') IS NOT NULL")).scalar_one()
    )


def load_warning_rules(conn: sa.Connection) -> list[WarningRule]:
    """The enabled warning rules."""
    rows = conn.execute(
        sa.text(
            "SELECT id, topic_code, level, test, min_count, note_zh, note_en FROM warning_rule"
            " WHERE enabled ORDER BY topic_code, level DESC, id"
        )
    ).all()
    return [WarningRule(*row) for row in rows]


def warning_counts(conn: sa.Connection, *, now: datetime) -> dict[tuple[int, str], int]:
    """(rule id, district) → devices or live alarms passing the rule's test now."""
    rows = conn.execute(_COUNTS_SQL, {"now": now}).all()
    return {(int(rule), str(district)): int(n) for rule, district, n in rows}


def warning_places(conn: sa.Connection) -> tuple[dict[str, int], list[str]]:
    """Each scenario's hold (seconds a level stays after calm) and the districts' adcodes."""
    rows = conn.execute(sa.text("SELECT code, warning_hold_s FROM topic")).all()
    topics = {str(code): int(hold) for code, hold in rows}
    districts = list(conn.execute(sa.text("SELECT adcode FROM district ORDER BY adcode")).scalars())
    return topics, districts


def lock_levels(conn: sa.Connection) -> dict[tuple[str, str], LevelState]:
    """The stored levels, locked until this transaction ends (an operator's change waits)."""
    rows = conn.execute(
        sa.text(
            "SELECT topic_code, district_adcode, computed, calm_since, override, override_until"
            " FROM warning_level FOR UPDATE"
        )
    ).all()
    return {(row[0], row[1]): LevelState(*row) for row in rows}


def save_levels(conn: sa.Connection, *, updates: list[LevelUpdate], now: datetime) -> int:
    """Store the evaluated levels and log each change of the level in force; the changes."""
    rows = [
        {
            "topic": u.state.topic,
            "district": u.state.district,
            "computed": u.state.computed,
            "why": u.why,
            "calm_since": _iso(u.state.calm_since),
            "override": u.state.override,
            "override_until": _iso(u.state.override_until),
        }
        for u in updates
    ]
    conn.execute(_SAVE_SQL, {"rows": json.dumps(rows, ensure_ascii=False), "now": now})
    changes = [
        {
            "topic": u.state.topic,
            "district": u.state.district,
            "from_level": u.changed_from,
            "to_level": u.state.in_force(now),
            "source": u.source,
        }
        for u in updates
        if u.changed
    ]
    if changes:
        conn.execute(
            sa.text(
                "INSERT INTO warning_level_change (at, topic_code, district_adcode, from_level,"
                " to_level, source, actor)"
                " VALUES (:now, :topic, :district, :from_level, :to_level, :source,"
                " 'system:rules')"
            ),
            [{**change, "now": now} for change in changes],
        )
    return len(changes)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def describe_warning_rules(conn: sa.Connection) -> list[str]:
    """One line per warning rule, as `rules list` prints them (none before revision 0011)."""
    if not has_warnings(conn):
        return []
    rows = conn.execute(
        sa.text(
            "SELECT topic_code, level, test, measurands, threshold, min_count, severities,"
            " within_s, per_street, enabled, note_en FROM warning_rule"
            " ORDER BY topic_code, level DESC, id"
        )
    ).all()
    roman = {1: "I", 2: "II", 3: "III", 4: "IV"}
    lines = []
    for r in rows:
        what = ",".join(r.measurands) or "live " + "/".join(r.severities) + " alarms"
        bound = "" if r.threshold is None else f" {r.threshold:g}"
        where = " per street" if r.per_street else ""
        within = f" within {r.within_s} s" if r.within_s else ""
        state = "" if r.enabled else " (disabled)"
        lines.append(
            f"{r.topic_code:<8} {roman[r.level]:<4} {r.test}{bound} {what} x{r.min_count}"
            f"{where}{within} - {r.note_en}{state}"
        )
    return lines
