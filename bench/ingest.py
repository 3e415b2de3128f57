"""Ingest figures with the whole live city running (app, MQTT broker, ingest worker, simulator):
sustained readings/s through HTTP and through MQTT, end to end (committed), and the
ingest-to-screen latency of the overview's "readings today" tile in headless Chromium.

    python -m bench.ingest [--scale demo|seed] [--seconds 20] [--samples 20] [--reuse]
    python -m bench.ingest --scale target --sustain 600 --rate 33000

The second holds the worst storm's peak for 10 minutes on the 10M city (bench.target seeds it)
through two MQTT ingest workers, sampling ingest-to-screen throughout, and counts what reached
the store of what the broker acknowledged.

Uses its own cluster (ONESCREEN_DATA_DIR/bench-pg, port 54339), database onescreen_ingest_bench,
and its own Mosquitto, closed as OneScreen runs it: the bench's tokens are bound to the categories
and districts of the devices it sends for, and every MQTT client logs in with its token's login.
Targets (issue 4): ≥ 20,000 readings/s each path, latency p95 ≤ 5 s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import sqlalchemy as sa

from bench.harness import (
    bench_database,
    bench_session,
    browser_cookies,
    launch_chromium,
    serving,
)
from config import Settings, get_settings, load_settings
from data import migrate, writes
from data.engine import create_db_engine
from data.ingest_store import create_token, find_principal, revoke_tokens
from ingest.broker import MqttCredentials, service_login, sync_broker_auth, worker_login_name
from localservers.base import free_port
from localservers.mosquitto import ManagedBroker, managed_broker
from simulator.live import telemetry_topic

DATABASE = "onescreen_ingest_bench"
SOURCE = "bench"


def bodies(
    devices: np.ndarray,
    values: np.ndarray,
    *,
    start: datetime,
    count: int,
    per_body: int,
    part: int,
) -> list[bytes]:
    """`count` JSON bodies of `per_body` readings with keys no other part or run uses."""
    result = []
    base = np.datetime64(start.replace(tzinfo=None), "ms")
    for k in range(count):
        n = (part * count + k) * per_body + np.arange(per_body)
        device = devices[n % len(devices)]
        # each device's readings 1 ms apart: unique (device, ts) keys
        ts = np.datetime_as_string(base + (n // len(devices)).astype("timedelta64[ms]"), unit="ms")
        rows = [
            {"device_id": int(d), "ts": f"{t}Z", "value": float(v)}
            for d, t, v in zip(device, ts, values[n % len(devices)], strict=True)
        ]
        result.append(orjson.dumps({"readings": rows}))
    return result


def _http_client(url, token, payloads, start_at, seconds, queue) -> None:
    stored = requests = 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    for body in payloads:
        if time.time() >= deadline:
            break
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                stored += orjson.loads(response.read())["stored"]
        except urllib.error.HTTPError as exc:
            print(f"HTTP {exc.code}: {exc.read()[:200]!r}", file=sys.stderr)
        requests += 1
    queue.put((stored, requests, time.time()))


def _connected_client(broker: str, credentials: MqttCredentials):
    """A paho client logged in as `credentials` (the broker takes the login as client id), its
    network loop running, once the broker has accepted it."""
    import threading

    import paho.mqtt.client as mqtt

    from ingest.broker import parse_broker_url

    host, port = parse_broker_url(broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=credentials.username)
    client.username_pw_set(credentials.username, credentials.password)
    accepted = threading.Event()
    # a refusal (the broker not yet reloaded its logins) is retried by the network loop
    client.on_connect = lambda _c, _u, _f, code, _p: accepted.set() if code.value == 0 else None
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    client.connect(host, port)
    client.loop_start()
    if not accepted.wait(30):
        client.loop_stop()
        raise SystemExit(f"the broker refused MQTT login {credentials.username}")
    return client


def _mqtt_client(broker, credentials, topic, payloads, ready, go, queue) -> None:
    client = _connected_client(broker, credentials)
    ready.release()
    go.wait()
    infos = [client.publish(topic, body, qos=1) for body in payloads]
    for info in infos:
        info.wait_for_publish(timeout=120)
    queue.put((sum(1 for i in infos if i.is_published()), time.time()))
    client.disconnect()
    client.loop_stop()


def _count(engine, start: datetime, end: datetime) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM reading WHERE ts >= :a AND ts < :b"),
            {"a": start, "b": end},
        ).scalar_one()


def _devices(engine) -> tuple[np.ndarray, np.ndarray, dict]:
    """Active devices, a normal value each (the bench load raises no incidents), and the
    categories × districts they span: the scope of the bench's tokens."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.id, (t.normal_min + t.normal_max) / 2, t.category_code,"
                " d.district_adcode FROM device d"
                " JOIN device_type t ON t.id = d.type_id WHERE d.status = 'active'"
                " AND t.value_kind = 'analog' ORDER BY d.id"
            )
        ).all()
    scope = {
        "categories": sorted({r[2] for r in rows}),
        "districts": sorted({r[3] for r in rows}),
    }
    return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows]), scope


