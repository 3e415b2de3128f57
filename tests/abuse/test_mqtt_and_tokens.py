"""Abuse: the MQTT broker is not open (issue 18 item 3) and a token writes only what its owner
owns (item 4). On the real Mosquitto OneScreen manages (logins and ACLs written from the
database) and a real PostGIS city: anonymous clients, reading others' telemetry, publishing on
others' or unregistered topics, taking over the ingest worker's client id, oversized messages,
revoked tokens, and readings for devices outside a token's categories and districts."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt_client
import pytest
import sqlalchemy as sa

from data.engine import create_db_engine
from ingest.broker import MqttCredentials, parse_broker_url
from ingest.mqtt_worker import MqttIngestWorker
from ingest.service import Ingestor
from tests.conftest import app_on, cli_runner, connect_result, seeded_database
from tests.integration.conftest import running_mqtt_worker
from tests.mqtt_publisher import Publisher

pytestmark = pytest.mark.integration
SOURCE = "abuse-mqtt"
NOT_AUTHORISED, BAD_LOGIN = 5, 4


@pytest.fixture(scope="module")
def city_url(pg_cluster):
    with seeded_database(pg_cluster, prefix="abuse_mqtt", random_seed=13) as url:
        yield url


@pytest.fixture(scope="module")
def engine(city_url):
    eng = create_db_engine(city_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def worker(engine, mqtt):
    """An in-process ingest worker with its own service login, and a city-wide sender."""
    with running_mqtt_worker(engine, mqtt, source=SOURCE) as consumer:
        yield consumer


@pytest.fixture
def cli(monkeypatch, capsys, city_url, mqtt):
    """Run the command line on this module's city, managing the session's broker."""
    monkeypatch.setenv("DATABASE_URL", city_url)
    monkeypatch.setenv("ONESCREEN_DATA_DIR", str(mqtt.settings.data_dir))
    monkeypatch.setenv("ONESCREEN_MQTT_BROKER_PORT", str(mqtt.settings.mqtt_broker_port))
    monkeypatch.delenv("ONESCREEN_MQTT_URL", raising=False)

    return cli_runner(capsys)


def _device(engine, category: str, *, district: str | None = None) -> sa.Row:
    """An active analog device of `category` (in `district`) and a value in its normal range."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT d.id, d.district_adcode AS district, t.normal_min AS value FROM device d"
                " JOIN device_type t ON t.id = d.type_id WHERE t.category_code = :category"
                "   AND t.value_kind = 'analog' AND d.status = 'active'"
                "   AND d.district_adcode = coalesce(:district, d.district_adcode)"
                " ORDER BY d.id LIMIT 1"
            ),
            {"category": category, "district": district},
        ).one()


def _row(device, ts: datetime) -> dict:
    return {"device_id": device.id, "ts": ts.isoformat(), "value": device.value}


def _stored(engine, device, ts: datetime) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT count(*) FROM reading WHERE device_id = :d AND ts = :ts"),
                {"d": device.id, "ts": ts},
            ).scalar_one()
        )


