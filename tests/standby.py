"""A local hot standby of an embedded cluster (pg_basebackup -R, streaming replication), for the
tests of reads served by a replica."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from data.errors import EmbeddedClusterError
from localservers.postgres import SUPERUSER, EmbeddedPostgres

POLL_SECONDS = 0.1


def conninfo(url: str) -> str:
    """A libpq connection string for an SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url)
    return psycopg.conninfo.make_conninfo(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        connect_timeout=5,
    )


def _run_as_cluster_user(
    cluster: EmbeddedPostgres, argv: list[str], *, env: dict[str, str]
) -> None:
    """Run `argv` as the cluster's OS user (when root) with `env` added to the environment."""
    argv = cluster.as_owner(argv)
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, env={**os.environ, **env}
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise EmbeddedClusterError(f"`{Path(argv[-1]).name}…` failed: " + " | ".join(detail))


def create_hot_standby(
    *, primary: EmbeddedPostgres, root: Path, port: int, timeout_s: float = 60
) -> EmbeddedPostgres:
    """Base-backup the running `primary` into `root`, start it as a streaming hot standby on
    `port` and return its handle once it serves read-only queries and streams from the primary."""
    if not primary.is_running():
        raise EmbeddedClusterError(f"the primary at {primary.root} is not running")
    standby = EmbeddedPostgres(
        root=root, port=port, bin_dir=primary.bin_dir, os_user=primary.os_user
    )
    if standby.data_dir.exists():
        raise EmbeddedClusterError(f"{standby.data_dir} exists already; choose an empty root")
    root.mkdir(parents=True, exist_ok=True)
    standby.socket_dir.mkdir(exist_ok=True)
    # a physical copy: the standby's superuser has the primary's password
    shutil.copyfile(primary.password_file, standby.password_file)
    standby.give_to_owner(root, standby.socket_dir, standby.password_file)
    os.chmod(standby.password_file, 0o600)
    os.chmod(root, 0o700)
    password = primary.password_file.read_text().strip()
    try:
        # -R writes standby.signal and primary_conninfo; -X stream copies the WAL written meanwhile
        _run_as_cluster_user(
            standby,
            [
                str(primary.bin_dir / "pg_basebackup"),
                "--host=127.0.0.1",
                f"--port={primary.port}",
                f"--username={SUPERUSER}",
                "--no-password",
                f"--pgdata={standby.data_dir}",
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
            ],
            env={"PGPASSWORD": password},
        )
        with (standby.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("hot_standby = on\n")
        standby.ensure_running()
        _wait_until_streaming(standby, timeout_s=timeout_s)
    except BaseException:
        standby.destroy()
        raise
    return standby


def _wait_until_streaming(standby: EmbeddedPostgres, *, timeout_s: float) -> None:
    """Wait until `standby` is in recovery and its WAL receiver streams from the primary."""
    deadline = time.monotonic() + timeout_s
    state: tuple[bool, str | None] | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(conninfo(standby.url()), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)"
                ).fetchone()
                assert row is not None
                state = (bool(row[0]), row[1])
            if state == (True, "streaming"):
                return
        except psycopg.OperationalError:
            pass  # not accepting connections yet
        time.sleep(POLL_SECONDS)
    raise EmbeddedClusterError(
        f"the standby on port {standby.port} did not start streaming within {timeout_s:.0f} s"
        f" (in recovery, receiver status: {state}; log: {standby.log_file})"
    )


def wait_for_replay(*, primary_url: str, standby_url: str, timeout_s: float = 60) -> str:
    """Wait until the standby has replayed the primary's current WAL position; return it."""
    with psycopg.connect(conninfo(primary_url), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target = str(row[0])
    deadline = time.monotonic() + timeout_s
    replayed: str | None = None
    with psycopg.connect(conninfo(standby_url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT pg_last_wal_replay_lsn()::text,"
                " pg_last_wal_replay_lsn() >= CAST(%s AS pg_lsn)",
                (target,),
            ).fetchone()
            assert row is not None
            replayed = row[0]
            if row[1]:
                return target
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the standby replayed up to {replayed} but not {target} within"
                    f" {timeout_s:.0f} s"
                )
            time.sleep(POLL_SECONDS)
