"""Wall soak: weeks of a video wall's uptime compressed into thousands of fast refreshes, in
headless Chromium, measuring whether the page leaks memory or piles up DOM nodes.

    python -m bench.wall_soak [--cycles 2000] [--warmup 300] [--refresh 0.25] [--interval 5]
        [--attention 6] [--incident-every 45] [--scale tiny|demo] [--reuse]
        [--database-url URL] [--size 1920x1080] [--simulate/--no-simulate] [--rate 200]

Seeds the demo city ending now into its own database on the bench cluster
(ONESCREEN_DATA_DIR/bench-pg, port 54339, database onescreen_wall_soak) unless --reuse finds it
seeded or --database-url names another; serves it with `cli.py serve` refreshing pages every
--refresh seconds, the simulator streaming and its own Mosquitto; opens
/wall?views=city,310115,310104,310101. Once every view and an attention takeover have shown and
--warmup refreshes are done, it measures (after forced GC) the JS heap, all DOM nodes (CDP,
detached ones included), attached elements and event listeners; runs --cycles refreshes while
a critical incident opens every --incident-every seconds; and measures again when both slots
draw the same views as at the start. `make bench-wall` runs it at 0.5 s: at 0.25 s a 2-core
machine cannot answer the refreshes in time and the rotation stalls.
Target (issue: walls run for weeks): JS heap and DOM node growth ≤ 10 %, no server traceback,
no console error. Exit code 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa
from playwright.sync_api import CDPSession, ConsoleMessage, Page, Request, sync_playwright

from bench.harness import bench_database, launch_chromium, serving, settle
from config import get_settings
from data import migrate, writes
from data.displays import create_display_token
from data.engine import create_db_engine
from localservers.base import free_port

DATABASE = "onescreen_wall_soak"
VIEWS = ("city", "310115", "310104", "310101")
# where the soak's critical incidents open, in turn (city wall: every district alerts)
INCIDENT_DISTRICTS = ("310104", "310105", "310115", "310101", "310106", "310107")
TARGET_GROWTH = 0.10
ATTENTION_CHART = "#wall-attention-chart-box .js-plotly-plot"
# the figures the target applies to: label, Measurement field
GATED = (("JS heap", "heap_bytes"), ("DOM nodes", "nodes"), ("attached elements", "elements"))
# what the soak reads of the page: precise heap figures and a forced GC
SOAK_CHROMIUM_ARGS = ("--enable-precise-memory-info", "--js-flags=--expose-gc")
MB = 1024 * 1024

# what the wall's own script says about itself (assets/onescreen_wall.js), and what each slot's
# map draws: "city", a district's code, "*" when it marks an incident
WALL_JS = """() => {
  const w = window.onescreen && window.onescreen.wall;
  if (!w || !w.state) { return null; }
  const s = w.state;
  const drawn = function (slot) {
    const el = document.getElementById("wall-slot-" + slot);
    if (!el) { return "-"; }
    const districts = new Set();
    el.querySelectorAll("path.os-area").forEach(function (path) {
      const m = /os-area-d(\\d+)/.exec(path.getAttribute("class") || "");
      if (m) { districts.add(m[1]); }
    });
    const place = districts.size > 1 ? "city" : (Array.from(districts)[0] || "empty");
    return place + (el.querySelector(".os-focus-marker") ? "*" : "");
  };
  return {polls: w.stats.polls, flips: w.stats.flips, attentions: w.stats.attentions,
          phase: s.phase, queued: s.queue.length, loadedAt: w.loadedAt,
          shown: s.slots[s.active] && s.slots[s.active].key,
          active: drawn(s.active), hidden: drawn(s.active === "a" ? "b" : "a")};
}"""


@dataclass(frozen=True)
class Measurement:
    """The page's memory and DOM after forced garbage collection, and where the wall was."""

    at_s: float
    polls: int
    flips: int
    attentions: int
    heap_bytes: int  # CDP JSHeapUsedSize
    memory_bytes: int  # performance.memory.usedJSHeapSize
    nodes: int  # CDP Nodes: every live DOM node, detached ones included
    elements: int  # elements attached to the document
    listeners: int
    layout_objects: int
    documents: int
    state: str  # phase, view shown | view in the hidden slot (see `state_key`)