def mqtt_senders(engine, bench: Settings, *, count: int, scope: dict, label: str) -> list:
    """`count` new tokens of the bench source bound to `scope`, as (login, topic) pairs that the
    bench broker accepts: a login per connection, as the broker takes it for the client id."""
    senders = []
    for k in range(count):
        token = create_token(engine, source=SOURCE, label=f"{label} {k}", **scope)
        principal = find_principal(engine, token=token)
        assert principal is not None and principal.mqtt_username
        credentials = MqttCredentials(principal.mqtt_username, token)
        senders.append(
            (credentials, telemetry_topic(bench.mqtt_topic_prefix, principal.mqtt_username))
        )
    sync_broker_auth(engine, bench)
    return senders


def run_http(
    engine, base_url, *, devices, values, scope, seconds, clients, per_body, start
) -> dict:
    """Readings/s committed through POST /api/v1/readings by `clients` processes."""
    token = create_token(engine, source=SOURCE, label="bench http", **scope)
    before = _count(engine, start, start + timedelta(hours=6))
    need = int(seconds * 60_000 / per_body / clients) + 2  # more than a run can send
    parts = [
        bodies(devices, values, start=start, count=need, per_body=per_body, part=p)
        for p in range(clients)
    ]
    queue: mp.Queue = mp.Queue()
    start_at = time.time() + 1.0
    procs = [
        mp.Process(
            target=_http_client,
            args=(f"{base_url}/api/v1/readings", token, parts[p], start_at, seconds, queue),
        )
        for p in range(clients)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = max(r[2] for r in results) - start_at
    stored = sum(r[0] for r in results)
    in_db = _count(engine, start, start + timedelta(hours=6)) - before
    return {
        "stored": stored,
        "in_db": in_db,
        "requests": sum(r[1] for r in results),
        "seconds": elapsed,
        "rate": stored / elapsed,
    }


def run_mqtt(engine, bench, *, devices, values, scope, total, publishers, per_body, start) -> dict:
    """Readings/s from the first publish to the last row committed by the ingest worker."""
    senders = mqtt_senders(engine, bench, count=publishers, scope=scope, label="bench mqtt")
    per = total // publishers // per_body
    parts = [
        bodies(devices, values, start=start, count=per, per_body=per_body, part=p)
        for p in range(publishers)
    ]
    expected = per * per_body * publishers
    queue: mp.Queue = mp.Queue()
    ready, go = mp.Semaphore(0), mp.Event()
    procs = [
        mp.Process(
            target=_mqtt_client,
            args=(managed_broker(bench).url, *senders[p], parts[p], ready, go, queue),
        )
        for p in range(publishers)
    ]
    for proc in procs:
        proc.start()
    window_end = start + timedelta(hours=6)
    before = _count(engine, start, window_end)  # an earlier run's readings, if any
    for _ in procs:  # every publisher logged in: the clock starts with the first publish
        ready.acquire()
    start_at = time.time()
    go.set()
    stored = 0
    while time.time() < start_at + 600:
        stored = _count(engine, start, window_end) - before
        if stored >= expected:
            break
        time.sleep(0.25)
    done = time.time()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return {
        "published": sum(r[0] for r in results) * per_body,
        "publish_seconds": max(r[1] for r in results) - start_at,
        "stored": stored,
        "expected": expected,
        "seconds": done - start_at,
        "rate": stored / (done - start_at),
    }


def _paced_publisher(
    broker, credentials, topic, devices, values, rate, seconds, batch, *, go, queue, part, parts
) -> None:
    """Publish live readings (stamped now) at `rate` a second for `seconds`, `batch` a message."""
    client = _connected_client(broker, credentials)
    rng = np.random.default_rng()
    go.wait()
    started = time.time()
    sent = 0
    infos: list = []
    while (elapsed := time.time() - started) < seconds:
        due = int(elapsed * rate) + batch
        if sent >= due:
            time.sleep(min(0.02, (sent - due + batch) / rate))
            continue
        pick = rng.choice(len(devices), size=batch, replace=False)
        ts = _marked(datetime.now(UTC), len(infos), part=part, parts=parts).isoformat()
        rows = [{"device_id": int(devices[i]), "ts": ts, "value": float(values[i])} for i in pick]
        infos.append(client.publish(topic, orjson.dumps({"readings": rows}), qos=1))
        sent += batch
    for info in infos:
        info.wait_for_publish(timeout=300)
    acknowledged = sum(1 for i in infos if i.is_published()) * batch
    client.disconnect()
    client.loop_stop()
    queue.put((sent, acknowledged, time.time() - started))


# the sustained load's readings are stamped at millisecond 777 of their second and 1-999 µs past
# it (a message's own): the store tells them from the simulator's, and no two messages of one
# publisher in a second share a key
MARK_MS = 777


def _marked(now: datetime, sequence: int, *, part: int, parts: int) -> datetime:
    """`now` at millisecond MARK_MS and a microsecond of publisher `part`'s own share."""
    share = 999 // parts
    return now.replace(microsecond=MARK_MS * 1000 + 1 + part * share + sequence % share)


def _marked_count(engine, start: datetime, end: datetime, *, ms: int = MARK_MS) -> int:
    """Readings in [start, end) stamped as the sustained load stamps them (at millisecond `ms`;
    another millisecond counts the simulator's readings that match by chance)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM reading WHERE ts >= :a AND ts < :b"
                    " AND floor(extract(microseconds FROM ts))::bigint % 1000000 / 1000 = :ms"
                    " AND floor(extract(microseconds FROM ts))::bigint % 1000 > 0"
                ),
                {"a": start, "b": end, "ms": ms},
            ).scalar_one()
        )


def _readings_today(engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT coalesce(sum(n_readings), 0) FROM rollup_district_daily"
                    " WHERE day = city_day(now())"
                )
            ).scalar_one()
        )


# a sample that waits longer is recorded at this (the run goes on: a figure, not a crash)
MARKER_TIMEOUT_S = 120.0


def _marker_latency(
    engine, page, client, topic, *, device: int, value: float
) -> tuple[float, float]:
    """Seconds from publishing one reading until it is committed, and until the overview tile
    counts it: the commit is watched in the store, then the tile must reach the day's count at
    that moment (others' readings cannot make it arrive early). Either is MARKER_TIMEOUT_S at
    most."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    ts = datetime.now(UTC)
    started = time.time()
    body = {"readings": [{"device_id": device, "ts": ts.isoformat(), "value": value}]}
    client.publish(topic, orjson.dumps(body), qos=1)
    with engine.connect() as conn:
        while time.time() - started < MARKER_TIMEOUT_S:
            found = conn.execute(
                sa.text("SELECT 1 FROM reading WHERE device_id = :d AND ts = :ts"),
                {"d": device, "ts": ts},
            ).scalar_one_or_none()
            conn.rollback()
            if found:
                break
            time.sleep(0.05)
    committed = time.time() - started
    if page is None or committed >= MARKER_TIMEOUT_S:
        return committed, MARKER_TIMEOUT_S
    target = _readings_today(engine)
    try:
        page.wait_for_function(
            "([sel, target]) => { const el = document.querySelector(sel);"
            " return el && parseInt(el.textContent.replace(/[^0-9]/g, '')) >= target; }",
            arg=["[data-key=readings_today]", target],
            polling=50,
            timeout=(MARKER_TIMEOUT_S - committed) * 1000,
        )
    except PlaywrightTimeout:
        return committed, MARKER_TIMEOUT_S
    return committed, time.time() - started


def run_sustained(
    engine, base_url, bench, *, devices, values, scope, rate, seconds, publishers, batch
) -> dict:
    """MQTT at `rate` readings/s for `seconds` from `publishers` processes, ingest-to-screen
    latency sampled throughout; then how much was committed and how long the backlog took."""
    from playwright.sync_api import sync_playwright

    senders = mqtt_senders(engine, bench, count=publishers + 1, scope=scope, label="sustain")
    broker = managed_broker(bench).url
    queue: mp.Queue = mp.Queue()
    go = mp.Event()
    procs = [
        mp.Process(
            target=_paced_publisher,
            args=(broker, *senders[p], devices, values, rate / publishers, seconds, batch),
            kwargs={"go": go, "queue": queue, "part": p, "parts": publishers},
        )
        for p in range(publishers)
    ]
    for proc in procs:
        proc.start()
    marker = _connected_client(broker, senders[-1][0])
    before = _readings_today(engine)
    latencies: list[float] = []
    commits: list[float] = []
    rng = np.random.default_rng(5)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        context.add_cookies(browser_cookies(bench_session(engine)))
        page = context.new_page()
        page.goto(base_url + "/", wait_until="networkidle")
        page.wait_for_selector("[data-key=readings_today]", timeout=120_000)
        start_at, wall_start = time.time(), datetime.now(UTC)
        go.set()
        while time.time() < start_at + seconds:
            i = int(rng.integers(len(devices)))
            committed, shown = _marker_latency(
                engine, page, marker, senders[-1][1], device=int(devices[i]), value=float(values[i])
            )
            commits.append(committed)
            latencies.append(shown)
            print(
                f"  sample at {time.time() - start_at:.0f} s: committed after {committed:.1f} s,"
                f" on screen after {shown:.1f} s",
                flush=True,
            )
            time.sleep(rng.uniform(0.5, 3.5))
        browser.close()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    sent, acknowledged = sum(r[0] for r in results), sum(r[1] for r in results)
    # the backlog has drained when a reading published now is committed
    i = int(rng.integers(len(devices)))
    last, _ = _marker_latency(
        engine, None, marker, senders[-1][1], device=int(devices[i]), value=float(values[i])
    )
    marker.disconnect()
    marker.loop_stop()
    window = (wall_start - timedelta(seconds=5), datetime.now(UTC) + timedelta(seconds=5))
    return {
        "sent": sent,
        "acknowledged": acknowledged,
        # the simulator's readings stamped alike by chance, as often as at any other millisecond
        "committed": _marked_count(engine, *window)
        - _marked_count(engine, *window, ms=MARK_MS + 1),
        "all_committed": _readings_today(engine) - before,
        "publish_seconds": max(r[2] for r in results),
        "drain_seconds": last,
        "latencies": latencies,
        "commits": commits,
    }


def run_latency(engine, base_url, bench, *, devices, values, scope, samples, batch) -> list[float]:
    """Seconds from publishing `batch` readings stamped now until the overview tile shows them."""
    from playwright.sync_api import sync_playwright

    [(credentials, topic)] = mqtt_senders(engine, bench, count=1, scope=scope, label="latency")
    client = _connected_client(managed_broker(bench).url, credentials)
    latencies = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        context.add_cookies(browser_cookies(bench_session(engine)))
        page = context.new_page()
        page.goto(base_url + "/", wait_until="networkidle")
        tile = "[data-key=readings_today]"
        page.wait_for_selector(tile, timeout=60_000)
        rng = np.random.default_rng(4)
        for sample in range(samples):
            with engine.connect() as conn:
                today = conn.execute(
                    sa.text(
                        "SELECT coalesce(sum(n_readings), 0) FROM rollup_district_daily"
                        " WHERE day = city_day(now())"
                    )
                ).scalar_one()
            pick = rng.choice(len(devices), size=batch, replace=False)
            now = datetime.now(UTC)
            rows = [
                {
                    "device_id": int(devices[i]),
                    "ts": (now - timedelta(milliseconds=sample)).isoformat(),
                    "value": float(values[i]),
                }
                for i in pick
            ]
            started = time.time()
            client.publish(topic, orjson.dumps({"readings": rows}), qos=1)
            # the simulator adds ~100/s meanwhile: a batch of thousands is only matched by ours
            page.wait_for_function(
                "([sel, target]) => { const el = document.querySelector(sel);"
                " return el && parseInt(el.textContent.replace(/[^0-9]/g, '')) >= target; }",
                arg=[tile, int(today) + batch],
                polling=50,
                timeout=60_000,
            )
            latencies.append(time.time() - started)
            time.sleep(rng.uniform(0.5, 3.5))  # land anywhere in the refresh cycle
        browser.close()
    client.disconnect()
    client.loop_stop()
    return latencies


def _latency_figures(latencies: list[float]) -> str:
    """p50, p95 and max of latency samples, in seconds, as the bench prints them."""
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered):.2f} s, p95 {p95:.2f} s, max {ordered[-1]:.2f} s"
        f" over {len(ordered)} samples"
    )


