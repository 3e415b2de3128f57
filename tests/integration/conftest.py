"""Integration fixtures: a live city (seeded up to now) in a database of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from data import migrate
from data.embedded import free_port
from data.engine import create_db_engine


@pytest.fixture(scope="module")
def live_city_url(pg_cluster) -> Iterator[str]:
    """A database of its own with the tiny city seeded up to now, dropped afterwards."""
    from simulator.seed import seed_city

    base = (os.environ.get("TEST_DATABASE_URL") or pg_cluster.url()).rsplit("/", 1)[0]
    name = f"live_{free_port()}"
    admin = create_db_engine(base + "/postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{base}/{name}"
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    seed_city(engine, scale="tiny", random_seed=5, reset=True)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def live_engine_(live_city_url) -> Iterator[sa.Engine]:
    """Engine on the live city."""
    engine = create_db_engine(live_city_url)
    yield engine
    engine.dispose()
