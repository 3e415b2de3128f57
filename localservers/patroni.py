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

    def config(self) -> dict[str, object]:
        """patroni.yml: this node's addresses, and the cluster's settings it bootstraps with."""
        here = f"127.0.0.1:{self.port}"
        api = f"127.0.0.1:{self.api_port}"
        users = self.credentials
        return {
            "scope": SCOPE,
            "name": self.name,
            "restapi": {"listen": api, "connect_address": api},
            # etcd's v2 API: Debian's etcd 3.4 is built without the v3 HTTP gateway
            "etcd": {"hosts": self.etcd_url.removeprefix("http://")},
            "bootstrap": {"dcs": self._dcs(), "initdb": _INITDB, "pg_hba": _PG_HBA},
            "postgresql": {
                "listen": here,
                "connect_address": here,
                "data_dir": str(self.data_dir),
                "bin_dir": str(self.bin_dir),
                "pgpass": str(self.root / "pgpass"),
                "authentication": {
                    "superuser": {
                        "username": users.superuser,
                        "password": users.superuser_password,
                    },
                    "replication": {
                        "username": REPLICATION_USER,
                        "password": users.replication_password,
                    },
                    "rewind": {"username": users.superuser, "password": users.superuser_password},
                },
                "parameters": {**self.settings, "unix_socket_directories": str(self.socket_dir)},
            },
            "watchdog": {"mode": "off"},
            "tags": {"nofailover": False, "noloadbalance": False},
        }

    def _dcs(self) -> dict[str, object]:
        return {
            "ttl": TTL_S,
            "loop_wait": LOOP_WAIT_S,
            "retry_timeout": RETRY_TIMEOUT_S,
            "maximum_lag_on_failover": 1024 * 1024,
            # a commit returns once the synchronous replica has it too, and only that replica
            # may be promoted: an acknowledged write survives the primary's death. With no
            # replica left, the primary goes on alone (not strict) rather than stop writing.
            "synchronous_mode": self.synchronous,
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
        return self.role() is not None

    def _start(self) -> None:
        if not self.installed():
            raise PatroniError(
                "Patroni is not installed (`apt-get install patroni`, or run "
                "scripts/install-system-deps.sh)"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.conf_file.write_text(json.dumps(self.config(), indent=1) + "\n")
        os.chmod(self.conf_file, 0o600)  # it holds the passwords
        os.chmod(self.root, 0o700)
        self.give_to_owner(self.root, self.socket_dir, self.conf_file)
        self._spawn(self.as_owner([PATRONI, str(self.conf_file)]), output=self.log_file)


_INITDB = [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"]
_PG_HBA = [
    "local all all scram-sha-256",
    "host all all 127.0.0.1/32 scram-sha-256",
    f"host replication {REPLICATION_USER} 127.0.0.1/32 scram-sha-256",
]


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
