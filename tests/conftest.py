"""Shared fixtures: a real PostgreSQL + PostGIS cluster started and removed by the test session."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from config import load_settings
from data import migrate
from data.engine import create_db_engine
from localservers.base import free_port
from localservers.postgres import EmbeddedPostgres

# A fixed end of the generated window keeps every run's city identical.
SEED_END = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
SEED_RANDOM = 7


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedPostgres]:
    """A throwaway embedded cluster on a free port (or none when TEST_DATABASE_URL is given)."""
    settings = load_settings()
    root = Path(tempfile.mkdtemp(prefix="onescreen-test-"))
    root.chmod(0o755)  # the unprivileged cluster owner must be able to reach its directory
    cluster = EmbeddedPostgres(
        root=root / "pg", port=free_port(), bin_dir=settings.pg_bin_dir, os_user=settings.pg_os_user
    )
    cluster.ensure_running()
    try:
        yield cluster
    finally:
        cluster.destroy()
        root.rmdir() if root.exists() and not any(root.iterdir()) else None


@pytest.fixture(scope="session")
def db_url(pg_cluster: EmbeddedPostgres) -> str:
    """URL of the test database (schema migrated)."""
    url = os.environ.get("TEST_DATABASE_URL") or pg_cluster.url()
    migrate.upgrade(create_db_engine(url))
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[sa.Engine]:
    """Engine on the migrated test database."""
    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def seeded(engine: sa.Engine):
    """The tiny synthetic city, seeded once per session through the real write path."""
    from simulator.seed import seed_city

    return seed_city(engine, scale="tiny", random_seed=SEED_RANDOM, end=SEED_END, reset=True)


@pytest.fixture
def scratch_db(pg_cluster: EmbeddedPostgres) -> Iterator[sa.Engine]:
    """A fresh, empty database in the test cluster for tests that change the whole schema."""
    name = f"scratch_{free_port()}"
    admin = create_db_engine(pg_cluster.url().rsplit("/", 1)[0] + "/postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng = create_db_engine(pg_cluster.url().rsplit("/", 1)[0] + f"/{name}")
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class Sender:
    """A token that publishes over MQTT: its secret, its login (password: the token) and topic."""

    token: str
    credentials: Any  # ingest.broker.MqttCredentials
    topic: str


@dataclass(frozen=True)
class TestBroker:
    """The session's Mosquitto (as OneScreen manages it: no anonymous access, logins and ACLs
    from a database) and settings that name it, so `managed_broker(settings)` is this one. Its
    token logins come from the database last synced: test modules run one after another."""

    url: str
    settings: Any  # config.Settings

    def sync(self, engine: sa.Engine) -> None:
        """Give the broker the logins of `engine`'s live tokens and the service logins."""
        from ingest.broker import sync_broker_auth

        sync_broker_auth(engine, self.settings)

    def ingest_login(self, name: str) -> Any:
        """A service login that may read telemetry (an ingest worker's); sync to apply."""
        from ingest.broker import service_login

        return service_login(self.settings, name=name)

    def sender(self, engine: sa.Engine, *, source: str, **scope: Any) -> Sender:
        """A new token of `source` (scope as `create_token` takes it; city-wide by default)
        that the broker accepts once this returns."""
        from data.ingest_store import create_token, find_principal
        from ingest.broker import MqttCredentials

        token = create_token(engine, source=source, **(scope or {"city_wide": True}))
        principal = find_principal(engine, token=token)
        assert principal is not None and principal.mqtt_username
        self.sync(engine)
        credentials = MqttCredentials(principal.mqtt_username, token)
        self.wait_for_login(credentials, accepted=True)
        return Sender(token, credentials, f"onescreen/{principal.mqtt_username}/telemetry")

    def wait_for_login(self, credentials: Any, *, accepted: bool, timeout_s: float = 10) -> None:
        """Wait until the broker has reloaded its logins: `credentials` accepted (or refused)."""
        deadline = time.monotonic() + timeout_s
        while connect_result(self.url, credentials) != (0 if accepted else 5):
            if time.monotonic() > deadline:
                raise AssertionError(f"broker did not {'accept' if accepted else 'refuse'} it")
            time.sleep(0.1)


def connect_result(url: str, credentials: Any, *, client_id: str | None = None) -> int:
    """The broker's CONNACK code for a connection with `credentials` (None: anonymous): 0
    accepted, 5 not authorised, 4 bad user name or password; -1 no answer."""
    import paho.mqtt.client as mqtt

    from ingest.broker import parse_broker_url

    host, port = parse_broker_url(url)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    if credentials is not None:
        client.username_pw_set(credentials.username, credentials.password)
    answer: list[int] = []
    client.on_connect = lambda _c, _u, _f, code, _p: answer.append(code.value)
    try:
        client.connect(host, port, keepalive=10)
    except OSError:  # refused, or no answer in time
        return -1
    deadline = time.monotonic() + 5
    while not answer and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    # MQTT 3.1.1 codes: paho reports them as v5 reason codes (0x86 bad login, 0x87 not allowed)
    return {0: 0, 0x86: 4, 0x87: 5, 4: 4, 5: 5}.get(answer[0], answer[0]) if answer else -1


@pytest.fixture(scope="session")
def mqtt() -> Iterator[TestBroker]:
    """A throwaway managed Mosquitto on a free port, in a data directory of its own."""
    from localservers.mosquitto import managed_broker

    root = Path(tempfile.mkdtemp(prefix="onescreen-mqtt-"))
    root.chmod(0o755)  # mosquitto drops root privileges and must reach its directory
    settings = load_settings(data_dir=root, mqtt_broker_port=free_port(), mqtt_url=None)
    broker = managed_broker(settings)
    url = broker.ensure_running()
    try:
        yield TestBroker(url=url, settings=settings)
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mqtt_broker(mqtt: TestBroker) -> str:
    """The session broker's mqtt:// URL (see `mqtt` for its logins)."""
    return mqtt.url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway managed redis-server on a free port; yields its redis:// URL."""
    from localservers.redis import ManagedRedis

    root = Path(tempfile.mkdtemp(prefix="onescreen-redis-"))
    root.chmod(0o755)  # as root the server runs as the redis account and must reach it
    server = ManagedRedis(root=root / "redis", port=free_port())
    server.ensure_running()
    try:
        yield server.url()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def seeded_database(cluster: EmbeddedPostgres, *, prefix: str, random_seed: int) -> Iterator[str]:
    """A database of its own with the tiny city seeded up to now (so it looks live); dropped
    when the block ends. Yields its URL."""
    from simulator.seed import seed_city

    base = (os.environ.get("TEST_DATABASE_URL") or cluster.url()).rsplit("/", 1)[0]
    name = f"{prefix}_{free_port()}"
    admin = create_db_engine(base + "/postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{base}/{name}"
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    seed_city(engine, scale="tiny", random_seed=random_seed, reset=True)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def app_on(url: str, **settings: Any) -> Iterator[Any]:
    """A Dash app of its own over the database at `url` — its own settings, engines and
    caches, nothing shared with other apps of the test process — closed when the block ends."""
    from app import create_app

    app = create_app(load_settings(DATABASE_URL=url, **settings))
    try:
        yield app
    finally:
        app.server.extensions["onescreen"].close()


def owner_of(app: Any) -> sa.Engine:
    """The owner's engine of an app made by `app_on` (what a test does as the owner)."""
    return app.server.extensions["onescreen"].engine  # type: ignore[no-any-return]


def cli_runner(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `cli.main.main` as a command would (settings read afresh each time); returns
    (exit code, stdout, stderr), and fails on any traceback."""
    from cli.main import main

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return invoke
