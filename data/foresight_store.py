"""Storage side of early warning: the series to watch (devices, their types' limits, learned
normals), the live early-warning incidents and their writes, linking an alarm to the 预警 that
foresaw it. The detectors are in foresight/, the loop in ingest/rules_engine.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data.bulk import copy_columns
from data.rule_types import Rule
from data.rules_store import record_event
from foresight import watch
from foresight.baseline import CityBaselines
from foresight.engine import INCIDENT_KIND, Finding, SeriesSpec
from foresight.texts import describe

ACTOR = "system:foresight"


@dataclass(frozen=True)
class TypeText:
    """What a title needs of a device type."""

    unit: str
    decimals: int


@dataclass(frozen=True)
class Watch:
    """The series the engine watches, the rules by type, and the types' units."""

    spec: SeriesSpec
    rules_by_type: dict[int, dict[str, Rule]]
    types: dict[int, TypeText]


def load_types(conn: sa.Connection) -> pd.DataFrame:
    """Every device type with what early warning needs of it."""
    return pd.DataFrame(
        conn.execute(
            sa.text(
                "SELECT id, category_code, value_kind, interval_s, normal_min, normal_max,"
                " alarm_min, alarm_max, decimals, unit FROM device_type ORDER BY id"
            )
        )
        .mappings()
        .all()
    )


def load_watch(conn: sa.Connection, *, rules: list[Rule]) -> Watch:
    """Every active device whose type an early-warning rule covers, with what the rules need."""
    types = load_types(conn)
    rules_by_type = watch.early_rules_by_type(rules, types)
    # a binary COPY: at 10M devices, rows as Python objects took gigabytes
    columns = copy_columns(
        conn,
        sql="SELECT id, type_id, street_code::int4 FROM device"
        " WHERE status = 'active' AND type_id = ANY(%s) ORDER BY id",
        params=(sorted(int(t) for t in rules_by_type),),
        columns=(("id", "int8"), ("type_id", "int2"), ("street_code", "int4")),
    )
    devices = pd.DataFrame(columns)
    ids = devices["id"].to_numpy(dtype=np.int64)
    week = np.isin(devices["type_id"].to_numpy(), watch.routine_types(rules_by_type))
    normals = load_normals(conn, device_ids=ids, week=week)
    spec = watch.build_spec(devices=devices, types=types, normals=normals)
    texts = {
        int(type_id): TypeText(str(unit), int(decimals))
        for type_id, unit, decimals in zip(
            types["id"].tolist(), types["unit"].tolist(), types["decimals"].tolist(), strict=True
        )
    }
    return Watch(spec=spec, rules_by_type=rules_by_type, types=texts)


