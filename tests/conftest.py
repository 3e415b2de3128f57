"""Shared fixtures: a real PostgreSQL + PostGIS cluster started and removed by the test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[str]:
    """A throwaway managed Mosquitto on a free port; yields its mqtt:// URL."""
    from localservers.mosquitto import ManagedBroker

    root = Path(tempfile.mkdtemp(prefix="onescreen-mqtt-"))
    root.chmod(0o755)  # mosquitto drops root privileges and must reach its directory
    broker = ManagedBroker(root=root / "mqtt", port=free_port())
    url = broker.ensure_running()
    try:
        yield url
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


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
