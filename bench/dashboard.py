"""Dashboard figures at seed scale: server time of the overview and Pudong callbacks, and the
time from navigation to a drawn Pudong map in headless Chromium.

    python -m bench.dashboard [--repeat 30] [--browser-runs 10] [--starts 3] [--reuse]
                              [--browser-only] [--database-url URL] [--settle SECONDS]

Seeds the seed-scale city (510k devices, 24 h, ~45 s) into its own database on the bench
cluster (ONESCREEN_DATA_DIR/bench-pg, port 54339) unless --reuse finds it already seeded.
The browser part starts `serve` --starts times; after each start the first view is timed on its
own (what a wall or a viewer meets right after a deploy), then --browser-runs more views.
Targets (issues 3 and 18): overview p95 ≤ 150 ms, Pudong p95 ≤ 300 ms; Pudong map drawn:
first view after start ≤ 3 s, p95 ≤ 2 s; scenario views (issue 20) within the overview's 150 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from bench.harness import (
    bench_database,
    bench_session,
    browser_cookies,
    csrf_header,
    launch_chromium,
    serving,
    settle,
    signed_in_client,
)
from config import get_settings
from data import migrate, writes
from data.engine import create_db_engine
from simulator.seed import seed_city

PUDONG = "310115"


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def callback_payload(app, output_fragment: str, values: dict) -> dict:
    """The JSON body Dash's renderer posts for the callback whose output contains the fragment."""
    key = next(k for k in app.callback_map if output_fragment in k)
    spec = app.callback_map[key]

    def fill(items: list[dict]) -> list[dict]:
        return [{**item, "value": values.get(_name(item), None)} for item in items]

    outputs = [
        {"id": _id(part.rsplit(".", 1)[0]), "property": part.rsplit(".", 1)[1]}
        for part in key.strip(".").split("...")
    ]
    return {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],
        "inputs": fill(spec["inputs"]),
        "state": fill(spec["state"]),
        "changedPropIds": [],
    }


def _id(text: str):
    return json.loads(text) if text.startswith("{") else text


def _name(item: dict) -> str:
    ident = _id(item["id"])
    key = ident["key"] if isinstance(ident, dict) else ident
    return f"{key}.{item['property']}"


def time_callbacks(app, ticket, *, repeat: int) -> dict[str, tuple[float, float]]:
    """p50/p95 (ms) of each callback through the Flask stack (JSON in, JSON out), signed in."""
    client = signed_in_client(app, ticket)
    client.get("/")  # Dash registers its callbacks on the first request
    overview = {
        "metric.value": "open_incidents",
        "category.value": "",
        "stack.value": "severity",
        "os-refresh.n_intervals": 1,
        "os-lang.data": "zh",
    }
    pudong = {
        **overview,
        "street.data": None,
        "layer.value": "streets",
        "district-state.data": {"district": PUDONG},
        "district-devices.url": None,
    }
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "overview: page layout": (
            "_pages_content.children",
            {
                "_pages_location.pathname": "/",
                "_pages_location.search": "",
                "_pages_store.data": None,
            },
        ),
        "overview: map": ("overview-areas.hideout", overview),
        "overview: tiles": ("overview-tiles.children", overview),
        "overview: timeline": ("overview-timeline-box.children", overview),
        "overview: feed": ("overview-feed.children", overview),
        "Pudong: page layout": (
            "_pages_content.children",
            {
                "_pages_location.pathname": f"/district/{PUDONG}",
                "_pages_location.search": "",
                "_pages_store.data": None,
            },
        ),
        "Pudong: streets map + ranking": ("district-areas.hideout", pudong),
        "Pudong: grid heat": ("district-areas.hideout", {**pudong, "layer.value": "grid"}),
        "Pudong: tiles": ("district-tiles.children", pudong),
        "Pudong: timeline": ("district-timeline-box.children", pudong),
        "Pudong: feed": ("district-feed.children", pudong),
        "Pudong: incident markers": ("district-markers.data", pudong),
        **{
            f"{topic} view: {part}": (
                f"topic-{output}",
                {**overview, "topic-state.data": {"topic": topic}},
            )
            for topic in ("flood", "power", "elderly")
            for part, output in (
                ("figures", "figures.children"),
                ("map", "areas.hideout"),
                # the scenario's own day answers with its timeline
                ("timeline + day", "timeline-box.children"),
                ("feed", "feed.children"),
            )
        },
    }
    results = {}
    for label, (fragment, values) in cases.items():
        payload = callback_payload(app, fragment, values)
        samples = []
        for index in range(repeat + 2):
            started = time.perf_counter()
            response = client.post(
                "/_dash-update-component", json=payload, headers=csrf_header(ticket)
            )
            elapsed = time.perf_counter() - started
            if response.status_code not in (200, 204):
                raise RuntimeError(f"{label}: HTTP {response.status_code} {response.data[:300]!r}")
            if index >= 2:  # first calls warm caches and connections
                samples.append(elapsed)
        results[label] = percentiles(samples)
    return results