def _positions(device_ids: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `found` sits in the sorted `device_ids`, and which of them are there at
    all (a range read by its ends also returns the devices between that were not asked for)."""
    at = np.searchsorted(device_ids, found)
    there = (at < len(device_ids)) & (device_ids[np.minimum(at, len(device_ids) - 1)] == found)
    return at, there


def load_normals(
    conn: sa.Connection, *, device_ids: np.ndarray, week: np.ndarray, chunk: int = 100_000
) -> watch.Normals:
    """The stored baselines of `device_ids` (sorted): daily cycles for all, hour-of-week lines
    for the `week` rows that learned one; read a range of devices at a time, each profile as
    one fixed-width array (binary COPY)."""
    out = watch.empty_normals(len(device_ids))
    weekly: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(device_ids), chunk):
        ids = device_ids[start : start + chunk]
        for size in (24, 168):
            # arrays whole, not a row per slot: at 10M devices unnesting them sent 174M rows
            rows = copy_columns(
                conn,
                sql="SELECT device_id, median::float4[], spread::float4[] FROM device_baseline"
                " WHERE device_id BETWEEN %s AND %s AND slots = %s ORDER BY device_id",
                params=(int(ids[0]), int(ids[-1]), size),
                columns=(
                    ("device", "int8"),
                    ("median", f"float4[{size}]"),
                    ("spread", f"float4[{size}]"),
                ),
            )
            at, wanted = _positions(device_ids, rows["device"])
            pick = np.flatnonzero(wanted)
            if not len(pick):
                continue
            median, spread = rows["median"][pick], rows["spread"][pick]
            watch.place_normals(out, at[pick], median, spread)
            routine = week[at[pick]]
            if size == 168 and routine.any():
                weekly.append((at[pick][routine], median[routine], spread[routine]))
    if not weekly:
        return out
    return watch.with_weeks(out, *(np.concatenate([w[i] for w in weekly]) for i in range(3)))


def device_changes(conn: sa.Connection) -> int:
    """Rows inserted, updated or deleted in `device` since the statistics began (a counter that
    only moves when the device list does; statistics reset: it moves too)."""
    value = conn.execute(
        sa.text(
            "SELECT coalesce(n_tup_ins + n_tup_upd + n_tup_del, 0) FROM pg_stat_user_tables"
            " WHERE relid = 'device'::regclass"
        )
    ).scalar_one_or_none()
    return int(value or 0)


def baselines_version(conn: sa.Connection) -> str:
    """When the baselines were last refitted ('' never), so a watcher knows to reload them."""
    value = conn.execute(
        sa.text("SELECT value::text FROM app_meta WHERE key = 'baseline_fitted_at'")
    ).scalar_one_or_none()
    return str(value or "")


def live_early(conn: sa.Connection) -> dict[str, np.ndarray]:
    """Device ids with a live early-warning incident, per rule code."""
    rows = conn.execute(
        sa.text(
            "SELECT rule_code, array_agg(device_id ORDER BY device_id) AS devices FROM incident"
            " WHERE status <> 'resolved' AND kind <> 'alarm' AND device_id IS NOT NULL"
            " GROUP BY rule_code"
        )
    ).all()
    return {row.rule_code: np.asarray(row.devices, dtype=np.int64) for row in rows}


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _detail(finding: Finding, text: TypeText) -> tuple[dict[str, object], str, str]:
    """The why (detail jsonb) and the title suffixes of a finding."""
    words = describe(finding, unit=text.unit, decimals=text.decimals)
    figures = {k: v for k, v in finding.figures.items() if v is not None}
    at = finding.at_s
    for key in ("earliest_s", "latest_s"):
        if key in figures:
            figures[
                key.replace("_s", "")
                .replace("earliest", "expected_lo")
                .replace("latest", "expected_hi")
            ] = _dt(at + figures[key]).isoformat()
    figures.update(
        unit=text.unit, value=round(finding.value, text.decimals), check=finding.rule.kind
    )
    figures.update(because_zh=words.because_zh, because_en=words.because_en)
    if "slot" in figures:
        figures.update(slot_zh=words.slot_zh, slot_en=words.slot_en)
    return figures, words.title_zh, words.title_en


def open_early(conn: sa.Connection, finding: Finding, *, text: TypeText) -> int | None:
    """Insert the incident of a finding and its 'opened' event; None if one is live already."""
    detail, title_zh, title_en = _detail(finding, text)
    expected = (
        finding.at_s + finding.figures["expected_s"] if "expected_s" in finding.figures else None
    )
    new_id = conn.execute(
        sa.text(
            "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
            " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
            " threshold, opened_at, geom, kind, expected_at, detail)"
            " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code, :rule,"
            " :severity, 'open', s.name_zh || t.name_zh || :title_zh,"
            " t.name_en || ' in ' || s.name_en || ': ' || :title_en, :value, :limit, :at, d.geom,"
            " :kind, :expected, CAST(:detail AS jsonb)"
            " FROM device d JOIN device_type t ON t.id = d.type_id"
            " JOIN street s ON s.code = d.street_code WHERE d.id = :device"
            " ON CONFLICT (device_id, rule_code) WHERE status <> 'resolved' DO NOTHING"
            " RETURNING id"
        ),
        {
            "device": finding.device_id,
            "rule": finding.rule.code,
            "severity": finding.rule.severity,
            "title_zh": title_zh,
            "title_en": title_en,
            "value": finding.value,
            "limit": finding.figures.get("limit"),
            "at": _dt(finding.at_s),
            "kind": INCIDENT_KIND[finding.rule.kind],
            "expected": None if expected is None else _dt(expected),
            "detail": json.dumps(detail, ensure_ascii=False),
        },
    ).scalar_one_or_none()
    if new_id is not None:
        record_event(
            conn,
            actor=ACTOR,
            incident_id=int(new_id),
            at=_dt(finding.at_s),
            kind="opened",
            from_status=None,
            to="open",
            note=str(detail["because_zh"]),
        )
    return None if new_id is None else int(new_id)


def update_forecast(conn: sa.Connection, finding: Finding, *, text: TypeText) -> bool:
    """Move a live 预警's expected time, why and title; False if it is no longer live."""
    detail, title_zh, title_en = _detail(finding, text)
    row = conn.execute(
        sa.text(
            "UPDATE incident i SET expected_at = :expected, detail = CAST(:detail AS jsonb),"
            " trigger_value = :value,"
            " title_zh = s.name_zh || t.name_zh || :title_zh,"
            " title_en = t.name_en || ' in ' || s.name_en || ': ' || :title_en"
            " FROM device_type t, street s"
            " WHERE i.device_id = :device AND i.rule_code = :rule AND i.status <> 'resolved'"
            "   AND t.id = i.type_id AND s.code = i.street_code"
            " RETURNING i.id, i.status"
        ),
        {
            "device": finding.device_id,
            "rule": finding.rule.code,
            "expected": _dt(finding.at_s + finding.figures["expected_s"]),
            "detail": json.dumps(detail, ensure_ascii=False),
            "value": finding.value,
            "title_zh": title_zh,
            "title_en": title_en,
        },
    ).one_or_none()
    if row is None:
        return False
    record_event(
        conn,
        actor=ACTOR,
        incident_id=int(row.id),
        at=_dt(finding.at_s),
        kind="updated",
        from_status=row.status,
        to=row.status,
        note=str(detail["because_zh"]),
    )
    return True


def resolve_early(conn: sa.Connection, finding: Finding) -> bool:
    """Resolve the live incident of a finding whose condition cleared."""
    row = conn.execute(
        sa.text(
            "WITH old AS (SELECT id, status FROM incident WHERE device_id = :device"
            "   AND rule_code = :rule AND status <> 'resolved' FOR UPDATE)"
            " UPDATE incident i SET status = 'resolved', resolved_at = greatest(:at, i.opened_at)"
            " FROM old WHERE i.id = old.id RETURNING i.id, old.status"
        ),
        {"device": finding.device_id, "rule": finding.rule.code, "at": _dt(finding.at_s)},
    ).one_or_none()
    if row is None:
        return False
    note = "预测不再超限" if finding.rule.kind == "forecast" else "已恢复正常"
    record_event(
        conn,
        actor=ACTOR,
        incident_id=int(row.id),
        at=_dt(finding.at_s),
        kind="resolved",
        from_status=row.status,
        to="resolved",
        note=note,
    )
    return True


def supersede_forecasts(conn: sa.Connection, *, alarm_codes: dict[int, list[str]]) -> int:
    """Link each live alarm that a live 预警 of the same device and side foresaw (lead in
    seconds), and resolve the 预警 as superseded; returns how many were linked."""
    pairs = [(side, code) for side, codes in alarm_codes.items() for code in codes]
    if not pairs:
        return 0
    rows = conn.execute(
        sa.text(
            "WITH sides AS (SELECT * FROM unnest(CAST(:sides AS integer[]),"
            "                                    CAST(:codes AS text[])) AS x(side, code)),"
            " pairs AS ("
            "  SELECT DISTINCT ON (a.id) a.id AS alarm_id, f.id AS forecast_id, f.status,"
            "   greatest(coalesce((SELECT max(e.at) FROM incident_event e"
            "     WHERE e.incident_id = a.id AND e.kind = 'escalated'), a.opened_at),"
            "     f.opened_at) AS alarm_at, f.opened_at AS foreseen_at"
            "  FROM incident f"
            "  JOIN incident a ON a.device_id = f.device_id AND a.kind = 'alarm'"
            "   AND a.status <> 'resolved' AND a.foreseen_by IS NULL"
            "  JOIN sides x ON x.code = a.rule_code AND x.side = (f.detail->>'side')::float::int"
            "  WHERE f.kind = 'forecast' AND f.status <> 'resolved'"
            "  ORDER BY a.id, f.opened_at),"
            " linked AS (UPDATE incident a SET foreseen_by = p.forecast_id,"
            "   lead_s = round(extract(epoch FROM p.alarm_at - p.foreseen_at))::integer"
            "   FROM pairs p WHERE a.id = p.alarm_id RETURNING a.id)"
            " UPDATE incident f SET status = 'resolved', resolved_at = p.alarm_at"
            " FROM pairs p WHERE f.id = p.forecast_id"
            " RETURNING f.id, p.status AS was, p.alarm_at, p.alarm_id,"
            "  round(extract(epoch FROM p.alarm_at - p.foreseen_at) / 60) AS lead_min"
        ),
        {"sides": [p[0] for p in pairs], "codes": [p[1] for p in pairs]},
    ).all()
    for row in rows:
        record_event(
            conn,
            actor=ACTOR,
            incident_id=int(row.id),
            at=row.alarm_at,
            kind="superseded",
            from_status=row.was,
            to="resolved",
            note=f"报警 #{row.alarm_id} 已发生，提前 {int(row.lead_min)} 分钟预警",
        )
    return len(rows)


# --- baseline refit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """Readings of the devices to fit: device row (index into the device list), time, value."""

    row: np.ndarray
    ts_s: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class FitTargets:
    """The devices that get a baseline, sorted by id: type and street (its 9-digit code)."""

    device_id: np.ndarray
    type_id: np.ndarray
    street: np.ndarray


def fit_targets(conn: sa.Connection) -> FitTargets:
    """Every active analog device, with type and street: 12 bytes a device, for 10M of them."""
    rows = copy_columns(
        conn,
        sql="SELECT d.id, d.type_id, d.street_code::int4 FROM device d"
        " JOIN device_type t ON t.id = d.type_id"
        " WHERE d.status = 'active' AND t.value_kind = 'analog' ORDER BY d.id",
        columns=(("device", "int8"), ("type", "int2"), ("street", "int4")),
    )
    return FitTargets(device_id=rows["device"], type_id=rows["type"], street=rows["street"])


def read_history(
    conn: sa.Connection, *, device_ids: np.ndarray, since: datetime, chunk: int = 50_000
) -> History:
    """Good-quality readings since `since` of `device_ids` (sorted), by binary COPY in chunks,
    in device order."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(device_ids), chunk):
        ids = device_ids[start : start + chunk]
        rows = copy_columns(
            conn,
            sql="SELECT device_id, extract(epoch FROM ts)::float8, value FROM reading"
            " WHERE device_id BETWEEN %s AND %s AND ts >= %s AND quality = 0",
            params=(int(ids[0]), int(ids[-1]), since),
            columns=(("device", "int8"), ("ts", "float8"), ("value", "float8")),
        )
        at, keep = _positions(device_ids, rows["device"])
        order = np.argsort(at[keep], kind="stable")
        parts.append(
            (
                at[keep][order].astype(np.int32),
                rows["ts"][keep][order].astype(np.float64),
                rows["value"][keep][order].astype(np.float32),
            )
        )
    if not parts:
        return History(np.empty(0, np.int32), np.empty(0), np.empty(0, np.float32))
    return History(*(np.concatenate([p[i] for p in parts]) for i in range(3)))


def _array_text(matrix: np.ndarray) -> list[str]:
    """PostgreSQL array literals, one per row, 4 significant digits."""
    return ["{" + ",".join(f"{x:.4g}" for x in line) + "}" for line in matrix.tolist()]


_STAGED = "device_baseline_staged"


def stage_baselines(
    conn: sa.Connection, *, device_ids: np.ndarray, fitted: CityBaselines, at: datetime,
    first: bool,
) -> int:  # fmt: skip
    """Copy a slice of the fit into this session's staging table (made anew when `first`);
    the stored baselines stay as they are until `publish_baselines`."""
    if first:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS pg_temp.{_STAGED}"))
        conn.execute(
            sa.text(f"CREATE TEMP TABLE {_STAGED} (LIKE device_baseline INCLUDING DEFAULTS)")
        )
    weekly = fitted.slots == 168
    rows = np.flatnonzero(weekly)
    med = _array_text(fitted.median24)
    spr = _array_text(fitted.spread24)
    if len(rows):
        lines = fitted.week_row[rows]
        for i, m, s in zip(
            rows.tolist(),
            _array_text(fitted.median168[lines]),
            _array_text(fitted.spread168[lines]),
            strict=True,
        ):
            med[i], spr[i] = m, s
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(
        f"COPY pg_temp.{_STAGED} (device_id, slots, median, spread, source, days, fitted_at)"
        " FROM STDIN"
    ) as copy:
        for i, device in enumerate(device_ids.tolist()):
            copy.write_row(
                (
                    device,
                    int(fitted.slots[i]),
                    med[i],
                    spr[i],
                    str(fitted.source[i]),
                    round(float(fitted.days[i]), 2),
                    at,
                )
            )
    return len(device_ids)


def publish_baselines(conn: sa.Connection, *, at: datetime) -> int:
    """Replace every stored baseline with the staged ones (in the caller's transaction, so
    readers see the old set or the new, never a part); returns rows written."""
    conn.execute(sa.text("TRUNCATE device_baseline"))
    written = conn.execute(
        sa.text(f"INSERT INTO device_baseline SELECT * FROM pg_temp.{_STAGED}")
    ).rowcount
    conn.execute(sa.text(f"DROP TABLE pg_temp.{_STAGED}"))
    conn.execute(
        sa.text(
            "INSERT INTO app_meta (key, value, updated_at)"
            " VALUES ('baseline_fitted_at', to_jsonb(CAST(:at AS timestamptz)), now())"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"
        ),
        {"at": at},
    )
    return int(written)