@dataclass
class SoakResult:
    """What a soak did and the page's state before and after it."""

    cycles: int
    elapsed_s: float
    flips: int
    attentions: int
    start: Measurement
    end: Measurement
    samples: list[Measurement] = field(default_factory=list)
    reloaded: bool = False
    stalled: str | None = None
    warmup_s: float = 0.0

    @property
    def period_s(self) -> float:
        """Seconds per completed refresh cycle."""
        return self.elapsed_s / max(self.cycles, 1)

    @property
    def steady(self) -> bool:
        """Both measurements were taken with the same views in the same phase."""
        return self.start.state == self.end.state

    @property
    def last(self) -> Measurement:
        """The end measurement, or when the wall could not get back to the start's state, the
        latest sample taken in that state (the end itself if there is none)."""
        if self.steady:
            return self.end
        same = [m for m in self.samples[1:] if m.state == self.start.state]
        return same[-1] if same else self.end

    def growth(self, name: str) -> float:
        """Relative growth of one measured figure from start to the comparable last sample."""
        return growth(getattr(self.start, name), getattr(self.last, name))

    def passed(self, limit: float = TARGET_GROWTH) -> bool:
        """Heap, DOM nodes and attached elements grew by at most `limit`, and the run finished."""
        return (
            self.stalled is None
            and not self.reloaded
            and (self.steady or self.last is not self.end)
            and all(self.growth(name) <= limit for _, name in GATED)
        )


def growth(start: float, end: float) -> float:
    """(end − start) / start; 0 for an empty start."""
    return (end - start) / start if start else 0.0


# Measuring one page -------------------------------------------------------------------------


def wall_state(page: Page) -> dict:
    """Counters and phase of the wall's schedule; empty until the wall has ticked."""
    return page.evaluate(WALL_JS) or {}


def state_key(state: dict) -> str:
    """What is on the page: phase, the view drawn on screen | the one drawn in the hidden slot.
    Figures are comparable only between equal keys: each view brings its own number of areas,
    rows and chart elements."""
    return f"{state.get('phase')} {state.get('active')} | {state.get('hidden')}"


def measure(page: Page, cdp: CDPSession, *, started: float) -> Measurement:
    """Collect garbage twice (JS and DOM), then read the heap and node counts."""
    for _ in range(2):
        cdp.send("HeapProfiler.collectGarbage")
    page.wait_for_timeout(300)
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    dom = page.evaluate(
        "() => ({elements: document.getElementsByTagName('*').length,"
        " memory: performance.memory ? performance.memory.usedJSHeapSize : 0})"
    )
    state = wall_state(page)
    return Measurement(
        at_s=time.monotonic() - started,
        polls=int(state.get("polls", 0)),
        flips=int(state.get("flips", 0)),
        attentions=int(state.get("attentions", 0)),
        heap_bytes=int(metrics.get("JSHeapUsedSize", 0)),
        memory_bytes=int(dom["memory"]),
        nodes=int(metrics.get("Nodes", 0)),
        elements=int(dom["elements"]),
        listeners=int(metrics.get("JSEventListeners", 0)),
        layout_objects=int(metrics.get("LayoutObjects", 0)),
        documents=int(metrics.get("Documents", 0)),
        state=state_key(state),
    )


