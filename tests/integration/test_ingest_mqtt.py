"""MQTT ingest on a real Mosquitto (logins and ACLs as OneScreen writes them) and PostGIS:
publish → committed rows, dead letters, a worker killed mid-stream and restarted (every reading
stored exactly once), and a PostgreSQL outage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from data.ingest_store import revoke_tokens
from tests.integration.conftest import running_mqtt_worker
from tests.mqtt_publisher import Publisher

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SOURCE = "test-mqtt"


def _devices(engine, n: int) -> list[int]:
    """Active binary devices: any 0/1 value is valid and raises no incident at 0."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT d.id FROM device d JOIN device_type t ON t.id = d.type_id"
                    " WHERE t.value_kind = 'binary' AND d.status = 'active' ORDER BY d.id LIMIT :n"
                ),
                {"n": n},
            ).scalars()
        )


def _messages(devices: list[int], *, count: int, per_message: int, start: datetime) -> list[bytes]:
    """`count` messages whose readings have unique (device, ts) keys."""
    payloads = []
    for m in range(count):
        rows = [
            {
                "device_id": devices[(m * per_message + k) % len(devices)],
                "ts": (start + timedelta(milliseconds=m * per_message + k)).isoformat(),
                "value": 0,
            }
            for k in range(per_message)
        ]
        payloads.append(json.dumps({"readings": rows}).encode())
    return payloads


def _count(engine, devices: list[int], start: datetime, *, n: int = 20_000) -> int:
    """How many of the readings `_messages` makes (the first n keys) are stored."""
    keys = [(devices[i % len(devices)], start + timedelta(milliseconds=i)) for i in range(n)]
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM reading r"
                " JOIN unnest(CAST(:ids AS bigint[]), CAST(:ts AS timestamptz[])) AS k(d, t)"
                " ON r.device_id = k.d AND r.ts = k.t"
                " WHERE r.ts >= :start AND r.ts <= :end"
            ),
            {
                "ids": [d for d, _ in keys],
                "ts": [t for _, t in keys],
                "start": start,
                "end": keys[-1][1],
            },
        ).scalar_one()


def _daily_total(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT coalesce(sum(n_readings), 0) FROM rollup_district_daily")
        ).scalar_one()


def _wait_for(predicate, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def worker(live_engine_, mqtt):
    """An in-process worker on its own persistent session, and a token to publish with."""
    with running_mqtt_worker(live_engine_, mqtt, source=SOURCE) as consumer:
        yield consumer


def test_published_readings_are_committed(live_engine_, mqtt_broker, worker):
    devices = _devices(live_engine_, 20)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    before = _daily_total(live_engine_)
    publisher = Publisher(mqtt_broker, worker.sender.credentials)
    for payload in _messages(devices, count=10, per_message=30, start=start):
        publisher.publish(worker.sender.topic, payload)
    _wait_for(lambda: _count(live_engine_, devices, start) == 300, timeout_s=20, what="300 rows")
    # the same messages again (a device resending): stored once
    for payload in _messages(devices, count=10, per_message=30, start=start):
        publisher.publish(worker.sender.topic, payload)
    _wait_for(lambda: worker.stats.duplicate >= 300, timeout_s=20, what="duplicates seen")
    publisher.close()
    assert _count(live_engine_, devices, start) == 300
    assert _daily_total(live_engine_) - before == 300


def test_malformed_messages_become_dead_letters(live_engine_, mqtt_broker, mqtt, worker):
    devices = _devices(live_engine_, 2)
    publisher = Publisher(mqtt_broker, worker.sender.credentials)
    marker = uuid.uuid4().hex
    publisher.publish(worker.sender.topic, b"{not json " + marker.encode())
    # a token revoked after the broker last heard of it: the worker itself refuses its message
    late = mqtt.sender(live_engine_, source=SOURCE)
    revoke_tokens(live_engine_, source=SOURCE, fingerprint=late.credentials.username[-10:])
    revoked = Publisher(mqtt_broker, late.credentials)
    revoked.publish(late.topic, json.dumps({"readings": [], "m": marker}))
    revoked.close()
    good_ts = datetime.now(UTC) - timedelta(minutes=1)
    mixed = {
        "readings": [
            {"device_id": devices[0], "ts": good_ts.isoformat(), "value": 0},
            {"device_id": devices[1], "ts": good_ts.isoformat(), "value": 7, "m": marker},
        ]
    }
    publisher.publish(worker.sender.topic, json.dumps(mixed))
    publisher.close()

    def letters() -> list[sa.Row]:
        with live_engine_.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT topic, reason, rejected FROM dead_letter"
                    " WHERE position(CAST(:m AS bytea) IN payload) > 0 ORDER BY id"
                ),
                {"m": marker},
            ).all()

    _wait_for(lambda: len(letters()) == 3, timeout_s=20, what="three dead letters")
    reasons = [letter.reason for letter in letters()]
    assert "not valid JSON" in reasons[0]
    assert "unknown or revoked token" in reasons[1]
    assert letters()[2].rejected == [
        {"index": 1, "code": "value_not_binary", "message": "this device reports 0 or 1"}
    ]
    with live_engine_.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM reading WHERE device_id = :d AND ts = :ts"),
                {"d": devices[0], "ts": good_ts},
            ).scalar_one()
            == 1
        )


