"""Replay (回放) at seed scale (issue 22): what the history costs to keep and to read.

    python -m bench.replay [--cycles 40] [--jumps 20] [--browser-runs 6] [--reuse]
                           [--database-url URL]

1. Churn: the live city (510k devices at the real 97 readings/s, a storm under way, the fleet
   moving) stepped through `--cycles` status refreshes 15 s apart from the seed's end: the street
   and cell rows each refresh's history wrote, the units' track rows, the refresh's time.
2. A day of history laid down at that churn: every 15 s for the 24 h before the seed's end, a
   full frame at the day's start (and again whenever the changes since the last outgrow one, as
   refresh_status does) and the measured number of changed rows between, so the day's partitions
   are the size a day would make. Bytes per day of each table.
3. Jumps to random instants of that day: the overview's reads and Pudong's map reads (streets,
   grid cells with their device counts, units, incident markers), p50 / p95; Chromium from
   navigation to a replayed Pudong map with its grid drawn (targets: ≤ 1 s and ≤ 1.5 s).
4. Playing at 60×: a whole overview render of a new instant against the 3-s refresh period in
   which a player moves three minutes on.

Uses bench.dashboard's seed-scale database (seeded first unless --reuse finds it).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from bench.dashboard import PUDONG, PUDONG_DRAWN, percentiles, prepare, time_browser
from bench.harness import bench_database, bench_session, serving
from components.replay import stamp
from config import get_settings
from data import catalog, writes
from data.areas import cell_metrics, district_metrics, street_metrics
from data.engine import create_db_engine
from data.event_reads import feed_lines
from data.incident_reads import incident_timeline, live_incident_points
from data.ingest_store import PartitionCache, store_readings
from data.kpis import area_kpis, tile_trends
from data.live_city import load_live_devices, offline_device_ids
from data.resources import unit_positions
from data.unit_positions import load_unit_catalog, store_fixes
from data.vitals import city_vitals
from data.warning_reads import warning_levels
from simulator.fleet import Fleet, fix_batch
from simulator.live import LiveCity, LiveConfig

US = 1_000_000
PERIOD_S = 15
DAY_REFRESHES = 24 * 3600 // PERIOD_S
HISTORY = ("status_history", "cell_status_history", "resource_track")


@dataclass(frozen=True)
class Churn:
    """What one refresh of the live city writes to the history, on average."""

    streets: float
    cells: float
    tracks: float
    refresh_s: tuple[float, float]


def _changes(conn: sa.Connection, table: str, *, since: datetime) -> int:
    """History rows written after `since` by refreshes that were not full frames."""
    return int(
        conn.execute(
            sa.text(
                f"SELECT count(*) FROM {table} h WHERE h.at > :since AND h.at IN"
                " (SELECT r.at FROM status_refresh r WHERE NOT r.keyframe AND r.at > :since)"
            ),
            {"since": since},
        ).scalar_one()
    )


def _count(conn: sa.Connection, table: str) -> int:
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def measure_churn(engine: sa.Engine, *, end: datetime, cycles: int) -> Churn:
    """Step the live city from the seed's end and measure what each refresh writes, in one
    transaction rolled back at the end (so every run starts from the seeded city)."""
    city = LiveCity(
        load_live_devices(engine),
        catalog.load_device_types(),
        replace(LiveConfig(rate=97.0, seed=1), storm_now=True),
        start_us=int(end.timestamp() * US),
        offline_ids=offline_device_ids(engine),
    )
    # no duty officer: its dispatches are stamped with the wall clock, not the city's
    fleet = Fleet(engine, seed=1)
    partitions = PartitionCache()
    units = load_unit_catalog(engine).units
    times = []
    with engine.connect() as conn:
        transaction = conn.begin()
        refresh = sa.text("SELECT refresh_status(:at)")
        conn.execute(refresh, {"at": end})  # the frame the changes are counted from
        for cycle in range(1, cycles + 1):
            now = end + timedelta(seconds=cycle * PERIOD_S)
            store_readings(conn, city.step(int(now.timestamp() * US)), partitions=partitions)
            store_fixes(conn, fix_batch(fleet.step(now.timestamp()), units=units))
            started = time.perf_counter()
            conn.execute(refresh, {"at": now})
            times.append(time.perf_counter() - started)
        # changes only: a full frame (the first, or a city day's first) is not churn
        rows = {table: _changes(conn, table, since=end) / cycles for table in HISTORY[:2]}
        rows["resource_track"] = _count(conn, "resource_track") / cycles
        transaction.rollback()
    return Churn(
        streets=rows["status_history"],
        cells=rows["cell_status_history"],
        tracks=rows["resource_track"],
        refresh_s=percentiles(times),
    )


_NUMBERED = """
CREATE TEMP TABLE numbered ON COMMIT DROP AS
SELECT row_number() OVER (ORDER BY {key}) - 1 AS rn, s.* FROM {live} s;
CREATE INDEX ON numbered (rn);
ANALYZE numbered
"""
# the full frames, then each refresh's changed rows: a block of `changed` keys, moving on
_LAY_DAY = """
WITH refreshes AS (
    SELECT k, CAST(:start AS timestamptz) + k * interval '15 seconds' AS at, k % :every = 0 AS frame
    FROM generate_series(0, :n - 1) k
)
INSERT INTO {history}
SELECT r.at, {columns} FROM refreshes r CROSS JOIN numbered s WHERE r.frame
UNION ALL
SELECT r.at, {columns} FROM refreshes r
JOIN numbered s ON s.rn >= (r.k * :changed) % :keys AND s.rn < (r.k * :changed) % :keys + :changed
WHERE NOT r.frame
"""


def lay_day(engine: sa.Engine, *, end: datetime, churn: Churn) -> None:
    """A day of history before `end` at the measured churn (full frames hourly)."""
    start = end - timedelta(days=1)
    tables = (
        (
            "status_history",
            "street_status",
            "street_code, category_code",
            "s.street_code, s.category_code, s.district_adcode, s.devices_total,"
            " s.devices_online, s.devices_warning, s.devices_alarm, s.devices_maintenance",
            churn.streets,
        ),
        (
            "cell_status_history",
            "cell_status",
            "cell, category_code",
            "s.cell, s.category_code, s.district_adcode, s.street_code, s.devices_total,"
            " s.devices_online, s.devices_warning, s.devices_alarm",
            churn.cells,
        ),
    )
    with engine.connect() as conn:
        keys = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM street_status) + (SELECT count(*) FROM cell_status)"
            )
        ).scalar_one()
    # a full frame at the day's start and whenever the changes since the last have outgrown one
    every = min(DAY_REFRESHES, max(1, math.ceil(keys / max(churn.streets + churn.cells, 1e-9))))
    with engine.begin() as conn:
        for table in HISTORY:
            conn.execute(
                sa.text("SELECT ensure_day_partitions(CAST(:t AS regclass), :a, :b)"),
                {"t": table, "a": start, "b": end},
            )
        conn.execute(
            sa.text(
                "INSERT INTO status_refresh (at, keyframe)"
                " SELECT CAST(:start AS timestamptz) + k * interval '15 seconds', k % :every = 0"
                " FROM generate_series(0, :n - 1) k ON CONFLICT DO NOTHING"
            ),
            {"start": start, "n": DAY_REFRESHES, "every": every},
        )
        for history, live, key, columns, changed in tables:
            for statement in _NUMBERED.format(key=key, live=live).split(";"):
                conn.execute(sa.text(statement))
            rows = conn.execute(sa.text("SELECT count(*) FROM numbered")).scalar_one()
            conn.execute(
                sa.text(_LAY_DAY.format(history=history, columns=columns)),
                {
                    "start": start,
                    "n": DAY_REFRESHES,
                    "changed": round(changed),
                    "keys": rows,
                    "every": every,
                },
            )
            conn.execute(sa.text("DROP TABLE numbered"))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            sa.text("ANALYZE status_history, cell_status_history, status_refresh")
        )


def print_storage(engine: sa.Engine, *, churn: Churn) -> None:
    """Rows and bytes (heap and indexes) of a day of each history table."""
    print("\nbytes per day (full frames as refresh_status writes them, the changes every 15 s):")
    with engine.connect() as conn:
        for table in HISTORY[:2]:
            rows, size = conn.execute(
                sa.text(
                    "SELECT sum(c.reltuples)::bigint, sum(pg_total_relation_size(c.oid))"
                    " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = CAST(:t AS regclass)"
                ),
                {"t": table},
            ).one()
            print(f"  {table:<22} {int(rows or 0):>12,} rows  {int(size or 0) / 2**20:8.1f} MB")
        bytes_per_fix = 80  # a track row: id, time, point, tuple header, index entry
        per_day = churn.tracks * DAY_REFRESHES
        megabytes = per_day * bytes_per_fix / 2**20
        print(
            f"  resource_track         {per_day:>12,.0f} rows  {megabytes:8.1f} MB"
            " (at the fleet's measured moves; ~80 B a row with its index)"
        )


def _timed(read: Callable[[datetime], Any], instants: list[datetime]) -> tuple[float, float]:
    """(p50, p95) ms of `read` of each of `instants`."""
    times = []
    for at in instants:
        started = time.perf_counter()
        read(at)
        times.append(time.perf_counter() - started)
    return percentiles(times)


def overview_at(engine: sa.Engine, at: datetime) -> None:
    """Every read the overview makes for one replayed instant (as its panels make them)."""
    when: dict[str, Any] = {"at": at, "replay": True}
    district_metrics(engine, **when)
    area_kpis(engine, **when)
    tile_trends(engine, at=at)
    city_vitals(engine, at=at)
    warning_levels(engine, **when)
    end = at + timedelta(minutes=1)
    feed_lines(engine, start=end - timedelta(hours=24), end=end, **when)
    live_incident_points(engine, **when)
    incident_timeline(engine, start=at - timedelta(hours=24), end=at)


def pudong_at(engine: sa.Engine, at: datetime) -> None:
    """The Pudong page's map reads for one replayed instant: streets, grid, units, markers."""
    when: dict[str, Any] = {"at": at, "replay": True}
    street_metrics(engine, district=PUDONG, **when)
    cell_metrics(engine, district=PUDONG, **when)
    unit_positions(engine, district=PUDONG, **when)
    live_incident_points(engine, district=PUDONG, **when)


