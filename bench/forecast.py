"""Early warning, measured against labelled history replayed exactly as live.

Arrival order, a pass a minute, baselines refitted nightly from what had arrived (no look-ahead);
what the engine raised is scored against what was injected, and its cost per reading measured.
bench.forecast_live measures the cost under load at seed scale and a full baseline refit.

    python -m bench.forecast [--days 21] [--score-days 14] [--districts 310115,310104]
                             [--seed 0] [--reuse]

The devices (every category) are those of two districts of the demo city seeded into its own
database on the bench cluster (ONESCREEN_DATA_DIR/bench-pg, port 54339); the rules are the ones
that database holds, as `rules list` shows them. Targets (issue 17): ramps median lead ≥ 15 min
over the alarm rule, recall ≥ 0.9, precision ≥ 0.8; near-limit daily cycles ≤ 1 false 预警 per
1,000 device-days; routine breaks found within 2 h of the usual first activity, precision ≥ 0.8;
stuck sensors within 3 reporting intervals; cost: ≥ 970 readings/s; refit ≤ 10 min.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from bench.harness import bench_database, settle
from data import catalog, migrate, writes
from data.engine import create_db_engine
from data.foresight_store import load_types
from data.rule_types import US, Escalate, Open, Reading, Rule, rules_for_type
from data.rules_store import load_rules
from foresight import watch
from foresight.baseline import fit_city
from foresight.engine import Finding, Foresight
from ingest.rules import advance_device
from simulator.scenarios import RAMP_GROUPS, LabelledHistory, labelled_history
from simulator.seed import seed_city

DAY_S = 86400.0
LOCAL_S = 8 * 3600.0
REFIT_HOUR = 3  # local time of the nightly refit, as the maintenance loop does it daily
STEP_S = 60.0  # one rules pass a minute of arrivals (live: every 2 s)


@dataclass
class City:
    """The devices replayed, their types and the rules in force."""

    devices: pd.DataFrame  # id, type_id, street_code, district_adcode
    types: pd.DataFrame
    rules: list[Rule]
    device_types: list[catalog.DeviceType]


@dataclass
class Replay:
    """What the engine raised, and what it cost."""

    findings: list[Finding] = field(default_factory=list)
    readings: int = 0
    engine_s: float = 0.0
    refit_s: list[float] = field(default_factory=list)


def load_city(url: str, *, districts: list[str], seed: int, reuse: bool) -> City:
    """The demo city's devices of `districts` (seeded on first use), its types and rules."""
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    if not reuse or writes.get_meta(engine, key="seed") is None:
        print("seeding the demo city…", flush=True)
        seed_city(engine, scale="demo", random_seed=seed, reset=True)
        settle(engine)
    with engine.connect() as conn:
        devices = pd.DataFrame(
            conn.execute(
                sa.text(
                    "SELECT id, type_id, street_code, district_adcode FROM device"
                    " WHERE status = 'active' AND district_adcode = ANY(:d) ORDER BY id"
                ),
                {"d": districts},
            ).all(),
            columns=["id", "type_id", "street_code", "district_adcode"],
        )
        types = load_types(conn)
        rules = load_rules(conn)
    engine.dispose()
    return City(devices, types, rules, catalog.load_device_types())


def _engine_at(
    city: City, rules_by_type: dict, history: LabelledHistory, *, upto_us: int
) -> Foresight:
    """An engine whose normals were fitted on what had arrived by `upto_us` (no look-ahead)."""
    devices = city.devices[city.devices["type_id"].isin(list(rules_by_type))].reset_index(drop=True)
    ids = devices["id"].to_numpy(dtype=np.int64)
    seen = history.arrived_us < upto_us
    row = np.searchsorted(ids, history.readings.device_id[seen])
    known = (row < len(ids)) & (
        ids[np.minimum(row, len(ids) - 1)] == history.readings.device_id[seen]
    )
    street_type = pd.factorize(devices["street_code"] + ":" + devices["type_id"].astype(str))[0]
    fitted = fit_city(
        row=row[known],
        ts_s=history.readings.ts_us[seen][known] / US,
        values=history.readings.value[seen][known],
        street_type=np.asarray(street_type, dtype=np.int64),
        type_index=np.asarray(pd.factorize(devices["type_id"])[0], dtype=np.int64),
        weekly=np.ones(len(ids), dtype=bool),
    )
    week = np.isin(devices["type_id"].to_numpy(), watch.routine_types(rules_by_type))
    normals = watch.normals_from_city(fitted, week=week)
    return Foresight(
        watch.build_spec(devices=devices, types=city.types, normals=normals), rules_by_type
    )


