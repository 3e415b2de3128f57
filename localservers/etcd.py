"""A project-local etcd: the store where Patroni keeps who leads the PostgreSQL cluster."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from data.errors import OneScreenError
from localservers.base import LocalServer

ETCD = "etcd"


class EtcdError(OneScreenError):
    """The managed etcd cannot be started; the message says why and what to do."""


@dataclass(eq=False)
class ManagedEtcd(LocalServer):
    """Handle on a one-member etcd at `root` with clients on `port` and its peer on
    `peer_port` (one member: on one machine the machine is the single point of failure anyway;
    a deployment runs three on three hosts)."""

    root: Path
    port: int
    peer_port: int
    name: str = "onescreen-dcs"
    # Debian's etcd-server package makes this account
    os_user: str = "etcd"

    kind = "etcd"
    port_variable = "ONESCREEN_HA_BASE_PORT"
    url_variable = "ONESCREEN_HA_BASE_PORT"
    error = EtcdError
    start_timeout_s = 30.0

    @property
    def conf_file(self) -> Path:
        """The YAML (here JSON, which YAML reads) configuration etcd starts with."""
        return self.root / "etcd.conf.yml"

    @property
    def pid_file(self) -> Path:
        """The pid of the etcd this handle started."""
        return self.root / "etcd.pid"

    @property
    def log_file(self) -> Path:
        """etcd's output."""
        return self.root / "etcd.log"

    @property
    def data_dir(self) -> Path:
        """The member's data."""
        return self.root / "data"

    def url(self) -> str:
        """Where clients (Patroni) reach it."""
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def installed() -> bool:
        """Whether an etcd binary is on this machine."""
        return shutil.which(ETCD) is not None

    def config(self) -> dict[str, object]:
        """etcd's settings: loopback only, one member, the v2 API on (Debian's etcd 3.4 has no
        gRPC gateway, so Patroni speaks v2 to it)."""
        peer = f"http://127.0.0.1:{self.peer_port}"
        return {
            "name": self.name,
            "data-dir": str(self.data_dir),
            "listen-client-urls": self.url(),
            "advertise-client-urls": self.url(),
            "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer,
            "initial-cluster": f"{self.name}={peer}",
            "initial-cluster-state": "new",
            "initial-cluster-token": f"{self.name}-{self.peer_port}",
            "enable-v2": True,
            "log-level": "warn",
        }

    def _start(self) -> None:
        if not self.installed():
            raise EtcdError(
                "etcd is not installed (`apt-get install etcd-server`, or run "
                "scripts/install-system-deps.sh)"
            )
        self.data_dir.mkdir(exist_ok=True)
        self.data_dir.chmod(0o700)
        self.conf_file.write_text(json.dumps(self.config(), indent=1) + "\n")
        self.give_to_owner(self.root, self.data_dir, self.conf_file)
        argv = self.as_owner([ETCD, "--config-file", str(self.conf_file)])
        self._spawn(argv, output=self.log_file)
