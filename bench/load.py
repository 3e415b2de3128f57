"""Many viewers at once: callback latency, errors and database load against the viewer count.

    python -m bench.load [--viewers 10,50,100,200] [--duration 60] [--reuse] [--distinct]
                         [--database-url URL] [--one-address] [--statements] [--no-pace]

Serves the seed-scale city (510k devices; seeded into the bench cluster's `bench_dashboard`
database unless --reuse finds it) with `cli.py serve` — gunicorn workers, the shared Redis
cache, the MQTT ingest worker and the simulator at 10× the real platform's rate (970 readings/s
instead of 97). A real Chromium records what a signed-in browser posts to Dash's callback
endpoint during one refresh of the overview and of four district pages; then N simulated
viewers (asyncio, loopback only, one keep-alive connection pool and one session each) replay
their page's refresh every 5 s with a random phase, for each N in turn; the viewers are spread
over nine views (operators on the overview and four districts, the four districts' managers).
Per N it prints callback latency p50/p95/p99, errors, callbacks/s, and database statements/s
from pg_stat_statements: those of the web role (dashboard reads) and of every role (sessions,
ingest, rules included), with their ratio to the smallest N. Targets (issue 7): 200 viewers
with p95 ≤ 300 ms and no errors; dashboard statements/s flat from 10 to 200 viewers.

`--distinct` (issue 23) gives every viewer a view of their own instead (a district manager's
district × category × street × metric); `--database-url` serves another seeded city (the 10M
one). Each viewer connects from a loopback address of its own, as people in their own offices
do (`--one-address`: all from 127.0.0.1, as behind one NAT, which meets nginx's per-address
cap). CPU is reported per process role and for the whole machine.

Viewers pace themselves as pages do (assets/onescreen_limits.js): told that the server's
renewals fall behind (X-OneScreen-Busy: N), they ask at every N-th tick for 30 s (`--no-pace`:
never). Per N it also prints the ticks asked and let pass, and how old each panel's data was
on arrival (from its as-of stamp, against the age the answer stated: what badges go by).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench.harness import (
    ROOT,
    bench_cluster,
    bench_database,
    bench_session,
    browser_cookies,
    csrf_header,
    launch_chromium,
    serving,
    settle,
)
from bench.views import RECORDED_DISTRICT, bodies_for, distinct_views, district_bounds
from config import get_settings
from data import access, migrate, writes
from data.access import SessionTicket
from data.engine import create_db_engine
from simulator.seed import seed_city

REAL_RATE = 97  # readings/s of the real platform: 8.4 million a day
DISTRICTS = {"310115": "浦东新区", "310101": "黄浦区", "310104": "徐汇区", "310112": "闵行区"}
PAGES = ["/", *(f"/district/{code}" for code in DISTRICTS)]
CALLBACK_PATH = "/_dash-update-component"
# a callback slower than this is counted as an error, as a browser would give up on it
TIMEOUT_S = 10.0
# a page's pacing (assets/onescreen_limits.js): told X-OneScreen-Busy: N, it asks on every N-th
# tick only (at most MOST_EVERY) until CALM_S pass without being told so again
PACE_CALM_S, PACE_MOST_EVERY = 30.0, 4


@dataclass
class Step:
    """What one viewer count measured."""

    viewers: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    web_statements: float = 0.0
    all_statements: float = 0.0
    readings: float = 0.0
    top: list[tuple[str, int, str]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    by_callback: dict[str, list[float]] = field(default_factory=dict)
    timeline: list[tuple[float, float]] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    loop_lag: list[float] = field(default_factory=list)
    # refresh ticks a viewer let pass (paced) and asked on
    ticks_skipped: int = 0
    ticks_asked: int = 0
    # how old each panel's data was when its answer arrived (s), and how far that is from the
    # age the answer itself stated (what the browser's freshness badge goes by)
    ages: list[float] = field(default_factory=list)
    age_errors: list[float] = field(default_factory=list)

    def error_count(self) -> int:
        """Errors over all kinds."""
        return sum(self.errors.values())


def quantile(samples: list[float], q: float) -> float:
    """The q-quantile of `samples` in milliseconds (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


# Setup ----------------------------------------------------------------------------------------


def seeded_database(*, reuse: bool) -> str:
    """URL of the seed-scale bench database, seeded if it is not yet."""
    settings = get_settings()
    url = bench_database("bench_dashboard", reuse=reuse)
    engine = create_db_engine(url)
    try:
        migrate.upgrade(engine)
        if writes.get_meta(engine, key="seed") is None:
            print("seeding the seed-scale city (510k devices, 24 h)…", flush=True)
            seed_city(engine, scale="seed", random_seed=settings.random_seed, reset=True)
            settle(engine)
    finally:
        engine.dispose()
    return url


def enable_statement_counts(url: str) -> None:
    """pg_stat_statements on the bench cluster (restarting it once to load the library)."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            loaded = conn.execute(sa.text("SHOW shared_preload_libraries")).scalar_one()
        if "pg_stat_statements" not in loaded:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(
                    sa.text("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
                )
            engine.dispose()
            cluster = bench_cluster()
            cluster.stop()
            cluster.ensure_running()
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
    finally:
        engine.dispose()


def reset_counts(engine) -> int:
    """Zero pg_stat_statements; returns the reading rows inserted so far."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_stat_statements_reset()"))
        return int(conn.execute(sa.text(_READINGS_INSERTED)).scalar_one())


