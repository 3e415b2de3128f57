"""One node of a project-local Patroni cluster: a Patroni agent and the PostgreSQL 15 + PostGIS
it runs as the leader (primary) or a streaming replica, elected through etcd."""

from __future__ import annotations

import json
import os
import shutil
import signal
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from data.errors import OneScreenError
from localservers.base import LocalServer, signal_group

PATRONI = "patroni"
SCOPE = "onescreen"
REPLICATION_USER = "replicator"
# a dead leader's key lapses after TTL; a replica promotes itself at its next loop after that.
# Patroni requires loop_wait + 2 × retry_timeout ≤ ttl.
TTL_S = 10
LOOP_WAIT_S = 2
RETRY_TIMEOUT_S = 4
# each node is small: two share this machine with everything else
NODE_SETTINGS = {
    "shared_buffers": "512MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "wal_compression": "on",
    "timezone": "UTC",
    "log_min_messages": "warning",
}


class PatroniError(OneScreenError):
    """A Patroni node cannot be started; the message says why and what to do."""


@dataclass(frozen=True)
class Credentials:
    """The cluster's superuser and replication passwords (the same on every node)."""

    superuser: str
    superuser_password: str
    replication_password: str


@dataclass(frozen=True)
class PatroniSite:
    """Everything a node's patroni.yml depends on, wherever it runs; None leaves a value to
    Patroni's environment variables (PATRONI_NAME, PATRONI_SUPERUSER_PASSWORD, …)."""

    name: str | None
    host: str  # the address other nodes and HAProxy reach it at ("127.0.0.1", "pg0")
    port: int
    api_port: int
    dcs: tuple[str, str]  # Patroni's DCS section ("etcd" v2 or "etcd3") and its hosts
    data_dir: str
    bin_dir: str
    pgpass: str
    credentials: Credentials | None
    parameters: dict[str, str]
    synchronous: bool = True
    listen_host: str = "127.0.0.1"
    clients: str = "127.0.0.1/32"  # where nodes, HAProxy and the application connect from


def render_config(site: PatroniSite) -> dict[str, object]:
    """patroni.yml: the node's addresses, and the cluster's settings it bootstraps with."""
    postgresql: dict[str, object] = {
        "listen": f"{site.listen_host}:{site.port}",
        "connect_address": f"{site.host}:{site.port}",
        "data_dir": site.data_dir,
        "bin_dir": site.bin_dir,
        "pgpass": site.pgpass,
        "parameters": site.parameters,
    }
    if site.credentials is not None:
        users = site.credentials
        superuser = {"username": users.superuser, "password": users.superuser_password}
        postgresql["authentication"] = {
            "superuser": superuser,
            "replication": {"username": REPLICATION_USER, "password": users.replication_password},
            "rewind": superuser,
        }
    return {
        "scope": SCOPE,
        **({"name": site.name} if site.name else {}),
        "restapi": {
            "listen": f"{site.listen_host}:{site.api_port}",
            "connect_address": f"{site.host}:{site.api_port}",
        },
        site.dcs[0]: {"hosts": site.dcs[1]},
        "bootstrap": {
            "dcs": _dcs(site.synchronous),
            "initdb": _INITDB,
            "pg_hba": [
                "local all all scram-sha-256",
                f"host all all {site.clients} scram-sha-256",
                f"host replication {REPLICATION_USER} {site.clients} scram-sha-256",
            ],
        },
        "postgresql": postgresql,
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False},
    }


def _dcs(synchronous: bool) -> dict[str, object]:
    return {
        "ttl": TTL_S,
        "loop_wait": LOOP_WAIT_S,
        "retry_timeout": RETRY_TIMEOUT_S,
        "maximum_lag_on_failover": 1024 * 1024,
        # a commit returns once the synchronous replica has it too, and only that replica may
        # be promoted: an acknowledged write survives the primary's death. With no replica
        # left, the primary goes on alone (not strict) rather than stop writing.
        "synchronous_mode": synchronous,
        "synchronous_mode_strict": False,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {
                "wal_level": "replica",
                "hot_standby": "on",
                "wal_log_hints": "on",
                "hot_standby_feedback": "on",
                "max_wal_senders": 10,
                "max_replication_slots": 10,
                "max_connections": 200,
            },
        },
    }


def compose_config() -> str:
    """docker/patroni.yml for docker-compose's `ha` profile: each node's name, address and the
    passwords come from its PATRONI_* environment; upstream etcd speaks v3."""
    site = PatroniSite(
        name=None,
        host="0.0.0.0",  # PATRONI_*_CONNECT_ADDRESS give each node's own
        port=5432,
        api_port=8008,
        dcs=("etcd3", "etcd:2379"),
        data_dir="/var/lib/postgresql/data/patroni",
        bin_dir="/usr/lib/postgresql/15/bin",
        pgpass="/tmp/pgpass",
        credentials=None,
        parameters={**NODE_SETTINGS, "unix_socket_directories": "/var/run/postgresql"},
        listen_host="0.0.0.0",
        clients="samenet",  # the compose network's addresses
    )
    return json.dumps(render_config(site), indent=1) + "\n"


