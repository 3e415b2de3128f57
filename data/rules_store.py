"""Storage side of the incident rules: rule rows, the inbox the reading trigger fills, per-device
rule state, and the incident writes the rules decide on."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.rule_types import US, Escalate, Open, Reading, Resolve, Rule, State

ACTOR = "system:rules"
RULES_LOCK = "onescreen.rules"


def _us(moment: datetime) -> int:
    return round(moment.timestamp() * US)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / US, tz=UTC)


def load_rules(engine_or_conn: Engine | sa.Connection) -> list[Rule]:
    """Every incident rule row, enabled or not."""
    # every column: a schema older than this code (a migration test's) lacks the newer ones
    sql = sa.text("SELECT * FROM incident_rule ORDER BY code, id")
    if isinstance(engine_or_conn, sa.Connection):
        rows = engine_or_conn.execute(sql).mappings().all()
    else:
        with engine_or_conn.connect() as conn:
            rows = conn.execute(sql).mappings().all()
    names = {f.name for f in fields(Rule)}
    return [Rule(**{k: v for k, v in row.items() if k in names}) for row in rows]


def has_early_rules(conn: sa.Connection) -> bool:
    """Whether the schema has the early-warning rules (revision 0006 or later)."""
    return bool(
        conn.execute(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
                " WHERE table_name = 'incident' AND column_name = 'kind'"
                "   AND table_schema = current_schema())"
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class TypeInfo:
    """What the rules need of a device type."""

    category: str
    value_kind: str
    interval_s: int


def load_types(conn: sa.Connection) -> dict[int, TypeInfo]:
    """Every device type's category, value kind and reporting interval."""
    rows = conn.execute(
        sa.text("SELECT id, category_code, value_kind, interval_s FROM device_type")
    )
    return {row.id: TypeInfo(row.category_code, row.value_kind, row.interval_s) for row in rows}


def try_lock(conn: sa.Connection) -> bool:
    """Take the rules lock for this transaction; False when another evaluator holds it."""
    return bool(
        conn.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": RULES_LOCK}
        ).scalar_one()
    )


def sync_live_incidents(conn: sa.Connection) -> int:
    """Give live threshold incidents that have no rule state one (e.g. seeded ones), so their
    devices' readings reach the rules and can resolve them."""
    result = conn.execute(
        sa.text(
            "INSERT INTO rule_state (device_id, rule_code, breach_since, last_ts, incident_id)"
            " SELECT i.device_id, i.rule_code, i.opened_at, i.opened_at, i.id FROM incident i"
            " WHERE i.status <> 'resolved' AND i.rule_code <> 'offline'"
            "   AND i.device_id IS NOT NULL"
            " ON CONFLICT (device_id, rule_code) DO NOTHING"
        )
    )
    return int(result.rowcount)


@dataclass(frozen=True)
class Inbox:
    """Readings taken from the inbox, as arrays (any order)."""

    device_id: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray
    level: np.ndarray
    side: np.ndarray
    arrived_us: np.ndarray

    def __len__(self) -> int:
        """Number of readings."""
        return len(self.device_id)

    def take(self, rows: np.ndarray) -> Inbox:
        """The readings at `rows` (a mask or positions)."""
        return Inbox(*(getattr(self, f.name)[rows] for f in fields(self)))

    def split_late(self, *, window_us: int) -> tuple[Inbox, Inbox]:
        """(live, late): late readings arrived more than `window_us` after their timestamp."""
        late = self.arrived_us - self.ts_us > window_us
        return self.take(~late), self.take(late)

    def by_device(self, *, device_ids: list[int]) -> dict[int, list[Reading]]:
        """The readings of `device_ids` for the threshold rules, per device in time order."""
        wanted = np.isin(self.device_id, np.asarray(device_ids, dtype=np.int64))
        rows = np.flatnonzero(wanted)
        rows = rows[np.lexsort((self.ts_us[rows], self.device_id[rows]))]
        out: dict[int, list[Reading]] = {}
        for i in rows.tolist():
            out.setdefault(int(self.device_id[i]), []).append(
                Reading(
                    int(self.ts_us[i]), float(self.value[i]), int(self.level[i]), int(self.side[i])
                )
            )
        return out