_READINGS_INSERTED = (
    "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables"
    " WHERE relname LIKE 'reading%' AND relname NOT LIKE '%rollup%'"
)


def statement_counts(engine) -> tuple[int, int, int, list[tuple[str, int, str]]]:
    """Since the reset: web role statements, all statements, reading rows inserted so far,
    and the most frequent statements (role, calls, text)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.rolname, s.calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90)"
                " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
                " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " ORDER BY s.calls DESC"
            )
        ).all()
        readings = int(conn.execute(sa.text(_READINGS_INSERTED)).scalar_one())
    web = sum(row.calls for row in rows if row.rolname == "onescreen_web")
    every = sum(row.calls for row in rows)
    return web, every, readings, [tuple(row) for row in rows[:12]]


@dataclass(frozen=True)
class Viewer:
    """One simulated person: a signed-in session and the page it watches."""

    ticket: SessionTicket
    page: str
    # the loopback address its connections come from (None: the default, 127.0.0.1)
    address: str | None = None


def own_addresses(people: list[Viewer]) -> list[Viewer]:
    """`people`, each connecting from a loopback address of their own (127.2.x.y), as managers
    in their own offices do: nginx caps connections per client address, so two hundred
    viewers from one address measure that cap rather than the app."""
    from dataclasses import replace

    return [
        replace(person, address=f"127.2.{index // 250}.{index % 250 + 1}")
        for index, person in enumerate(people)
    ]


def manager_of(engine, district: str) -> access.Principal:
    """The bench's district manager of `district` (created on first use)."""
    import secrets

    username = f"bench-manager-{district}"
    user = access.find_user(engine, username=username)
    if user is None:
        user = access.create_user(
            engine,
            username=username,
            role="district_manager",
            districts=[district],
            password=secrets.token_urlsafe(24),
        )
    return user


def distinct_viewers(engine, views: list) -> list[Viewer]:
    """One viewer per view: the manager of its district, a session of their own each."""
    from datetime import timedelta

    return [
        Viewer(
            ticket=access.open_session(
                engine, principal=manager_of(engine, view.district), lifetime=timedelta(hours=2)
            ),
            page=view.key,
        )
        for view in views
    ]


def make_viewers(engine, count: int) -> list[Viewer]:
    """`count` signed-in viewers spread over nine views: an operator (city scope) on the
    overview or one of four districts, or a district manager on their own district — so ten
    viewers already ask for everything two hundred do."""
    from datetime import timedelta

    bench_session(engine)  # the operator, created on first use
    operator = access.find_user(engine, username="bench-operator")
    if operator is None:
        raise RuntimeError("bench_session did not create bench-operator")
    views = [(operator, page) for page in PAGES]
    views += [(manager_of(engine, code), f"/district/{code}") for code in DISTRICTS]
    viewers = []
    for index in range(count):
        principal, page = views[index % len(views)]
        ticket = access.open_session(engine, principal=principal, lifetime=timedelta(hours=2))
        viewers.append(Viewer(ticket=ticket, page=page))
    return viewers


