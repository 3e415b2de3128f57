"""Dispatch bench (issue 21): how fast and how right the suggestions are, what coverage costs,
what unit positions cost the ingest path and the dashboard, and a storm drill from alarm to
arrival.

    python -m bench.dispatch [--scale demo|seed] [--reuse] [--suggestions 1000] [--fix-rate 1000]
                             [--fix-batch 200] [--fix-seconds 60] [--fix-senders 2] [--repeat 10]
                             [--drill-minutes 30] [--step 2] [--parts 1234]

Seeds the city (ending four hours ago: the drill's simulated clock runs in that past) into its
own database on the bench cluster (ONESCREEN_DATA_DIR/bench-pg, port 54339, database
bench_dispatch_<scale>) unless --reuse finds it seeded, puts the fleet back home (available,
no fixes, no jobs), then prints:

1. suggestions for --suggestions random incidents of the categories a unit serves (open ones
   through suggest_units, resolved ones through suggest_for_point on their point, district and
   category): time, and whether the first is the truly fastest available suitable unit by brute
   force over every such unit with the travel formula written out here (strictly, or a local
   unit within rank()'s preference slack);
2. coverage of every street per scenario skill;
3. --fix-rate position fixes/s of random available units (small moves at walking to driving
   speed) in batches of --fix-batch through Ingestor.ingest_body from --fix-senders processes
   for at least --fix-seconds, and the dashboard's callbacks (bench.dashboard.time_callbacks,
   --repeat calls each, its results cache off so that every call does its database work) once
   before and once during that load, side by side (the machines are noisy: compare ratios);
4. a storm drill on a simulated clock (LiveCity with storm_now through the real write path, a
   rules pass every --step simulated seconds, as bench/storm.py): each new flood alarm gets the
   first suggested unit (actor bench:drill); the units are driven by simulator/fleet.advance at
   their speed after their kind's turnout time on the same clock, their fixes stored through
   store_fixes, until on site (at most ARRIVAL_CAP_MIN simulated minutes after the storm's
   --drill-minutes, without rules passes: no releases then). The DB stamps dispatched_at and
   eta_at with its real now(), and fleet_state's turnout test uses it too, so the drill applies
   the turnout itself on the simulated clock and takes the ETA from dispatch_unit's answer;
   arrival (store_fixes) follows the fixes' times.

Targets (issue 21, seed scale, ~5,400 units): suggestions p95 ≤ 50 ms and the first the fastest
(or a local unit within the slack) in ≥ 95 %; coverage ≤ 1 s per skill; 1,000 fixes/s with the
dashboard unharmed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing as mp
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.dashboard import percentiles, time_callbacks
from bench.harness import bench_database, bench_session, settle
from config import get_settings
from data import catalog, dispatch, migrate, writes
from data.cache import TtlCache
from data.dispatch import (
    DEFAULT_DETOUR,
    DEFAULT_SPEED_KMH,
    POOL,
    PREFER_LOCAL_RATIO,
    PREFER_LOCAL_S,
    Suggestion,
)
from data.engine import create_db_engine
from data.ingest_store import PartitionCache, create_token, find_principal, store_readings
from data.live_city import load_live_devices, offline_device_ids
from data.resources import ResourceError
from data.unit_positions import FixBatch, store_fixes
from ingest.rules_engine import RulesEngine
from ingest.service import Ingestor
from simulator.fleet import MOVING_EVERY_S, _Unit, advance
from simulator.live import US, LiveCity, LiveConfig, Storm
from simulator.seed import seed_city
from web.services import EXTENSION

RATES = {"demo": 20.0, "seed": 97.0}  # the live city's readings a second (as bench/storm.py)
SKILLS = ("flood", "power", "water", "gas", "elderly", "weather")
ACTOR = "bench:drill"
SOURCE = "bench"
# a fresh seed ends this long ago: room for the drill's simulated clock, and for a few reruns
SEED_LEAD = timedelta(hours=4)
ARRIVAL_CAP_MIN = 120.0
TIE_S = 1e-6
METRES_PER_DEGREE = 110_574.0


class Job(NamedTuple):
    """Where a suggestion is asked for: an incident's point, district and category."""

    incident_id: int
    open: bool
    lon: float
    lat: float
    district: str
    skill: str


@dataclass(frozen=True)
class Judged:
    """A first suggestion against the brute force over every available suitable unit."""

    strict: bool  # the fastest (ties count)
    slack: bool  # or a local unit within rank()'s preference slack of the fastest
    outside_pool: bool  # the fastest is not among the POOL nearest suitable units
    eta_gap_s: float  # the suggestion's ETA minus the brute force's for the same unit
    late_s: float  # how much later than the fastest the suggested unit would arrive
    candidates: int


def ms(samples: list[float]) -> str:
    """p50 / p95 / max of seconds, in ms."""
    p50, p95 = percentiles(samples)
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(samples) * 1000:.1f} ms"