def warm_up(
    page: Page,
    *,
    views: int,
    cycles: int,
    incident: Callable[[], None] | None,
    incident_every_s: float,
    timeout_s: float,
) -> None:
    """Until every view has been on screen, (with `incident`) an attention has come and gone
    and left its chart mounted, and `cycles` refreshes are done: the heap first grows for a few
    hundred refreshes (code compiled, caches filled) before it levels off, and the baseline must
    come after that."""
    deadline = time.monotonic() + timeout_s
    next_incident = time.monotonic()
    shown: set[str] = set()
    state: dict = {}
    while time.monotonic() < deadline:
        if incident is not None and time.monotonic() >= next_incident:
            incident()
            next_incident = time.monotonic() + incident_every_s
        state = wall_state(page)
        if state.get("phase") == "rotate" and state.get("shown"):
            shown.add(state["shown"])
        # the attention card's chart is mounted once and then kept: count it in the baseline
        attended = incident is None or (
            state.get("attentions", 0) >= 1 and page.locator(ATTENTION_CHART).count() > 0
        )
        done = state.get("polls", 0) >= cycles
        if len(shown) >= views and attended and done and state.get("phase") == "rotate":
            return
        page.wait_for_timeout(250)  # lets Playwright deliver console events meanwhile
    raise TimeoutError(f"the wall did not warm up in {timeout_s:.0f} s (last state {state})")


def wait_settled(page: Page, *, key: str | None, timeout_s: float) -> bool:
    """Wait until the wall rotates with no alert waiting and both slots drawing what `key`
    says (any views when None), unchanged for 1.5 s; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = wall_state(page)
        now = state_key(state)
        if state.get("phase") == "rotate" and not state.get("queued") and key in (None, now):
            page.wait_for_timeout(1500)  # cross-fade over, timelines (own callback) drawn
            if state_key(wall_state(page)) == now:
                return True
        page.wait_for_timeout(100)
    return False


def measure_settled(
    page: Page, cdp: CDPSession, *, started: float, key: str | None, timeout_s: float
) -> Measurement:
    """Measure once the wall has settled in `key`'s state (any when None), again if it moved
    on while being measured; on timeout, whatever it shows."""
    deadline = time.monotonic() + timeout_s
    while True:
        wait_settled(page, key=key, timeout_s=max(0.0, deadline - time.monotonic()))
        before = state_key(wall_state(page))
        sample = measure(page, cdp, started=started)
        if (sample.state == before and key in (None, before)) or time.monotonic() >= deadline:
            return sample


def _refresh_cycles(
    page: Page,
    cdp: CDPSession,
    *,
    start: Measurement,
    started: float,
    cycles: int,
    incident: Callable[[], None] | None,
    incident_every_s: float,
    progress: Callable[[Measurement, Measurement], None] | None,
    progress_every_s: float,
    stall_s: float,
) -> tuple[list[Measurement], bool, str | None]:
    """Let the wall run `cycles` refreshes past `start`, opening incidents and sampling on the
    way; returns the samples, whether the page reloaded, and why it stalled (None if not)."""
    loaded_at = wall_state(page).get("loadedAt")
    samples: list[Measurement] = []
    next_incident = started + incident_every_s
    next_progress = started + progress_every_s
    last_polls, last_change = start.polls, started
    while True:
        state = wall_state(page)
        now = time.monotonic()
        polls = int(state.get("polls", 0))
        if state.get("loadedAt") != loaded_at:
            return samples, True, None
        if polls - start.polls >= cycles:
            return samples, False, None
        if polls != last_polls:
            last_polls, last_change = polls, now
        elif now - last_change > stall_s:
            stalled = f"no refresh answered for {stall_s:.0f} s (at {polls - start.polls} cycles)"
            return samples, False, stalled
        if incident is not None and now >= next_incident:
            incident()
            next_incident = now + incident_every_s
        if now >= next_progress:
            sample = measure(page, cdp, started=started)
            samples.append(sample)
            if progress is not None:
                progress(sample, start)
            next_progress = time.monotonic() + progress_every_s
        page.wait_for_timeout(500)


def soak(
    page: Page,
    *,
    cycles: int,
    warmup_cycles: int = 300,
    incident: Callable[[], None] | None = None,
    incident_every_s: float = 45,
    progress: Callable[[Measurement, Measurement], None] | None = None,
    progress_every_s: float = 30,
    views: Sequence[str] = VIEWS,
    view_seconds: float = 5,
    attention_seconds: float = 6,
    stall_s: float = 90,
) -> SoakResult:
    """Warm the wall up (`warmup_cycles` refreshes at least), measure, run `cycles` refreshes
    (an incident every `incident_every_s`), measure again in the same state. The page must
    already show the wall; `progress` gets each sample (the start one first) with the start one."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    # long enough for a few rotations and alerts on a busy machine, where a hidden slot may wait
    # many refreshes before one of its answers is applied
    steady_timeout = 10 * (len(views) * view_seconds + attention_seconds) + 60
    warming = time.monotonic()
    warm_up(
        page,
        views=len(views),
        cycles=warmup_cycles,
        incident=incident,
        incident_every_s=incident_every_s,
        timeout_s=2 * steady_timeout + warmup_cycles * 2.0,
    )
    start = measure_settled(page, cdp, started=time.monotonic(), key=None, timeout_s=steady_timeout)
    started = time.monotonic()  # the soak's clock starts with its first measurement
    start = replace(start, at_s=0.0)
    if progress is not None:
        progress(start, start)
    more, reloaded, stalled = _refresh_cycles(
        page,
        cdp,
        start=start,
        started=started,
        cycles=cycles,
        incident=incident,
        incident_every_s=incident_every_s,
        progress=progress,
        progress_every_s=progress_every_s,
        stall_s=stall_s,
    )
    samples = [start, *more]
    done = time.monotonic()
    last = wall_state(page)
    # back to what the page looked like at the start, so its own views' DOM cancels out
    end = measure_settled(page, cdp, started=started, key=start.state, timeout_s=steady_timeout)
    samples.append(end)
    cdp.detach()
    return SoakResult(
        cycles=int(last.get("polls", 0)) - start.polls,
        elapsed_s=done - started,
        flips=int(last.get("flips", 0)) - start.flips,
        attentions=int(last.get("attentions", 0)) - start.attentions,
        start=start,
        end=end,
        samples=samples,
        reloaded=reloaded,
        stalled=stalled,
        warmup_s=started - warming,
    )


