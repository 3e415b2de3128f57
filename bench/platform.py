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

from config import get_settings
from data import catalog, migrate, writes
from data.areas import cell_metrics, district_metrics, street_metrics
from data.bench_support import (
    copy_into_baseline,
    create_copy_baseline,
    drop_copy_baseline,
    fresh_database,
    settle,
)
from data.devices import area_series
from data.embedded import EmbeddedPostgres
from data.engine import create_db_engine
from data.incident_reads import incident_timeline
from data.kpis import area_kpis, city_kpis
from simulator import city as city_module
from simulator.seed import geography_from_store, seed_city

PUDONG = "310115"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="benchmark this server instead of an embedded one")
    parser.add_argument("--devices", type=int, default=510_000, help="full-scale device count")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per query")
    args = parser.parse_args()

    settings = get_settings()
    cluster = None
    if args.database_url:
        url = args.database_url
    else:
        cluster = EmbeddedPostgres(
            root=settings.data_dir / "bench-pg",
            port=54339,
            bin_dir=settings.pg_bin_dir,
            os_user=settings.pg_os_user,
        )
        url = fresh_database(cluster.ensure_running(), name="bench")
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    full = replace(city_module.SCALES["seed"], name="bench-full", devices=args.devices)
    small = replace(full, name="bench-1pct", devices=max(args.devices // 100, 500))
    city_module.SCALES[full.name] = full
    city_module.SCALES[small.name] = small

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
    create_copy_baseline(engine)
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
    copy_seconds, copied = 0.0, 0
    for batch in city_module.iter_reading_batches(planned, types):
        start = time.perf_counter()
        copied += copy_into_baseline(engine, batch)
        copy_seconds += time.perf_counter() - start
    drop_copy_baseline(engine)
    copy_rate = copied / copy_seconds
    print(f"plain COPY (same rows)     {copy_rate:10,.0f} readings/s ({copy_seconds:.1f} s)")
    print(f"ingest / plain COPY ratio  {write_rate / copy_rate:10.2f}   (target ≥ 0.5)")

    settle(engine)
    big = query_latencies(engine, at=report.end, repeat=args.repeat)

    # the online path (issue 4's HTTP/MQTT ingest): COPY into `reading`, statement trigger
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
    if cluster is not None:
        print(f"\n(bench cluster left running at {cluster.root}; `pg_ctl stop` or rerun to reuse)")


if __name__ == "__main__":
    main()