def share(flags: list[bool]) -> str:
    """How many of the flags are set, as a percentage."""
    return f"{100 * sum(flags) / max(len(flags), 1):.1f} % ({sum(flags)}/{len(flags)})"


# the city and its fleet -----------------------------------------------------------------------


def prepare(scale: str, *, reuse: bool) -> tuple[str, Engine]:
    """The bench database's URL and engine, seeded (ending SEED_LEAD ago) unless reused."""
    url = bench_database(f"bench_dispatch_{scale}", reuse=reuse)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    if writes.get_meta(engine, key="seed") is None:
        print(f"seeding the {scale} city…", flush=True)
        started = time.perf_counter()
        report = seed_city(
            engine,
            scale=scale,
            random_seed=get_settings().random_seed,
            end=datetime.now(UTC) - SEED_LEAD,
            reset=True,
        )
        settle(engine)
        print(
            f"  {report.devices:,} devices, {report.readings:,} readings, {report.incidents:,}"
            f" incidents in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return url, engine


def reset_fleet(engine: Engine) -> None:
    """Every unit home, no job, no fix, the table compact (as seeded); off duty stays."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE resource SET status = CASE WHEN status = 'off_duty' THEN 'off_duty'"
                " ELSE 'available' END, geom = home, fix_at = NULL, incident_id = NULL,"
                " task_id = NULL, target = NULL, dispatched_at = NULL, eta_at = NULL,"
                " arrived_at = NULL, changed_at = now()"
                " WHERE status <> 'available' OR fix_at IS NOT NULL OR NOT ST_Equals(geom, home)"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # an earlier run's fixes left it many times its size (see bench_positions)
        conn.execute(sa.text("VACUUM FULL ANALYZE resource"))


def fleet_summary(engine: Engine) -> str:
    """Units, the mobile ones, the available mobile ones."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*) AS n, count(*) FILTER (WHERE k.class <> 'facility') AS mobile,"
                " count(*) FILTER (WHERE k.class <> 'facility' AND r.status = 'available')"
                " AS available FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
            )
        ).one()
    return f"{row.n:,} units ({row.mobile:,} crews and vehicles, {row.available:,} available)"


# the truth: every available suitable unit ----------------------------------------------------


def travel_models(engine: Engine) -> dict[str, tuple[float, float]]:
    """Per district: detour factor and road speed (km/h)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT district_adcode, detour, speed_kmh FROM travel_model"))
        return {r.district_adcode: (float(r.detour), float(r.speed_kmh)) for r in rows}


_TRUTH = """
WITH c AS (
    SELECT r.id, r.code, r.geom <-> t.p AS planar,
           k.turnout_s + ST_Distance(geography(r.geom), geography(t.p)) * :detour
             / (:kmh * k.speed_ratio / 3.6) AS eta_s
    FROM resource r JOIN resource_kind k ON k.code = r.kind_code
    CROSS JOIN (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS p) AS t
    WHERE r.status = 'available' AND k.class <> 'facility' AND :skill = ANY(k.skills)
), best AS (SELECT id, planar, eta_s FROM c ORDER BY eta_s, code LIMIT 1)
SELECT best.eta_s AS best, (SELECT count(*) FROM c WHERE c.planar < best.planar) AS nearer,
       (SELECT c.eta_s FROM c WHERE c.id = :chosen) AS chosen_eta,
       (SELECT count(*) FROM c) AS candidates
FROM best
"""


def judge(
    conn: sa.Connection,
    job: Job,
    first: Suggestion | None,
    models: dict[str, tuple[float, float]],
) -> Judged | None:
    """The first suggestion against the brute force (None: no suitable unit is available)."""
    detour, kmh = models.get(job.district, (DEFAULT_DETOUR, DEFAULT_SPEED_KMH))
    row = conn.execute(
        sa.text(_TRUTH),
        {
            "lon": job.lon,
            "lat": job.lat,
            "skill": job.skill,
            "detour": detour,
            "kmh": kmh,
            "chosen": None if first is None else first.resource_id,
        },
    ).one_or_none()
    if row is None:
        return None
    if first is None or row.chosen_eta is None:  # nothing suggested, or an unavailable unit
        return Judged(False, False, row.nearer >= POOL, math.nan, math.nan, row.candidates)
    best, chosen = float(row.best), float(row.chosen_eta)
    strict = chosen <= best + TIE_S
    slack = max(PREFER_LOCAL_S, best * PREFER_LOCAL_RATIO)
    return Judged(
        strict=strict,
        slack=strict or (first.local and chosen <= best + slack + TIE_S),
        outside_pool=row.nearer >= POOL,
        eta_gap_s=first.eta_s - chosen,
        late_s=chosen - best,
        candidates=int(row.candidates),
    )


# 1. suggestions -------------------------------------------------------------------------------


def sample_jobs(engine: Engine, count: int) -> list[Job]:
    """`count` random incidents (repeatable) of the categories a crew or vehicle serves."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT setseed(0.21)"))
        rows = conn.execute(
            sa.text(
                "SELECT id, status <> 'resolved' AS open, ST_X(geom) AS lon, ST_Y(geom) AS lat,"
                " district_adcode, category_code FROM incident"
                " WHERE geom IS NOT NULL AND category_code IN (SELECT unnest(skills)"
                "   FROM resource_kind WHERE class <> 'facility')"
                " ORDER BY random() LIMIT :n"
            ),
            {"n": count},
        ).all()
    return [
        Job(int(r.id), bool(r.open), r.lon, r.lat, r.district_adcode, r.category_code) for r in rows
    ]