def measure(engine: sa.Engine, base_url: str, bench: Settings, *, args: argparse.Namespace) -> None:
    """Run the HTTP, MQTT and ingest-to-screen phases against the running city; print figures."""
    devices, values, scope = _devices(engine)
    # days before the seeded history (so counting them is exact), whole seconds (the bodies
    # carry millisecond timestamps), at this run's time of day so that a rerun (--reuse) sends
    # new readings rather than duplicates (a run's readings span well under a second)
    http_start = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    mqtt_start = http_start - timedelta(days=1)
    time.sleep(5)  # let the simulator reach its rate
    http = run_http(
        engine,
        base_url,
        devices=devices,
        values=values,
        scope=scope,
        seconds=args.seconds,
        clients=args.clients,
        per_body=args.http_batch,
        start=http_start,
    )
    print(
        f"HTTP  {http['rate']:>9,.0f} readings/s committed ({http['stored']:,} in"
        f" {http['seconds']:.1f} s, {http['requests']} requests of {args.http_batch},"
        f" {args.clients} clients; {http['in_db']:,} in the store)"
    )
    mqtt = run_mqtt(
        engine,
        bench,
        devices=devices,
        values=values,
        scope=scope,
        total=args.mqtt_total,
        publishers=args.publishers,
        per_body=args.mqtt_batch,
        start=mqtt_start,
    )
    print(
        f"MQTT  {mqtt['rate']:>9,.0f} readings/s committed ({mqtt['stored']:,} of"
        f" {mqtt['expected']:,} in {mqtt['seconds']:.1f} s from first publish; publishing"
        f" took {mqtt['publish_seconds']:.1f} s; messages of {args.mqtt_batch})"
    )
    latencies = run_latency(
        engine,
        base_url,
        bench,
        devices=devices,
        values=values,
        scope=scope,
        samples=args.samples,
        batch=3000,
    )
    print(
        f"ingest → screen: {_latency_figures(latencies)} (MQTT publish → overview"
        f" tile, refresh {get_settings().ui_refresh_seconds:g} s)"
    )


