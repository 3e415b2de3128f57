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
from components.theme import STATE_RANK
from config import get_settings
from data import migrate, rules_store, writes
from data.devices import CELL_STATES, cell_points, devices_in_box
from data.engine import create_db_engine
from simulator.seed import seed_city
from web.device_layer import DEVICE_ZOOM, cluster_features

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


# readings a 15-s period brings: seed scale's average (8.4M a day), the target's average
# (~1,900/s) and the worst storm's peak (33,000/s, SCALING.md)
PERIOD_S = 15
RATES = {"seed rate": 97, "target rate": 1_900, "storm peak": 33_000}
# share of a period's readings whose level differs from the device's last one
LEVEL_CHANGES = 0.02

PERIOD_READINGS = """
INSERT INTO reading (device_id, ts, value, quality)
SELECT l.device_id, :at + random() * (:period * interval '1 second'),
       CASE WHEN random() < :changed THEN coalesce(t.alarm_max, t.normal_max) + 1 ELSE l.value END,
       0
FROM device_latest l
JOIN device d ON d.id = l.device_id
JOIN device_type t ON t.id = d.type_id
WHERE l.device_id IN (
    SELECT (1 + floor(random() * (SELECT max(id) FROM device)))::bigint
    FROM generate_series(1, :count)
)
"""


def job_timings(engine: sa.Engine, *, repeat: int) -> dict[str, tuple[float, float]]:
    """The status pass and the offline scan over one 15-s period of readings at each rate
    (readings, pass and scan rolled back: the city stays as seeded), after a first count."""
    at = _seed_end(engine)
    limits = _offline_limits(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        # nothing counted yet (just migrated or seeded): every device, once
        conn.execute(sa.text("SELECT refresh_status(:at)"), {"at": at})
    first = (time.perf_counter() - started) * 1000
    timings = {"status, first count (committed)": (first, first)}
    end = at + timedelta(seconds=PERIOD_S)
    for label, rate in RATES.items():
        passes, scans = [], []
        for _ in range(repeat):
            with engine.connect() as conn:
                conn.execute(
                    sa.text("SELECT ensure_reading_partitions(:a, :b)"), {"a": at, "b": end}
                )
                conn.execute(
                    sa.text(PERIOD_READINGS),
                    {
                        "at": at,
                        "period": PERIOD_S,
                        "changed": LEVEL_CHANGES,
                        "count": rate * PERIOD_S,
                    },
                )
                passes.append(_timed(conn, "SELECT refresh_status(:at)", {"at": end}))
                started = time.perf_counter()
                rules_store.open_offline_incidents(
                    conn, limits=limits, now=end, watch_start=at - timedelta(hours=2), max_new=0
                )
                scans.append((time.perf_counter() - started) * 1000)
                conn.rollback()
        timings[f"status pass, {label}"] = (statistics.median(passes), max(passes))
        timings[f"offline scan, {label}"] = (statistics.median(scans), max(scans))
    return timings


def _timed(conn: sa.Connection, sql: str, params: dict) -> float:
    started = time.perf_counter()
    conn.execute(sa.text(sql), params)
    return (time.perf_counter() - started) * 1000


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
    """Pudong's device snapshot as the map's device layer reads it (web.device_layer: every
    device, by grid cell from the counters), its clusters at district and street zoom, and the
    devices of a street-sized view read by box."""
    started = time.perf_counter()
    frame = cell_points(engine, district=PUDONG)[PUDONG]
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        total = conn.execute(
            sa.text(
                "SELECT count(*) FROM device WHERE district_adcode = :d AND status <> 'retired'"
            ),
            {"d": PUDONG},
        ).scalar_one()
    counted = float(frame[list(CELL_STATES)].to_numpy().sum())
    figures = {"devices": float(total), "in snapshot": counted, "seconds": seconds}
    # a view around the district's busiest cell
    busiest = frame.loc[frame[list(CELL_STATES)].sum(axis=1).idxmax()]
    west, south = float(busiest["lon"]) - 0.01, float(busiest["lat"]) - 0.01
    for zoom, bbox in (
        (10, None),
        (13, (west, south, west + 0.06, south + 0.04)),
        (16, (west, south, west + 0.02, south + 0.02)),
    ):
        started = time.perf_counter()
        if zoom >= DEVICE_ZOOM and bbox is not None:
            view = devices_in_box(engine, district=PUDONG, bbox=bbox, states=STATE_RANK)
        else:
            view = frame
        features = cluster_features(view, zoom=zoom, bbox=bbox)["features"]
        figures[f"zoom {zoom} ms"] = (time.perf_counter() - started) * 1000
        figures[f"zoom {zoom} features"] = float(len(features))
    return figures


def measure(url: str, *, repeat: int) -> tuple[dict, dict]:
    """One city's read and job timings, and its device-snapshot figures."""
    engine = create_db_engine(url)
    try:
        at = _seed_end(engine)
        timings = query_latencies(engine, at=at, repeat=repeat)
        timings.update(job_timings(engine, repeat=3))
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
            f"{figures['devices']:,.0f} devices in {figures['seconds']:.1f} s; clusters "
            + ", ".join(
                f"zoom {z}: {figures[f'zoom {z} features']:,.0f} features in "
                f"{figures[f'zoom {z} ms']:.0f} ms"
                for z in (10, 13, 16)
            )
        )
    print("targets: dashboard reads 10M/seed ≤ 2; status snapshot and offline scan ≤ 15 s")


if __name__ == "__main__":
    main()