def suggest(engine: Engine, job: Job) -> list[Suggestion]:
    """The suggestions for a job: an open incident's own, else its point's."""
    if job.open:
        return dispatch.suggest_units(engine, incident_id=job.incident_id, k=5)
    with engine.connect() as conn:
        return dispatch.suggest_for_point(
            conn, lon=job.lon, lat=job.lat, district=job.district, skill=job.skill, k=5
        )


def bench_suggestions(engine: Engine, jobs: list[Job]) -> None:
    """Time the suggestions for `jobs`, judge each first one, print the figures."""
    models = travel_models(engine)
    for job in jobs[:20]:  # warm the pool, the plans and the caches
        suggest(engine, job)
    timings, judged = [], []
    for job in jobs:
        started = time.perf_counter()
        suggestions = suggest(engine, job)
        timings.append(time.perf_counter() - started)
        with engine.connect() as conn:
            judged.append(judge(conn, job, suggestions[0] if suggestions else None, models))
    graded = [j for j in judged if j is not None]
    opened = sum(job.open for job in jobs)
    print(
        f"\n1. suggestions for {len(jobs):,} random incidents ({opened:,} open: suggest_units;"
        f" {len(jobs) - opened:,} resolved: suggest_for_point on their point, district and"
        " category)"
    )
    print(f"   time per suggestion: {ms(timings)}   (target p95 ≤ 50 ms)")
    print_judged(graded, unsuitable=len(judged) - len(graded))


def print_judged(graded: list[Judged], *, unsuitable: int) -> None:
    """How often the first suggestion was the truly fastest, and why not when it was not."""
    gaps = [abs(j.eta_gap_s) for j in graded if not math.isnan(j.eta_gap_s)]
    candidates = [j.candidates for j in graded] or [0]
    strict, slack = share([j.strict for j in graded]), share([j.slack for j in graded])
    print(
        f"   first suggestion the truly fastest (brute force over {min(candidates):,}–"
        f"{max(candidates):,} available suitable units): strictly {strict}; fastest or a local"
        f" unit within the preference slack {slack}   (target ≥ 95 %)"
    )
    print_misses(graded)
    print(
        "   nothing suggested although a unit was available:"
        f" {sum(math.isnan(j.eta_gap_s) for j in graded)}; no suitable unit available at all:"
        f" {unsuitable}"
    )
    if gaps:
        print(
            "   ETA of the suggested unit vs the brute force's for the same unit:"
            f" max |Δ| {max(gaps):.3f} s"
        )


def print_misses(graded: list[Judged]) -> None:
    """The first suggestions neither fastest nor a local unit within the slack: why, how late."""
    missed = [j for j in graded if not j.slack and not math.isnan(j.late_s)]
    if not missed:
        print("   not within the slack: none")
        return
    late = sorted(j.late_s for j in missed)
    print(
        f"   not within the slack: {len(missed)}, of which the fastest lay outside the {POOL}"
        f" nearest suitable units (suggest_for_point's pool) {sum(j.outside_pool for j in missed)};"
        f" the suggested unit later than the fastest by median {statistics.median(late):.0f} s,"
        f" max {late[-1]:.0f} s"
    )


# 2. coverage ----------------------------------------------------------------------------------


def bench_coverage(engine: Engine, *, repeat: int = 3) -> None:
    """Time coverage() of every street for each skill, `repeat` times."""
    print(f"\n2. coverage of every street per skill ({repeat} runs each; target ≤ 1 s):")
    for skill in SKILLS:
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            rows = dispatch.coverage(engine, skill=skill)
            timings.append(time.perf_counter() - started)
        blind = sum(r["blind"] for r in rows)
        unserved = sum(r["eta_s"] is None for r in rows)
        print(
            f"   {skill:8} {len(rows)} streets: median {statistics.median(timings) * 1000:6.0f} ms,"
            f" max {max(timings) * 1000:6.0f} ms; blind spots {blind} (no unit {unserved})"
        )


# 3. position fixes through the ingest path, and the dashboard meanwhile ------------------------


