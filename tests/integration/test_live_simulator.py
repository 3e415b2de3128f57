"""The `simulate` command against a real broker and the seeded city (the managed Mosquitto
itself: tests/integration/test_local_servers.py)."""

import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
import orjson
import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa

from config import PROJECT_ROOT
from data.live_city import load_live_devices, offline_device_ids
from ingest.broker import parse_broker_url
from localservers.base import free_port
from simulator.live import HttpPublisher

pytestmark = pytest.mark.timeout(180)


class Subscriber:
    """A plain paho subscriber that keeps every message it receives, logged in as an ingest
    service (only those may read telemetry); its login is its client id."""

    def __init__(self, url, login, topic="simtest/+/telemetry", *, clean=True):
        host, port = parse_broker_url(url)
        self.messages = []
        self.received = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=login.username, clean_session=clean
        )
        self.client.username_pw_set(login.username, login.password)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client, userdata, message):
        self.messages.append((message.topic, time.monotonic(), message.payload))
        self.received.set()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def logins(mqtt, engine, seeded):
    """The simulator's token (city-wide) and a subscriber's ingest login, known to the broker."""
    reader = mqtt.ingest_login("simtest-reader")
    return mqtt.sender(engine, source="simulator"), reader


def test_a_persistent_sessions_backlog_survives_the_consumer_being_away(mqtt, engine):
    """Nothing lost: 5,000 messages (Mosquitto's default queue holds 1,000) wait for the worker."""
    login = mqtt.ingest_login("backlog-worker")
    sender = mqtt.sender(engine, source="backlog")
    topic = sender.topic.replace("onescreen/", "backlog/", 1)
    worker = Subscriber(mqtt.url, login, "backlog/+/telemetry", clean=False)
    worker.close()
    host, port = parse_broker_url(mqtt.url)
    publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="backlog-pub")
    publisher.username_pw_set(sender.credentials.username, sender.credentials.password)
    publisher.connect(host, port)
    publisher.loop_start()
    infos = [publisher.publish(topic, f"{i}".encode(), qos=1) for i in range(5000)]
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()
    worker = Subscriber(mqtt.url, login, "backlog/+/telemetry", clean=False)
    deadline = time.monotonic() + 20
    while len(worker.messages) < 5000 and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.close()
    assert sorted(int(m[2]) for m in worker.messages) == list(range(5000))


def test_live_city_reads_the_seeded_devices_and_offline_incidents(engine, seeded):
    devices = load_live_devices(engine)
    assert len(devices) == seeded.devices == 3000
    assert (np.diff(devices.device_id) > 0).all()
    assert set(np.unique(devices.status)) <= {"active", "maintenance", "retired"}
    offline = offline_device_ids(engine)
    with engine.connect() as conn:
        expected = conn.execute(
            sa.text(
                "SELECT count(DISTINCT device_id) FROM incident"
                " WHERE rule_code = 'offline' AND status <> 'resolved'"
            )
        ).scalar_one()
    assert len(offline) == expected > 0