def time_device_layer(app, ticket) -> dict[str, float]:
    """Pudong's device layer: cold snapshot build, then per-view clusters (ms, features, KiB)."""
    from web import device_layer

    client = signed_in_client(app, ticket)
    figures: dict[str, float] = {}
    version = device_layer.snapshot_version() + 0
    started = time.perf_counter()
    client.get(device_layer.devices_url(district=PUDONG, category=None, zoom=10, version=version))
    figures["cold_ms"] = (time.perf_counter() - started) * 1000
    # a 1920×1080 view around Lujiazui at each zoom (bounds as Leaflet reports them)
    for zoom in (10, 12, 14):
        half_lon = 1920 / 2 * 360 / (256 * 2**zoom)
        half_lat = 1080 / 2 * 360 / (256 * 2**zoom) * 0.855
        bounds = [[31.235 - half_lat, 121.505 - half_lon], [31.235 + half_lat, 121.505 + half_lon]]
        url = device_layer.devices_url(
            district=PUDONG, category=None, zoom=zoom, bounds=bounds, version=version
        )
        samples = []
        for _ in range(10):
            started = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - started)
        body = response.get_json()
        figures[f"z{zoom}_ms"] = statistics.median(samples) * 1000
        figures[f"z{zoom}_features"] = len(body["features"])
        figures[f"z{zoom}_kib"] = len(response.data) / 1024
    return figures


# a Pudong map drawn: its streets and device clusters
PUDONG_DRAWN = (
    "() => document.querySelectorAll('path.os-area').length > 30"
    " && document.querySelectorAll('.os-cluster').length > 0"
)


# one request of a view: what it asked for, and when it started and ended (ms after navigation);
# or a MARK: when the page first showed a part of its map
Fetch = tuple[str, float, float]
MARK = "drawn: "
# when the streets and the device clusters first showed (ms after navigation)
DRAWN_MARKS = """
window.osDrawnMarks = {};
new MutationObserver(() => {
    const m = window.osDrawnMarks, now = performance.now();
    if (!m.streets && document.querySelectorAll("path.os-area").length > 30) m.streets = now;
    if (!m.clusters && document.querySelector(".os-cluster")) m.clusters = now;
}).observe(document, {subtree: true, childList: true});
"""


def time_browser(
    url: str,
    ticket,
    *,
    runs: int,
    paths: Sequence[str] = (f"/district/{PUDONG}",),
    drawn: str = PUDONG_DRAWN,
    waterfalls: list[list[Fetch]] | None = None,
) -> list[float]:
    """Seconds from navigation to a drawn map (`drawn`, a script; a Pudong map of streets and
    device clusters by default) in Chromium, `runs` times over `paths` in turn, each in a fresh
    browser context (nothing cached); with `waterfalls`, each view's requests appended to it."""
    from playwright.sync_api import sync_playwright

    timings = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for run in range(runs):
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            context.add_cookies(browser_cookies(ticket))
            page = context.new_page()
            fetches: list[Fetch] = []
            if waterfalls is not None:  # watched only when asked for: the views stay as timed
                page.on("requestfinished", lambda r, kept=fetches: kept.append(_fetch(r)))
                page.add_init_script(DRAWN_MARKS)
            navigated, started = time.time() * 1000, time.perf_counter()
            page.goto(url + paths[run % len(paths)], wait_until="commit")
            page.wait_for_function(drawn, timeout=60_000)
            timings.append(time.perf_counter() - started)
            if waterfalls is not None:
                marks = page.evaluate("() => window.osDrawnMarks")
                view = [(what, s - navigated, e - navigated) for what, s, e in fetches]
                waterfalls.append(view + [(f"{MARK}{n}", t, t) for n, t in marks.items()])
            context.close()
        browser.close()
    return timings


def _fetch(request) -> Fetch:
    """A finished request: its path (and the Dash output it asked for), start and end (epoch ms)."""
    timing = request.timing
    what = urlsplit(request.url).path
    if what.endswith("_dash-update-component"):
        body = request.post_data_json or {}
        what = "callback " + str(body.get("output", "?"))[:48]
    start = timing["startTime"]
    return what, start, start + max(timing["responseEnd"], 0)


