"""Failover drill of the whole platform on one machine.

The HA database (two Patroni nodes, etcd, HAProxy), two MQTT ingest workers in a shared
subscription, two web servers behind nginx, the rules engine and the live simulator, with an
overview open in Chromium. While a probe publishes numbered readings, it kills the leading
database node (Patroni and PostgreSQL, as a host crash would), then one ingest worker, then one
web server, and reports:

- how long until a new leader, until readings are stored again, and until the screen moves again;
- acknowledged readings lost (target 0) and readings counted twice in the rollups (target 0);
- incidents opened during the drill more than once (target 0), and callbacks that failed.

    python -m bench.failover [--reuse] [--rate 200] [--settle 30]

Its cluster lives in ONESCREEN_DATA_DIR/bench-ha (ports 55400-55421); `--reuse` keeps a seeded
demo city there. Too heavy for CI's time (a city, Chromium and ~5 min of drills): run it and
report; tests/integration/test_ha.py is the database part that CI runs.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlalchemy as sa

from bench.harness import (
    ROOT,
    bench_session,
    browser_cookies,
    is_seeded,
    launch_chromium,
    serving,
)
from bench.ingest import _connected_client
from config import Settings, get_settings, load_settings
from data import migrate
from data.engine import create_db_engine
from data.ingest_store import create_token, find_principal
from ingest.broker import MqttCredentials, sync_broker_auth
from localservers.base import free_port
from localservers.ha import HaCluster
from localservers.mosquitto import managed_broker
from simulator.live import telemetry_topic
from simulator.seed import seed_city

BASE_PORT = 55400
SHOTS = ROOT / "artifacts" / "screenshots"
TILE = "[data-key=readings_today]"
SOURCE = "failover-probe"
PER_MESSAGE = 10


@dataclass
class Probe:
    """Publishes numbered readings of `devices` (binary, value 0: no incident) at `rate`/s,
    stamped 1 ms apart from `start`, and remembers which the broker acknowledged."""

    client: object
    topic: str
    devices: list[int]
    start: datetime
    rate: float
    street: str
    rollup_before: int = 0
    sent: list[tuple[object, list[int]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Publish until stopped, one message of PER_MESSAGE readings at a time."""
        number, interval = 0, PER_MESSAGE / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            numbers = list(range(number, number + PER_MESSAGE))
            rows = [
                {"device_id": self.key(n)[0], "ts": self.key(n)[1].isoformat(), "value": 0}
                for n in numbers
            ]
            info = self.client.publish(self.topic, orjson.dumps({"readings": rows}), qos=1)  # type: ignore[attr-defined]
            self.sent.append((info, numbers))
            number += PER_MESSAGE
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def key(self, number: int) -> tuple[int, datetime]:
        """Reading `number`'s (device, ts)."""
        return self.devices[number % len(self.devices)], self.start + timedelta(milliseconds=number)

    def acknowledged(self) -> set[int]:
        """The readings whose message the broker acknowledged (PUBACK)."""
        return {n for info, numbers in self.sent if info.is_published() for n in numbers}  # type: ignore[attr-defined]


def prepare(cluster: HaCluster, *, reuse: bool) -> str:
    """The HA cluster running, with the demo city seeded (again, unless `reuse`)."""
    url = cluster.ensure_running()
    engine = create_db_engine(url)
    if not (reuse and is_seeded(url)):
        migrate.upgrade(engine)
        print("seeding the demo city on the HA cluster…", flush=True)
        seed_city(engine, scale="demo", random_seed=7)
    engine.dispose()
    return url


def probe_devices(engine: sa.Engine) -> tuple[list[int], str]:
    """Active binary devices of one street (any 0 is valid and raises nothing), and the street."""
    with engine.connect() as conn:
        street = conn.execute(
            sa.text(
                "SELECT d.street_code FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.value_kind = 'binary' AND d.status = 'active'"
                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            )
        ).scalar_one()
        devices = conn.execute(
            sa.text(
                "SELECT d.id FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.value_kind = 'binary' AND d.status = 'active' AND d.street_code = :s"
                " ORDER BY d.id LIMIT 200"
            ),
            {"s": street},
        ).scalars()
        return list(devices), street