def drain_inbox(conn: sa.Connection, *, limit: int, arrivals: bool = True) -> Inbox:
    """Take the readings of the devices among the first `limit` readings of the inbox (with when
    they arrived, from revision 0006; before it, their timestamps stand in)."""
    arrived = "arrived_at" if arrivals else "ts"
    # whole devices: a batch split between passes would leave its clearing readings judged before
    # the alarm they clear (or dropped, for a device in no rule state yet)
    rows = conn.execute(
        sa.text(
            # a join, not `= ANY(ARRAY(...))`: PostgreSQL searches such an array row by row,
            # and an inbox of millions (a 10M city's storm backlog) took one drain ten minutes
            "DELETE FROM rule_inbox r USING ("
            "  SELECT DISTINCT device_id FROM (SELECT device_id FROM rule_inbox LIMIT :limit) s"
            ") picked WHERE r.device_id = picked.device_id"
            " RETURNING r.device_id, (extract(epoch FROM r.ts) * 1000000)::bigint AS ts_us,"
            " r.value, r.level, r.side,"
            f" (extract(epoch FROM r.{arrived}) * 1000000)::bigint AS arrived_us"
        ),
        {"limit": int(limit)},
    ).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    return Inbox(
        device_id=np.asarray(columns[0], dtype=np.int64),
        ts_us=np.asarray(columns[1], dtype=np.int64),
        value=np.asarray(columns[2], dtype=np.float64),
        level=np.asarray(columns[3], dtype=np.int16),
        side=np.asarray(columns[4], dtype=np.int16),
        arrived_us=np.asarray(columns[5], dtype=np.int64),
    )


def stated_devices(conn: sa.Connection, *, device_ids: np.ndarray) -> set[int]:
    """Which of `device_ids` have a threshold rule state (pending, raised or suppressed)."""
    rows = conn.execute(
        sa.text("SELECT DISTINCT device_id FROM rule_state WHERE device_id = ANY(:ids)"),
        {"ids": np.unique(device_ids).tolist()},
    )
    return {int(row.device_id) for row in rows}


def device_types(conn: sa.Connection, *, device_ids: list[int]) -> dict[int, int]:
    """Type id of each device."""
    if not device_ids:
        return {}
    rows = conn.execute(
        sa.text("SELECT id, type_id FROM device WHERE id = ANY(:ids)"), {"ids": device_ids}
    )
    return {int(row.id): int(row.type_id) for row in rows}


def load_states(conn: sa.Connection, *, device_ids: list[int]) -> dict[int, dict[str, State]]:
    """The rule states of these devices; an incident a person closed meanwhile is let go (and
    the rule stays quiet until its condition clears)."""
    if not device_ids:
        return {}
    rows = conn.execute(
        sa.text(
            "SELECT s.device_id, s.rule_code, s.breach_since, s.clear_since, s.last_ts,"
            " s.incident_id, s.suppressed, i.status AS incident_status"
            " FROM rule_state s LEFT JOIN incident i ON i.id = s.incident_id"
            " WHERE s.device_id = ANY(:ids) FOR UPDATE OF s"
        ),
        {"ids": device_ids},
    ).all()
    states: dict[int, dict[str, State]] = {}
    for row in rows:
        incident_id = row.incident_id
        suppressed = row.suppressed
        if incident_id is not None and row.incident_status in (None, "resolved"):
            incident_id = None
            suppressed = row.breach_since is not None
        states.setdefault(int(row.device_id), {})[row.rule_code] = State(
            last_ts_us=_us(row.last_ts),
            breach_since_us=None if row.breach_since is None else _us(row.breach_since),
            clear_since_us=None if row.clear_since is None else _us(row.clear_since),
            incident_id=incident_id,
            suppressed=suppressed,
        )
    return states