# Critical incidents -------------------------------------------------------------------------


class Incidents:
    """Opens critical incidents the way the rules engine does, resolving the earlier ones so
    open incidents do not pile up over a long run."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.opened: list[int] = []
        self.turn = 0

    def __call__(self) -> None:
        """Resolve what this soak opened before, then open one more critical incident."""
        self.resolve_all()
        district = INCIDENT_DISTRICTS[self.turn % len(INCIDENT_DISTRICTS)]
        self.turn += 1
        self.opened.append(open_critical_incident(self.engine, district=district)["id"])

    def resolve_all(self) -> None:
        """Resolve every incident this soak opened."""
        with self.engine.begin() as conn:
            for incident_id in self.opened:
                conn.execute(
                    sa.text(
                        "UPDATE incident SET status = 'resolved', acknowledged_at = now(),"
                        " resolved_at = now() WHERE id = :id AND status <> 'resolved'"
                    ),
                    {"id": incident_id},
                )
        self.opened.clear()


def open_critical_incident(
    engine: sa.Engine, *, district: str, source: str = "wall-soak", ago_s: int = 0
) -> dict:
    """A new open critical gas-leak incident on a device of `district` without one, opened
    `ago_s` seconds ago by `source` as the rules engine writes it: its id, title and street."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT d.id, d.street_code, s.name_zh FROM device d"
                " JOIN device_type t ON t.id = d.type_id JOIN street s ON s.code = d.street_code"
                " WHERE d.district_adcode = :district AND t.category_code = 'gas'"
                "   AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.device_id = d.id"
                "                   AND i.status <> 'resolved')"
                " ORDER BY d.id LIMIT 1"
            ),
            {"district": district},
        ).one()
        title = f"{row.name_zh}燃气泄漏报警 {source}"
        incident_id = conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
                " threshold, opened_at, geom)"
                " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
                " :source, 'critical', 'open', :title, 'Gas leak alarm (' || :source || ')',"
                " 42, 25, now() - make_interval(secs => :ago), d.geom"
                " FROM device d JOIN device_type t ON t.id = d.type_id WHERE d.id = :device"
                " RETURNING id"
            ),
            {"device": row.id, "source": source, "title": title, "ago": ago_s},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor, to_status)"
                " VALUES (:id, now() - make_interval(secs => :ago), 'opened', :source, 'open')"
            ),
            {"id": incident_id, "ago": ago_s, "source": source},
        )
    return {"id": incident_id, "title": title, "street": row.street_code}