def _start_worker(
    url: str, broker: str, login, log: Path, *, prefix: str = "crash", group: str | None = None
) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ONESCREEN_MQTT_URL": broker,
        "ONESCREEN_MQTT_CLIENT_ID": login.username,
        # as serve gives them: in the environment, never on the command line
        "ONESCREEN_MQTT_USERNAME": login.username,
        "ONESCREEN_MQTT_PASSWORD": login.password,
        # a topic space of its own, so the module's in-process worker does not help it
        "ONESCREEN_MQTT_TOPIC_PREFIX": prefix,
        # workers of one deployment share a group (by default its client id; here each worker
        # is given its login as client id, so the group is named)
        **({"ONESCREEN_MQTT_SHARE_GROUP": group} if group is not None else {}),
    }
    with open(log, "a") as out:
        return subprocess.Popen(
            [sys.executable, "cli.py", "-v", "ingest-mqtt"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(
    live_engine_, live_city_url, mqtt_broker, mqtt, tmp_path
):
    login = mqtt.ingest_login(f"crash-{uuid.uuid4().hex[:6]}")
    sender = mqtt.sender(live_engine_, source=SOURCE)
    topic = sender.topic.replace("onescreen/", "crash/", 1)
    devices = _devices(live_engine_, 50)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    payloads = _messages(devices, count=300, per_message=40, start=start)
    expected = 300 * 40
    before = _daily_total(live_engine_)
    log = tmp_path / "worker.log"
    process = _start_worker(live_city_url, mqtt_broker, login, log)
    publisher = Publisher(mqtt_broker, sender.credentials)
    try:
        _wait_for(lambda: "subscribed" in log.read_text(), timeout_s=30, what="worker subscribed")
        killed_at = None
        for index, payload in enumerate(payloads):
            publisher.publish(topic, payload)
            if killed_at is None and _count(live_engine_, devices, start) > 0 and index > 50:
                process.send_signal(signal.SIGKILL)  # no chance to finish anything
                process.wait(10)
                killed_at = _count(live_engine_, devices, start)
        assert killed_at is not None and 0 < killed_at < expected, killed_at
        # everything published while it was dead waits in its persistent session
        process = _start_worker(live_city_url, mqtt_broker, login, log)
        _wait_for(
            lambda: _count(live_engine_, devices, start) >= expected, timeout_s=90, what="all rows"
        )
        time.sleep(1.0)
    finally:
        publisher.close()
        process.terminate()
        process.wait(15)
    assert _count(live_engine_, devices, start) == expected
    # the rollups count each reading once: a redelivered message added nothing twice
    assert _daily_total(live_engine_) - before == expected


def _final_stats(log: Path) -> list[str]:
    """The stats lines `ingest-mqtt` prints when it stops."""
    return [line for line in log.read_text().splitlines() if "mqtt ingest stopped" in line]


def test_two_workers_share_the_telemetry_and_one_dies_without_loss(
    live_engine_, live_city_url, mqtt_broker, mqtt, tmp_path
):
    """Two workers in the shared subscription each store part of the stream; one is killed,
    the other goes on storing its share, the dead one's share waits for it in the broker."""
    logins = [mqtt.ingest_login(f"share-{n}-{uuid.uuid4().hex[:6]}") for n in range(2)]
    sender = mqtt.sender(live_engine_, source=SOURCE)
    topic = sender.topic.replace("onescreen/", "shared/", 1)
    devices = _devices(live_engine_, 50)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=35)
    payloads = _messages(devices, count=300, per_message=40, start=start)
    expected = 300 * 40
    before = _daily_total(live_engine_)
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    group = f"share-{uuid.uuid4().hex[:6]}"
    start_worker = [
        lambda n=n: _start_worker(
            live_city_url, mqtt_broker, logins[n], logs[n], prefix="shared", group=group
        )
        for n in range(2)
    ]
    processes = [start() for start in start_worker]
    publisher = Publisher(mqtt_broker, sender.credentials)
    try:
        for log in logs:
            _wait_for(lambda log=log: "$share/" in log.read_text(), timeout_s=30, what="share")
        killed_with = 0
        for index, payload in enumerate(payloads):
            publisher.publish(topic, payload)
            if index == 100:
                _wait_for(lambda: _count(live_engine_, devices, start) > 0, timeout_s=20, what="1")
                processes[1].send_signal(signal.SIGKILL)
                processes[1].wait(10)
                killed_with = _count(live_engine_, devices, start)
        # the survivor stores its share of what came after alone: about half, never all
        after = (len(payloads) - 101) * 40
        _wait_for(
            lambda: _count(live_engine_, devices, start) - killed_with > after * 0.4,
            timeout_s=60,
            what="the survivor's share",
        )
        time.sleep(1.0)
        assert _count(live_engine_, devices, start) < expected
        processes[1] = start_worker[1]()
        _wait_for(
            lambda: _count(live_engine_, devices, start) >= expected, timeout_s=90, what="all rows"
        )
        time.sleep(1.0)
    finally:
        publisher.close()
        for process in processes:
            process.terminate()
            process.wait(15)
    assert _count(live_engine_, devices, start) == expected
    assert _daily_total(live_engine_) - before == expected
    # each worker stored a share (its stats at stop name the messages it took)
    for log in logs:
        (line,) = _final_stats(log)
        assert "messages=0," not in line, line


def test_readings_published_while_postgres_is_down_are_stored_after_it_returns(
    live_engine_, mqtt_broker, worker, pg_cluster
):
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("the database is not ours to stop")
    devices = _devices(live_engine_, 10)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=55)
    publisher = Publisher(mqtt_broker, worker.sender.credentials)
    payloads = _messages(devices, count=20, per_message=10, start=start)
    for payload in payloads[:5]:
        publisher.publish(worker.sender.topic, payload)
    _wait_for(lambda: _count(live_engine_, devices, start) == 50, timeout_s=20, what="first rows")
    retries = worker.stats.retries
    pg_cluster.stop()
    try:
        for payload in payloads[5:]:
            publisher.publish(worker.sender.topic, payload)
        _wait_for(lambda: worker.stats.retries > retries, timeout_s=20, what="worker retrying")
    finally:
        pg_cluster.ensure_running()
    _wait_for(lambda: _count(live_engine_, devices, start) == 200, timeout_s=60, what="all rows")
    publisher.close()
