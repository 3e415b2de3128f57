"""Streaming replication on real clusters the test starts: a hot standby made with
pg_basebackup -R receives the city by streaming, refuses writes, and — named by
ONESCREEN_READ_DATABASE_URL — serves the dashboard's reads under row-level security."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from config import load_settings
from data import migrate
from data.areas import district_metrics
from data.devices import device_detail
from data.engine import create_db_engine
from data.ingest_store import PartitionCache, store_readings
from data.kpis import city_kpis
from data.writes import ReadingBatch
from localservers.base import free_port
from localservers.postgres import DATABASE_NAME, EmbeddedPostgres
from tests.conftest import app_on
from tests.standby import conninfo, create_hot_standby, wait_for_replay

pytestmark = pytest.mark.integration

PUDONG = "310115"
REPLAY_TIMEOUT_S = 120


@dataclass(frozen=True)
class Replication:
    """A primary with the seeded tiny city and its streaming hot standby."""

    primary: EmbeddedPostgres
    standby: EmbeddedPostgres
    owner: sa.Engine  # the owner (superuser) on the primary
    devices: int
    readings: int

    def replay(self) -> str:
        """Wait until the standby has replayed everything the primary wrote so far."""
        return wait_for_replay(
            primary_url=self.primary.url(),
            standby_url=self.standby.url(),
            timeout_s=REPLAY_TIMEOUT_S,
        )


@pytest.fixture(scope="module")
def replication() -> Iterator[Replication]:
    """Primary and standby of their own (not the session's cluster), removed afterwards."""
    from simulator.seed import seed_city

    settings = load_settings()
    root = Path(tempfile.mkdtemp(prefix="onescreen-replica-"))
    root.chmod(0o755)  # the unprivileged cluster owner must be able to reach both clusters
    primary = EmbeddedPostgres(
        root=root / "primary",
        port=free_port(),
        bin_dir=settings.pg_bin_dir,
        os_user=settings.pg_os_user,
    )
    standby: EmbeddedPostgres | None = None
    owner: sa.Engine | None = None
    try:
        owner = create_db_engine(primary.ensure_running())
        migrate.upgrade(owner)
        standby = create_hot_standby(primary=primary, root=root / "standby", port=free_port())
        # seeded after the base backup: the whole city reaches the standby by streaming
        report = seed_city(owner, scale="tiny", random_seed=13, reset=True)
        pair = Replication(
            primary=primary,
            standby=standby,
            owner=owner,
            devices=report.devices,
            readings=report.readings,
        )
        pair.replay()
        yield pair
    finally:
        if owner is not None:
            owner.dispose()
        if standby is not None:
            standby.destroy()
        primary.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _superuser(cluster: EmbeddedPostgres) -> psycopg.Connection:
    return psycopg.connect(conninfo(cluster.url()), autocommit=True)


def _one(cluster: EmbeddedPostgres, sql: str, params: tuple = ()) -> tuple:
    with _superuser(cluster) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


def _pudong_device(owner: sa.Engine) -> int:
    with owner.connect() as conn:
        return conn.execute(
            sa.text("SELECT min(id) FROM device WHERE status = 'active' AND district_adcode = :d"),
            {"d": PUDONG},
        ).scalar_one()


def _ingest(owner: sa.Engine, *, device_id: int, value: float) -> datetime:
    """One reading stamped with the primary's clock, stored as the ingest service stores
    batches (COPY into a temp table, idempotent insert, one commit); returns its timestamp."""
    with owner.connect() as conn:
        moment = conn.execute(sa.text("SELECT date_trunc('milliseconds', now())")).scalar_one()
    batch = ReadingBatch(
        device_id=np.array([device_id], dtype=np.int64),
        ts_us=np.array([round(moment.timestamp() * 1_000_000)], dtype=np.int64),
        value=np.array([value]),
        quality=np.zeros(1, dtype=np.int16),
    )
    with owner.begin() as conn:
        stored = store_readings(conn, batch, partitions=PartitionCache())
    assert stored.tolist() == [True]
    return moment


# 1. The standby streams, has replayed the seeded city and refuses writes ----------------------


def test_standby_streams_from_the_primary_and_replays_the_seeded_city(replication):
    primary, standby = replication.primary, replication.standby
    senders = _one(
        primary,
        "SELECT count(*), min(state), min(host(client_addr)) FROM pg_stat_replication",
    )
    assert senders == (1, "streaming", "127.0.0.1")
    assert _one(
        standby, "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)"
    ) == (
        True,
        "streaming",
    )
    assert _one(primary, "SELECT pg_is_in_recovery()") == (False,)
    counts = (
        "SELECT (SELECT count(*) FROM device), (SELECT count(*) FROM reading),"
        " (SELECT sum(n_readings) FROM rollup_district_daily), (SELECT count(*) FROM incident)"
    )
    on_standby = _one(standby, counts)
    assert on_standby[:2] == (replication.devices, replication.readings)
    assert replication.devices > 0 and replication.readings > 0
    assert on_standby == _one(primary, counts)


def test_the_standby_refuses_writes(replication):
    with _superuser(replication.standby) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only"):
            conn.execute("UPDATE device SET status = status WHERE id = 1")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read-only"):
            conn.execute("CREATE TABLE replica_probe (id int)")
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)