@dataclass
class Walkers:
    """Units wandering about: where each is, its heading and speed, when it last reported."""

    codes: list[str]
    lon: np.ndarray
    lat: np.ndarray
    heading: np.ndarray
    speed: np.ndarray
    last: np.ndarray
    rng: np.random.Generator

    def fixes(self, count: int, now: float) -> list[dict[str, Any]]:
        """`count` distinct units' next fixes at `now`: a small move since their last one."""
        pick = self.rng.choice(len(self.codes), size=min(count, len(self.codes)), replace=False)
        seconds = np.clip(now - self.last[pick], 1.0, 30.0)
        self.heading[pick] += self.rng.normal(0, 0.4, len(pick))
        metres = self.speed[pick] * seconds
        self.lat[pick] += metres * np.cos(self.heading[pick]) / METRES_PER_DEGREE
        self.lon[pick] += (
            metres
            * np.sin(self.heading[pick])
            / (METRES_PER_DEGREE * np.cos(np.radians(self.lat[pick])))
        )
        self.last[pick] = now
        stamp = datetime.fromtimestamp(now, UTC).isoformat()
        return [
            {
                "unit_code": self.codes[i],
                "ts": stamp,
                "lon": round(float(self.lon[i]), 6),
                "lat": round(float(self.lat[i]), 6),
            }
            for i in pick.tolist()
        ]


def walkers(units: list[tuple[str, float, float]], *, seed: int) -> Walkers:
    """Walkers for (code, lon, lat) units, at 1–12 m/s in random directions."""
    rng = np.random.default_rng([seed, 21])
    n = len(units)
    return Walkers(
        codes=[u[0] for u in units],
        lon=np.array([u[1] for u in units]),
        lat=np.array([u[2] for u in units]),
        heading=rng.uniform(0, 2 * math.pi, n),
        speed=rng.uniform(1.0, 12.0, n),
        last=np.full(n, time.time() - 5.0),
        rng=rng,
    )


def fix_sender(
    url: str,
    token: str,
    units: list[tuple[str, float, float]],
    options: dict[str, float],
    signals: tuple[Any, Any, Any],
    queue: Any,
) -> None:
    """A tracker gateway: fixes of `units` through ingest_body, from go until seconds and stop."""
    ready, go, stop = signals
    engine = create_db_engine(url)
    ingestor = Ingestor(engine)
    principal = find_principal(engine, token=token)
    assert principal is not None
    walk = walkers(units, seed=int(options["seed"]))
    batch, rate = int(options["batch"]), options["rate"]
    ingestor.ingest_body(orjson.dumps(walk.fixes(5, time.time())), principal=principal)  # warm
    ready.release()
    go.wait()
    started, latencies, counts = time.time(), [], {"stored": 0, "duplicate": 0, "rejected": 0}
    for k in itertools.count():
        now = time.time()
        if now - started >= options["seconds"] and stop.is_set():
            break
        due = started + k * batch / rate
        if due > now:
            time.sleep(due - now)
        body = orjson.dumps({"readings": walk.fixes(batch, time.time())})
        begun = time.perf_counter()
        result = ingestor.ingest_body(body, principal=principal)
        latencies.append(time.perf_counter() - begun)
        for name in counts:
            counts[name] += getattr(result, name)
    queue.put({**counts, "latencies": latencies, "seconds": time.time() - started})
    engine.dispose()


def mobile_units(engine: Engine) -> list[tuple[str, float, float]]:
    """The available crews and vehicles: (code, lon, lat)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.code, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat FROM resource r"
                " JOIN resource_kind k ON k.code = r.kind_code"
                " WHERE k.class <> 'facility' AND r.status = 'available' ORDER BY r.code"
            )
        ).all()
    return [(r.code, float(r.lon), float(r.lat)) for r in rows]


def start_senders(url: str, engine: Engine, args: argparse.Namespace) -> tuple[list, tuple, Any]:
    """The sender processes, started and ready (waiting for the go signal)."""
    token = create_token(engine, source=SOURCE, city_wide=True, label="bench dispatch fixes")
    units = mobile_units(engine)
    context = mp.get_context("spawn")  # no copy of this process's connections in the children
    signals = (context.Semaphore(0), context.Event(), context.Event())
    queue = context.Queue()
    senders = []
    for part in range(args.fix_senders):
        options = {
            "rate": args.fix_rate / args.fix_senders,
            "batch": args.fix_batch,
            "seconds": args.fix_seconds,
            "seed": part,
        }
        mine = units[part :: args.fix_senders]  # a unit reports through one gateway
        process = context.Process(
            target=fix_sender, args=(url, token, mine, options, signals, queue), daemon=True
        )
        process.start()
        senders.append(process)
    for _ in senders:
        signals[0].acquire()
    return senders, signals, queue


def dashboard_app(url: str, engine: Engine) -> tuple[Any, Any]:
    """An app of this process on the bench database, its results cache off, and a session."""
    from app import create_app

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    app = create_app(get_settings().model_copy(update={"callback_rate_limit": "100000 per minute"}))
    # as bench.dashboard's server figures, but every call computes: its results cache would
    # answer all calls but one a second from memory, with no database work to slow down
    cache = app.server.extensions[EXTENSION].results
    if isinstance(cache, TtlCache):
        cache.ttl_seconds = 1e-9
    return app, bench_session(engine)


def table_state(engine: Engine) -> tuple[int, int, int]:
    """The resource table's bytes (with its indexes), rows updated, of which HOT."""
    time.sleep(1.0)  # the senders' backends report their counts as they end
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(
            sa.text(
                "SELECT pg_total_relation_size('resource') AS size, n_tup_upd, n_tup_hot_upd"
                " FROM pg_stat_user_tables WHERE relname = 'resource'"
            )
        ).one()
    return int(row.size), int(row.n_tup_upd), int(row.n_tup_hot_upd)


