"""Platform benchmark: seed-scale generation, ingest path vs plain COPY, query latency vs scale.

    python -m bench.platform            # seed scale (510k devices, ~8.4M readings); ~15 min
    python -m bench.platform --devices 51000   # a quicker look at 10% scale

Uses its own embedded cluster (under ONESCREEN_DATA_DIR/bench-pg, port 54339) unless
--database-url is given, so the dashboard's database is never touched.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.harness import fresh_database, settle, start_bench_cluster
from config import get_settings
from data import catalog, migrate, writes
from data.areas import cell_metrics, district_metrics, street_metrics
from data.devices import area_series
from data.engine import create_db_engine
from data.incident_reads import incident_timeline
from data.kpis import area_kpis, city_kpis
from data.writes import ReadingBatch, copy_into_partitions, ensure_reading_partitions
from simulator import city as city_module
from simulator.seed import geography_from_store, seed_city

PUDONG = "310115"
# a trigger-free twin of `reading` for plain COPY, the baseline of the ingest path
BASELINE_TABLE = "reading_copy_baseline"


def timed(fn: Callable[[], object], *, repeat: int) -> tuple[float, float]:
    """Median and p95 wall time of fn() in milliseconds, after two warm-up calls."""
    fn()
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def query_latencies(engine, *, at: datetime, repeat: int) -> dict[str, tuple[float, float]]:
    """The wall's hot queries, timed warm."""

    def pudong() -> None:
        area_kpis(engine, district=PUDONG, at=at)
        street_metrics(engine, district=PUDONG, at=at)

    return {
        "city KPIs": timed(lambda: city_kpis(engine, at=at), repeat=repeat),
        "district choropleth (16)": timed(lambda: district_metrics(engine, at=at), repeat=repeat),
        "Pudong district (KPIs + streets)": timed(pudong, repeat=repeat),
        "Pudong H3 cells": timed(lambda: cell_metrics(engine, district=PUDONG), repeat=repeat),
        "Pudong 24 h series": timed(
            lambda: area_series(engine, district=PUDONG, start=at.replace(hour=0) - _day(), end=at),
            repeat=repeat,
        ),
        "city incident timeline 24 h": timed(
            lambda: incident_timeline(engine, start=at - _day(), end=at), repeat=repeat
        ),
    }


def _day():
    from datetime import timedelta

    return timedelta(days=1)


def create_copy_baseline(engine: Engine) -> None:
    """A partitioned table shaped like `reading` (same columns and key) with no trigger."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {BASELINE_TABLE}"))
        conn.execute(
            sa.text(
                f"CREATE TABLE {BASELINE_TABLE} (LIKE reading INCLUDING DEFAULTS"
                " INCLUDING CONSTRAINTS) PARTITION BY RANGE (ts)"
            )
        )
        conn.execute(sa.text(f"ALTER TABLE {BASELINE_TABLE} ADD PRIMARY KEY (device_id, ts)"))


def copy_into_baseline(engine: Engine, batch: ReadingBatch) -> int:
    """Plain COPY of the batch into the baseline's daily partitions, as the bulk loader does."""
    with engine.begin() as conn:
        _ensure_baseline_partitions(conn, batch)
        copy_into_partitions(conn, batch, partition_suffix="_baseline")
    return len(batch)


def _ensure_baseline_partitions(conn: sa.Connection, batch: ReadingBatch) -> None:
    start, end = batch.time_range()
    ensure_reading_partitions(conn, start=start, end=end)
    missing = conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'reading'::regclass"
            " AND to_regclass(c.relname || '_baseline') IS NULL"
        )
    ).all()
    for name, bound in missing:
        conn.execute(sa.text(f"CREATE TABLE {name}_baseline PARTITION OF {BASELINE_TABLE} {bound}"))


def drop_copy_baseline(engine: Engine) -> None:
    """Remove the baseline table and its partitions."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {BASELINE_TABLE}"))


def plain_copy_rate(engine: Engine, planned, types) -> float:
    """Readings/s of the city's rows again, by plain COPY into the trigger-free twin."""
    create_copy_baseline(engine)
    copy_seconds, copied = 0.0, 0
    for batch in city_module.iter_reading_batches(planned, types):
        start = time.perf_counter()
        copied += copy_into_baseline(engine, batch)
        copy_seconds += time.perf_counter() - start
    drop_copy_baseline(engine)
    return copied / copy_seconds


