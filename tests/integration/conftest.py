"""Integration fixtures: a live city (seeded up to now) in a database of its own per module."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from data.engine import create_db_engine
from data.incidents import ensure_default_teams
from tests.conftest import app_on, cli_runner, owner_of, seeded_database


@pytest.fixture(scope="module")
def live_city_url(pg_cluster) -> Iterator[str]:
    """A database of its own with the tiny city seeded up to now, dropped afterwards."""
    with seeded_database(pg_cluster, prefix="live", random_seed=5) as url:
        yield url


@pytest.fixture(scope="module")
def live_engine_(live_city_url) -> Iterator[sa.Engine]:
    """Engine on the live city."""
    engine = create_db_engine(live_city_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def live_app(live_city_url) -> Iterator[Any]:
    """A Dash app of its own over the live city, its callbacks registered, with the default
    teams (what the forged-request tests post to)."""
    with app_on(live_city_url) as dash_app:
        ensure_default_teams(owner_of(dash_app))
        dash_app.server.test_client().get("/login")  # Dash registers callbacks on a first request
        yield dash_app


@pytest.fixture(scope="module")
def live_owner(live_app) -> sa.Engine:
    """The owner's engine on the live app's database (what forged-request tests check with)."""
    return owner_of(live_app)


@pytest.fixture
def run(monkeypatch, capsys, live_city_url):
    """Run `cli.main.main` against this module's city; returns (exit code, stdout, stderr)."""
    # each invocation reads its settings afresh, as a new process would
    monkeypatch.setenv("DATABASE_URL", live_city_url)

    yield cli_runner(capsys)


@contextmanager
def running_mqtt_worker(engine: sa.Engine, mqtt, *, source: str):
    """An in-process MQTT ingest worker on a persistent session (and service login) of its own,
    and a city-wide token of `source` to publish with: the worker's `sender`."""
    from ingest.mqtt_worker import MqttIngestWorker
    from ingest.service import Ingestor

    login = mqtt.ingest_login(f"{source}-{uuid.uuid4().hex[:6]}")
    sender = mqtt.sender(engine, source=source)  # syncs the worker's login too
    consumer = MqttIngestWorker(
        Ingestor(engine),
        broker_url=mqtt.url,
        client_id=login.username,
        topic_prefix="onescreen",
        credentials=login,
    )
    consumer.sender = sender
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert consumer.connected.wait(10)
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(10)