def open_storm(
    engine: sa.Engine,
    *,
    district: str,
    streets: int = 6,
    per_street: int = 8,
    source: str = "storm",
) -> int:
    """A rainstorm's flood alarms on `per_street` flood devices in each of `streets` neighbouring
    streets of `district`, opened over the last 20 minutes as the rules write them (the rules
    pass groups them into one event); how many were opened."""
    with engine.begin() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "WITH seed AS (SELECT code FROM street WHERE district_adcode = :district"
                    "              ORDER BY code LIMIT 1),"
                    " patch AS (SELECT code FROM seed UNION SELECT n.neighbour_code"
                    "           FROM street_neighbour n JOIN seed ON n.street_code = seed.code"
                    "           JOIN street s ON s.code = n.neighbour_code"
                    "           WHERE s.district_adcode = :district)"
                    " SELECT d.id FROM (SELECT code FROM patch ORDER BY code LIMIT :streets) p"
                    " CROSS JOIN LATERAL (SELECT d.id FROM device d"
                    "   JOIN device_type t ON t.id = d.type_id"
                    "   WHERE d.street_code = p.code AND t.category_code = 'flood'"
                    "     AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.device_id = d.id"
                    "                     AND i.status <> 'resolved')"
                    "   ORDER BY d.id LIMIT :per_street) d"
                ),
                {"district": district, "streets": streets, "per_street": per_street},
            )
            .scalars()
            .all()
        )
        opened = conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
                " threshold, opened_at, geom)"
                " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
                " :source, 'critical', 'open', s.name_zh || t.name_zh || '超警戒（暴雨）',"
                " t.name_en || ' above its line (rainstorm)', t.alarm_max * 1.2, t.alarm_max,"
                " now() - make_interval(secs => 60 + 1200 * (k.n % 20) / 20.0), d.geom"
                " FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS k(id, n)"
                " JOIN device d ON d.id = k.id JOIN device_type t ON t.id = d.type_id"
                " JOIN street s ON s.code = d.street_code"
            ),
            {"ids": list(rows), "source": source},
        ).rowcount
    return int(opened)


# Database, server and browser ---------------------------------------------------------------


