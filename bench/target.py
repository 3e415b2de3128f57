"""The platform's own target, 10 million devices, beside seed scale in one run.

    python -m bench.target [--reuse] [--repeat 20]

Seeds `seed --scale target` (10M devices over the 16 districts, Pudong ~2M, 2 h of readings)
into the bench cluster's `bench_target` database unless --reuse finds it, reporting seeding time
and disk; the seed-scale city is the load bench's `bench_dashboard` (seeded if missing). On both
it times the dashboard's hot reads and the linear background jobs (the status snapshot and the
offline scan, which must finish within their 15-s period), and prints the 10M/seed ratios
(target ≤ 2 for the dashboard reads).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench.harness import bench_database, settle
from bench.load import seeded_database
from bench.platform import PUDONG, query_latencies
from config import get_settings
from data import migrate, rules_store, writes
from data.devices import area_devices
from data.engine import create_db_engine
from simulator.seed import seed_city

DATABASE = "bench_target"


def target_database(*, reuse: bool) -> str:
    """The 10M-device city's URL, seeded now unless `reuse` finds it; prints time and disk."""
    url = bench_database(DATABASE, reuse=reuse)
    engine = create_db_engine(url)
    try:
        migrate.upgrade(engine)
        if writes.get_meta(engine, key="seed") is None:
            print("seeding the target city (10M devices, 2 h of readings)…", flush=True)
            report = seed_city(
                engine, scale="target", random_seed=get_settings().random_seed, reset=True
            )
            print(
                f"  seeded in {report.seconds:.0f} s: {report.devices:,} devices, "
                f"{report.readings:,} readings ({report.readings_seconds:.0f} s writing them), "
                f"{report.incidents:,} incidents",
                flush=True,
            )
            settle(engine)
        print(f"  database size: {_size(engine)}", flush=True)
    finally:
        engine.dispose()
    return url


def _size(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT pg_size_pretty(pg_database_size(current_database()))")
            ).scalar_one()
        )


def job_timings(engine: sa.Engine, *, repeat: int) -> dict[str, tuple[float, float]]:
    """The status snapshot and one offline scan, each rolled back (the city stays as seeded)."""
    at = _seed_end(engine)
    limits = _offline_limits(engine)

    def refresh() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT refresh_status(:at)"), {"at": at})
            conn.rollback()

    def offline() -> None:
        with engine.connect() as conn:
            rules_store.open_offline_incidents(
                conn, limits=limits, now=at, watch_start=at - timedelta(hours=2), max_new=0
            )
            conn.rollback()

    # these run for seconds to minutes: `repeat` single runs, no warm-up
    return {
        "status snapshot (refresh_status)": _runs(refresh, repeat=repeat),
        "offline scan (candidates)": _runs(offline, repeat=repeat),
    }


def _runs(fn, *, repeat: int) -> tuple[float, float]:
    """Median and slowest of `repeat` runs of fn(), in milliseconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def _offline_limits(engine: sa.Engine) -> rules_store.OfflineLimits:
    """Every type's offline limit as the rules engine computes it (3× interval, ≥ 10 min)."""
    with engine.connect() as conn:
        types = conn.execute(sa.text("SELECT id, interval_s FROM device_type ORDER BY id")).all()
    return rules_store.OfflineLimits(
        [row.id for row in types],
        [max(3.0 * row.interval_s, 600.0) for row in types],
        ["minor" for _ in types],
    )


def _seed_end(engine: sa.Engine) -> datetime:
    meta = writes.get_meta(engine, key="seed") or {}
    return datetime.fromisoformat(str(meta.get("window_end"))).astimezone(UTC)


def cluster_figures(engine: sa.Engine) -> dict[str, float]:
    """Pudong's device snapshot: how many devices it holds, its cap, and the read's time."""
    started = time.perf_counter()
    frame = area_devices(engine, district=PUDONG)
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        total = conn.execute(
            sa.text(
                "SELECT count(*) FROM device WHERE district_adcode = :d AND status <> 'retired'"
            ),
            {"d": PUDONG},
        ).scalar_one()
    return {"devices": float(total), "in snapshot": float(len(frame)), "seconds": seconds}


def measure(url: str, *, repeat: int) -> tuple[dict, dict]:
    """One city's read and job timings, and its device-snapshot figures."""
    engine = create_db_engine(url)
    try:
        at = _seed_end(engine)
        timings = query_latencies(engine, at=at, repeat=repeat)
        timings.update(job_timings(engine, repeat=2))
        return timings, cluster_figures(engine)
    finally:
        engine.dispose()


def main() -> None:
    """Seed (or reuse) both cities, measure both, print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="keep seeded cities")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per read")
    args = parser.parse_args()
    big_url = target_database(reuse=args.reuse)
    seed_url = seeded_database(reuse=True)
    print("measuring the seed-scale city…", flush=True)
    seed, seed_devices = measure(seed_url, repeat=args.repeat)
    print("measuring the target city…", flush=True)
    big, big_devices = measure(big_url, repeat=args.repeat)
    heads = ("seed p50", "seed p95", "10M p50", "10M p95", "ratio p95")
    print(f"\n{'read or job (ms)':36} " + " ".join(f"{head:>9}" for head in heads))
    for name, (p50, p95) in seed.items():
        b50, b95 = big[name]
        print(f"{name:36} {p50:9.1f} {p95:9.1f} {b50:9.1f} {b95:9.1f} {b95 / p95:9.2f}")
    for label, figures in (("seed", seed_devices), ("10M", big_devices)):
        print(
            f"Pudong device snapshot, {label}: {figures['in snapshot']:,.0f} of "
            f"{figures['devices']:,.0f} devices in {figures['seconds']:.1f} s"
        )
    print("targets: dashboard reads 10M/seed ≤ 2; status snapshot and offline scan ≤ 15 s")


if __name__ == "__main__":
    main()