def print_waterfalls(timings: list[float], waterfalls: list[list[Fetch]]) -> None:
    """Where the views spent their time: until their last request ended (server and network),
    and after it (the browser's own work, drawing); and the slowest views' longest requests."""
    requests = [[f for f in fetches if not f[0].startswith(MARK)] for fetches in waterfalls]
    ends = [max((end for _, _, end in fetches), default=0.0) for fetches in requests]
    tails = [seconds * 1000 - end for seconds, end in zip(timings, ends, strict=True)]
    for name, values in (("until the last request ended", ends), ("after it", tails)):
        p50, p95 = percentiles([value / 1000 for value in values])
        print(f"  {name}: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    slowest = sorted(range(len(timings)), key=timings.__getitem__)[-3:]
    for view in reversed(slowest):
        marks = ", ".join(f"{w} {s:.0f} ms" for w, s, _ in waterfalls[view] if w.startswith(MARK))
        print(
            f"  a view of {timings[view]:.2f} s: its last request ended at {ends[view]:.0f} ms"
            f" ({marks}); its longest requests (ms after navigation):"
        )
        for what, start, end in sorted(requests[view], key=lambda f: f[1] - f[2])[:4]:
            print(f"    {start:7.0f} → {end:7.0f}  ({end - start:5.0f} ms)  {what}")


def time_starts(
    env: dict[str, str], ticket, *, starts: int, runs: int, settle_s: float = 0.0
) -> tuple[list[float], list[float], list[float], list[list[Fetch]]]:
    """Start `serve` `starts` times: seconds until it answered, the first view after each start
    (`settle_s` after it answered), the `runs` views after it (pooled), and their requests."""
    log_path = get_settings().data_dir / "bench-dashboard-serve.log"
    ready, first, rest, waterfalls = [], [], [], []
    for _ in range(starts):
        started = time.perf_counter()
        with serving(env, log_path=log_path, timeout_s=120) as base_url:
            ready.append(time.perf_counter() - started)
            # a settled server: its jobs' start-up work (at 10M, the rules engine's watch) done
            time.sleep(settle_s)
            views: list[list[Fetch]] = []
            timings = time_browser(base_url, ticket, runs=runs + 1, waterfalls=views)
        first.append(timings[0])
        rest += timings[1:]
        waterfalls += views[1:]
    return ready, first, rest, waterfalls


def print_browser(
    ready: list[float], first: list[float], rest: list[float], waterfalls: list[list[Fetch]]
) -> None:
    """The navigation → Pudong map drawn figures, and where the slowest later views waited."""
    p50, p95 = percentiles(rest)
    print(
        "\nnavigation → Pudong map drawn (streets + clusters) in Chromium, fresh browser context"
        " each view:"
    )
    print(
        f"  server start until it answered: {', '.join(f'{s:.1f}' for s in ready)} s"
        f" ({len(ready)} start{'s' if len(ready) > 1 else ''})"
    )
    print(
        f"  first view after start: median {statistics.median(first):.2f} s, max"
        f" {max(first):.2f} s ({', '.join(f'{s:.2f}' for s in first)})"
    )
    print(
        f"  later views ({len(rest)}): p50 {p50 / 1000:.2f} s, p95 {p95 / 1000:.2f} s,"
        f" max {max(rest):.2f} s"
    )
    print_waterfalls(rest, waterfalls)


def main() -> None:
    """Run the dashboard bench and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=30, help="calls per callback timed")
    parser.add_argument(
        "--browser-runs", type=int, default=10, help="views timed after each start's first"
    )
    parser.add_argument("--starts", type=int, default=3, help="server starts (first views)")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument(
        "--browser-only", action="store_true", help="skip the in-process callback timings"
    )
    parser.add_argument("--database-url", help="use this server instead of the bench cluster")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds to wait after each start before the views are timed (a settled server)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="readings/s the served city's simulator sends (default: the city's own, at least"
        " 97: a 10M city ~1,900)",
    )
    args = parser.parse_args()
    if args.repeat < 1 or args.browser_runs < 1 or args.starts < 1 or args.settle < 0:
        parser.error("--repeat, --browser-runs and --starts must be at least 1, --settle ≥ 0")
    if args.rate is not None and not 0 < args.rate <= 1_000_000:
        parser.error("--rate must be a number of readings/s above 0, at most 1,000,000")
    url = args.database_url or bench_database("bench_dashboard", reuse=args.reuse)
    engine = create_db_engine(url)
    prepare(engine)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    ticket = bench_session(engine)
    if not args.browser_only:
        print_topic_reads(engine, repeat=args.repeat)
        print_warning_pass(engine, repeat=args.repeat)
        print_server_figures(ticket, repeat=args.repeat)
    env = {"DATABASE_URL": url, "ONESCREEN_LOG_LEVEL": "WARNING"}
    if args.rate:
        env["ONESCREEN_SIMULATE_RATE"] = f"{args.rate:g}"
    print(f"\nthe live city streams {args.rate or 'its own rate of'} readings/s meanwhile")
    print_browser(
        *time_starts(env, ticket, starts=args.starts, runs=args.browser_runs, settle_s=args.settle)
    )
    if args.settle:
        print(f"  (views timed from {args.settle:g} s after each start had answered)")


def prepare(engine) -> None:
    """Migrate, seed the seed-scale city unless there is one, refresh the device states."""
    settings = get_settings()
    migrate.upgrade(engine)
    if writes.get_meta(engine, key="seed") is None:
        print("seeding the seed-scale city (510k devices, 24 h)…", flush=True)
        started = time.perf_counter()
        report = seed_city(engine, scale="seed", random_seed=settings.random_seed, reset=True)
        print(
            f"  {report.devices:,} devices, {report.readings:,} readings "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        settle(engine)
    writes.refresh_status(engine)


def print_topic_reads(engine, *, repeat: int) -> None:
    """Each scenario's reads straight from the store, no shared answer (what the first viewer
    of a period waits for): its figures, its day by the hour, its alarms' times."""
    from components.topic_trends import trend_query
    from components.topics import TOPICS, timed_measurands, topic_measurands
    from data.topic_reads import alarm_times, measurands_now
    from data.vitals import measurand_hours

    reads: tuple[tuple[str, Any, Any], ...] = (
        ("figures", measurands_now, lambda topic: {"measurands": topic_measurands(topic)}),
        ("day by hour", measurand_hours, trend_query),
        ("alarm times", alarm_times, lambda topic: {"measurands": timed_measurands(topic)}),
    )
    print(f"\nscenario reads, uncached, over {repeat} reads each (city-wide), p50 / p95 ms:")
    for topic in TOPICS:
        figures = []
        for label, function, query in reads:
            if not query(topic)["measurands"]:
                continue
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                function(engine, **query(topic))
                samples.append(time.perf_counter() - started)
            p50, p95 = percentiles(samples)
            figures.append(f"{label} {p50:6.1f} / {p95:6.1f}")
        print(f"  {topic:10} " + "   ".join(figures))