def prepare_database(*, scale: str, reuse: bool, database_url: str | None) -> str:
    """URL of a migrated database holding a seeded city (seeded here, ending now, if needed)."""
    settings = get_settings()
    url = database_url or bench_database(DATABASE, reuse=reuse)
    engine = create_db_engine(url)
    try:
        migrate.upgrade(engine)
        if writes.get_meta(engine, key="seed") is None:
            from simulator.seed import seed_city

            print(f"seeding the {scale} city, ending now…", flush=True)
            started = time.perf_counter()
            report = seed_city(engine, scale=scale, random_seed=settings.random_seed, reset=True)
            print(
                f"  {report.devices:,} devices, {report.readings:,} readings"
                f" in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            settle(engine)
        writes.refresh_status(engine)
    finally:
        engine.dispose()
    return url


@contextmanager
def serve(
    url: str, *, refresh: float, simulate: bool, rate: float, log_path: Path
) -> Iterator[str]:
    """`cli.py serve` (and its ingest worker and simulator) with free ports, a data dir and a
    Mosquitto of its own (serving() sees to them and stops them), so it never meets a
    developer's `make run`; yields its base URL."""
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "ONESCREEN_MQTT_CLIENT_ID": f"wall-soak-{port}",
        "ONESCREEN_UI_REFRESH_SECONDS": f"{refresh:g}",
        "ONESCREEN_UI_STALE_SECONDS": f"{max(5.0, 10 * refresh):g}",
        "ONESCREEN_LOG_LEVEL": "WARNING",
        "ONESCREEN_SIMULATE": "true" if simulate else "false",
        "ONESCREEN_SIMULATE_RATE": f"{rate:g}",
    }
    with serving(env, log_path=log_path, port=port) as base:
        yield base


# the server callbacks a wall runs on each refresh, by a fragment of their output ids
CALLBACKS = {
    "wall-areas": "slot",
    "wall-timeline": "timeline",
    "wall-alerts": "alerts",
    "wall-attention-body": "attention card",
}


@dataclass
class PageLog:
    """Console errors and uncaught exceptions, and the wall's callback requests: answered, or
    failed (Chromium reports PreventUpdate's empty 204 answers as aborted requests too)."""

    errors: list[str] = field(default_factory=list)
    answered: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)

    def on_console(self, message: ConsoleMessage) -> None:
        """Keep a console error."""
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def on_page_error(self, error: Exception) -> None:
        """Keep an uncaught page exception."""
        self.errors.append(f"pageerror: {error}")

    def reset_counts(self) -> None:
        """Count requests from now on only (the soak, not its warm-up)."""
        self.answered.clear()
        self.failed.clear()

    def on_finished(self, request: Request) -> None:
        """Count an answered wall callback."""
        if kind := _callback(request):
            self.answered[kind] += 1

    def on_failed(self, request: Request) -> None:
        """Count a failed wall callback."""
        if kind := _callback(request):
            self.failed[kind] += 1


def _callback(request: Request) -> str | None:
    """Which wall callback a request is for, None for anything but a callback."""
    if not request.url.endswith("/_dash-update-component"):
        return None
    output = str((request.post_data_json or {}).get("output", ""))
    return next((kind for key, kind in CALLBACKS.items() if key in output), "other")