def stored(engine: sa.Engine, probe: Probe, count: int) -> set[int]:
    """Which of the probe's first `count` readings are in `reading`."""
    keys = [probe.key(n) for n in range(count)]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT k.n FROM unnest(CAST(:ids AS bigint[]), CAST(:ts AS timestamptz[]))"
                " WITH ORDINALITY AS k(d, t, n) JOIN reading r ON r.device_id = k.d AND r.ts = k.t"
                " WHERE r.ts BETWEEN :start AND :end"
            ),
            {
                "ids": [d for d, _ in keys],
                "ts": [t for _, t in keys],
                "start": probe.start,
                "end": probe.key(max(count - 1, 0))[1],
            },
        ).scalars()
        return {int(n) - 1 for n in rows}


def street_rollup(engine: sa.Engine, street: str, probe: Probe) -> int:
    """Readings the 15-minute rollup counts for the probe's street in its stamps' quarter."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT coalesce(sum(n_readings), 0) FROM rollup_street_15m"
                    " WHERE street_code = :s AND bucket = :start"
                ),
                {"s": street, "start": probe.start},
            ).scalar_one()
        )


class Screen:
    """An overview in Chromium; `moved_since` tells when its readings tile next changes."""

    def __init__(self, playwright, base: str, engine: sa.Engine) -> None:
        self.browser = launch_chromium(playwright)
        context = self.browser.new_context(viewport={"width": 1920, "height": 1080})
        context.add_cookies(browser_cookies(bench_session(engine)))
        self.page = context.new_page()
        self.failed: list[int] = []
        self.page.on("response", self._note)
        self.page.goto(base + "/", wait_until="networkidle", timeout=120_000)
        self.page.wait_for_selector(TILE, timeout=60_000)

    def _note(self, response) -> None:
        if "_dash-update-component" in response.url and response.status >= 500:
            self.failed.append(response.status)

    def shot(self, name: str) -> bool:
        """A screenshot of the screen now, as artifacts/screenshots/failover-<name>.png."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"failover-{name.replace(' ', '-')}.png"))
        return True

    def value(self) -> int:
        """The tile's number now."""
        text = self.page.inner_text(TILE)
        return int(re.sub(r"[^0-9]", "", text) or 0)

    def wait_moved(self, since: int, *, timeout_s: float) -> float | None:
        """Seconds until the tile differs from `since` (None: not within `timeout_s`)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.value() != since:
                return time.monotonic() - start
            self.page.wait_for_timeout(250)
        return None


def probe_count(engine: sa.Engine, probe: Probe) -> int | None:
    """How many probe readings are stored now (None while the database does not answer)."""
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM reading WHERE device_id = ANY(:d)"
                        " AND ts >= :start AND ts < :start + interval '1 hour'"
                    ),
                    {"d": probe.devices, "start": probe.start},
                ).scalar_one()
            )
    except sa.exc.DBAPIError:
        return None


def drill(name: str, kill, *, screen: Screen, engine: sa.Engine, probe: Probe) -> dict:
    """Kill something; seconds until probe readings are stored again and the screen moves."""
    before = probe_count(engine, probe) or 0
    killed = time.monotonic()
    detail = kill()
    baseline, stored_again, seen = None, None, False
    while (elapsed := time.monotonic() - killed) < 120:
        if not seen and elapsed >= 5.0:
            # what a wall shows mid-outage: never a blank or broken panel
            seen = screen.shot(f"{name}-during")
        count = probe_count(engine, probe)
        if baseline is None and elapsed >= 1.0:
            # what commits in flight at the kill added; growth past it is storing again
            baseline = count if count is not None else before
        elif baseline is not None and count is not None and count > baseline:
            stored_again = elapsed
            break
        time.sleep(0.2)
    moved = screen.wait_moved(screen.value(), timeout_s=90)
    screen_again = None if moved is None else time.monotonic() - killed
    screen.shot(f"{name}-after")
    print(
        f"  {name}: {detail}; readings stored again after "
        f"{_secs(stored_again)}, the screen moved again after {_secs(screen_again)}",
        flush=True,
    )
    return {"drill": name, "detail": detail, "stored": stored_again, "screen": screen_again}


def _secs(value: float | None) -> str:
    return "— (not within the wait)" if value is None else f"{value:.1f} s"


def kill_leader(cluster: HaCluster) -> str:
    """SIGKILL the leading node's Patroni and PostgreSQL; which, and the new leader's delay."""
    leader = cluster.leader()
    if leader is None:
        raise SystemExit("no leader to kill")
    leader.kill()
    took = cluster.wait_until(
        lambda: (cluster.leader() or leader) is not leader, timeout_s=120, what="a new leader"
    )
    new = cluster.leader()
    return f"{leader.name} killed, {new.name if new else '?'} leads after {took:.1f} s"


def kill_process(cmd_part: str, env_pair: str | None = None) -> str:
    """SIGKILL the first process whose command line has `cmd_part` (and environment `env_pair`)."""
    for entry in sorted(Path("/proc").iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().split(b"\0") if env_pair else []
        except OSError:
            continue
        if cmd_part in cmdline and (env_pair is None or env_pair.encode() in environ):
            os.kill(int(entry.name), signal.SIGKILL)
            return f"pid {entry.name} ({cmd_part.strip()}) killed"
    raise SystemExit(f"no process runs {cmd_part!r}")


def kill_web(log_path: Path) -> str:
    """SIGKILL the first web server's gunicorn master (its workers follow)."""
    found = re.findall(r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)", log_path.read_text())
    if not found:
        raise SystemExit("no web server in the serve log")
    port, pid = found[0]
    os.kill(int(pid), signal.SIGKILL)
    return f"web server on port {port} (gunicorn pid {pid}) killed"