def save_states(conn: sa.Connection, *, states: dict[int, dict[str, State]]) -> None:
    """Write the states of a pass's devices back (by device, then rule); idle ones are removed.

    Two statements for the whole pass, whatever its size: a storm's pass judges tens of
    thousands of devices, which a statement per device and rule made a round trip each."""
    every = [(d, code, st) for d, by_rule in states.items() for code, st in by_rule.items()]
    idle = [(d, code) for d, code, st in every if st.idle]
    kept = [(d, code, st) for d, code, st in every if not st.idle]
    if idle:
        conn.execute(
            sa.text(
                "DELETE FROM rule_state s"
                " USING unnest(CAST(:d AS bigint[]), CAST(:c AS text[])) AS g(device_id, rule_code)"
                " WHERE s.device_id = g.device_id AND s.rule_code = g.rule_code"
            ),
            {"d": [d for d, _ in idle], "c": [code for _, code in idle]},
        )
    if kept:
        conn.execute(
            sa.text(
                "INSERT INTO rule_state"
                " (device_id, rule_code, breach_since, clear_since, last_ts, incident_id,"
                "  suppressed)"
                " SELECT * FROM unnest(CAST(:d AS bigint[]), CAST(:c AS text[]),"
                "  CAST(:breach AS timestamptz[]), CAST(:clear AS timestamptz[]),"
                "  CAST(:last AS timestamptz[]), CAST(:incident AS bigint[]),"
                "  CAST(:suppressed AS boolean[]))"
                " ON CONFLICT (device_id, rule_code) DO UPDATE SET"
                " breach_since = excluded.breach_since, clear_since = excluded.clear_since,"
                " last_ts = excluded.last_ts, incident_id = excluded.incident_id,"
                " suppressed = excluded.suppressed"
            ),
            {
                "d": [d for d, _, _ in kept],
                "c": [code for _, code, _ in kept],
                "breach": [_dt(st.breach_since_us) for _, _, st in kept],
                "clear": [_dt(st.clear_since_us) for _, _, st in kept],
                "last": [_dt(st.last_ts_us) for _, _, st in kept],
                "incident": [st.incident_id for _, _, st in kept],
                "suppressed": [st.suppressed for _, _, st in kept],
            },
        )


_THRESHOLD = (
    "CASE WHEN :level = 2 THEN CASE WHEN :side < 0 THEN t.alarm_min ELSE t.alarm_max END"
    " ELSE CASE WHEN :side < 0 THEN t.normal_min ELSE t.normal_max END END"
)
_SHOWN = "round(CAST(:value AS numeric), t.decimals)::text || t.unit"


def _kind_words(rule: Rule) -> tuple[str, str]:
    # level 1 is "out of the normal range": 越限, not 预警, which names a forecast (kind forecast)
    return ("报警", "alarm") if (rule.level or 0) >= 2 else ("越限", "warning")


def open_incident(conn: sa.Connection, action: Open, *, resolved_us: int | None = None) -> int:
    """Insert the incident and its 'opened' event; returns its id (an existing live one's id if
    the device already has one for this rule). With `resolved_us` it is inserted resolved then:
    history, never live."""
    kind_zh, kind_en = _kind_words(action.rule)
    at = _dt(action.at_us)
    params = {
        "status": "open" if resolved_us is None else "resolved",
        "resolved": _dt(resolved_us),
        "device": action.device_id,
        "rule": action.rule.code,
        "severity": action.rule.severity,
        "value": action.value,
        "level": action.rule.level,
        "side": action.side,
        "at": at,
        "kind_zh": kind_zh,
        "kind_en": kind_en,
    }
    new_id = conn.execute(
        sa.text(
            "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
            " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
            " threshold, opened_at, resolved_at, geom)"
            f" SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code, :rule,"
            f" :severity, :status, s.name_zh || t.name_zh || :kind_zh || ' ' || {_SHOWN},"
            f" t.name_en || ' ' || :kind_en || ' in ' || s.name_en || ' ' || {_SHOWN},"
            f" :value, {_THRESHOLD}, :at, :resolved, d.geom"
            " FROM device d JOIN device_type t ON t.id = d.type_id"
            " JOIN street s ON s.code = d.street_code WHERE d.id = :device"
            " ON CONFLICT (device_id, rule_code) WHERE status <> 'resolved' DO NOTHING"
            " RETURNING id"
        ),
        params,
    ).scalar_one_or_none()
    if new_id is None:
        return int(
            conn.execute(
                sa.text(
                    "SELECT id FROM incident WHERE device_id = :device AND rule_code = :rule"
                    " AND status <> 'resolved'"
                ),
                params,
            ).scalar_one()
        )
    record_event(conn, incident_id=new_id, at=at, kind="opened", from_status=None, to="open")
    return int(new_id)