def _letters(engine, marker: str) -> list[sa.Row]:
    """Dead letters whose payload holds `marker`."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT topic, reason, rejected FROM dead_letter"
                " WHERE position(CAST(:m AS bytea) IN payload) > 0 ORDER BY id"
            ),
            {"m": marker},
        ).all()


def _wait_for(predicate, *, timeout_s: float = 20, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


class _Client:
    """A raw MQTT client that records what happens to it (for what Publisher refuses to do)."""

    def __init__(self, url: str, credentials, *, subscribe: tuple[str, ...] = ()) -> None:
        host, port = parse_broker_url(url)
        self.messages: list[str] = []
        self.disconnected = threading.Event()
        self.client = mqtt_client.Client(
            mqtt_client.CallbackAPIVersion.VERSION2, client_id=f"abuse-{uuid.uuid4().hex[:8]}"
        )
        self.client.username_pw_set(credentials.username, credentials.password)
        self.client.on_message = lambda _c, _u, msg: self.messages.append(msg.topic)
        self.client.on_disconnect = lambda *_args: self.disconnected.set()
        self.client.connect(host, port)
        self.client.loop_start()
        for topic in subscribe:
            self.client.subscribe(topic, qos=1)

    def publish(self, topic: str, payload: bytes | str) -> mqtt_client.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_anonymous_clients_and_wrong_passwords_are_refused(mqtt, worker):
    assert connect_result(mqtt.url, None) == NOT_AUTHORISED
    wrong = MqttCredentials(worker.sender.credentials.username, "os_not-the-token")
    assert connect_result(mqtt.url, wrong) in (BAD_LOGIN, NOT_AUTHORISED)
    assert connect_result(mqtt.url, worker.sender.credentials) == 0


def test_a_source_reads_no_telemetry_and_publishes_only_on_its_own_topic(engine, mqtt, worker):
    other = mqtt.sender(engine, source="abuse-other")
    spy = _Client(
        mqtt.url,
        worker.sender.credentials,
        subscribe=("#", "onescreen/+/telemetry", other.topic, "$SYS/#"),
    )
    device = _device(engine, "water")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    marker = uuid.uuid4().hex
    time.sleep(0.5)  # the subscriptions are in place
    # another source's telemetry is stored, and never reaches the spy
    sender = Publisher(mqtt.url, other.credentials)
    sender.publish(other.topic, json.dumps({"readings": [_row(device, start)]}))
    sender.close()
    _wait_for(lambda: _stored(engine, device, start), what="the other source's reading")
    # the spy's login on another's topic, an unregistered one, the pre-0007 source topic, any
    forged = {
        other.topic: start + timedelta(seconds=1),
        "onescreen/nobody/telemetry": start + timedelta(seconds=2),
        f"onescreen/{SOURCE}/telemetry": start + timedelta(seconds=3),
        "onescreen/anything": start + timedelta(seconds=4),
    }
    for topic, ts in forged.items():
        spy.publish(topic, json.dumps({"readings": [_row(device, ts)], "m": marker}))
    # then its own topic: once that is stored, the broker has dealt with everything before it
    own = start + timedelta(seconds=5)
    spy.publish(worker.sender.topic, json.dumps({"readings": [_row(device, own)]}))
    _wait_for(lambda: _stored(engine, device, own), what="the spy's own reading")
    time.sleep(1.0)  # one more worker round for anything that might have followed
    spy.close()
    assert spy.messages == []
    assert [topic for topic, ts in forged.items() if _stored(engine, device, ts)] == []
    assert _letters(engine, marker) == []  # and nothing to fill dead_letter with


def _worker(engine, mqtt, login) -> tuple[MqttIngestWorker, threading.Thread]:
    consumer = MqttIngestWorker(
        Ingestor(engine),
        broker_url=mqtt.url,
        client_id=login.username,
        topic_prefix="onescreen",
        credentials=login,
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert consumer.connected.wait(10)
    return consumer, thread


def _take_over(mqtt, name: str, login, sender) -> list[str]:
    """Clean-session connections with the ingest worker's client id, as outcomes.

    With the id as configured (`name`): anonymously, with a source's login, with a wrong
    password; with its session's real id (its login: the broker takes logins as client ids):
    with a source's login and a wrong password. Anonymously with the real id would discard the
    queue (a Mosquitto 2.0.11 bug), which is why that id has a random part nobody outside the
    ingest service knows.
    """
    wrong = MqttCredentials(login.username, "wrong")
    attempts = [(name, None), (name, sender.credentials), (name, wrong)]
    attempts += [(login.username, sender.credentials), (login.username, wrong)]
    codes = [connect_result(mqtt.url, c, client_id=client_id) for client_id, c in attempts]
    return ["refused" if code in (BAD_LOGIN, NOT_AUTHORISED) else code for code in codes]


def test_the_ingest_client_id_cannot_be_taken_over(engine, mqtt):
    name = f"abuse-ingest-{uuid.uuid4().hex[:6]}"
    login = mqtt.ingest_login(name)
    assert login.username.startswith(name + "-") and len(login.username) == len(name) + 17
    sender = mqtt.sender(engine, source=SOURCE)  # (the broker learns the login with it)
    first, thread = _worker(engine, mqtt, login)
    # a source's own login connects, but as itself: the broker takes logins as client ids
    refused = ["refused", 0, "refused", 0, "refused"]
    assert _take_over(mqtt, name, login, sender) == refused
    time.sleep(1.0)
    assert (first.stats.disconnects, first.connected.is_set()) == (0, True)
    first.stop()
    thread.join(10)
    # while the worker is away its persistent session queues; a takeover would discard it
    devices = [_device(engine, category) for category in ("water", "gas", "power")]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=8)
    stamps = [start + timedelta(milliseconds=k) for k in range(60)]
    publisher = Publisher(mqtt.url, sender.credentials)
    for k in range(0, 60, 6):
        rows = [_row(devices[j % 3], stamps[j]) for j in range(k, k + 6)]
        publisher.publish(sender.topic, json.dumps({"readings": rows}))
    publisher.close()
    assert _take_over(mqtt, name, login, sender) == refused
    second, thread = _worker(engine, mqtt, login)
    try:
        _wait_for(
            lambda: all(_stored(engine, devices[j % 3], stamps[j]) for j in range(60)),
            what="every reading of the backlog",
        )
    finally:
        second.stop()
        thread.join(10)


def test_a_message_over_the_size_limit_is_refused(engine, mqtt, worker):
    limit = mqtt.settings.mqtt_max_message_bytes
    device = _device(engine, "gas")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=12)
    marker = uuid.uuid4().hex
    big = json.dumps({"readings": [_row(device, start)], "m": marker, "pad": "x" * limit})
    client = _Client(mqtt.url, worker.sender.credentials)
    info = client.publish(worker.sender.topic, big)
    assert client.disconnected.wait(5)  # the broker drops a client that sends one
    client.close()  # (before paho reconnects and sends it again)
    assert not info.is_published()
    # a batch of 2,000 readings (the simulator's largest) fits
    stamps = [start + timedelta(milliseconds=k + 1) for k in range(2000)]
    batch = json.dumps({"readings": [_row(device, ts) for ts in stamps]})
    assert len(batch) < limit
    publisher = Publisher(mqtt.url, worker.sender.credentials)
    publisher.publish(worker.sender.topic, batch)
    publisher.close()
    _wait_for(lambda: _stored(engine, device, stamps[-1]), what="the 2,000-reading batch")
    time.sleep(0.5)
    assert not _stored(engine, device, start)
    assert _letters(engine, marker) == []


def test_a_water_token_cannot_send_gas_readings_over_mqtt_or_http(engine, city_url, mqtt, worker):
    water = _device(engine, "water")
    gas = _device(engine, "gas", district=water.district)
    scope = f"this token may only send readings for water devices in {water.district}"
    sender = mqtt.sender(
        engine, source="abuse-water", categories=["water"], districts=[water.district]
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
    marker = uuid.uuid4().hex
    rows = [_row(water, start), _row(gas, start)]
    publisher = Publisher(mqtt.url, sender.credentials)
    publisher.publish(sender.topic, json.dumps({"readings": rows, "m": marker}))
    publisher.close()
    _wait_for(lambda: len(_letters(engine, marker)) == 1, what="the scope's dead letter")
    assert _letters(engine, marker)[0].rejected == [
        {"index": 1, "code": "token_scope", "message": scope}
    ]
    assert (_stored(engine, water, start), _stored(engine, gas, start)) == (True, False)
    later = start + timedelta(seconds=1)
    with app_on(city_url) as app:
        response = app.server.test_client().post(
            "/api/v1/readings",
            data=json.dumps({"readings": [_row(water, later), _row(gas, later)]}),
            headers={"Authorization": f"Bearer {sender.token}", "Content-Type": "application/json"},
        )
    assert response.status_code == 207
    assert response.get_json()["errors"] == [{"index": 1, "code": "token_scope", "message": scope}]
    assert (_stored(engine, water, later), _stored(engine, gas, later)) == (True, False)


def test_tokens_are_created_scoped_listed_without_secrets_and_revoked_on_the_broker(
    cli, engine, mqtt
):
    district = _device(engine, "water").district
    code, _out, err = cli("tokens", "create", "--source", "abuse-cli")
    assert code == 2 and "--all" in err  # no silent "everything"
    code, out, _err = cli(
        "tokens", "create", "--source", "abuse-cli", "--category", "water", "--district", district
    )
    assert code == 0, out
    token = out.splitlines()[1]
    login = re.search(r"login (\S+),", out).group(1)
    credentials = MqttCredentials(login, token)
    mqtt.wait_for_login(credentials, accepted=True)  # `tokens create` told the broker
    connected = _Client(mqtt.url, credentials)
    code, listing, _err = cli("tokens", "list")
    assert code == 0
    line = next(line for line in listing.splitlines() if login in line)
    assert f"water devices in {district}" in line and "live" in line
    with engine.connect() as conn:
        secrets_kept = conn.execute(
            sa.text("SELECT mqtt_password_hash, encode(token_sha256, 'hex') FROM ingest_token")
        ).all()
    assert token not in listing and token[3:] not in listing
    assert not any(part in listing for row in secrets_kept for part in row)
    code, out, _err = cli("tokens", "revoke", "--source", "abuse-cli")
    assert code == 0 and "revoked 1 token" in out
    mqtt.wait_for_login(credentials, accepted=False)
    assert connected.disconnected.wait(5)  # a connected client of the token is dropped too
    connected.close()
    code, listing, _err = cli("tokens", "list")
    assert "revoked" in next(line for line in listing.splitlines() if login in line)