def replay(city: City, history: LabelledHistory) -> Replay:
    """Arrivals a minute at a time through the engine, refitting the normals every night."""
    rules_by_type = watch.early_rules_by_type(city.rules, city.types)
    out = Replay(readings=len(history.readings))
    arrived_s = history.arrived_us / US
    batch = history.readings
    engine: Foresight | None = None
    step_of = np.floor((arrived_s - arrived_s[0]) / STEP_S).astype(np.int64)
    bounds = np.r_[0, np.flatnonzero(np.diff(step_of)) + 1, len(step_of)]
    next_refit = -np.inf
    for lo, hi in itertools.pairwise(bounds.tolist()):
        now = float(arrived_s[hi - 1])
        if now >= next_refit:
            started = time.perf_counter()
            fresh = _engine_at(city, rules_by_type, history, upto_us=int(now * US))
            if engine is not None:
                fresh.carry_over(engine)
            engine = fresh
            out.refit_s.append(time.perf_counter() - started)
            local_day = np.floor((now + LOCAL_S) / DAY_S)
            next_refit = (local_day + 1) * DAY_S - LOCAL_S + REFIT_HOUR * 3600
        assert engine is not None  # made at the first step
        started = time.perf_counter()
        engine.observe(
            device_id=batch.device_id[lo:hi],
            ts_s=batch.ts_us[lo:hi] / US,
            value=batch.value[lo:hi],
            arrived_s=arrived_s[lo:hi],
        )
        out.findings += [f for f in engine.evaluate(now_s=now) if f.action == "open"]
        out.engine_s += time.perf_counter() - started
    return out


def alarm_times(city: City, history: LabelledHistory) -> dict[int, float]:
    """Per ramp event (index): when today's threshold rules raise the alarm, seconds."""
    types = city.types.set_index("id")
    ramps = history.events[history.events["kind"] == "ramp"]
    type_of = dict(zip(city.devices["id"], city.devices["type_id"], strict=True))
    order = np.argsort(history.readings.device_id, kind="stable")
    ids = history.readings.device_id[order]
    out: dict[int, float] = {}
    for event in _records(ramps):
        index = event["index"]
        type_id = int(type_of[int(event["device_id"])])
        t = types.loc[type_id]
        rules = rules_for_type(
            city.rules, type_id=type_id, category=str(t.category_code), value_kind=str(t.value_kind)
        )
        lo, hi = np.searchsorted(ids, [event["device_id"], event["device_id"] + 1])
        rows = order[lo:hi]
        rows = rows[np.argsort(history.readings.ts_us[rows])]
        readings = [
            _reading(float(history.readings.value[r]), int(history.readings.ts_us[r]), t)
            for r in rows
            if event["start_us"] - 3600 * US <= history.readings.ts_us[r] <= event["end_us"]
        ]
        _, actions = advance_device(
            int(event["device_id"]), rules=rules, states={}, readings=readings
        )
        alarms = [
            a.at_us for a in actions if isinstance(a, Open | Escalate) and (a.rule.level or 0) >= 2
        ]
        if alarms:
            out[int(index)] = min(alarms) / US
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of `frame` as dicts, each with its index under "index"."""
    return [{str(k): v for k, v in row.items()} for row in frame.reset_index().to_dict("records")]


def _reading(value: float, ts_us: int, t: Any) -> Reading:
    """A reading with the level and side the store's trigger gives it."""
    alarm_max, alarm_min = t.alarm_max, t.alarm_min
    level = 0
    side = 1 if value > t.normal_max else -1 if value < t.normal_min else 0
    if side:
        level = 1
        if (side > 0 and pd.notna(alarm_max) and value >= alarm_max) or (
            side < 0 and pd.notna(alarm_min) and value <= alarm_min
        ):
            level = 2
    return Reading(ts_us, value, level, side)