def print_warning_pass(engine, *, repeat: int) -> None:
    """The warning levels' evaluation as the rules engine runs it every 30 s: the rules' counts
    over every district's devices and live alarms, then the levels locked, decided and saved."""
    from data.warning_store import warning_counts
    from ingest.rules_engine import RulesEngine

    rules = RulesEngine(engine, early=False)
    counting, passes = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        with engine.connect() as conn:
            counts = warning_counts(conn, now=datetime.now(UTC))
        counting.append(time.perf_counter() - started)
        started = time.perf_counter()
        rules.evaluate_warnings(datetime.now(UTC))
        passes.append(time.perf_counter() - started)
    print(f"\nwarning levels, over {repeat} evaluations ({len(counts)} rule × district counts):")
    for label, samples in (("counts read", counting), ("whole evaluation", passes)):
        p50, p95 = percentiles(samples)
        print(f"  {label:18} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT topic_code, computed FROM warning_level WHERE district_adcode = ''"
                " ORDER BY topic_code"
            )
        ).all()
    print("  city levels now: " + ", ".join(f"{t} {c or '-'}" for t, c in rows))


def print_server_figures(ticket, *, repeat: int) -> None:
    """Callback and device-layer timings through the Flask stack of an app in this process."""
    from app import create_app

    # the figures time the server's work: a session sends far more calls here than a viewer's
    # refreshes, which the callback limit exists to refuse
    app = create_app(get_settings().model_copy(update={"callback_rate_limit": "100000 per minute"}))
    print(f"\nserver time per callback over {repeat} calls (Flask stack, JSON in/out):")
    print(f"  {'callback':34} {'p50 ms':>8} {'p95 ms':>8}")
    for label, (p50, p95) in time_callbacks(app, ticket, repeat=repeat).items():
        print(f"  {label:34} {p50:8.1f} {p95:8.1f}")
    layer = time_device_layer(app, ticket)
    print(f"\nPudong device layer: snapshot build (cold) {layer['cold_ms']:.0f} ms; per view:")
    for zoom in (10, 12, 14):
        print(
            f"  zoom {zoom}: {layer[f'z{zoom}_features']:.0f} features, "
            f"{layer[f'z{zoom}_kib']:.1f} KiB, {layer[f'z{zoom}_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