def record_refresh_posts(
    base: str, ticket: SessionTicket, *, refresh_s: float, pages: list[str] = PAGES
) -> dict:
    """What Chromium posts to the callback endpoint during one refresh of each page."""
    from playwright.sync_api import sync_playwright

    recorded: dict[str, list[dict]] = {}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for page_path in pages:
            context = browser.new_context(viewport={"width": 1920, "height": 1080})
            context.add_cookies(browser_cookies(ticket))
            page = context.new_page()
            posts: list[dict] = []
            listening = {"on": False}

            def note(request, posts=posts, listening=listening):
                if listening["on"] and request.url.endswith(CALLBACK_PATH):
                    posts.append(json.loads(request.post_data or "{}"))

            page.on("request", note)
            page.goto(base + page_path, wait_until="networkidle", timeout=120_000)
            page.wait_for_timeout(refresh_s * 1000 + 1500)  # the first refresh settles too
            # two periods, so a late tick is not missed; doubles are dropped below
            listening["on"] = True
            page.wait_for_timeout(refresh_s * 2000)
            listening["on"] = False
            if not posts:
                raise RuntimeError(f"no callback posted during a refresh of {page_path}")
            # one refresh posts each callback once; a window that caught two ticks has doubles
            unique: dict[object, dict] = {}
            for post in posts:
                unique.setdefault(post.get("output"), post)
            recorded[page_path] = list(unique.values())
            context.close()
        browser.close()
    return recorded


# Where the CPU goes ----------------------------------------------------------------------------