def bench_positions(url: str, engine: Engine, args: argparse.Namespace) -> None:
    """Fixes through ingest_body while the dashboard's callbacks are timed; before vs during."""
    app, ticket = dashboard_app(url, engine)
    before = table_state(engine)
    senders, (_ready, go, stop), queue = start_senders(url, engine, args)
    quiet = time_callbacks(app, ticket, repeat=args.repeat)
    go.set()
    started = time.time()
    loaded = time_callbacks(app, ticket, repeat=args.repeat)
    dashboard_s = time.time() - started
    stop.set()
    outcomes = [queue.get(timeout=args.fix_seconds + 600) for _ in senders]
    for process in senders:
        process.join(30)
    latencies = [s for r in outcomes for s in r["latencies"]]
    sent = sum(r["stored"] + r["duplicate"] + r["rejected"] for r in outcomes)
    seconds = max(r["seconds"] for r in outcomes)
    total = {name: sum(r[name] for r in outcomes) for name in ("stored", "duplicate", "rejected")}
    print(
        f"\n3. position fixes through Ingestor.ingest_body: {args.fix_senders} senders,"
        f" batches of {args.fix_batch}, asked {args.fix_rate:,.0f}/s for ≥ {args.fix_seconds:g} s"
        f" (the dashboard's timing under load took {dashboard_s:.0f} s)"
    )
    print(
        f"   achieved {sent / seconds:,.0f} fixes/s ({sent:,} in {seconds:.1f} s: stored"
        f" {total['stored']:,}, duplicate {total['duplicate']}, rejected {total['rejected']});"
        f" batch latency {ms(latencies)}"
    )
    print_side_by_side(quiet, loaded, repeat=args.repeat)
    print_bloat(engine, before)


def print_bloat(engine: Engine, before: tuple[int, int, int]) -> None:
    """What the fixes left in the resource table, and the suggestions' time over it now."""
    size, updated, hot = table_state(engine)
    updates, hot_updates = updated - before[1], hot - before[2]
    jobs = sample_jobs(engine, 200)
    timings = []
    for job in jobs:
        started = time.perf_counter()
        suggest(engine, job)
        timings.append(time.perf_counter() - started)
    print(
        f"   the resource table with its indexes {before[0] / 2**20:.1f} MB → {size / 2**20:.1f} MB"
        f" after {updates:,} row updates ({100 * hot_updates / max(updates, 1):.1f} % HOT);"
        f" suggestions over it now ({len(jobs)} random incidents): {ms(timings)}"
    )


def print_side_by_side(
    quiet: dict[str, tuple[float, float]], loaded: dict[str, tuple[float, float]], *, repeat: int
) -> None:
    """The callbacks' p50/p95 without and with the position load, and their ratios."""
    print(
        f"   dashboard server time per callback over {repeat} calls (bench.dashboard's, results"
        " cache off), without → with the position load:"
    )
    print(f"   {'callback':34} {'p50 ms':>17} {'ratio':>6} {'p95 ms':>17} {'ratio':>6}")
    ratios = []
    for label, (p50, p95) in quiet.items():
        q50, q95 = loaded[label]
        ratios.append(q50 / p50)
        print(
            f"   {label:34} {p50:7.1f} → {q50:7.1f} {q50 / p50:6.2f}"
            f" {p95:7.1f} → {q95:7.1f} {q95 / p95:6.2f}"
        )
    print(f"   median p50 ratio {statistics.median(ratios):.2f}")


# 4. the storm drill ---------------------------------------------------------------------------


@dataclass
class Sent:
    """A unit the drill sent, and what became of it (times: simulated epoch seconds)."""

    incident_id: int
    resource_id: int
    opened_s: float
    assigned_s: float
    wall_s: float  # real seconds from the rules pass's start to the dispatch's commit
    pass_s: float  # real seconds the rules pass itself took
    eta_s: float
    turnout_s: float
    judged: Judged | None
    unit: _Unit | None = None
    arrived_s: float | None = None
    released: bool = False  # back in service before it arrived (its incident was resolved)