@dataclass(eq=False)
class PatroniNode(LocalServer):
    """Handle on node `name` at `root`: PostgreSQL on `port`, Patroni's REST API on `api_port`,
    elected through the etcd at `etcd_url`."""

    root: Path
    port: int
    api_port: int
    name: str
    etcd_url: str
    credentials: Credentials
    bin_dir: Path
    os_user: str = "onescreen"
    synchronous: bool = True
    settings: dict[str, str] = field(default_factory=lambda: dict(NODE_SETTINGS))

    kind = "Patroni"
    port_variable = "ONESCREEN_HA_BASE_PORT"
    url_variable = "DATABASE_URL"
    error = PatroniError
    create_os_user = True
    start_timeout_s = 30.0

    @property
    def conf_file(self) -> Path:
        """patroni.yml (JSON, which YAML reads)."""
        return self.root / "patroni.yml"

    @property
    def pid_file(self) -> Path:
        """The pid of the Patroni agent this handle started."""
        return self.root / "patroni.pid"

    @property
    def log_file(self) -> Path:
        """Patroni's output (PostgreSQL's own log is in the data directory's log/)."""
        return self.root / "patroni.log"

    @property
    def data_dir(self) -> Path:
        """PGDATA, which Patroni creates (initdb, or a base backup of the leader)."""
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        """PostgreSQL's Unix socket directory."""
        return self.root / "run"

    @staticmethod
    def installed() -> bool:
        """Whether Patroni is on this machine."""
        return shutil.which(PATRONI) is not None

    def site(self) -> PatroniSite:
        """What this node's patroni.yml says."""
        return PatroniSite(
            name=self.name,
            host="127.0.0.1",
            port=self.port,
            api_port=self.api_port,
            # etcd's v2 API: Debian's etcd 3.4 is built without the v3 HTTP gateway
            dcs=("etcd", self.etcd_url.removeprefix("http://")),
            data_dir=str(self.data_dir),
            bin_dir=str(self.bin_dir),
            pgpass=str(self.root / "pgpass"),
            credentials=self.credentials,
            parameters={**self.settings, "unix_socket_directories": str(self.socket_dir)},
            synchronous=self.synchronous,
        )

    def status(self) -> dict[str, object]:
        """What this node's REST API says of it; empty when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/", timeout=2) as answer:
                state = json.loads(answer.read())
        except urllib.error.HTTPError as refused:  # 503: running but not healthy in its role
            try:
                state = json.loads(refused.read() or b"{}")
            except ValueError:
                return {}
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def role(self) -> str | None:
        """'primary', 'replica' or None (down, or its PostgreSQL not running)."""
        state = self.status()
        if state.get("state") != "running":
            return None
        return "primary" if state.get("role") in ("master", "primary") else "replica"

    def is_synchronous(self) -> bool:
        """Whether it is the replica the leader's commits wait for."""
        return self.status().get("sync_standby") is True

    def kill(self) -> None:
        """What a host's death does: SIGKILL to the agent and to its PostgreSQL (Patroni runs
        the postmaster detached, so that restarting the agent does not restart the database)."""
        postmaster = _postmaster_pid(self.data_dir)
        pid = self._pid()
        if pid is not None:
            signal_group(pid, signal.SIGKILL)
            self._wait_gone(pid, timeout_s=5.0)
        if postmaster is not None:
            signal_group(postmaster, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        self._process = None

    def stop(self, *, timeout_s: float = 60.0) -> bool:
        """Stop the agent, which stops its PostgreSQL first (SIGKILL after `timeout_s`)."""
        postmaster = _postmaster_pid(self.data_dir)
        stopped = super().stop(timeout_s=timeout_s)
        if postmaster is not None and self._alive(postmaster):
            signal_group(postmaster, signal.SIGKILL)
        return stopped

    def _ready(self) -> bool:
        # its API answers; its PostgreSQL may still wait for a leader to copy or follow
        return bool(self.status())

    def _start(self) -> None:
        if not self.installed():
            raise PatroniError(
                "Patroni is not installed (`apt-get install patroni`, or run "
                "scripts/install-system-deps.sh)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.conf_file.write_text(json.dumps(render_config(self.site()), indent=1) + "\n")
        os.chmod(self.conf_file, 0o600)  # it holds the passwords
        os.chmod(self.root, 0o700)
        self.give_to_owner(self.root, self.socket_dir, self.conf_file)
        self._spawn(self.as_owner([PATRONI, str(self.conf_file)]), output=self.log_file)


_INITDB = [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"]


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    print(compose_config(), end="")
