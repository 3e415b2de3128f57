"""A project-managed Mosquitto MQTT broker for when ONESCREEN_MQTT_URL names none."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from data.errors import OneScreenError
from localservers.base import LocalServer

MOSQUITTO = "mosquitto"


class BrokerError(OneScreenError):
    """The broker cannot be started or reached; the message says why and what to do."""


@dataclass(eq=False)
class ManagedBroker(LocalServer):
    """Handle on the Mosquitto at `root` (config, pid file, log, persistence) on `port`."""

    root: Path
    port: int
    binary: str = MOSQUITTO
    # Debian's mosquitto drops root privileges to this account unless told otherwise
    os_user: str = "mosquitto"

    kind = "Mosquitto"
    port_variable = "ONESCREEN_MQTT_BROKER_PORT"
    url_variable = "ONESCREEN_MQTT_URL"
    error = BrokerError

    @property
    def url(self) -> str:
        """mqtt:// URL of the broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def conf_file(self) -> Path:
        """The mosquitto.conf written on every start."""
        return self.root / "mosquitto.conf"

    @property
    def pid_file(self) -> Path:
        """The file mosquitto writes its pid to."""
        return self.root / "mosquitto.pid"

    @property
    def log_file(self) -> Path:
        """Mosquitto's own log."""
        return self.root / "mosquitto.log"

    @property
    def output_file(self) -> Path:
        """Where mosquitto's stdout and stderr go."""
        return self.root / "mosquitto.out"

    @property
    def persistence_dir(self) -> Path:
        """The directory of mosquitto's persistence file."""
        return self.root / "data"

    def ensure_running(self) -> str:
        """Start the broker unless ours already runs; returns its mqtt:// URL."""
        self.start_if_stopped()
        return self.url

    def config_text(self, *, run_as: str | None) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            "# Written by OneScreen (localservers/mosquitto.py); rewritten on every start.",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            # a crash loses at most this many seconds of queued messages
            "autosave_interval 30",
            # the ingest worker's persistent session must keep its whole backlog while it is
            # down, however long: never drop queued messages for lack of room
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            "max_inflight_messages 1000",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if run_as:
            lines.append(f"user {run_as}")
        return "\n".join(lines) + "\n"

    def _serves_configured_port(self) -> bool:
        return self._configured_port() == self.port

    def _configured_port(self) -> int | None:
        try:
            for line in self.conf_file.read_text().splitlines():
                if line.startswith("listener "):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def _start(self) -> None:
        binary = shutil.which(self.binary) or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            raise BrokerError(
                "Mosquitto is not installed (`apt-get install mosquitto`, or run "
                "scripts/install-system-deps.sh), or set ONESCREEN_MQTT_URL to an existing broker."
            )
        run_as = self._prepare_directories()
        self.conf_file.write_text(self.config_text(run_as=run_as))
        # mosquitto starts as whoever starts it and drops root privileges itself (`user` line)
        self._spawn([binary, "-c", str(self.conf_file)], output=self.output_file)

    def _prepare_directories(self) -> str | None:
        """Create the directories; as root, hand them to the account mosquitto drops to, and
        return the account's name (root when it has none)."""
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return None  # mosquitto only changes user when root starts it
        if self.owner() is None:
            return "root"
        self.log_file.touch(exist_ok=True)
        self.give_to_owner(self.root, self.persistence_dir, self.log_file)
        self.give_to_owner(*self.persistence_dir.iterdir())
        self.check_writable_by_owner(self.persistence_dir)
        return self.os_user

    def _log_files(self) -> tuple[Path, ...]:
        return (self.output_file, self.log_file)


def managed_broker(settings: Settings) -> ManagedBroker:
    """The managed broker these settings describe (it may not be running)."""
    from data.engine import embedded_data_dir

    return ManagedBroker(root=embedded_data_dir(settings) / "mqtt", port=settings.mqtt_broker_port)
