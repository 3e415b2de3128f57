"""The highly available database (ONESCREEN_HA) on real etcd, Patroni, PostgreSQL + PostGIS and
HAProxy: writes reach the leader and dashboard reads a replica, and when the leader's host dies
mid-stream the replica takes over on its own, with every acknowledged commit kept and writes back
within the target; the dead node then rejoins as a replica."""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from config import load_settings
from data import migrate
from data.engine import create_db_engine
from data.scope import read_url_for, web_url_for
from localservers.base import port_is_free
from localservers.ha import HaCluster, port_block
from localservers.patroni import PatroniNode
from tests.standby import conninfo

pytestmark = pytest.mark.integration
# the target for dashboards to be fresh again; writes come back well inside it
BACK_WITHIN_S = 30


def _free_base() -> int:
    """A base port whose whole block (etcd, HAProxy, nodes, APIs) is free."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000, 50)
        if all(port_is_free("127.0.0.1", port) for port in port_block(base)):
            return base
    raise RuntimeError("no free block of ports")


@pytest.fixture(scope="module")
def ha() -> Iterator[HaCluster]:
    if not (shutil.which("patroni") and shutil.which("etcd")):
        pytest.fail("patroni and etcd-server are needed (scripts/install-system-deps.sh)")
    settings = load_settings()
    root = Path(tempfile.mkdtemp(prefix="onescreen-ha-"))
    root.chmod(0o755)
    cluster = HaCluster(
        root=root / "ha",
        base_port=_free_base(),
        bin_dir=settings.pg_bin_dir,
        os_user=settings.pg_os_user,
    )
    try:
        cluster.ensure_running()
        yield cluster
    finally:
        cluster.stop(timeout_s=20)
        shutil.rmtree(root, ignore_errors=True)


def _server(url: str) -> tuple[int, bool]:
    """(port, in recovery) of the server `url` reaches."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def test_writes_reach_the_leader_and_dashboard_reads_a_replica_as_the_web_role(ha):
    engine = create_db_engine(ha.url())
    try:
        migrate.upgrade(engine)  # PostGIS, the schema and the web role, on the leader
    finally:
        engine.dispose()
    leader, replica = ha.leader(), next(n for n in ha.nodes if n.role() == "replica")
    assert leader is not None
    assert _server(ha.url()) == (leader.port, False)
    # what serve gives a web process, and what it reads through: the web role on the replica
    settings = load_settings(DATABASE_URL=ha.url(), read_database_url=ha.read_url())
    read_url = read_url_for(settings, web_url=web_url_for(settings, owner_url=ha.url()))
    assert sa.engine.make_url(read_url).username == "onescreen_web"
    # a synchronous commit is flushed on the replica; it is applied there a moment later
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            found = _server(read_url)
            break
        except psycopg.OperationalError:
            time.sleep(0.2)
    assert found == (replica.port, True)
    with psycopg.connect(conninfo(read_url), autocommit=True) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()
    # commits wait for the synchronous replica: an acknowledged one is on both nodes
    with psycopg.connect(conninfo(ha.url()), autocommit=True) as conn:
        names = conn.execute("SHOW synchronous_standby_names").fetchone()
    assert names is not None and replica.name in names[0]


class _Writer(threading.Thread):
    """Inserts numbered rows through the writers' port as fast as it can, reconnecting after
    a failure; remembers which were acknowledged and when writes failed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acknowledged: list[tuple[int, float]] = []
        self.failures: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        number, conn = 0, None
        while not self.done.is_set():
            number += 1
            try:
                if conn is None:
                    conn = psycopg.connect(conninfo(self.url), autocommit=True)
                conn.execute("INSERT INTO ha_probe VALUES (%s)", (number,))
                self.acknowledged.append((number, time.monotonic()))
            except psycopg.Error:
                self.failures.append(time.monotonic())
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def _stored(url: str) -> set[int]:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT n FROM ha_probe")}


def test_the_leaders_host_dies_mid_stream_and_no_acknowledged_write_is_lost(ha):
    with psycopg.connect(conninfo(ha.url()), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ha_probe (n int PRIMARY KEY)")
    writer = _Writer(ha.url())
    writer.start()
    time.sleep(2.0)
    leader = ha.leader()
    assert leader is not None and len(writer.acknowledged) > 10
    killed_at = time.monotonic()
    leader.kill()
    took = ha.wait_until(
        lambda: (ha.leader() or leader) is not leader, timeout_s=BACK_WITHIN_S, what="new leader"
    )
    deadline = killed_at + BACK_WITHIN_S
    while time.monotonic() < deadline and not _written_since(writer, killed_at, settle_s=1.0):
        time.sleep(0.2)
    writer.done.set()
    writer.join(10)
    assert writer.failures, "the writer never noticed the leader die"
    back = [at for _, at in writer.acknowledged if at > max(writer.failures)]
    assert back, f"no write after the failover within {BACK_WITHIN_S} s (new leader in {took:.1f})"
    assert back[0] - killed_at < BACK_WITHIN_S
    acknowledged = {number for number, _ in writer.acknowledged}
    assert acknowledged - _stored(ha.url()) == set()
    _the_dead_node_rejoins_as_a_replica_with_every_write(ha, leader, acknowledged)


def _written_since(writer: _Writer, moment: float, *, settle_s: float) -> bool:
    """Whether writes have gone through for `settle_s` after the last failure past `moment`."""
    last_failure = max(writer.failures, default=moment)
    return bool(writer.acknowledged) and writer.acknowledged[-1][1] > last_failure + settle_s


def _the_dead_node_rejoins_as_a_replica_with_every_write(
    ha: HaCluster, node: PatroniNode, acknowledged: set[int]
) -> None:
    ha.ensure_running(timeout_s=90)  # starts it again: Patroni rewinds it to follow the leader
    assert node.role() == "replica"
    deadline = time.monotonic() + 30
    while acknowledged - _stored(ha.node_url(node)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert acknowledged - _stored(ha.node_url(node)) == set()