def incident_check(engine: sa.Engine, since: datetime) -> tuple[int, int, int]:
    """Incidents opened since `since`; those with more than one 'opened' event; pairs of one
    device and rule whose live times overlap (an incident opened twice)."""
    with engine.connect() as conn:
        opened = conn.execute(
            sa.text("SELECT count(*) FROM incident WHERE opened_at >= :t"), {"t": since}
        ).scalar_one()
        doubled = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT e.incident_id FROM incident_event e"
                " JOIN incident i ON i.id = e.incident_id WHERE i.opened_at >= :t"
                " AND e.kind = 'opened' GROUP BY 1 HAVING count(*) > 1) x"
            ),
            {"t": since},
        ).scalar_one()
        overlapping = conn.execute(
            sa.text(
                "SELECT count(*) FROM incident a JOIN incident b ON a.device_id = b.device_id"
                " AND a.rule_code = b.rule_code AND a.id < b.id"
                " AND b.opened_at < coalesce(a.resolved_at, 'infinity')"
                " AND a.opened_at < coalesce(b.resolved_at, 'infinity')"
                " WHERE b.opened_at >= :t"
            ),
            {"t": since},
        ).scalar_one()
    return int(opened), int(doubled), int(overlapping)


def main() -> int:
    """Run the drill and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep a seeded city in bench-ha")
    parser.add_argument("--rate", type=float, default=200.0, help="probe readings per second")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds between drills")
    args = parser.parse_args()
    settings = get_settings()
    cluster = HaCluster(
        root=settings.data_dir / "bench-ha",
        base_port=BASE_PORT,
        bin_dir=settings.pg_bin_dir,
        os_user=settings.pg_os_user,
    )
    url = prepare(cluster, reuse=args.reuse)
    try:
        run(cluster, url, args=args)
    finally:
        cluster.stop(timeout_s=30)
    return 0


def run(cluster: HaCluster, url: str, *, args: argparse.Namespace) -> None:
    """Serve the city on the cluster, open a screen, publish, drill, then count."""
    from playwright.sync_api import sync_playwright

    engine = create_db_engine(url)
    broker_port = free_port()
    env = {
        "DATABASE_URL": url,
        "ONESCREEN_READ_DATABASE_URL": cluster.read_url(),
        "ONESCREEN_INGEST_WORKERS": "2",
        "ONESCREEN_WEB_INSTANCES": "2",
        "ONESCREEN_MQTT_BROKER_PORT": str(broker_port),
        "ONESCREEN_LOG_LEVEL": "INFO",
    }
    data_dir = get_settings().data_dir / "bench-failover"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)  # the broker's and Redis's accounts pass through
    env["ONESCREEN_DATA_DIR"] = str(data_dir)
    log_path = data_dir / "serve.log"
    since = datetime.now(UTC)
    with serving(env, log_path=log_path, ready_path="/login") as base, sync_playwright() as pw:
        broker = load_settings(data_dir=data_dir, mqtt_broker_port=broker_port, mqtt_url=None)
        probe = start_probe(engine, broker=broker, rate=args.rate)
        screen = Screen(pw, base, engine)
        print(f"serving {base}; probe {args.rate:.0f} readings/s; drills {args.settle:.0f} s apart")
        steps = [
            ("database leader", lambda: kill_leader(cluster)),
            ("ingest worker 0", lambda: kill_process("ingest-mqtt", "ONESCREEN_MQTT_WORKER=0")),
            ("web server 0", lambda: kill_web(log_path)),
        ]
        drills = []
        for name, kill in steps:
            time.sleep(args.settle)
            drills.append(drill(name, kill, screen=screen, engine=engine, probe=probe))
            if not cluster.all_streaming():
                started = time.monotonic()
                cluster.ensure_running()  # Patroni rewinds the dead node to follow the new leader
                print(
                    f"  the dead node rejoined as a replica in {time.monotonic() - started:.1f} s"
                )
        time.sleep(args.settle)
        report(engine, probe, screen, since=since, drills=drills)
    engine.dispose()


def start_probe(engine: sa.Engine, *, broker: Settings, rate: float) -> Probe:
    """A city-wide token's MQTT publisher on the broker serve runs (`broker` names it),
    publishing."""
    devices, street = probe_devices(engine)
    token = create_token(engine, source=SOURCE, city_wide=True, label="failover bench")
    principal = find_principal(engine, token=token)
    assert principal is not None and principal.mqtt_username
    sync_broker_auth(engine, broker)  # as `cli.py ingest token create` does
    credentials = MqttCredentials(principal.mqtt_username, token)
    client = _connected_client(managed_broker(broker).url, credentials)
    # stamps 1 ms apart from the start of a past quarter hour nobody else writes (the
    # simulator stamps now), so that quarter's rollup can be checked exactly
    past = datetime.now(UTC) - timedelta(minutes=45)
    start = past.replace(minute=past.minute - past.minute % 15, second=0, microsecond=0)
    probe = Probe(
        client=client,
        topic=telemetry_topic("onescreen", principal.mqtt_username),
        devices=devices,
        start=start,
        rate=rate,
        street=street,
    )
    probe.rollup_before = street_rollup(engine, street, probe)
    threading.Thread(target=probe.run, name="probe", daemon=True).start()
    return probe


def report(
    engine: sa.Engine, probe: Probe, screen: Screen, *, since: datetime, drills: list[dict]
) -> None:
    """Stop the probe, let the store catch up, then count losses, doubles and incidents."""
    probe.stop.set()
    time.sleep(2.0)  # the last PUBACKs
    published = len(probe.sent) * PER_MESSAGE
    acknowledged = probe.acknowledged()
    deadline = time.monotonic() + 180
    while (held := stored(engine, probe, published)) < acknowledged and time.monotonic() < deadline:
        time.sleep(2.0)
    time.sleep(5.0)
    held = stored(engine, probe, published)
    counted = street_rollup(engine, probe.street, probe) - probe.rollup_before
    opened, doubled, overlapping = incident_check(engine, since)
    print("\nfailover drill (bench.failover):")
    for result in drills:
        print(
            f"  {result['drill']:<16} stored again {_secs(result['stored']):>8}"
            f"   screen moved again {_secs(result['screen']):>8}   ({result['detail']})"
        )
    print(
        f"  probe readings: {published} published, {len(acknowledged)} acknowledged by the broker,"
        f" {len(held)} stored; acknowledged but lost: {len(acknowledged - held)} (target 0)"
    )
    print(
        f"  rollup count of the probe's street over its buckets grew by {counted} for {len(held)}"
        f" stored: counted twice {counted - len(held)} (target 0)"
    )
    print(
        f"  incidents opened during the drill: {opened}; opened twice: {doubled};"
        f" live twice for one device and rule: {overlapping} (target 0)"
    )
    print(f"  callbacks answered 5xx on the screen: {len(screen.failed)}")


if __name__ == "__main__":
    raise SystemExit(main())