def print_jumps(engine: sa.Engine, *, end: datetime, jumps: int) -> list[datetime]:
    """Reads of random instants of the day before `end`; the instants used."""
    rng = random.Random(22)
    instants = [
        (end - timedelta(seconds=rng.uniform(60, 24 * 3600 - 60))).replace(microsecond=0)
        for _ in range(jumps)
    ]
    print(f"\njump to a random instant of the last 24 h ({jumps} instants, in-process reads):")
    for label, reads in (("overview, every panel", overview_at), ("Pudong map", pudong_at)):
        p50, p95 = _timed(partial(reads, engine), instants)
        print(f"  {label:<24} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    parts: tuple[tuple[str, Callable[[datetime], Any]], ...] = (
        ("district colours", lambda at: district_metrics(engine, at=at, replay=True)),
        ("city tiles", lambda at: area_kpis(engine, at=at, replay=True)),
        ("Pudong grid cells", lambda at: cell_metrics(engine, district=PUDONG, at=at, replay=True)),
        (
            "feed",
            lambda at: feed_lines(
                engine, start=at - timedelta(hours=24), end=at, at=at, replay=True
            ),
        ),
    )
    for name, call in parts:
        p50, p95 = _timed(call, instants)
        print(f"    {name:<22} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    return instants


def print_play(engine: sa.Engine, *, instants: list[datetime]) -> None:
    """Whether a 60× player keeps up: a new instant's whole overview within one 3-s tick."""
    tick = get_settings().ui_refresh_seconds
    steps = [instants[0] + timedelta(seconds=60 * tick * k) for k in range(1, 11)]
    p50, p95 = _timed(partial(overview_at, engine), steps)
    print(
        f"\nplaying at 60× ({tick:.0f}-s ticks, each {60 * tick / 60:.0f} replayed minutes on):"
        f" a new instant's overview p50 {p50:.0f} ms, p95 {p95:.0f} ms"
        f" = {p95 / 1000 / tick:.2f} of the tick on one core"
    )


def print_browser(url: str, *, instants: list[datetime], runs: int) -> None:
    """Chromium from navigation to a drawn Pudong map: live (streets and device clusters) and
    replayed (streets; streets and grid cells), fresh contexts, a new instant each view."""
    engine = create_db_engine(url)
    ticket = bench_session(engine)
    env = {"DATABASE_URL": url, "ONESCREEN_LOG_LEVEL": "WARNING"}
    replayed = (
        "() => document.querySelector('.os-replaying') !== null"
        " && document.querySelectorAll('path.os-area').length > 30"
    )
    cases = (
        ("live: streets + device clusters", [f"/district/{PUDONG}"], PUDONG_DRAWN),
        ("replay: streets", [f"/district/{PUDONG}?at={stamp(at)}" for at in instants], replayed),
        (
            "replay: streets + grid cells",
            [f"/district/{PUDONG}?layer=grid&at={stamp(at)}" for at in instants],
            replayed + " && document.querySelectorAll('path.os-cell').length > 100",
        ),
    )
    log_path = get_settings().data_dir / "bench-replay-serve.log"
    print(f"\nnavigation → Pudong map drawn in Chromium (fresh context each view, {runs} views):")
    medians = {}
    with serving(env, log_path=log_path, timeout_s=180) as base_url:
        time_browser(base_url, ticket, runs=1)  # the server's first view warms its caches
        for label, paths, drawn in cases:
            timings = time_browser(base_url, ticket, runs=runs, paths=paths, drawn=drawn)
            p50, p95 = percentiles(timings)
            medians[label] = p50
            ratio = p50 / medians[cases[0][0]]
            print(
                f"  {label:<32} p50 {p50 / 1000:.2f} s  p95 {p95 / 1000:.2f} s"
                f"  (×{ratio:.2f} of live)"
            )


def main() -> None:
    """Run the replay bench and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=40, help="live refreshes measured")
    parser.add_argument("--jumps", type=int, default=20, help="random instants read")
    parser.add_argument("--browser-runs", type=int, default=6, help="replayed maps in Chromium")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--database-url", help="use this server instead of the bench cluster")
    args = parser.parse_args()
    if min(args.cycles, args.jumps, args.browser_runs) < 1:
        parser.error("--cycles, --jumps and --browser-runs must be at least 1")
    url = args.database_url or bench_database("bench_dashboard", reuse=args.reuse)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    engine = create_db_engine(url)
    prepare(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE status_refresh, {', '.join(HISTORY)}"))
    end = datetime.fromisoformat((writes.get_meta(engine, key="seed") or {})["window_end"])
    churn = measure_churn(engine, end=end, cycles=args.cycles)
    with engine.begin() as conn:
        # the day below is laid on its own: the churn's frame would count twice
        conn.execute(sa.text(f"TRUNCATE status_refresh, {', '.join(HISTORY)}"))
    print(
        f"churn over {args.cycles} live refreshes ({PERIOD_S} s apart): street rows"
        f" {churn.streets:.1f}, cell rows {churn.cells:.1f}, unit track rows {churn.tracks:.1f}"
        f" per refresh; refresh p50 {churn.refresh_s[0]:.0f} ms, p95 {churn.refresh_s[1]:.0f} ms"
    )
    lay_day(engine, end=end, churn=churn)
    print_storage(engine, churn=churn)
    instants = print_jumps(engine, end=end, jumps=args.jumps)
    print_play(engine, instants=instants)
    print_browser(url, instants=instants, runs=args.browser_runs)


if __name__ == "__main__":
    main()
