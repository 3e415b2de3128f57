"""A local highly available PostgreSQL: etcd, Patroni nodes (a leader and synchronous streaming
replicas, failing over on their own) and HAProxy in front, so that writers reach the leader
through one port and dashboards the replicas through another. `cli.py ha` and the failover
bench run it; a deployment runs the same engines on separate hosts (docker-compose.yml's `ha`
profile)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from localservers.etcd import ManagedEtcd
from localservers.haproxy import Backend, ManagedHaproxy
from localservers.patroni import Credentials, PatroniError, PatroniNode
from localservers.postgres import DATABASE_NAME, SUPERUSER, ensure_database

CREDENTIALS_FILE = "credentials.json"
POLL_S = 0.2


def port_block(base_port: int, *, node_count: int = 2) -> list[int]:
    """Every port a cluster on `base_port` listens on."""
    nodes = [base_port + offset + i for offset in (10, 20) for i in range(node_count)]
    return [base_port, base_port + 1, base_port + 2, base_port + 3, *nodes]


@dataclass(eq=False)
class HaCluster:
    """The cluster at `root`: etcd on base_port (+1 its peer), HAProxy writes on base_port + 2
    and reads on + 3, node i's PostgreSQL on base_port + 10 + i and its REST API on + 20 + i."""

    root: Path
    base_port: int
    bin_dir: Path
    node_count: int = 2
    os_user: str = "onescreen"

    def __post_init__(self) -> None:
        self.etcd = ManagedEtcd(
            root=self.root / "etcd", port=self.base_port, peer_port=self.base_port + 1
        )
        credentials = self._credentials()
        self.nodes = [
            PatroniNode(
                root=self.root / f"node{i}",
                port=self.base_port + 10 + i,
                api_port=self.base_port + 20 + i,
                name=f"node{i}",
                etcd_url=self.etcd.url(),
                credentials=credentials,
                bin_dir=self.bin_dir,
                os_user=self.os_user,
            )
            for i in range(self.node_count)
        ]
        self.proxy = ManagedHaproxy(
            root=self.root / "haproxy",
            port=self.base_port + 2,
            read_port=self.base_port + 3,
            nodes=tuple(Backend(n.name, n.port, n.api_port) for n in self.nodes),
        )

    @property
    def data_dir(self) -> Path:
        """Where the cluster's servers keep their files."""
        return self.root

    def url(self) -> str:
        """The owner's URL of the leader, through HAProxy (writers: ingest, jobs, actions)."""
        password = quote(self._credentials().superuser_password, safe="")
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{self.proxy.port}/{DATABASE_NAME}"

    def node_url(self, node: PatroniNode) -> str:
        """The owner's URL of `node` itself, not through HAProxy (checks and drills)."""
        password = quote(self._credentials().superuser_password, safe="")
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{node.port}/{DATABASE_NAME}"

    def read_url(self) -> str:
        """The replicas through HAProxy, with no login: dashboards use the web role's there."""
        return f"postgresql+psycopg://127.0.0.1:{self.proxy.read_port}/{DATABASE_NAME}"

    def is_running(self) -> bool:
        """Whether a node leads now."""
        return self.leader() is not None

    def ensure_running(self, *, timeout_s: float = 120) -> str:
        """Start what is stopped, wait until one node leads and the others stream from it,
        create the database; the owner's URL."""
        for directory in (self.root, self.etcd.root, self.proxy.root):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)  # each server's account must pass through
        self.etcd.start_if_stopped()
        # all at once: the first to take etcd's initialize key bootstraps and the others copy
        # it; on a restart, only the node with the newest WAL may lead, whichever it is
        for node in self.nodes:
            node.start_if_stopped()
        self.wait_until(self.all_streaming, timeout_s=timeout_s, what="every node running")
        self.proxy.start_if_stopped()
        # HAProxy believes every node up until its checks say otherwise (two, 1 s apart)
        self.wait_until(self._writes_reach_leader, timeout_s=timeout_s, what="writes to the leader")
        self._ensure_database()
        return self.url()

    def stop(self, *, timeout_s: float = 60.0) -> bool:
        """Stop HAProxy, the replicas, the leader, then etcd; whether anything ran."""
        stopped = self.proxy.stop()
        leader = self.leader()
        for node in sorted(self.nodes, key=lambda n: n is leader):
            stopped = node.stop(timeout_s=timeout_s) or stopped
        return self.etcd.stop() or stopped

    def roles(self) -> dict[str, str | None]:
        """Node name → 'primary', 'replica' or None (down or not running PostgreSQL)."""
        return {node.name: node.role() for node in self.nodes}

    def leader(self) -> PatroniNode | None:
        """The node that leads now, if any."""
        return next((node for node in self.nodes if node.role() == "primary"), None)

    def all_streaming(self) -> bool:
        """Whether one node leads, every other is a running replica and (with replicas) one
        is synchronous: commits are then safe from the leader's death."""
        roles = sorted(role or "down" for role in self.roles().values())
        if roles != ["primary"] + ["replica"] * (len(self.nodes) - 1):
            return False
        return len(self.nodes) == 1 or any(node.is_synchronous() for node in self.nodes)

    def wait_until(self, ready: Callable[[], bool], *, timeout_s: float, what: str) -> float:
        """Seconds until `ready()`; PatroniError naming `what` after `timeout_s`."""
        start = time.monotonic()
        while not ready():
            if time.monotonic() - start > timeout_s:
                tails = " | ".join(f"{n.name}: {n._log_tail(3)}" for n in self.nodes)
                raise PatroniError(f"no {what} within {timeout_s:.0f} s ({tails})")
            time.sleep(POLL_S)
        return time.monotonic() - start

    def _credentials(self) -> Credentials:
        """The cluster's passwords, made once and kept in a file only this account reads."""
        from data.displays import write_private

        path = self.root / CREDENTIALS_FILE
        try:
            kept = json.loads(path.read_text())
        except FileNotFoundError:
            kept = {
                "superuser": secrets.token_urlsafe(24),
                "replication": secrets.token_urlsafe(24),
            }
            self.root.mkdir(parents=True, exist_ok=True)
            write_private(path, json.dumps(kept) + "\n")
        return Credentials(SUPERUSER, kept["superuser"], kept["replication"])

    def _writes_reach_leader(self) -> bool:
        """Whether three connections in a row through the writers' port reach the leader."""
        import psycopg

        password = self._credentials().superuser_password
        conninfo = f"host=127.0.0.1 port={self.proxy.port} user={SUPERUSER} password={password}"
        try:
            for _ in range(3):
                with psycopg.connect(conninfo, dbname="postgres", connect_timeout=3) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is None or row[0]:
                        return False
        except psycopg.Error:
            return False
        return True

    def _ensure_database(self) -> None:
        ensure_database(port=self.proxy.port, password=self._credentials().superuser_password)