# 2. A reading ingested on the primary appears on the standby ----------------------------------


def test_a_reading_ingested_on_the_primary_replays_to_the_standby(replication):
    device_id = _pudong_device(replication.owner)
    moment = _ingest(replication.owner, device_id=device_id, value=271.828)
    replication.replay()
    standby = replication.standby
    assert _one(
        standby, "SELECT value FROM reading WHERE device_id = %s AND ts = %s", (device_id, moment)
    ) == (271.828,)
    # what the trigger derived on the primary arrives too
    assert _one(
        standby, "SELECT ts, value FROM device_latest WHERE device_id = %s", (device_id,)
    ) == (moment, 271.828)
    counts = (
        "SELECT (SELECT count(*) FROM reading), (SELECT sum(n_readings) FROM rollup_street_15m)"
    )
    assert _one(standby, counts) == _one(replication.primary, counts)


# 3. and 4. Dashboard reads go to the standby, still scoped by row-level security ---------------


@pytest.fixture
def reads_on_standby(replication) -> Iterator[Replication]:
    """The app configured with the primary as DATABASE_URL and the standby as its read database,
    the web role provisioned (on the primary) and replayed to the standby."""
    replication.replay()  # the web role's login (given by db upgrade) reaches the standby
    read_url = f"postgresql://127.0.0.1:{replication.standby.port}/{DATABASE_NAME}"
    # dashboard reads go through an app's engines and caches (its own: none shared with other
    # tests, no Redis), reached as a request does
    with (
        app_on(
            replication.primary.url(),
            read_database_url=read_url,
            web_database_url=None,
            redis_url=None,
        ) as app,
        app.server.app_context(),
    ):
        yield replication


def _server(engine: sa.Engine) -> tuple:
    from data.scope import CITY, Scope, scoped

    with scoped(Scope(CITY)), engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text("SELECT inet_server_port(), pg_is_in_recovery(), current_user")
            ).one()
        )


def test_the_read_engine_is_the_web_role_on_the_standby(reads_on_standby):
    from web.services import read_engine, web_engine

    standby, primary = reads_on_standby.standby, reads_on_standby.primary
    assert _server(read_engine()) == (standby.port, True, "onescreen_web")
    assert _server(web_engine()) == (primary.port, False, "onescreen_web")
    with pytest.raises(sa.exc.InternalError, match="read-only"), read_engine().begin() as c:
        c.execute(sa.text("UPDATE device SET status = status WHERE id = 1"))