@contextmanager
def wall_page(url: str, *, width: int, height: int) -> Iterator[tuple[Page, PageLog]]:
    """Headless Chromium with one page showing `url`, recording console errors and requests."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, *SOAK_CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": width, "height": height}, locale="zh-CN"
            )
            page = context.new_page()
            page.set_default_timeout(60_000)
            log = PageLog()
            page.on("console", log.on_console)
            page.on("pageerror", log.on_page_error)
            page.on("requestfinished", log.on_finished)
            page.on("requestfailed", log.on_failed)
            page.goto(url)
            page.wait_for_function("() => window.onescreen && window.onescreen.wall.state")
            yield page, log
        finally:
            browser.close()


# Report -------------------------------------------------------------------------------------


def print_progress(sample: Measurement, start: Measurement, *, cycles: int) -> None:
    """One line of figures every ~30 s."""
    done = sample.polls - start.polls
    period = sample.at_s / done if done else 0.0
    print(
        f"  {_clock(sample.at_s)}  cycles {done:>5}/{cycles}  ({period:.2f} s each)"
        f"  flips {sample.flips:>4}  attentions {sample.attentions:>3}"
        f"  heap {sample.heap_bytes / MB:6.2f} MB  nodes {sample.nodes:>6,}"
        f"  elements {sample.elements:>5,}  listeners {sample.listeners:>4,}  [{sample.state}]",
        flush=True,
    )


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:>3}:{rest:02d}"


def _row(label: str, start: float, end: float, *, unit: str = "", scale: float = 1) -> str:
    low, high = start / scale, end / scale
    number = "{:,.2f}" if scale != 1 else "{:,.0f}"
    change = growth(start, end) * 100
    return (
        f"  {label:32} {number.format(low):>10} → {number.format(high):>10} {unit:2}"
        f"  {change:+6.1f} %"
    )


ROWS = (
    ("JS heap used (CDP, after GC)", "heap_bytes"),
    ("JS heap (performance.memory)", "memory_bytes"),
    ("DOM nodes (CDP, incl. detached)", "nodes"),
    ("DOM elements attached", "elements"),
    ("JS event listeners", "listeners"),
    ("layout objects", "layout_objects"),
    ("documents", "documents"),
)


def report(result: SoakResult, *, refresh: float, log: PageLog, server_log: str) -> bool:
    """Print the figures and the verdict; True on PASS."""
    _print_run(result, refresh=refresh, log=log)
    _print_growth(result)
    problems = _problems(result, log=log, server_log=server_log)
    if result.growth("listeners") > TARGET_GROWTH:
        print(f"  warning: event listeners grew {result.growth('listeners') * 100:.1f} %")
    for problem in problems:
        print(f"  FAIL: {problem}")
    print("PASS" if not problems else "FAIL")
    return not problems


def _print_run(result: SoakResult, *, refresh: float, log: PageLog) -> None:
    """Cycles, flips, attentions, callback answers and the states compared."""
    start, last = result.start, result.last
    print(
        f"\n{result.cycles:,} refresh cycles in {_clock(result.elapsed_s).strip()} min"
        f" ({result.period_s:.3f} s per cycle; configured {refresh:g} s),"
        f" {result.flips} flips (one every {result.elapsed_s / max(result.flips, 1):.1f} s),"
        f" {result.attentions} attentions"
    )
    answers = ", ".join(
        f"{kind} {log.answered[kind]:,}"
        + (f" (+{log.failed[kind]:,} failed)" * bool(log.failed[kind]))
        for kind in CALLBACKS.values()
    )
    print(f"  warm-up {_clock(result.warmup_s).strip()} min; callback answers: {answers}")
    print(
        f"  start [{start.state}] at cycle 0 → [{last.state}] at cycle {last.polls - start.polls:,}"
    )


def _print_growth(result: SoakResult) -> None:
    """Each measure from start to end, the samples in the start's state, range and trend."""
    start, last = result.start, result.last
    for label, name in ROWS:
        scale = MB if name.endswith("bytes") else 1
        unit = "MB" if scale == MB else ""
        print(_row(label, getattr(start, name), getattr(last, name), unit=unit, scale=scale))
    same = [m for m in result.samples if m.state == start.state]
    if len(same) > 2:
        print(
            f"  {len(same)} samples in the start's state: heap "
            + " ".join(f"{m.heap_bytes / MB:.1f}" for m in same)
            + " MB; nodes "
            + " ".join(f"{m.nodes:,}" for m in same)
        )
    heaps = [m.heap_bytes / MB for m in result.samples]
    nodes = [m.nodes for m in result.samples]
    print(
        f"  all {len(result.samples)} samples (any state): heap {min(heaps):.2f}–{max(heaps):.2f}"
        f" MB, nodes {min(nodes):,}–{max(nodes):,}"
    )
    if len(result.samples) > 3:
        # a slow leak shows as a slope even where start and end happen to look alike
        done = [(m.polls - start.polls) / 1000 for m in result.samples]
        heap_slope = statistics.linear_regression(done, heaps).slope
        node_slope = statistics.linear_regression(done, nodes).slope
        print(
            f"  least-squares trend: heap {heap_slope:+.2f} MB, nodes {node_slope:+.0f}"
            " per 1,000 cycles"
        )
    if last is not result.end:
        print(
            f"  note: the wall did not get back to the start's state at the end (it showed"
            f" [{result.end.state}]): compared with the last sample in that state"
        )