def sustain(engine: sa.Engine, base_url: str, bench: Settings, *, args: argparse.Namespace) -> None:
    """The sustained-peak phase (issue 23: 33,000 readings/s for 10 minutes); prints figures."""
    devices, values, scope = _devices(engine)
    time.sleep(5)  # let the simulator reach its rate
    result = run_sustained(
        engine,
        base_url,
        bench,
        devices=devices,
        values=values,
        scope=scope,
        rate=args.rate,
        seconds=args.sustain,
        publishers=args.publishers,
        batch=args.mqtt_batch,
    )
    seconds = result["publish_seconds"]
    print(
        f"sustained: {result['sent']:,} readings sent in {seconds:.0f} s"
        f" ({result['sent'] / seconds:,.0f}/s), {result['acknowledged']:,} acknowledged by the"
        f" broker, {result['committed']:,} of them in the store"
        f" (lost {result['acknowledged'] - result['committed']:,});"
        f" all sources committed {result['all_committed']:,}"
    )
    print(
        f"backlog: a reading published at the end was committed after"
        f" {result['drain_seconds']:.1f} s"
    )
    print(f"ingest → screen under load: {_latency_figures(result['latencies'])} (target p95 ≤ 5 s)")


def bench_broker(settings: Settings) -> Settings:
    """Settings naming a fresh Mosquitto of the bench's own (ONESCREEN_DATA_DIR/bench-mqtt, a
    free port), managed as OneScreen manages its broker, logins synced from the database."""
    root = settings.data_dir / "bench-mqtt"
    # a fresh broker: no backlog of an interrupted run competes with this one
    ManagedBroker(root=root / "mqtt", port=0).stop()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o755)  # as root, mosquitto drops privileges and must reach its directory
    return load_settings(
        data_dir=root,
        mqtt_broker_port=free_port(),
        mqtt_url=None,
        mqtt_username=None,
        mqtt_password=None,
        mqtt_auth_dir=None,
    )