CPU_ROLES = (
    ("web workers", "gunicorn"),
    ("PostgreSQL", "postgres"),
    ("ingest worker", "cli.py ingest-mqtt"),
    ("simulator", "cli.py simulate"),
    ("serve (rules, status)", "cli.py serve"),
    ("Redis", "redis-server"),
    ("Mosquitto", "mosquitto"),
    ("nginx", "nginx"),
)
MACHINE = "machine"


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each role's processes, and by this load generator."""
    tick = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys([role for role, _ in CPU_ROLES] + ["load generator"], 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        # this bench and its client processes, by their command (`serve` is its child too, and
        # a --database-url on its command line would pass for PostgreSQL's)
        mine = os.getpid() in (int(entry.name), int(fields[1])) and "bench.load" in command
        role = next((role for role, marker in CPU_ROLES if marker in command), None)
        if mine:
            used["load generator"] += seconds
        elif role is not None:
            used[role] += seconds
    # the whole machine's busy time too: what processes that came and went (connections'
    # backends) and the kernel used shows only there
    busy = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    used[MACHINE] = sum(int(busy[index]) for index in (0, 1, 2, 5, 6, 7)) / tick
    return used


# Load -----------------------------------------------------------------------------------------


@dataclass
class Pace:
    """A page's pacing (assets/onescreen_limits.js), as one viewer keeps it."""

    on: bool
    pressed_at: float = -math.inf
    every: int = 1

    def note(self, told: str) -> None:
        """One answer's X-OneScreen-Busy value ("" when none): N ≥ 2 starts or prolongs it."""
        if told.isdigit() and int(told) >= 2:
            self.every = min(int(told), PACE_MOST_EVERY)
            self.pressed_at = time.monotonic()

    def skips(self, count: int) -> bool:
        """Whether the `count`-th refresh tick is let pass."""
        calm = time.monotonic() - self.pressed_at >= PACE_CALM_S
        return self.on and not calm and count % self.every != 0


async def run_viewer(
    session,
    base: str,
    posts: list[dict],
    headers: dict,
    *,
    refresh_s: float,
    until: float,
    measure_from: float,
    step: Step,
    pace: bool = True,
) -> None:
    """Replay `posts` every `refresh_s` until `until` (monotonic), timing each callback; like
    the browser, each later request carries the state the previous answers set (the digests of
    what it was sent, so unchanged panels come back as no-update), and (`pace`) a pressed
    server makes it skip ticks as the page does."""
    import aiohttp
    import orjson

    bodies = [json.loads(json.dumps(body)) for body in posts]  # this viewer's own copies
    await asyncio.sleep(random.uniform(0, refresh_s))
    pacing = Pace(on=pace)

    async def post(body: dict) -> None:
        started = time.monotonic()
        payload = None
        timing = ""
        busy = ""
        try:
            async with session.post(
                base + CALLBACK_PATH,
                data=orjson.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            ) as response:
                raw = await response.read()
                status = response.status
                timing = response.headers.get("Server-Timing", "")
                busy = response.headers.get("X-OneScreen-Busy", "")
            if status == 200:
                payload = orjson.loads(raw).get("response")
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as error:
            status = type(error).__name__
        elapsed = time.monotonic() - started
        pacing.note(busy)
        if isinstance(payload, dict):
            keep_state(body, payload)
        if started < measure_from:
            return
        if isinstance(payload, dict):
            note_ages(payload, step)
        note_callback(step, body, status=status, started=started, elapsed=elapsed, timing=timing)

    # ticks at a fixed phase, as a browser's interval fires: a refresh that overran its period
    # skips to the next tick instead of starting late and bunching with the other viewers'
    tick, count = time.monotonic(), 0
    while tick < until:
        count += 1
        paced = pacing.skips(count)
        if tick >= measure_from:
            step.ticks_skipped += bool(paced)
            step.ticks_asked += not paced
        if not paced:
            await asyncio.gather(*(post(body) for body in bodies))
        now = time.monotonic()
        tick += refresh_s * max(1, math.ceil((now - tick) / refresh_s))
        await asyncio.sleep(max(0.0, tick - now))


def note_callback(
    step: Step, body: dict, *, status: int | str, started: float, elapsed: float, timing: str
) -> None:
    """One measured callback: its latency (and the app's share), or its error."""
    if status in (200, 204):
        step.latencies.append(elapsed)
        if timing.startswith("app;dur="):
            step.server.append(float(timing[8:]) / 1000)
        step.timeline.append((started, elapsed))
        name = str(body.get("output", "?")).strip(".").split("...")[0]
        step.by_callback.setdefault(name, []).append(elapsed)
    else:
        step.errors[str(status)] = step.errors.get(str(status), 0) + 1


def note_ages(answer: dict, step: Step) -> None:
    """The true age of each as-of stamp in `answer` (this machine's clock is the server's) and
    its difference from the age the answer states."""
    now_ms = time.time() * 1000
    for props in answer.values():
        stamp = props.get("data") if isinstance(props, dict) else None
        if isinstance(stamp, dict) and isinstance(stamp.get("at"), int) and "age" in stamp:
            true_age = (now_ms - stamp["at"]) / 1000
            step.ages.append(true_age)
            step.age_errors.append(true_age - float(stamp["age"]))


def keep_state(body: dict, answer: dict) -> None:
    """Set the body's state values the answer updated (as Dash's renderer holds them)."""
    for item in body.get("state") or []:
        if not isinstance(item, dict):
            continue
        ident = item.get("id")
        if isinstance(ident, dict):
            ident = json.dumps(ident, sort_keys=True, separators=(",", ":"))
        props = answer.get(ident)
        if isinstance(props, dict) and item.get("property") in props:
            item["value"] = props[item["property"]]


async def drive_viewers(
    base: str,
    viewers: list[Viewer],
    recorded: dict,
    *,
    refresh_s: float,
    measure_from: float,
    until: float,
    pace: bool = True,
) -> Step:
    """Run `viewers` until `until` (monotonic, the same clock in every process); the samples
    taken from `measure_from` on."""
    import aiohttp

    step = Step(viewers=len(viewers))
    sessions = []
    tasks = []
    for viewer in viewers:
        ticket = viewer.ticket
        cookies = {cookie["name"]: cookie["value"] for cookie in browser_cookies(ticket)}
        # like a browser: a few keep-alive connections per viewer
        connector = aiohttp.TCPConnector(
            limit=6, local_addr=(viewer.address, 0) if viewer.address else None
        )
        session = aiohttp.ClientSession(connector=connector, cookies=cookies)
        sessions.append(session)
        headers = {**csrf_header(ticket), "Origin": base}
        tasks.append(
            run_viewer(
                session,
                base,
                recorded[viewer.page],
                headers,
                refresh_s=refresh_s,
                until=until,
                measure_from=measure_from,
                step=step,
                pace=pace,
            )
        )

    async def watch_loop() -> None:
        # how late this generator's own event loop wakes: latency it adds to every figure
        while time.monotonic() < until:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            if started >= measure_from:
                step.loop_lag.append(time.monotonic() - started - 0.01)

    await asyncio.gather(*tasks, watch_loop())
    for session in sessions:
        await session.close()
    return step


def _client_process(job: tuple) -> Step:
    base, viewers, recorded, refresh_s, measure_from, until, pace = job
    # the viewers' page state (answers kept to send back) is millions of small objects: a full
    # collection over them stalled this loop for most of a second every few seconds, and every
    # viewer due in that time started late and at once. Reference counting frees that state as
    # it is replaced; the few cycles left over a step's minute do not matter.
    gc.disable()
    return asyncio.run(
        drive_viewers(
            base,
            viewers,
            recorded,
            refresh_s=refresh_s,
            measure_from=measure_from,
            until=until,
            pace=pace,
        )
    )


def run_step(
    base: str,
    people: list[Viewer],
    recorded: dict,
    *,
    viewers: int,
    clients: int,
    refresh_s: float,
    warmup_s: float,
    duration_s: float,
    engine,
    pace: bool = True,
) -> Step:
    """`viewers` viewers, spread over `clients` generator processes, for warm-up + duration;
    figures over the duration only."""
    from concurrent.futures import ProcessPoolExecutor

    measure_from = time.monotonic() + warmup_s + 2  # the processes need a moment to start
    until = measure_from + duration_s
    chosen = people[:viewers]
    jobs = [
        (base, chosen[index::clients], recorded, refresh_s, measure_from, until, pace)
        for index in range(clients)
        if chosen[index::clients]
    ]
    with ProcessPoolExecutor(len(jobs)) as pool:
        running = [pool.submit(_client_process, job) for job in jobs]
        time.sleep(max(0.0, measure_from - time.monotonic()))
        read0, cpu0, t0 = reset_counts(engine), cpu_seconds(), time.monotonic()
        time.sleep(max(0.0, until - time.monotonic()))
        (web, every, read1, top), cpu1, t1 = (
            statement_counts(engine),
            cpu_seconds(),
            time.monotonic(),
        )
        parts = [future.result() for future in running]
    step = Step(viewers=viewers, top=top)
    for part in parts:
        step.latencies += part.latencies
        step.server += part.server
        step.loop_lag += part.loop_lag
        step.ages += part.ages
        step.age_errors += part.age_errors
        step.ticks_asked += part.ticks_asked
        step.ticks_skipped += part.ticks_skipped
        step.timeline += part.timeline
        for name, count in part.errors.items():
            step.errors[name] = step.errors.get(name, 0) + count
        for name, samples in part.by_callback.items():
            step.by_callback.setdefault(name, []).extend(samples)
    step.seconds = t1 - t0
    step.web_statements = web / step.seconds
    step.all_statements = every / step.seconds
    step.readings = (read1 - read0) / step.seconds
    step.cpu = {role: (cpu1[role] - cpu0[role]) / step.seconds for role in cpu1}
    return step


def report(steps: list[Step], *, duration_s: float, verbose: bool) -> None:
    """The table of figures, ratios against the first step."""
    _report_latencies(steps, duration_s=duration_s)
    _report_cpu(steps)
    _report_ages(steps)
    _report_server_time(steps)
    _report_per_callback(steps[-1])
    if verbose:
        _report_statements(steps)
    _report_verdict(steps[0], steps[-1])


def _report_latencies(steps: list[Step], *, duration_s: float) -> None:
    """Callbacks/s, latency quantiles, errors and statements/s per viewer count."""
    first = steps[0]
    print(
        f"\n{'viewers':>7} {'callbacks/s':>11} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
        f" {'errors':>6} {'web stmts/s':>11} {'ratio':>6} {'all stmts/s':>11} {'ratio':>6}"
        f" {'readings/s':>10}"
    )
    for step in steps:
        if not step.latencies:
            print(f"{step.viewers:>7} no successful callback; errors {step.errors}")
            continue
        print(
            f"{step.viewers:>7} {len(step.latencies) / duration_s:>11.1f}"
            f" {quantile(step.latencies, 0.5):>7.1f} {quantile(step.latencies, 0.95):>7.1f}"
            f" {quantile(step.latencies, 0.99):>7.1f} {step.error_count():>6}"
            f" {step.web_statements:>11.1f}"
            f" {step.web_statements / max(first.web_statements, 1e-9):>6.2f}"
            f" {step.all_statements:>11.1f}"
            f" {step.all_statements / max(first.all_statements, 1e-9):>6.2f}"
            f" {step.readings:>10.0f}"
        )
        if step.errors:
            print(f"        errors: {step.errors}")


def _report_ages(steps: list[Step]) -> None:
    """How old the data shown was on arrival, and how truthfully answers stated it."""
    print(
        f"\n{'viewers':>7} {'ticks asked':>11} {'skipped':>7} {'stamps':>7} {'age p50 s':>9}"
        f" {'p95 s':>6} {'max s':>6} {'stated-age error p95 s':>22}"
    )
    for step in steps:
        if step.ages:
            errors = [abs(error) for error in step.age_errors]
            print(
                f"{step.viewers:>7} {step.ticks_asked:>11} {step.ticks_skipped:>7}"
                f" {len(step.ages):>7} {quantile(step.ages, 0.5) / 1000:>9.1f}"
                f" {quantile(step.ages, 0.95) / 1000:>6.1f} {max(step.ages):>6.1f}"
                f" {quantile(errors, 0.95) / 1000:>22.2f}"
            )


def _report_cpu(steps: list[Step]) -> None:
    """CPU cores used per process role and viewer count, and by the whole machine."""
    roles = [role for role in steps[0].cpu if role != MACHINE]
    print("\nCPU cores used (of 2) during the measured window:")
    print(
        f"  {'viewers':>7} "
        + " ".join(f"{role[:14]:>14}" for role in roles)
        + f" {'other':>6} {'machine':>7}"
    )
    for step in steps:
        counted = sum(step.cpu[role] for role in roles)
        print(
            f"  {step.viewers:>7} "
            + " ".join(f"{step.cpu[role]:>14.2f}" for role in roles)
            + f" {step.cpu[MACHINE] - counted:>6.2f} {step.cpu[MACHINE]:>7.2f}"
        )
    print("  (other: processes that came and went, such as database connections, and the kernel)")


def _report_server_time(steps: list[Step]) -> None:
    """Time in the app and the load generator's loop lag per viewer count."""
    print(
        "\ntime in the app (Server-Timing, queueing excluded) and the load generator's own event"
        " loop lag, p50 / p95 / p99 / max ms:"
    )
    for step in steps:
        if step.server and step.loop_lag:
            print(
                f"  {step.viewers:>7} app {quantile(step.server, 0.5):7.1f}"
                f" {quantile(step.server, 0.95):7.1f} {quantile(step.server, 0.99):7.1f}"
                f"   loop lag {quantile(step.loop_lag, 0.5):7.1f}"
                f" {quantile(step.loop_lag, 0.95):7.1f} {quantile(step.loop_lag, 0.99):7.1f}"
                f" {max(step.loop_lag) * 1000:7.1f}"
            )


def _report_per_callback(last: Step) -> None:
    """Latency and calls per callback at the last viewer count."""
    print(f"\nper callback at {last.viewers} viewers (p50 / p95 ms, calls):")
    for name, samples in sorted(last.by_callback.items()):
        print(
            f"  {name[:44]:44} {quantile(samples, 0.5):7.1f} {quantile(samples, 0.95):7.1f}"
            f" {len(samples):6}"
        )


def _report_statements(steps: list[Step]) -> None:
    """The most frequent statements per viewer count."""
    for step in steps:
        print(f"\nmost frequent statements at {step.viewers} viewers (per second):")
        for role, calls, text in step.top:
            print(f"  {calls / step.seconds:7.2f}  {role:14} {text}")


def _report_verdict(first: Step, last: Step) -> None:
    """Pass or fail at the last viewer count, and statement growth from the first."""
    if not last.latencies:
        return
    p95 = quantile(last.latencies, 0.95)
    verdict = "PASS" if p95 <= 300 and not last.error_count() else "FAIL"
    print(
        f"\n{last.viewers} viewers: p95 {p95:.0f} ms (target ≤ 300), errors"
        f" {last.error_count()} (target 0): {verdict}"
    )
    print(
        f"dashboard (web role) statements/s {first.viewers} → {last.viewers} viewers:"
        f" ×{last.web_statements / max(first.web_statements, 1e-9):.2f}; all roles:"
        f" ×{last.all_statements / max(first.all_statements, 1e-9):.2f}"
    )


def record_views(engine, base: str, views: list, *, refresh_s: float) -> dict:
    """The bodies each viewer's page posts per refresh: the nine shared views as recorded, or
    (`views`) one recorded district page rewritten for each distinct view."""
    operator = bench_session(engine)
    pages = [f"/district/{RECORDED_DISTRICT}"] if views else PAGES
    print(f"serving {base}; recording a browser's refresh of {len(pages)} pages…", flush=True)
    recorded = record_refresh_posts(base, operator, refresh_s=refresh_s, pages=pages)
    for page_path, posts in recorded.items():
        outputs = sorted({post.get("output", "?")[:48] for post in posts})
        print(f"  {page_path}: {len(posts)} callbacks per refresh ({', '.join(outputs)})")
    if not views:
        return recorded
    bounds = district_bounds(engine)
    district_page = recorded[pages[0]]
    print(f"  {len(views)} distinct views, e.g. {views[-1].key}", flush=True)
    return {v.key: bodies_for(v, district_page, bounds[v.district]) for v in views}


def serve_env(url: str, args: argparse.Namespace) -> dict[str, str]:
    """The environment `serve` runs with for this bench's options."""
    env = {
        "DATABASE_URL": url,
        "ONESCREEN_UI_REFRESH_SECONDS": str(args.refresh),
        "ONESCREEN_UI_STALE_SECONDS": str(max(15, 3 * args.refresh)),
        "ONESCREEN_SIMULATE_RATE": str(args.rate),
        "ONESCREEN_LOG_LEVEL": "WARNING",
    }
    if args.workers:
        env["ONESCREEN_WEB_WORKERS"] = str(args.workers)
    return env


def arguments() -> argparse.Namespace:
    """The bench's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="10,50,100,200", help="viewer counts, in order")
    parser.add_argument("--duration", type=float, default=60, help="measured seconds per count")
    parser.add_argument("--warmup", type=float, default=15, help="unmeasured seconds per count")
    parser.add_argument("--refresh", type=float, default=5, help="seconds between refreshes")
    parser.add_argument("--rate", type=float, default=10 * REAL_RATE, help="simulator readings/s")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: settings)")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument(
        "--database-url",
        help="an already seeded city to serve (e.g. the 10M one) instead of the bench cluster's",
    )
    parser.add_argument(
        "--statements", action="store_true", help="list the most frequent statements per step"
    )
    parser.add_argument(
        "--one-address",
        action="store_true",
        help="every viewer from 127.0.0.1 (one office behind one NAT) instead of one address each",
    )
    parser.add_argument(
        "--no-pace",
        action="store_true",
        help="viewers ask at every tick even when the server is pressed (pages pace themselves)",
    )
    parser.add_argument("--samples", help="write (start, latency) of every callback to this file")
    parser.add_argument(
        "--clients", type=int, default=2, help="load generator processes (one event loop each)"
    )
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="every viewer on a view of their own (a district manager's district × category ×"
        " street × metric) instead of nine views shared by all",
    )
    return parser.parse_args()


def main() -> None:
    """Run the load bench over the viewer counts and print the report."""
    args = arguments()
    counts = [int(part) for part in args.viewers.split(",")]

    url = args.database_url or seeded_database(reuse=args.reuse)
    enable_statement_counts(url)
    engine = create_db_engine(url)
    writes.refresh_status(engine)
    views = distinct_views(engine, max(counts)) if args.distinct else []
    people = distinct_viewers(engine, views) if views else make_viewers(engine, max(counts))
    if not args.one_address:
        people = own_addresses(people)
    # serving() gives the server free ports and a data directory of its own, and stops them
    env = serve_env(url, args)
    log_path = ROOT / ".onescreen" / "bench-load-serve.log"
    with serving(env, log_path=log_path, ready_path="/login", timeout_s=300) as base:
        recorded = record_views(engine, base, views, refresh_s=args.refresh)
        steps = []
        for count in counts:
            print(
                f"{count} viewers: {args.warmup:.0f} s warm-up, {args.duration:.0f} s measured…",
                flush=True,
            )
            steps.append(
                run_step(
                    base,
                    people,
                    recorded,
                    viewers=count,
                    clients=args.clients,
                    refresh_s=args.refresh,
                    warmup_s=args.warmup,
                    duration_s=args.duration,
                    engine=engine,
                    pace=not args.no_pace,
                )
            )
    engine.dispose()
    print(
        f"\nsimulator at {args.rate:.0f} readings/s ({args.rate / REAL_RATE:.0f}× the real rate),"
        f" refresh every {args.refresh:g} s, server log {Path(log_path).relative_to(ROOT)}"
    )
    report(steps, duration_s=args.duration, verbose=args.statements)
    if args.samples:
        Path(args.samples).write_text(
            json.dumps({step.viewers: step.timeline for step in steps}, separators=(",", ":"))
        )


if __name__ == "__main__":
    main()