@dataclass
class Drill:
    """The drill's fleet and tallies."""

    engine: Engine
    models: dict[str, tuple[float, float]]
    turnout: dict[str, float]
    after_id: int
    sent: list[Sent] = field(default_factory=list)
    driving: dict[int, Sent] = field(default_factory=dict)  # by unit id: on the way
    alarms: int = 0
    no_unit: int = 0
    no_unit_but_one_free: int = 0
    refused: int = 0
    judging_s: float = 0.0  # the brute force's time in this pass (not the dispatcher's)
    passes: list[float] = field(default_factory=list)
    grouping: list[float] = field(default_factory=list)  # of each pass: grouping incidents
    early: list[float] = field(default_factory=list)  # of each pass: early warning


def new_drill(engine: Engine) -> Drill:
    """A drill over the current fleet, for the incidents opened from now on."""
    with engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT code, turnout_s FROM resource_kind")).all()
        after = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM incident")).scalar_one()
    return Drill(
        engine=engine,
        models=travel_models(engine),
        turnout={row.code: float(row.turnout_s) for row in kinds},
        after_id=int(after),
    )


def dispatch_new(drill: Drill, *, sim_s: float, began: float) -> None:
    """Send the first suggested unit to each flood alarm opened since the last pass."""
    with drill.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, extract(epoch FROM opened_at) AS opened_s, ST_X(geom) AS lon,"
                " ST_Y(geom) AS lat, district_adcode, status <> 'resolved' AS open FROM incident"
                " WHERE id > :after AND category_code = 'flood' AND kind = 'alarm'"
                " AND rule_code <> 'offline' ORDER BY id"
            ),
            {"after": drill.after_id},
        ).all()
    for row in rows:
        drill.after_id = max(drill.after_id, int(row.id))
        if row.open:
            drill.alarms += 1
            job = Job(int(row.id), True, row.lon, row.lat, row.district_adcode, "flood")
            send(drill, job, opened_s=float(row.opened_s), sim_s=sim_s, began=began)


def send(drill: Drill, job: Job, *, opened_s: float, sim_s: float, began: float) -> None:
    """Suggest, judge (as the fleet stood), dispatch the first; note the times."""
    suggestions = dispatch.suggest_units(drill.engine, incident_id=job.incident_id, k=5)
    first = suggestions[0] if suggestions else None
    judging = time.perf_counter()
    with drill.engine.connect() as conn:
        judged = judge(conn, job, first, drill.models)
    drill.judging_s += time.perf_counter() - judging
    if first is None:
        drill.no_unit += 1
        drill.no_unit_but_one_free += judged is not None
        return
    try:
        answer = dispatch.dispatch_unit(
            drill.engine, resource_id=first.resource_id, incident_id=job.incident_id, actor=ACTOR
        )
    except ResourceError:
        drill.refused += 1
        return
    wall = time.perf_counter() - began - drill.judging_s
    sent = Sent(
        incident_id=job.incident_id,
        resource_id=first.resource_id,
        opened_s=opened_s,
        assigned_s=sim_s + wall,
        wall_s=wall,
        pass_s=drill.passes[-1],
        eta_s=float(answer["eta_s"]),
        turnout_s=drill.turnout[first.kind_code],
        judged=judged,
    )
    drill.sent.append(sent)
    drill.driving[first.resource_id] = sent


def board(drill: Drill) -> None:
    """Put the newly sent units on the road as fleet_state sees them (position, target, speed)."""
    waiting = {rid for rid, sent in drill.driving.items() if sent.unit is None}
    if not waiting:
        return
    for state in dispatch.fleet_state(drill.engine):
        if state["id"] in waiting:
            sent = drill.driving[state["id"]]
            sent.unit = _Unit(
                code=state["code"],
                lon=state["lon"],
                lat=state["lat"],
                to_lon=state["to_lon"],
                to_lat=state["to_lat"],
                metres_per_s=float(state["kmh"]) / 3.6,
                moving=True,
                last_fix_s=sent.assigned_s,
            )