def _simulate(db_url, broker, *args, token=None):
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        # as serve passes it: in the environment, never on the command line
        **({"ONESCREEN_INGEST_TOKEN": token} if token else {}),
        "ONESCREEN_DATA_DIR": tempfile.mkdtemp(prefix="onescreen-sim-"),
        # a topic space of its own: no ingest worker of another test consumes these
        "ONESCREEN_MQTT_TOPIC_PREFIX": "simtest",
    }
    return subprocess.Popen(
        [sys.executable, "cli.py", "simulate", "--broker", broker, *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_simulate_streams_the_seeded_city_to_the_broker(
    engine, seeded, db_url, mqtt_broker, logins
):
    sender, reader = logins
    subscriber = Subscriber(mqtt_broker, reader)
    rate, duration = 600, 8
    process = _simulate(
        db_url,
        mqtt_broker,
        *("--rate", str(rate), "--duration", str(duration), "--storm-now"),
        token=sender.token,
    )
    out, err = process.communicate(timeout=120)
    time.sleep(0.5)
    subscriber.close()
    assert process.returncode == 0, err
    assert "confirmed" in out

    devices = load_live_devices(engine)
    active = set(devices.device_id[devices.status == "active"].tolist())
    offline = set(offline_device_ids(engine).tolist())
    rows, last_ts = 0, defaultdict(str)
    with engine.connect() as conn:
        units = set(conn.execute(sa.text("SELECT code FROM resource")).scalars())
    fixes = 0
    assert len(subscriber.messages) >= duration  # batched: about one message per tick
    for topic, _, payload in subscriber.messages:
        # its token's own topic (the broker lets it publish nowhere else)
        assert topic == sender.topic.replace("onescreen/", "simtest/", 1)
        body = orjson.loads(payload)
        assert list(body) == ["readings"]
        assert 1 <= len(body["readings"]) <= 2000
        for reading in body["readings"]:
            if "unit_code" in reading:  # the fleet's GPS fixes share the transport
                assert set(reading) == {"unit_code", "ts", "lon", "lat"}
                assert reading["unit_code"] in units
                fixes += 1
                continue
            assert set(reading) <= {"device_id", "ts", "value", "quality"}
            assert reading["device_id"] in active and reading["device_id"] not in offline
            moment = datetime.fromisoformat(reading["ts"])
            assert moment.utcoffset().total_seconds() == 0
            assert abs(time.time() - moment.timestamp()) < 120
            assert isinstance(reading["value"], float) and reading["quality"] in (0, 1, 2)
            assert reading["ts"] > last_ts[reading["device_id"]]
            last_ts[reading["device_id"]] = reading["ts"]
            rows += 1
    assert rows / duration == pytest.approx(rate, rel=0.25)
    # parked units report every 2 min, their first reports spread over that: some within 8 s
    assert fixes > 0
    assert f"{rows + fixes:,} confirmed" in out


def test_simulate_stops_cleanly_on_sigterm(seeded, db_url, mqtt_broker, logins):
    sender, reader = logins
    subscriber = Subscriber(mqtt_broker, reader)
    process = _simulate(db_url, mqtt_broker, "--rate", "200", token=sender.token)
    try:
        assert subscriber.received.wait(60), "no message within 60 s"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill() if process.poll() is None else None
        subscriber.close()
    assert process.returncode == 0, err
    assert "confirmed" in out


def test_http_publisher_retries_server_errors_and_reports_rejections(caplog):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.headers["Authorization"], body))
            if len(seen) == 1:
                self.send_response(503)
                self.end_headers()
                return
            answer = json.dumps({"stored": 2, "duplicate": 0, "rejected": 1}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/readings"
        publisher = HttpPublisher(url, token="os_secret", stop=threading.Event())
        payload = orjson.dumps({"readings": [{"device_id": 1, "ts": "x", "value": 1.0}] * 3})
        publisher.send(payload, rows=3)
    finally:
        server.shutdown()
    assert len(seen) == 2 and seen[0] == seen[1]  # the same batch again after the 503
    assert seen[1][0] == "Bearer os_secret"
    assert publisher.delivered() == 2 and publisher.rejected == 1
    assert "rejected 1 of 3" in caplog.text


@pytest.fixture
def ingest_server(live_city_url):
    """The real ingest HTTP routes on a free port, over a live city of this module's own (the
    readings it stores must not change the shared seeded city other tests count)."""
    from flask import Flask
    from werkzeug.serving import make_server

    from config import load_settings
    from web.ingest_api import register_ingest_routes
    from web.services import attach

    app = Flask("simulator-http-test")
    services = attach(app, load_settings(DATABASE_URL=live_city_url))
    register_ingest_routes(app)
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/v1/readings"
    finally:
        server.shutdown()
        services.close()


def test_simulate_over_http_stores_its_readings(live_engine_, live_city_url, ingest_server):
    started = datetime.now(UTC)
    process = _simulate(
        live_city_url,
        "mqtt://unused:1",
        "--transport",
        "http",
        "--http-url",
        ingest_server,
        "--rate",
        "300",
        "--duration",
        "5",
        # readings only: the confirmed count is then the readings' (the fleet has its own test)
        "--no-fleet",
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    confirmed = int(out.split(";")[-1].split()[0].replace(",", ""))
    assert confirmed == pytest.approx(1500, rel=0.3)
    assert "rejected" not in err
    with live_engine_.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*) FROM reading WHERE ts >= :start"), {"start": started}
        ).scalar_one()
    assert stored >= confirmed