def main() -> None:
    """Run the early-warning bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=21, help="history replayed (≥ score days + 7)")
    parser.add_argument("--score-days", type=int, default=14, help="last days scored")
    parser.add_argument("--districts", default="310115,310104")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    args = parser.parse_args()
    url = bench_database("bench_forecast", reuse=args.reuse)
    city = load_city(url, districts=args.districts.split(","), seed=args.seed, reuse=args.reuse)
    end_us = int(datetime.now(UTC).timestamp() * US)
    started = time.perf_counter()
    history = labelled_history(
        devices=city.devices, device_types=city.device_types, days=args.days, end_us=end_us,
        seed=args.seed,
    )  # fmt: skip
    made_s = time.perf_counter() - started
    print(
        f"labelled history: {len(city.devices):,} devices of {args.districts} "
        f"({city.types.set_index('id').loc[city.devices['type_id'], 'category_code'].nunique()} "
        f"categories), {args.days} days, {len(history.readings):,} readings, "
        f"{len(history.events):,} events ({made_s:.1f} s)",
        flush=True,
    )
    result = replay(city, history)
    score_from = history.end_us / US - args.score_days * DAY_S
    print_scores(city, history, result, alarm_times(city, history), score_from=score_from)
    print_cost(result)


# --- scores ------------------------------------------------------------------------------------


def _opens(findings: list[Finding], kinds: tuple[str, ...], since: float) -> pd.DataFrame:
    """The incidents the engine opened of rule kinds `kinds` since `since`."""
    rows = [
        (f.device_id, f.at_s, f.rule.kind, f.rule.code)
        for f in findings
        if f.rule.kind in kinds and f.at_s >= since
    ]
    return pd.DataFrame(rows, columns=["device_id", "at_s", "kind", "code"])


def _within(
    opens: pd.DataFrame, events: pd.DataFrame, *, lo: str, hi: str, pad_s: float = 0.0
) -> np.ndarray:
    """Which opens fall inside an event of their device ([lo − pad, hi + pad])."""
    hit = np.zeros(len(opens), dtype=bool)
    by_device = events.groupby("device_id")
    for i, (device, at) in enumerate(zip(opens["device_id"], opens["at_s"], strict=True)):
        if device in by_device.groups:
            e = by_device.get_group(device)
            hit[i] = bool(((e[lo] / US - pad_s <= at) & (at <= e[hi] / US + pad_s)).any())
    return hit


def _first_after(opens: pd.DataFrame, device: int, lo: float, hi: float) -> float | None:
    """The first open of `device` in [lo, hi]."""
    mine = opens[(opens["device_id"] == device) & (opens["at_s"] >= lo) & (opens["at_s"] <= hi)]
    return None if mine.empty else float(mine["at_s"].min())


def score_ramps(
    history: LabelledHistory, opens: pd.DataFrame, alarms: dict[int, float], *, since: float
) -> list[tuple]:
    """Per ramp group: ramps, recall, precision, median lead (min) over the alarm rule."""
    events = history.events
    ramps = events[(events["kind"] == "ramp") & (events["start_us"] / US >= since)]
    true = _within(opens, events[events["kind"] == "ramp"], lo="start_us", hi="end_us")
    group_of = {m: g for g, ms in RAMP_GROUPS.items() for m in ms}
    measurand = dict(zip(events["device_id"], events["measurand"], strict=False))
    rows = []
    for group in RAMP_GROUPS:
        mine = ramps[ramps["measurand"].map(group_of) == group]
        leads = []
        for e in _records(mine):
            index = e["index"]
            alarm = alarms.get(int(index))
            first = (
                None
                if alarm is None
                else _first_after(opens, e["device_id"], e["start_us"] / US, alarm)
            )
            if first is not None and alarm is not None:
                leads.append((alarm - first) / 60)
        in_group = opens["device_id"].map(lambda d: group_of.get(measurand.get(d, ""), "")) == group
        raised = int(in_group.sum())
        precision = float(true[in_group.to_numpy()].mean()) if raised else float("nan")
        rows.append((group, len(mine), len(leads) / max(len(mine), 1), precision,
                     statistics.median(leads) if leads else float("nan")))  # fmt: skip
    return rows


def print_scores(
    city: City,
    history: LabelledHistory,
    result: Replay,
    alarms: dict[int, float],
    *,
    score_from: float,
) -> None:
    """The accuracy table, one line per event kind."""
    forecasts = _opens(result.findings, ("forecast",), score_from)
    print(f"\nscored: the last {(history.end_us / US - score_from) / DAY_S:.0f} days")
    print(f"  {'event':22} {'events':>6} {'recall':>7} {'precision':>9} {'median lead':>12}")
    for group, n, recall, precision, lead in score_ramps(
        history, forecasts, alarms, since=score_from
    ):
        print(f"  ramp: {group:16} {n:6d} {recall:7.2f} {precision:9.2f} {lead:9.1f} min")
    _print_false_rates(city, history, forecasts, score_from=score_from)
    _print_routine(history, result, score_from=score_from)
    _print_health(city, history, result, score_from=score_from)


def _print_false_rates(
    city: City, history: LabelledHistory, forecasts: pd.DataFrame, *, score_from: float
) -> None:
    events = history.events
    days = (history.end_us / US - score_from) / DAY_S
    false = forecasts[
        ~_within(forecasts, events[events["kind"] == "ramp"], lo="start_us", hi="end_us")
    ]
    near = set(events.loc[events["kind"] == "near_limit", "device_id"])
    on_near = false[false["device_id"].isin(near)]
    watched = len(city.devices)
    print(
        f"  near-limit daily cycles: {len(near)} devices, {len(on_near)} false 预警 = "
        f"{1000 * len(on_near) / max(len(near) * days, 1):.2f} per 1,000 device-days"
    )
    print(
        f"  all devices: {len(false)} false 预警 = "
        f"{1000 * len(false) / max(watched * days, 1):.2f} per 1,000 device-days"
    )


def _print_routine(history: LabelledHistory, result: Replay, *, score_from: float) -> None:
    events = history.events
    breaks = events[(events["kind"] == "inactivity") & (events["usual_us"] / US >= score_from)]
    opens = _opens(result.findings, ("baseline",), score_from)
    delays = []
    for e in _records(breaks):
        first = _first_after(opens, e["device_id"], e["usual_us"] / US - 3600, e["end_us"] / US)
        if first is not None:
            delays.append((first - e["usual_us"] / US) / 3600)
    in_time = sum(1 for d in delays if d <= 2.0)
    true = _within(
        opens, events[events["kind"] == "inactivity"], lo="usual_us", hi="end_us", pad_s=3600
    )
    precision = float(true.mean()) if len(opens) else float("nan")
    median = statistics.median(delays) if delays else float("nan")
    print(
        f"  {'routine break':22} {len(breaks):6d} {in_time / max(len(breaks), 1):7.2f} "
        f"{precision:9.2f}   found ≤ 2 h after the usual first activity; median {median:.2f} h"
    )


def _stuck_long_enough(history: LabelledHistory, events: pd.DataFrame) -> np.ndarray:
    """Which stuck episodes last long enough to be told from chance: a repeat is evidence only
    from the third identical reading on (an episode shorter than that is not detectable)."""
    order = np.argsort(history.readings.device_id, kind="stable")
    ids = history.readings.device_id[order]
    ts = history.readings.ts_us[order]
    out = []
    for e in _records(events):
        lo, hi = np.searchsorted(ids, [e["device_id"], e["device_id"] + 1])
        inside = (ts[lo:hi] >= e["start_us"]) & (ts[lo:hi] < e["end_us"])
        out.append(int(inside.sum()) >= 3)
    return np.array(out, dtype=bool)


def _print_health(
    city: City, history: LabelledHistory, result: Replay, *, score_from: float
) -> None:
    events = history.events
    interval = dict(zip(city.types["id"], city.types["interval_s"], strict=True))
    type_of = dict(zip(city.devices["id"], city.devices["type_id"], strict=True))
    for label, rule_kind, pad in (
        ("stuck", "stuck", 0.0),
        ("spike", "jump", 7200.0),
        ("clock", "clock", 3600.0),
    ):
        mine = events[(events["kind"] == label) & (events["start_us"] / US >= score_from)]
        note = ""
        if label == "stuck":
            long_enough = _stuck_long_enough(history, mine)
            note = f"of {len(mine)} episodes ≥ 3 readings long; found within 3 reporting intervals"
            mine = mine[long_enough]
        opens = _opens(result.findings, (rule_kind,), score_from)
        found = 0
        for e in _records(mine):
            first = _first_after(opens, e["device_id"], e["start_us"] / US, e["end_us"] / US + pad)
            limit = 3 * interval[type_of[e["device_id"]]] if label == "stuck" else pad + 1
            found += first is not None and first - e["start_us"] / US <= limit
        true = _within(
            opens, events[events["kind"] == label], lo="start_us", hi="end_us", pad_s=pad
        )
        precision = float(true.mean()) if len(opens) else float("nan")
        print(
            f"  {label:22} {len(mine):6d} {found / max(len(mine), 1):7.2f} {precision:9.2f}"
            f"   {len(opens)} raised {note}"
        )
    peers = _opens(result.findings, ("peer",), score_from)
    print(f"  peer (no labels)       {len(peers):6d} raised")


def print_cost(result: Replay) -> None:
    """µs per reading and the arrival rate the engine keeps up with on one core."""
    per = result.engine_s / max(result.readings, 1) * 1e6
    print(
        f"\ncost: {result.readings:,} readings through the engine in {result.engine_s:.1f} s = "
        f"{per:.1f} µs per reading ({1e6 / per:,.0f} readings/s on one core; target 970); "
        f"nightly refits {statistics.median(result.refit_s):.2f} s median"
    )


if __name__ == "__main__":
    main()