def _wait_until_received(standby: EmbeddedPostgres, lsn: str) -> None:
    deadline = time.monotonic() + REPLAY_TIMEOUT_S
    query = "SELECT pg_last_wal_receive_lsn() >= CAST(%s AS pg_lsn)"
    while _one(standby, query, (lsn,)) != (True,):
        assert time.monotonic() < deadline, f"the standby did not receive {lsn}"
        time.sleep(0.1)


def _paused(standby: EmbeddedPostgres) -> str:
    return _one(standby, "SELECT pg_get_wal_replay_pause_state()")[0]


def test_dashboard_reads_do_not_see_what_the_paused_standby_has_not_replayed(reads_on_standby):
    """Replay paused on the standby, a reading ingested on the primary stays out of the
    dashboard's figures — though the primary has it and the standby received its WAL — until
    replay resumes: the dashboard reads the standby."""
    from data.scope import CITY, Scope, scoped
    from panels import reads as live
    from web.services import web_engine

    pair = reads_on_standby
    standby = pair.standby
    device_id = _pudong_device(pair.owner)
    with _superuser(standby) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        assert _paused(standby) in ("pause requested", "paused")
        value = 314.159
        moment = _ingest(pair.owner, device_id=device_id, value=value)
        target = _one(pair.primary, "SELECT pg_current_wal_lsn()::text")[0]
        with scoped(Scope(CITY)):
            # the write is on the primary, visible to the web role there
            on_primary = device_detail(web_engine(), device_id=device_id)
            assert on_primary is not None and on_primary.last_ts == moment
            live.shared_cache().clear()
            detail = live.read(device_detail, device_id=device_id).value
            kpis = live.read(city_kpis, at=moment).value
        # the standby has received the reading's WAL, but not applied it
        _wait_until_received(standby, target)
        assert _one(standby, "SELECT pg_last_wal_replay_lsn() < CAST(%s AS pg_lsn)", (target,)) == (
            True,
        )
        assert detail is not None
        assert detail.last_ts is not None and detail.last_ts < moment
        assert detail.last_value != value
    finally:
        with _superuser(standby) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    assert _paused(standby) == "not paused"
    pair.replay()
    with scoped(Scope(CITY)):
        live.shared_cache().clear()
        after = live.read(device_detail, device_id=device_id).value
        kpis_after = live.read(city_kpis, at=moment).value
    assert after is not None
    assert (after.last_ts, after.last_value) == (moment, value)
    assert kpis_after.readings_today == kpis.readings_today + 1


def test_row_level_security_scopes_reads_on_the_standby(reads_on_standby):
    from data.scope import CITY, Scope, scoped
    from panels import reads as live
    from web.services import read_engine

    standby = reads_on_standby.standby
    read_engine = read_engine()
    total, in_pudong = _one(
        standby,
        "SELECT count(*), count(*) FILTER (WHERE district_adcode = %s) FROM device",
        (PUDONG,),
    )
    assert 0 < in_pudong < total

    def devices(scope: Scope) -> tuple[set[str], int]:
        with scoped(scope), read_engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT district_adcode, count(*) FROM device GROUP BY 1")
            ).all()
        return {r[0] for r in rows}, sum(r[1] for r in rows)

    assert devices(Scope(PUDONG)) == ({PUDONG}, in_pudong)
    city_districts, city_total = devices(Scope(CITY))
    assert city_total == total and len(city_districts) > 1
    assert devices(Scope()) == (set(), 0)  # no scope stated: nothing

    # the dashboard's district choropleth, read through the shared cache on the standby
    live.shared_cache().clear()
    with scoped(Scope(PUDONG)):
        pudong_view = live.read(district_metrics).value
    with scoped(Scope(CITY)):
        city_view = live.read(district_metrics).value
    with_devices = {m.code for m in pudong_view if m.devices_total > 0}
    assert with_devices == {PUDONG}
    assert sum(m.devices_total for m in pudong_view) == in_pudong
    assert len({m.code for m in city_view if m.devices_total > 0}) > 1
    assert _server(read_engine)[:2] == (standby.port, True)