def escalate_incident(conn: sa.Connection, action: Escalate, *, incident_id: int) -> bool:
    """Move a live incident to the more severe rule; False if it is no longer live."""
    kind_zh, kind_en = _kind_words(action.rule)
    status = conn.execute(
        sa.text(
            "UPDATE incident i SET rule_code = :rule, severity = :severity,"
            f" trigger_value = :value, threshold = {_THRESHOLD},"
            f" title_zh = s.name_zh || t.name_zh || :kind_zh || ' ' || {_SHOWN},"
            f" title_en = t.name_en || ' ' || :kind_en || ' in ' || s.name_en || ' ' || {_SHOWN}"
            " FROM device_type t, street s"
            " WHERE i.id = :id AND i.status <> 'resolved' AND t.id = i.type_id"
            "   AND s.code = i.street_code"
            "   AND NOT EXISTS (SELECT 1 FROM incident o WHERE o.device_id = i.device_id"
            "                   AND o.rule_code = :rule AND o.status <> 'resolved')"
            " RETURNING i.status"
        ),
        {
            "id": incident_id,
            "rule": action.rule.code,
            "severity": action.rule.severity,
            "value": action.value,
            "level": action.rule.level,
            "side": action.side,
            "kind_zh": kind_zh,
            "kind_en": kind_en,
        },
    ).scalar_one_or_none()
    if status is None:
        return False
    record_event(
        conn,
        incident_id=incident_id,
        at=_dt(action.at_us),
        kind="escalated",
        from_status=status,
        to=status,
        note=f"{action.from_code} → {action.rule.code}",
    )
    return True


def resolve_incident(conn: sa.Connection, action: Resolve, *, incident_id: int) -> bool:
    """Resolve a live incident whose condition cleared; False if it was no longer live."""
    at = _dt(action.at_us)
    previous = conn.execute(
        sa.text(
            "WITH old AS (SELECT id, status FROM incident WHERE id = :id AND status <> 'resolved'"
            "             FOR UPDATE)"
            " UPDATE incident i SET status = 'resolved', resolved_at = greatest(:at, i.opened_at)"
            " FROM old WHERE i.id = old.id RETURNING old.status"
        ),
        {"id": incident_id, "at": at},
    ).scalar_one_or_none()
    if previous is None:
        return False
    record_event(
        conn,
        incident_id=incident_id,
        at=at,
        kind="resolved",
        from_status=previous,
        to="resolved",
        note="数值恢复正常 / values back to normal",
    )
    return True


@dataclass(frozen=True)
class LateEpisode:
    """A condition that late readings show began (and ended) in the past."""

    opened: Open
    escalations: tuple[Escalate, ...]
    end_us: int
    cleared: bool  # a reading cleared it (else it ends at the last late reading)
    arrived_us: int


def _delay(seconds: float) -> tuple[str, str]:
    for unit_s, zh, en in ((86400, "天", "days"), (3600, "小时", "h"), (60, "分钟", "min")):
        if seconds >= unit_s:
            return f"{seconds / unit_s:.0f} {zh}", f"{seconds / unit_s:.0f} {en}"
    return f"{seconds:.0f} 秒", f"{seconds:.0f} s"


