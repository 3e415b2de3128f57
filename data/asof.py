"""Reads of a past instant (回放): the live counters a statement reads, or their history as it
stood at `:at` (revision 0014). A statement is written once with the sources as fields and
comes in two forms. A data function given `replay=True` reads the history at its `at`; without
it, `at` only moves the clock its windows are counted from (a frozen test city's "now")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.checks import InvalidQuery

# an incident's columns, `t.` for those that change over its life and `i0.` for the rest
_INCIDENT_COLUMNS = (
    "i0.id, i0.device_id, i0.type_id, i0.category_code, i0.district_adcode, i0.street_code,"
    " i0.rule_code, t.severity, t.status, i0.title_zh, i0.title_en, i0.trigger_value,"
    " i0.threshold, i0.opened_at, {changing}, i0.geom, i0.assignee, i0.kind, i0.expected_at,"
    " i0.detail, i0.foreseen_by, i0.lead_s, {grouping}, i0.written_xid"
)


def _then(where: str = "") -> str:
    """Incidents opened by `:at` (and meeting `where`, over `i0`) as they stood then, as `i`."""
    columns = _INCIDENT_COLUMNS.format(
        changing="t.acknowledged_at, t.resolved_at", grouping="t.group_id, t.grouped_at"
    )
    return (
        f"(SELECT {columns}"
        " FROM incident i0 CROSS JOIN LATERAL incident_then(i0, CAST(:at AS timestamptz)) t"
        f" WHERE {where}i0.opened_at <= CAST(:at AS timestamptz)) i"
    )


# what a live read names, and what a read of the past names instead
LIVE_SOURCES = {
    "street_status": "street_status",
    "cell_status": "cell_status",
    "incident_live": "incident_live",
    "incident": "incident i",
    "group_members": "incident i WHERE i.group_id = g.id",
    "group_live": "g.status <> 'merged'",
    "resource": "resource r",
    # each device's newest reading, as `l`, joined to the device `d`
    "latest": "device_latest l ON l.device_id = d.id",
    # the incidents live (open or acknowledged), as `i`
    "live_incident": "(SELECT * FROM incident WHERE status <> 'resolved') i",
    "status_as_of": "(SELECT (value #>> '{}')::timestamptz FROM app_meta"
    " WHERE key = 'status_as_of')",
    "past": "false",
}
PAST_SOURCES = {
    "street_status": "street_status_at(CAST(:at AS timestamptz))",
    "cell_status": "cell_status_at(CAST(:at AS timestamptz), CAST(:district AS text))",
    "incident_live": "incident_live_at(CAST(:at AS timestamptz))",
    # each incident opened by then, as it stood then; the unchanging columns straight from the
    # table, so filters on them reach its indexes and only the incidents they keep are looked
    # up in their histories
    "incident": _then(),
    # an event's members (of the event `g` the statement reads), as `i`
    # (the members of an event merged since are in the event it merged into)
    "group_members": _then("i0.group_id = group_final(g.id) AND ") + " WHERE i.group_id = g.id",
    # an event shown then: not yet merged into another
    "group_live": "(g.status <> 'merged' OR g.closed_at > CAST(:at AS timestamptz))",
    # the newest reading by then (devices report within a day or they count as offline)
    "latest": "LATERAL (SELECT r.device_id, r.ts, r.value, r.quality FROM reading r"
    " WHERE r.device_id = d.id AND r.ts <= CAST(:at AS timestamptz)"
    " AND r.ts > CAST(:at AS timestamptz) - interval '2 days'"
    " ORDER BY r.ts DESC LIMIT 1) l ON true",
    # units as they stood then, as `r`
    "resource": "resource r0 CROSS JOIN LATERAL resource_then(r0, CAST(:at AS timestamptz)) r",
    "live_incident": "(SELECT "
    + _INCIDENT_COLUMNS.format(
        changing="CASE WHEN i0.acknowledged_at <= CAST(:at AS timestamptz)"
        " THEN i0.acknowledged_at END AS acknowledged_at, NULL::timestamptz AS resolved_at",
        grouping="CASE WHEN i0.grouped_at <= CAST(:at AS timestamptz) THEN i0.group_id END"
        " AS group_id, CASE WHEN i0.grouped_at <= CAST(:at AS timestamptz) THEN i0.grouped_at"
        " END AS grouped_at",
    )
    + " FROM incidents_at(CAST(:at AS timestamptz)) t JOIN incident i0 ON i0.id = t.id) i",
    "status_as_of": "(SELECT max(r.at) FROM status_refresh r"
    " WHERE r.at <= CAST(:at AS timestamptz))",
    "past": "true",
}


@dataclass(frozen=True)
class Timed:
    """One statement in its two forms: over the live tables, and over their history."""

    live: sa.TextClause
    past: sa.TextClause

    def of(self, replay: bool) -> sa.TextClause:
        """The form over the history (`replay`) or over the live tables."""
        return self.past if replay else self.live


def timed(template: str, **fields: str) -> Timed:
    """`template` with the sources above filled in for now and for the past (`{incident}` and
    `{live_incident}` as `i`, `{past}` a boolean literal); other fields from `fields`."""
    return Timed(
        live=sa.text(template.format(**LIVE_SOURCES, **fields)),
        past=sa.text(template.format(**PAST_SOURCES, **fields)),
    )


def source(name: str, replay: bool) -> str:
    """One source's text for a statement built per call (a replay's binds `:at`)."""
    return (PAST_SOURCES if replay else LIVE_SOURCES)[name]


def replay_args(at: datetime | None) -> dict[str, Any]:
    """What a replay-aware read is given for `at`: the instant and `replay`, or nothing (now)."""
    return {} if at is None else {"at": at, "replay": True}


def replaying(at: datetime | None, replay: bool) -> bool:
    """Whether a read replays the history: asked to, at an instant it must then be given."""
    if replay and at is None:
        raise InvalidQuery("a replay reads an instant: give `at`")
    return replay


@dataclass(frozen=True)
class ReplayWindow:
    """The instants a replay may show: from the oldest full status frame kept to now."""

    earliest: datetime | None
    now: datetime


def replay_window(engine: Engine) -> ReplayWindow:
    """The oldest instant with a full status frame (None before the first), and now."""
    with engine.connect() as conn:
        earliest, now = conn.execute(
            sa.text("SELECT (SELECT min(at) FROM status_refresh WHERE keyframe), now()")
        ).one()
    return ReplayWindow(earliest=earliest, now=now)