def _problems(result: SoakResult, *, log: PageLog, server_log: str) -> list[str]:
    """Why the soak fails: stalls, reloads, no steady state, growth, tracebacks, console errors."""
    problems = []
    if result.stalled:
        problems.append(result.stalled)
    if result.reloaded:
        problems.append("the page reloaded itself during the soak (its counters restarted)")
    if not result.steady and result.last is result.end:
        problems.append("no sample in the start's state to compare with: inconclusive")
    for label, name in GATED:
        if result.growth(name) > TARGET_GROWTH:
            problems.append(f"{label} grew {result.growth(name) * 100:.1f} % (> 10 %)")
    if "Traceback" in server_log:
        at = server_log.index("Traceback")
        problems.append("the server log holds a traceback:\n" + server_log[at : at + 2000])
    if log.errors:
        listed = "\n    ".join(e[:300] for e in log.errors[:5])
        problems.append(f"the page logged {len(log.errors)} console error(s):\n    {listed}")
    return problems


def main() -> int:
    """Run the wall soak; the exit status says whether it passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000, help="refresh cycles to run")
    parser.add_argument(
        "--warmup", type=int, default=300, help="refresh cycles before the first measurement"
    )
    parser.add_argument("--refresh", type=float, default=0.25, help="ONESCREEN_UI_REFRESH_SECONDS")
    parser.add_argument("--interval", type=int, default=5, help="seconds per view (min 5)")
    parser.add_argument("--attention", type=int, default=6, help="seconds per alert (min 5)")
    parser.add_argument("--incident-every", type=float, default=45, help="seconds; 0 = none")
    parser.add_argument("--scale", choices=["tiny", "demo"], default="demo")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--database-url", help="use this database instead of the bench cluster")
    parser.add_argument("--size", default="1920x1080", help="viewport WIDTHxHEIGHT")
    parser.add_argument(
        "--simulate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stream the live synthetic city so figures change between refreshes",
    )
    parser.add_argument("--rate", type=float, default=200, help="simulated readings per second")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.lower().split("x"))
    settings = get_settings()
    url = prepare_database(scale=args.scale, reuse=args.reuse, database_url=args.database_url)
    engine = create_db_engine(url)
    token = create_display_token(engine, kind="wall", label="wall soak")
    incidents = Incidents(engine) if args.incident_every > 0 else None
    log_path = settings.data_dir / "bench-wall-soak-serve.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    query = urlencode(
        {
            "token": token,
            "views": ",".join(VIEWS),
            "interval": args.interval,
            "attention": args.attention,
        }
    )
    try:
        with serve(
            url, refresh=args.refresh, simulate=args.simulate, rate=args.rate, log_path=log_path
        ) as base:
            print(
                f"server {base} (refresh {args.refresh:g} s, simulator"
                f" {'on' if args.simulate else 'off'}; log {log_path})",
                flush=True,
            )
            with wall_page(f"{base}/wall?{query}", width=width, height=height) as (page, log):
                print(
                    f"warming up: every view once, an attention takeover, {args.warmup} cycles…",
                    flush=True,
                )

                def progress(sample: Measurement, start: Measurement) -> None:
                    if sample is start:
                        log.reset_counts()
                    print_progress(sample, start, cycles=args.cycles)

                result = soak(
                    page,
                    cycles=args.cycles,
                    warmup_cycles=args.warmup,
                    incident=incidents,
                    incident_every_s=args.incident_every or 1e9,
                    progress=progress,
                    views=VIEWS,
                    view_seconds=args.interval,
                    attention_seconds=args.attention,
                )
    finally:
        if incidents is not None:
            incidents.resolve_all()
        engine.dispose()
    ok = report(result, refresh=args.refresh, log=log, server_log=log_path.read_text())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