def online_path(engine: Engine, planned, types) -> None:
    """The online path (issue 4's HTTP/MQTT ingest): COPY into `reading`, statement trigger."""
    trigger_seconds, through_trigger = 0.0, 0
    for number, batch in enumerate(city_module.iter_reading_batches(planned, types)):
        if number == 3:
            break
        next_day = writes.ReadingBatch(
            device_id=batch.device_id,
            ts_us=batch.ts_us + 86_400_000_000,
            value=batch.value,
            quality=batch.quality,
        )
        start = time.perf_counter()
        with engine.begin() as conn:
            through_trigger += writes.copy_readings(conn, next_day)
        trigger_seconds += time.perf_counter() - start
    print(
        f"online path (COPY+trigger) {through_trigger / trigger_seconds:10,.0f} readings/s "
        f"({through_trigger:,} rows; rollups kept by the statement trigger)"
    )


def seed_scale(engine: Engine, full, *, end: datetime, repeat: int):
    """Seed the full-scale city and print generation, ingest and COPY figures; returns its
    query latencies."""
    settings = get_settings()
    print(f"== seed scale: {full.devices:,} devices, {full.history_hours} h of readings")
    report = seed_city(
        engine, scale=full.name, random_seed=settings.random_seed, end=end, reset=True
    )
    print(
        f"generation total          {report.seconds:8.1f} s  ({report.devices:,} devices, "
        f"{report.readings:,} readings, {report.incidents:,} incidents)"
    )
    write_rate = report.readings / report.readings_seconds
    print(
        f"ingest path (bulk loader)  {write_rate:10,.0f} readings/s "
        f"({report.readings_seconds:.1f} s for all readings; COPY + rollups + latest state)"
    )
    # the same rows again, by plain COPY into a trigger-free twin of `reading`
    geography, _ = geography_from_store(engine)
    types = catalog.load_device_types()
    planned = city_module.plan_city(
        geography=geography,
        categories=catalog.load_categories(),
        device_types=types,
        scale=full,
        random_seed=settings.random_seed,
        end=end,
    )
    copy_rate = plain_copy_rate(engine, planned, types)
    print(f"plain COPY (same rows)     {copy_rate:10,.0f} readings/s")
    print(f"ingest / plain COPY ratio  {write_rate / copy_rate:10.2f}   (target ≥ 0.5)")
    settle(engine)
    latencies = query_latencies(engine, at=report.end, repeat=repeat)
    online_path(engine, planned, types)
    return latencies


def main() -> None:
    """Run the platform bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="benchmark this server instead of an embedded one")
    parser.add_argument("--devices", type=int, default=510_000, help="full-scale device count")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per query")
    args = parser.parse_args()

    settings = get_settings()
    # the bench cluster, when this run starts it, stops when it ends
    url = args.database_url or fresh_database(start_bench_cluster(), name="bench")
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    full = replace(city_module.SCALES["seed"], name="bench-full", devices=args.devices)
    small = replace(full, name="bench-1pct", devices=max(args.devices // 100, 500))
    city_module.SCALES[full.name] = full
    city_module.SCALES[small.name] = small
    big = seed_scale(engine, full, end=end, repeat=args.repeat)

    print(f"\n== 1% scale: {small.devices:,} devices")
    small_report = seed_city(
        engine, scale=small.name, random_seed=settings.random_seed, end=end, reset=True
    )
    settle(engine)
    little = query_latencies(engine, at=small_report.end, repeat=args.repeat)

    print(
        f"\n{'query (warm, ms)':34} {'seed p50':>9} {'seed p95':>9} {'1% p50':>8} "
        f"{'1% p95':>8} {'ratio p50':>9}"
    )
    for name, (p50, p95) in big.items():
        s50, s95 = little[name]
        print(f"{name:34} {p50:9.2f} {p95:9.2f} {s50:8.2f} {s95:8.2f} {p50 / s50:9.2f}")
    print("targets: city KPIs ≤ 50 ms, Pudong district ≤ 200 ms, seed/1% ratio ≤ 2")
    engine.dispose()


if __name__ == "__main__":
    main()