def record_late_incident(conn: sa.Connection, episode: LateEpisode) -> int:
    """Record a past condition that late readings revealed as an incident opened and resolved
    in the past (never live), with events saying it came from late data; returns its id."""
    last = episode.escalations[-1] if episode.escalations else None
    opened = episode.opened
    if last is not None:  # the record names the most severe rule the condition reached
        opened = replace(opened, rule=last.rule, value=last.value, side=last.side)
    end_us = max(episode.end_us, opened.at_us)
    incident_id = open_incident(conn, opened, resolved_us=end_us)
    for step in episode.escalations:
        record_event(
            conn,
            incident_id=incident_id,
            at=_dt(step.at_us),
            kind="escalated",
            from_status="open",
            to="open",
            note=f"{step.from_code} → {step.rule.code}",
        )
    zh, en = _delay((episode.arrived_us - episode.opened.at_us) / US)
    how_zh, how_en = (
        ("数值恢复正常", "values back to normal")
        if episode.cleared
        else ("止于最后一条迟到读数", "ends at the last late reading")
    )
    record_event(
        conn,
        incident_id=incident_id,
        at=_dt(end_us),
        kind="resolved",
        from_status="open",
        to="resolved",
        note=f"迟到数据（晚到 {zh}），仅记入历史，{how_zh} / late data (arrived {en} late),"
        f" recorded as history, never live; {how_en}",
    )
    return incident_id


def record_event(
    conn: sa.Connection,
    *,
    incident_id: int,
    at: datetime | None,
    kind: str,
    from_status: str | None,
    to: str,
    note: str | None = None,
    actor: str = ACTOR,
) -> None:
    """A system event in an incident's history (never before the incident opened)."""
    conn.execute(
        sa.text(
            "INSERT INTO incident_event (incident_id, at, kind, actor, from_status, to_status,"
            " note) SELECT :id, greatest(:at, opened_at), :kind, :actor, :from_status, :to, :note"
            " FROM incident WHERE id = :id"
        ),
        {
            "id": incident_id,
            "at": at,
            "kind": kind,
            "actor": actor,
            "from_status": from_status,
            "to": to,
            "note": note,
        },
    )


# Offline ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfflineLimits:
    """Per device type: silence that makes a device offline, and the incident's severity."""

    type_ids: list[int]
    limit_s: list[float]
    severity: list[str]


_OFFLINE_CANDIDATES = """
    WITH limits AS (
        SELECT * FROM unnest(CAST(:type_ids AS smallint[]), CAST(:limit_s AS float8[]),
                             CAST(:severity AS text[])) AS l(type_id, limit_s, severity)
    ),
    -- not every device (revision 0015): those the status pass counted silent or has not
    -- counted since their newest reading, and those whose counted window lapses by
    -- :recheck_by (_recheck_by), when the soonest of them could be due
    watch AS (
        SELECT device_id FROM device_latest WHERE counted = -1
        UNION SELECT device_id FROM device_latest WHERE dirty
        UNION SELECT device_id FROM device_latest WHERE recheck_at <= :recheck_by
    )
    SELECT d.id, d.type_id, d.district_adcode, d.street_code, d.geom, t.category_code,
           t.name_zh, t.name_en, lim.severity, s.name_zh AS street_zh, s.name_en AS street_en,
           greatest(dl.ts, :watch_start) + lim.limit_s * interval '1 second' AS due
    FROM watch w
    JOIN device d ON d.id = w.device_id
    JOIN limits lim ON lim.type_id = d.type_id
    JOIN device_type t ON t.id = d.type_id
    JOIN device_latest dl ON dl.device_id = d.id
    JOIN street s ON s.code = d.street_code
    WHERE d.status = 'active'
      AND greatest(dl.ts, :watch_start) + lim.limit_s * interval '1 second' <= :now
      AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.device_id = d.id
                      AND i.rule_code = 'offline' AND i.status <> 'resolved')
"""