def drive(drill: Drill, *, sim_s: float) -> None:
    """Drive the sent units after their turnout, store their fixes, note arrivals and releases."""
    # (the rules pass returns a unit to service when its incident is resolved)
    if not drill.driving:
        return
    board(drill)
    ids, lon, lat = [], [], []
    for rid, sent in drill.driving.items():
        unit, depart = sent.unit, sent.assigned_s + sent.turnout_s
        if unit is None or sim_s < depart or sim_s - unit.last_fix_s < MOVING_EVERY_S:
            continue
        advance(unit, seconds=sim_s - max(unit.last_fix_s, depart))
        unit.last_fix_s = sim_s
        ids.append(rid)
        lon.append(unit.lon)
        lat.append(unit.lat)
    stamp = np.full(len(ids), round(sim_s * US), dtype=np.int64)
    fixes = FixBatch(np.array(ids, dtype=np.int64), stamp, np.array(lon), np.array(lat))
    with drill.engine.begin() as conn:
        store_fixes(conn, fixes, actor=ACTOR)
        rows = conn.execute(
            sa.text(
                "SELECT id, status, incident_id, extract(epoch FROM arrived_at) AS at"
                " FROM resource WHERE id = ANY(:ids)"
            ),
            {"ids": list(drill.driving)},
        ).all()
    for row in rows:
        sent = drill.driving[int(row.id)]
        if row.status == "on_site" and row.incident_id == sent.incident_id:
            sent.arrived_s = float(row.at)
        elif row.status == "available" or row.incident_id != sent.incident_id:
            sent.released = True
        else:
            continue
        del drill.driving[int(row.id)]


def drill_city(engine: Engine, *, scale: str, start_us: int) -> LiveCity:
    """The live city from `start_us`, a storm at once and no other for a day."""
    config = LiveConfig(
        rate=RATES[scale],
        seed=get_settings().random_seed,
        storm_now=True,
        storm_every_s=24 * 3600,
        storm_minutes=(30.0, 45.0),
        first_ramp_s=None,
    )
    return LiveCity(
        load_live_devices(engine),
        catalog.load_device_types(),
        config,
        start_us=start_us,
        offline_ids=offline_device_ids(engine),
    )


def run_drill(
    engine: Engine, *, scale: str, start: datetime, minutes: float, step_s: float
) -> tuple[Drill, Storm | None]:
    """The storm for `minutes` with dispatches, then driving until all arrived (or the cap)."""
    start_us, step_us = round(start.timestamp() * US), round(step_s * US)
    city = drill_city(engine, scale=scale, start_us=start_us)
    rules = RulesEngine(engine, live_window_s=4 * 3600, watch_start=start)
    rules.run_once(now=start, offline=False)  # what the seed or an earlier run left queued
    drill, partitions, storm = new_drill(engine), PartitionCache(), None
    sim_us, end_us = start_us, start_us + round(minutes * 60 * US)
    while sim_us < end_us:
        sim_us += step_us
        batch = city.step(sim_us)
        if len(batch.device_id):
            with engine.begin() as conn:
                store_readings(conn, batch, partitions=partitions)
        storm = city.storm or storm
        began, drill.judging_s = time.perf_counter(), 0.0
        report = rules.run_once(now=datetime.fromtimestamp(sim_us / US, tz=UTC), offline=False)
        drill.passes.append(time.perf_counter() - began)
        drill.grouping.append(report.events.seconds)
        drill.early.append(report.early.seconds)
        dispatch_new(drill, sim_s=sim_us / US, began=began)
        drive(drill, sim_s=sim_us / US)
    cap_us = sim_us + round(ARRIVAL_CAP_MIN * 60 * US)
    while sim_us < cap_us and drill.driving:
        sim_us += max(step_us, round(MOVING_EVERY_S * US))  # only the fixes are due now
        drive(drill, sim_s=sim_us / US)
    return drill, storm


def drill_span(engine: Engine, minutes: float) -> tuple[datetime, float] | None:
    """The drill's start (the city data's end) and minutes, cut to fit before now; None: < 15."""
    with engine.connect() as conn:
        end = conn.execute(sa.text("SELECT max(ts) FROM device_latest")).scalar_one()
    room = (datetime.now(UTC) - end).total_seconds() / 60 - ARRIVAL_CAP_MIN - 1
    return None if room < 15 else (end, min(minutes, room))


def seconds_figures(samples: list[float], *, digits: int = 0) -> str:
    """p50 / p95 / max of seconds."""
    if not samples:
        return "none"
    p50, p95 = percentiles(samples)
    return (
        f"p50 {p50 / 1000:.{digits}f} s, p95 {p95 / 1000:.{digits}f} s,"
        f" max {max(samples):.{digits}f} s"
    )


