"""A project-local HAProxy in front of a Patroni cluster: one port always reaches the leader
(writers), another the replicas (dashboard reads), falling back to the leader when no replica
is healthy. Which node is which comes from each node's Patroni REST API, checked every second."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from data.errors import OneScreenError
from localservers.base import LocalServer

HAPROXY = "haproxy"
# a node is taken out after two failed checks a second apart, back after two good ones
CHECK = "inter 1s fall 2 rise 2"


class HaproxyError(OneScreenError):
    """The managed HAProxy cannot be started; the message says why and what to do."""


@dataclass(frozen=True)
class Backend:
    """A database node: its PostgreSQL port and its Patroni REST API port."""

    name: str
    port: int
    api_port: int
    host: str = "127.0.0.1"  # in docker-compose, the node's service name


@dataclass(eq=False)
class ManagedHaproxy(LocalServer):
    """Handle on the HAProxy at `root`: writes on `port`, reads on `read_port`, over `nodes`."""

    root: Path
    port: int
    read_port: int
    nodes: tuple[Backend, ...]
    # Debian's haproxy package makes this account
    os_user: str = "haproxy"

    kind = "HAProxy"
    port_variable = "ONESCREEN_HA_BASE_PORT"
    url_variable = "DATABASE_URL"
    error = HaproxyError

    @property
    def conf_file(self) -> Path:
        """haproxy.cfg, written on every start."""
        return self.root / "haproxy.cfg"

    @property
    def pid_file(self) -> Path:
        """The pid of the HAProxy this handle started."""
        return self.root / "haproxy.pid"

    @property
    def log_file(self) -> Path:
        """HAProxy's output (its alerts)."""
        return self.root / "haproxy.log"

    @staticmethod
    def installed() -> bool:
        """Whether HAProxy is on this machine."""
        return _binary() is not None

    def config_text(self) -> str:
        """haproxy.cfg: TCP proxying, the role of each node from Patroni's health endpoints."""
        return render_config(port=self.port, read_port=self.read_port, nodes=self.nodes)

    def _start(self) -> None:
        binary = _binary()
        if binary is None:
            raise HaproxyError(
                "HAProxy is not installed (`apt-get install haproxy`, or run "
                "scripts/install-system-deps.sh)"
            )
        self.conf_file.write_text(self.config_text())
        # -db: in the foreground, so the pid we record is HAProxy's own
        self._spawn(self.as_owner([binary, "-db", "-f", str(self.conf_file)]), output=self.log_file)


def render_config(
    *,
    port: int | str,
    read_port: int | str,
    nodes: tuple[Backend, ...],
    monitor: int | str | None = None,
    dns: bool = False,
) -> str:
    """haproxy.cfg for writes on `port` and reads on `read_port` (a port on 127.0.0.1, or a
    bind address), and with `monitor` an HTTP /health that answers 503 while no node leads.
    `dns`: nodes are host names that may not resolve yet (containers), looked up as they come."""
    lookup = " resolvers nodes init-addr last,libc,none" if dns else ""

    def servers(check_path: str) -> list[str]:
        return [
            f"  option httpchk GET {check_path}",
            "  http-check expect status 200",
            # a node that loses its role drops its sessions: clients reconnect to the new one
            f"  default-server {CHECK} on-marked-down shutdown-sessions{lookup}",
            *(f"  server {n.name} {n.host}:{n.port} check port {n.api_port}" for n in nodes),
        ]

    return (
        "\n".join(
            [
                "# Written by OneScreen (localservers/haproxy.py): do not edit.",
                "global",
                "  maxconn 2000",
                "defaults",
                "  mode tcp",
                "  timeout connect 3s",
                # dashboards and workers hold pooled connections for a long time
                "  timeout client 30m",
                "  timeout server 30m",
                "  timeout check 2s",
                *(["resolvers nodes", "  parse-resolv-conf", "  hold valid 5s"] if dns else []),
                "frontend writes",
                f"  bind {_bind(port)}",
                "  default_backend leader",
                "frontend reads",
                f"  bind {_bind(read_port)}",
                # the replicas while one is healthy, the leader when none is
                "  use_backend replicas if { nbsrv(replicas) gt 0 }",
                "  default_backend leader",
                *_monitor(monitor),
                "backend leader",
                *servers("/primary"),
                "backend replicas",
                "  balance leastconn",
                *servers("/replica"),
            ]
        )
        + "\n"
    )


def _monitor(bind: int | str | None) -> list[str]:
    if bind is None:
        return []
    return [
        "frontend monitor",
        f"  bind {_bind(bind)}",
        "  mode http",
        "  timeout client 5s",
        "  monitor-uri /health",
        "  monitor fail if { nbsrv(leader) lt 1 }",
    ]


def compose_config() -> str:
    """docker/haproxy.cfg for docker-compose's `ha` profile: compose's `db` service, in front of
    the Patroni nodes pg0 and pg1 (writes on 5432, so every URL naming db:5432 still works)."""
    nodes = tuple(Backend(name, 5432, 8008, host=name) for name in ("pg0", "pg1"))
    return render_config(port=":5432", read_port=":5001", nodes=nodes, monitor=":8404", dns=True)


def _bind(port: int | str) -> str:
    return f"127.0.0.1:{port}" if isinstance(port, int) else port


def _binary() -> str | None:
    return shutil.which(HAPROXY) or shutil.which(HAPROXY, path="/usr/sbin:/sbin")


if __name__ == "__main__":
    print(compose_config(), end="")