def _recheck_by(conn: sa.Connection, params: dict[str, Any]) -> datetime:
    """`now` plus the longest gap between a type's online window and its offline limit: a
    device counted online can be due only if its window lapses by then. A value, not a
    sub-select, so the planner sees how few devices that is."""
    moment: datetime = conn.execute(
        sa.text(
            "SELECT CAST(:now AS timestamptz) + coalesce(max(status_window(t.interval_s)"
            " - l.limit_s * interval '1 second'), interval '0')"
            " FROM unnest(CAST(:type_ids AS smallint[]), CAST(:limit_s AS float8[]))"
            "  AS l(type_id, limit_s)"
            " JOIN device_type t ON t.id = l.type_id"
        ),
        params,
    ).scalar_one()
    return moment


def open_offline_incidents(
    conn: sa.Connection,
    *,
    limits: OfflineLimits,
    now: datetime,
    watch_start: datetime,
    max_new: int,
) -> tuple[int, int]:
    """Raise 'offline' for devices silent past their limit (silence counted from no earlier than
    `watch_start`); returns (opened, candidates). More candidates than `max_new` at once looks
    like an ingest outage rather than failing devices: then nothing is opened."""
    params = {
        "type_ids": limits.type_ids,
        "limit_s": limits.limit_s,
        "severity": limits.severity,
        "now": now,
        "watch_start": watch_start,
    }
    params["recheck_by"] = _recheck_by(conn, params)
    candidates = conn.execute(
        sa.text(f"SELECT count(*) FROM ({_OFFLINE_CANDIDATES}) c"), params
    ).scalar_one()
    if candidates == 0 or candidates > max_new:
        return 0, int(candidates)
    opened = conn.execute(
        sa.text(
            f"WITH c AS ({_OFFLINE_CANDIDATES}),"
            " new AS ("
            "  INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
            "   street_code, rule_code, severity, status, title_zh, title_en, opened_at, geom)"
            "  SELECT id, type_id, category_code, district_adcode, street_code, 'offline',"
            "   severity, 'open', street_zh || name_zh || '离线',"
            "   name_en || ' offline in ' || street_en, due, geom FROM c"
            "  ON CONFLICT (device_id, rule_code) WHERE status <> 'resolved' DO NOTHING"
            "  RETURNING id, opened_at)"
            " INSERT INTO incident_event (incident_id, at, kind, actor, from_status, to_status)"
            " SELECT id, opened_at, 'opened', :actor, NULL, 'open' FROM new"
        ),
        {**params, "actor": ACTOR},
    ).rowcount
    return int(opened), int(candidates)


def resolve_offline_incidents(conn: sa.Connection) -> int:
    """Resolve 'offline' incidents of devices that have reported since they opened."""
    return int(
        conn.execute(
            sa.text(
                "WITH old AS ("
                "  SELECT i.id, i.status, dl.ts FROM incident i"
                "  JOIN device_latest dl ON dl.device_id = i.device_id"
                "  WHERE i.rule_code = 'offline' AND i.status <> 'resolved' AND dl.ts > i.opened_at"
                "  FOR UPDATE OF i),"
                " done AS ("
                "  UPDATE incident i SET status = 'resolved', resolved_at = old.ts FROM old"
                "  WHERE i.id = old.id RETURNING i.id, i.resolved_at, old.status AS from_status)"
                " INSERT INTO incident_event (incident_id, at, kind, actor, from_status,"
                "  to_status, note)"
                " SELECT id, resolved_at, 'resolved', :actor, from_status, 'resolved',"
                "  '设备恢复上报 / device reporting again' FROM done"
            ),
            {"actor": ACTOR},
        ).rowcount
    )


def active_device_count(conn: sa.Connection) -> int:
    """Devices that are expected to report."""
    return int(
        conn.execute(sa.text("SELECT count(*) FROM device WHERE status = 'active'")).scalar_one()
    )
