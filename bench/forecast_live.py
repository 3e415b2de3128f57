"""Early warning under load: the live city streamed at 10× the real rate through `serve` (MQTT
ingest, rules with early warning, gunicorn) on the seed-scale city, while the dashboards'
callbacks are timed against the same callbacks on the quiet city; and a full baseline refit.

    python -m bench.forecast_live [--rate 970] [--seconds 180] [--repeat 20] [--reuse]

Uses the seed-scale city of bench.dashboard (database bench_dashboard on the bench cluster,
seeded on first use). Targets (issue 17): the engine keeps up with 970 readings/s on 2 cores (the
rule inbox does not grow) while the dashboards keep their bench.dashboard figures; a full
baseline refit of 510k devices ≤ 10 min.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from bench.dashboard import time_callbacks
from bench.harness import bench_database, bench_session, serving, settle
from config import get_settings
from data import migrate, writes
from data.engine import create_db_engine
from simulator.seed import seed_city

COSTS = re.compile(
    r"rules cost: (\d+) passes, (\d+) readings, pass p50 (\d+) ms p95 (\d+) ms, early warning "
    r"p50 (\d+) ms p95 (\d+) ms over (\d+) series"
)


@dataclass
class Samples:
    """What the sampler saw every few seconds under load."""

    at: list[float] = field(default_factory=list)
    inbox: list[int] = field(default_factory=list)
    readings: list[int] = field(default_factory=list)
    early: list[int] = field(default_factory=list)


def _sample(engine: sa.Engine, samples: Samples, stop: threading.Event, every_s: float) -> None:
    """Inbox backlog, readings stored today and early-warning incidents opened, until stopped."""
    while not stop.is_set():
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM rule_inbox) AS inbox,"
                    " (SELECT coalesce(sum(n_readings), 0) FROM rollup_district_daily"
                    "   WHERE day = city_day(now())) AS readings,"
                    " (SELECT count(*) FROM incident WHERE kind <> 'alarm') AS early"
                )
            ).one()
        samples.at.append(time.monotonic())
        samples.inbox.append(int(row.inbox))
        samples.readings.append(int(row.readings))
        samples.early.append(int(row.early))
        stop.wait(every_s)


def refit(url: str) -> None:
    """`rules refit` in a process of its own, so its peak memory is its own."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "cli.py", "rules", "refit"],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"full baseline refit, wall {time.perf_counter() - started:.1f} s:")
    print("  " + (done.stdout or done.stderr).strip())


def _prepare(url: str, *, reuse: bool) -> sa.Engine:
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    if not reuse or writes.get_meta(engine, key="seed") is None:
        print("seeding the seed-scale city…", flush=True)
        seed_city(engine, scale="seed", random_seed=get_settings().random_seed, reset=True)
        settle(engine)
    writes.refresh_status(engine)
    return engine


def _report(quiet: dict, loaded: dict, samples: Samples, log_text: str, rate: float) -> None:
    print(f"\n  {'callback':34} {'quiet p50/p95 ms':>18} {'under load p50/p95':>20} {'p95 ×':>6}")
    for label, (q50, q95) in quiet.items():
        l50, l95 = loaded[label]
        print(f"  {label:34} {q50:8.1f} {q95:8.1f}   {l50:8.1f} {l95:8.1f}   {l95 / q95:6.2f}")
    span = samples.at[-1] - samples.at[0]
    stored = (samples.readings[-1] - samples.readings[0]) / max(span, 1e-9)
    half = len(samples.inbox) // 2
    print(
        f"\n  ingest {stored:,.0f} readings/s stored (simulator asked {rate:,.0f}); rule inbox "
        f"backlog median {statistics.median(samples.inbox):,.0f}, first half max "
        f"{max(samples.inbox[:half] or [0]):,}, second half max {max(samples.inbox[half:]):,}"
        f"; early-warning incidents opened {samples.early[-1] - samples.early[0]}"
    )
    for minute in COSTS.findall(log_text):
        passes, readings, p50, p95, e50, e95, watched = (int(x) for x in minute)
        print(
            f"  a minute of rules: {passes} passes over {readings:,} readings; pass p50 {p50} ms, "
            f"p95 {p95} ms; early warning p50 {e50} ms, p95 {e95} ms over {watched:,} series"
        )


def main() -> None:
    """Run the load bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=970.0)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--no-refit", action="store_true")
    args = parser.parse_args()
    url = bench_database("bench_dashboard", reuse=args.reuse)
    engine = _prepare(url, reuse=args.reuse)
    if not args.no_refit:
        refit(url)
    os.environ["DATABASE_URL"] = url
    # one session times every callback back to back: what is measured is their cost, not the
    # per-session limit that would refuse such a flood from a browser (429)
    os.environ["ONESCREEN_CALLBACK_RATE_LIMIT"] = "1000000 per minute"
    get_settings.cache_clear()
    from app import create_app

    app = create_app()
    ticket = bench_session(engine)
    quiet = time_callbacks(app, ticket, repeat=args.repeat)
    env = {
        "DATABASE_URL": url,
        "ONESCREEN_SIMULATE_RATE": str(args.rate),
        "ONESCREEN_LOG_LEVEL": "INFO",
    }
    log_path = get_settings().data_dir / "bench-forecast-serve.log"
    samples, stop = Samples(), threading.Event()
    with serving(env, log_path=log_path, timeout_s=180):
        time.sleep(30)  # the simulator and the rules settle
        sampler = threading.Thread(target=_sample, args=(engine, samples, stop, 5.0), daemon=True)
        sampler.start()
        loaded = time_callbacks(app, ticket, repeat=args.repeat)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - samples.at[0])))
        stop.set()
        sampler.join()
    print(f"\nlive city at {args.rate:g} readings/s for {args.seconds:g} s on the seed-scale city:")
    _report(quiet, loaded, samples, log_path.read_text(errors="replace"), args.rate)


if __name__ == "__main__":
    main()