def bench_drill(engine: Engine, args: argparse.Namespace) -> None:
    """Put the fleet back home, run the storm drill and print its figures."""
    reset_fleet(engine)
    span = drill_span(engine, args.drill_minutes)
    if span is None:
        print("\n4. storm drill skipped: the city's data ends too recently; rerun without --reuse")
        return
    start, minutes = span
    began = time.perf_counter()
    drill, storm = run_drill(
        engine, scale=args.scale, start=start, minutes=minutes, step_s=args.step
    )
    print(
        f"\n4. storm drill on a simulated clock from {start:%Y-%m-%d %H:%M} UTC: {minutes:.0f} min"
        f" of storm (a rules pass every {args.step:g} simulated s, production every"
        f" {get_settings().rules_interval_seconds:g} s), then driving until on site (at most"
        f" {ARRIVAL_CAP_MIN:g} min more); {time.perf_counter() - began:.0f} s real"
    )
    if storm is not None:
        print(f"   {storm.kind} over {', '.join(storm.districts)} ({storm.devices} flood sensors)")
    print(
        f"   rules pass: {ms(drill.passes)}; of which grouping {ms(drill.grouping)}, early"
        f" warning {ms(drill.early)}"
    )
    sent = drill.sent
    print(
        f"   new open flood alarms {drill.alarms}: dispatched {len(sent)}, no unit suggested"
        f" {drill.no_unit} (though one was available: {drill.no_unit_but_one_free}), dispatch"
        f" refused {drill.refused}"
    )
    if not sent:
        return
    waits = [s.assigned_s - s.opened_s for s in sent]
    queued = [s.assigned_s - s.wall_s - s.opened_s for s in sent]
    print(
        f"   opened → assigned: {seconds_figures(waits, digits=1)}: waiting for the next pass"
        f" (simulated) {seconds_figures(queued, digits=1)}, then the pass, the suggestion and"
        f" the dispatch (real time) {ms([s.wall_s for s in sent])}, of which the rules pass"
        f" {ms([s.pass_s for s in sent])}"
    )
    graded = [s.judged for s in sent if s.judged is not None]
    print(
        f"   the chosen first suggestion the truly fastest: strictly"
        f" {share([j.strict for j in graded])}; or a local unit within the slack"
        f" {share([j.slack for j in graded])}"
    )
    print_misses(graded)
    print_arrivals(sent)


def print_arrivals(sent: list[Sent]) -> None:
    """Assignment → on site, and the ETA's error against it."""
    arrived = [s for s in sent if s.arrived_s is not None]
    travel = [s.arrived_s - s.assigned_s for s in arrived if s.arrived_s is not None]
    print(
        f"   assigned → on site (turnout, then driven by fleet.advance, fixes via store_fixes):"
        f" {seconds_figures(travel)}; arrived {len(arrived)} of {len(sent)}, released before"
        f" arriving (incident resolved) {sum(s.released for s in sent)}, still on the way"
        f" {sum(s.arrived_s is None and not s.released for s in sent)}"
    )
    if not arrived:
        return
    errors = [t - s.eta_s for t, s in zip(travel, arrived, strict=True)]
    relative = [abs(e) / s.eta_s for e, s in zip(errors, arrived, strict=True)]
    print(
        f"   ETA error (simulated arrival − ETA): median {statistics.median(errors):+.0f} s,"
        f" |error| {seconds_figures([abs(e) for e in errors])};"
        f" |error| / ETA median {100 * statistics.median(relative):.0f} %,"
        f" p95 {100 * sorted(relative)[round(0.95 * (len(relative) - 1))]:.0f} %"
    )


def main() -> int:
    """Run the dispatch bench and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(RATES), default="seed")
    parser.add_argument("--reuse", action="store_true", help="keep a seeded bench database")
    parser.add_argument("--suggestions", type=int, default=1000, help="incidents to suggest for")
    parser.add_argument("--fix-rate", type=float, default=1000.0, help="position fixes a second")
    parser.add_argument("--fix-batch", type=int, default=200, help="fixes per ingest_body call")
    parser.add_argument("--fix-seconds", type=float, default=60.0, help="least load duration")
    parser.add_argument("--fix-senders", type=int, default=2, help="sending processes")
    parser.add_argument("--repeat", type=int, default=10, help="calls per dashboard callback")
    parser.add_argument("--drill-minutes", type=float, default=30.0, help="simulated storm min")
    parser.add_argument(
        "--step",
        type=float,
        default=get_settings().rules_interval_seconds,
        help="simulated s per rules pass (default: the rules' interval)",
    )
    parser.add_argument("--parts", default="1234", help="which of the four parts to run")
    args = parser.parse_args()
    if not (
        args.suggestions >= 1
        and 1 <= args.fix_batch <= 10_000
        and args.fix_rate > 0
        and args.fix_senders >= 1
        and args.repeat >= 1
        and 15 <= args.drill_minutes <= 120
        and 1 <= args.step <= 60
        and set(args.parts) <= set("1234")
    ):
        parser.error("out of range: --drill-minutes 15–120, --step 1–60, --parts of 1234")
    url, engine = prepare(args.scale, reuse=args.reuse)
    reset_fleet(engine)
    print(f"{args.scale} city: {fleet_summary(engine)}", flush=True)
    parts = (
        lambda: bench_suggestions(engine, sample_jobs(engine, args.suggestions)),
        lambda: bench_coverage(engine),
        lambda: bench_positions(url, engine, args),
        lambda: bench_drill(engine, args),
    )
    for number, part in enumerate(parts, start=1):
        if str(number) not in args.parts:
            continue
        began = time.perf_counter()
        part()
        print(f"   (part {number}: {time.perf_counter() - began:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