def main() -> int:
    """Run the ingest bench, print its figures; the exit status says whether it passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        choices=["demo", "seed", "target"],
        default="demo",
        help="target: the 10M city bench.target seeded (bench_target), reused as it is",
    )
    parser.add_argument(
        "--sustain",
        type=float,
        default=0,
        help="seconds of MQTT at --rate with ingest-to-screen sampled throughout (instead of "
        "the throughput phases)",
    )
    parser.add_argument("--rate", type=float, default=33_000, help="readings/s for --sustain")
    parser.add_argument("--workers", type=int, default=2, help="MQTT ingest workers")
    parser.add_argument("--seconds", type=float, default=20, help="HTTP phase length")
    parser.add_argument("--clients", type=int, default=2, help="HTTP client processes")
    parser.add_argument("--http-batch", type=int, default=5000)
    parser.add_argument("--mqtt-total", type=int, default=600_000)
    parser.add_argument("--mqtt-batch", type=int, default=2000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=20, help="latency samples")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded city")
    args = parser.parse_args()

    from simulator.seed import seed_city

    settings = get_settings()
    if args.scale == "target":
        from bench.target import DATABASE as TARGET

        url = bench_database(TARGET, reuse=True)
    else:
        url = bench_database(DATABASE, reuse=args.reuse)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    if writes.get_meta(engine, key="seed") is None:
        t = time.time()
        seed_city(engine, scale=args.scale, random_seed=settings.random_seed)
        print(f"seeded {args.scale} city in {time.time() - t:.1f} s")
    bench = bench_broker(settings)
    broker = managed_broker(bench)
    with ExitStack() as running:
        running.callback(engine.dispose)
        running.callback(broker.stop)
        # the worker's login (it alone reads telemetry) and the tokens' known before it starts
        ingest = service_login(bench, name="bench-ingest")
        # workers past the first log in as serve makes their logins, in its data directory:
        # the bench's, so the broker knows them
        for worker in range(1, args.workers):
            service_login(bench, name=worker_login_name(bench, worker=worker))
        revoke_tokens(engine, source=SOURCE)  # an earlier run's (--reuse): not the broker's
        sync_broker_auth(engine, bench)
        env = {
            "DATABASE_URL": url,
            "ONESCREEN_MQTT_URL": broker.ensure_running(),
            "ONESCREEN_LOG_LEVEL": os.environ.get("ONESCREEN_LOG_LEVEL", "WARNING"),
            "ONESCREEN_MQTT_USERNAME": ingest.username,
            "ONESCREEN_MQTT_PASSWORD": ingest.password,
            "ONESCREEN_INGEST_WORKERS": str(args.workers),
            "ONESCREEN_DATA_DIR": str(bench.data_dir),
        }
        log = settings.data_dir / "bench-ingest-serve.log"
        base_url = running.enter_context(serving(env, log_path=log, ready_path="/api/v1/health"))
        # serve made the simulator's token as it started: let its login in (it retries)
        sync_broker_auth(engine, bench)
        if args.sustain:
            sustain(engine, base_url, bench, args=args)
        else:
            measure(engine, base_url, bench, args=args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
