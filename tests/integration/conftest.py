"""Integration fixtures: a live city (seeded up to now) in a database of its own per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from data.engine import create_db_engine
from tests.conftest import seeded_database


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


@pytest.fixture
def run(monkeypatch, capsys, live_city_url):
    """Run `cli.main.main` against this module's city; returns (exit code, stdout, stderr)."""
    from cli.main import main

    # each invocation reads its settings afresh, as a new process would
    monkeypatch.setenv("DATABASE_URL", live_city_url)

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as refused:  # argparse refusing an argument, as the shell would see it
            code = int(refused.code or 0)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    yield invoke
