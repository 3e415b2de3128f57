"""Seeding rules and the command line's messages for bad databases."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from data import migrate
from data.errors import AlreadySeeded, PostgisMissing
from simulator.seed import seed_city
from tests.conftest import SEED_END, SEED_RANDOM

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONESCREEN_")}
    env.pop("DATABASE_URL", None)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_second_seed_is_refused_and_changes_nothing(engine, seeded):
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM reading")).scalar_one()
    with pytest.raises(AlreadySeeded, match="--reset"):
        seed_city(engine, scale="tiny", random_seed=SEED_RANDOM, end=SEED_END)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reading")).scalar_one() == before


def test_seed_metadata_and_story(engine, seeded):
    with engine.connect() as conn:
        meta = conn.execute(sa.text("SELECT value FROM app_meta WHERE key = 'seed'")).scalar_one()
        kinds = dict(
            conn.execute(sa.text("SELECT rule_code = 'offline', count(*) FROM incident GROUP BY 1"))
            .tuples()
            .all()
        )
        silent = conn.execute(
            sa.text("SELECT count(*) FROM device_latest WHERE ts < :t - interval '2 hours'"),
            {"t": SEED_END},
        ).scalar_one()
    assert meta["scale"] == "tiny" and meta["devices"] == seeded.devices
    assert meta["readings"] == seeded.readings
    assert kinds.get(True, 0) > 0, "silent devices raise offline incidents"
    assert kinds.get(False, 0) > 0, "threshold crossings raise incidents"
    assert silent > 0


def test_cli_second_seed_message(db_url, seeded):
    result = run_cli("seed", "--scale", "tiny", "--quiet", env_overrides={"DATABASE_URL": db_url})
    assert result.returncode == 3
    assert "already holds a synthetic city" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    quiet = run_cli("seed", "--if-empty", "--quiet", env_overrides={"DATABASE_URL": db_url})
    assert quiet.returncode == 0 and "already seeded" in quiet.stdout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://nobody:wrong@127.0.0.1:1/none", "cannot connect to postgresql://nobody:***"),
        ("mysql://u@h/db", "DATABASE_URL"),
        ("postgresql://u@[broken/db", "cannot connect to postgresql://u@[broken/db"),
    ],
)
def test_cli_bad_database_url(url, expected):
    result = run_cli("db", "upgrade", env_overrides={"DATABASE_URL": url})
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_postgis_privilege_is_explained(pg_cluster, scratch_db):
    # a role that may not create extensions, on a database without PostGIS
    with scratch_db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("CREATE ROLE plain_user LOGIN PASSWORD 'pw'"))
        conn.execute(sa.text(f"GRANT ALL ON DATABASE {scratch_db.url.database} TO plain_user"))
        conn.execute(sa.text("GRANT ALL ON SCHEMA public TO plain_user"))
    try:
        url = scratch_db.url.set(username="plain_user", password="pw")
        from data.engine import create_db_engine

        plain = create_db_engine(url.render_as_string(hide_password=False))
        with pytest.raises(PostgisMissing, match="CREATE EXTENSION postgis"):
            migrate.upgrade(plain)
        plain.dispose()
    finally:
        with scratch_db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(
                sa.text(f"REVOKE ALL ON DATABASE {scratch_db.url.database} FROM plain_user")
            )
            conn.execute(sa.text("REVOKE ALL ON SCHEMA public FROM plain_user"))
            conn.execute(sa.text("DROP ROLE plain_user"))


def test_upgrade_twice_is_harmless(scratch_db):
    migrate.upgrade(scratch_db)
    migrate.upgrade(scratch_db)
    assert migrate.current_revision(scratch_db) == migrate.head_revision()


def test_cli_help_for_every_command():
    for args in (
        ["--help"],
        ["db", "--help"],
        ["db", "upgrade", "--help"],
        ["seed", "--help"],
        ["serve", "--help"],
        ["import-streets", "--help"],
        ["refresh", "--help"],
    ):
        result = run_cli(*args, env_overrides={})
        assert result.returncode == 0, args
        assert "usage:" in result.stdout


def test_cli_embedded_cluster_lifecycle(tmp_path_factory):
    import tempfile

    from localservers.base import free_port

    root = Path(tempfile.mkdtemp(prefix="onescreen-cli-"))
    root.chmod(0o755)
    env = {"ONESCREEN_DATA_DIR": str(root), "ONESCREEN_PG_PORT": str(free_port())}
    try:
        started = run_cli("db", "start", env_overrides=env)
        assert started.returncode == 0, started.stderr
        assert "embedded PostgreSQL running" in started.stdout
        again = run_cli("db", "start", env_overrides=env)  # reuses the running cluster
        assert again.returncode == 0, again.stderr
        status = run_cli("db", "status", env_overrides=env)
        assert "(running" in status.stdout and "schema: empty" in status.stdout
        stopped = run_cli("db", "stop", env_overrides=env)
        assert "stopped" in stopped.stdout
        assert "(stopped" in run_cli("db", "status", env_overrides=env).stdout
    finally:
        run_cli("db", "stop", env_overrides=env)
        subprocess.run(["rm", "-rf", str(root)], check=False)
