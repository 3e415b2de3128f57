"""A project-managed Mosquitto MQTT broker for when ONESCREEN_MQTT_URL names none."""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from config import Settings
from data.errors import OneScreenError

log = logging.getLogger(__name__)

MOSQUITTO = "mosquitto"
# Debian's mosquitto drops root privileges to this account unless told otherwise.
BROKER_OS_USER = "mosquitto"
START_TIMEOUT_S = 15.0


class BrokerError(OneScreenError):
    """The managed broker cannot be started or reached; the message says why and what to do."""


@dataclass(eq=False)
class ManagedBroker:
    """Handle on the Mosquitto at `root` (config, pid file, log, persistence) on `port`."""

    root: Path
    port: int
    binary: str = MOSQUITTO
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def conf_file(self) -> Path:
        return self.root / "mosquitto.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / "mosquitto.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "mosquitto.log"

    @property
    def output_file(self) -> Path:
        return self.root / "mosquitto.out"

    @property
    def persistence_dir(self) -> Path:
        return self.root / "data"

    def ensure_running(self) -> str:
        """Start the broker unless ours already runs; returns its mqtt:// URL."""
        self.root.mkdir(parents=True, exist_ok=True)
        # serve, simulate and the ingest worker may all ask at once: one of them starts it
        with self._lock():
            if self.is_running():
                if self._configured_port() == self.port:
                    return self.url
                # ours, but listening where the settings no longer say: restart it there
                log.info("managed mosquitto moves to port %d", self.port)
                self.stop()
            if _port_open(self.port):
                raise BrokerError(
                    f"port {self.port} is already taken by another program; set "
                    "ONESCREEN_MQTT_BROKER_PORT to a free port or ONESCREEN_MQTT_URL to use "
                    "that broker."
                )
            self._start()
        return self.url

    def _configured_port(self) -> int | None:
        try:
            for line in self.conf_file.read_text().splitlines():
                if line.startswith("listener "):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def is_running(self) -> bool:
        """True when the pid file names a live mosquitto started with our config."""
        pid = self._pid()
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return any(MOSQUITTO.encode() in part for part in cmdline[:1]) and (
            str(self.conf_file).encode() in cmdline
        )

    def stop(self, *, timeout_s: float = 10.0) -> bool:
        """Stop the broker (it saves its persistence on the way out); False when not running."""
        if not self.is_running():
            self.pid_file.unlink(missing_ok=True)
            return False
        pid = self._pid()
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.05)
        if self._alive(pid):
            log.warning("mosquitto (pid %s) ignored SIGTERM; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            self._reap(pid, timeout_s=5.0)
        self.pid_file.unlink(missing_ok=True)
        self._process = None
        return True

    def config_text(self, *, run_as: str | None) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            "# Written by OneScreen (ingest/broker.py); rewritten on every start.",
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
        log.info("starting Mosquitto on 127.0.0.1:%s (%s)", self.port, self.root)
        with self.output_file.open("ab") as out:
            process = subprocess.Popen(
                [binary, "-c", str(self.conf_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # its own session: Ctrl-C in the terminal that started it must not stop it
                start_new_session=True,
            )
        self._process = process
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"Mosquitto exited at start (code {process.returncode}): {self._log_tail()}"
                )
            if _port_open(self.port):
                return
            time.sleep(0.05)
        process.kill()
        process.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)
        raise BrokerError(
            f"Mosquitto did not accept connections on port {self.port} within "
            f"{START_TIMEOUT_S:.0f} s: {self._log_tail()}"
        )

    def _prepare_directories(self) -> str | None:
        """Create the directories; as root, hand them to the account mosquitto drops to."""
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return None  # mosquitto only changes user when started as root
        try:
            account = pwd.getpwnam(BROKER_OS_USER)
        except KeyError:
            log.warning("no '%s' OS user: the managed broker runs as root", BROKER_OS_USER)
            return "root"
        for path in (self.root, self.persistence_dir, self.log_file):
            if path == self.log_file:
                path.touch(exist_ok=True)
            os.chown(path, account.pw_uid, account.pw_gid)
        for entry in self.persistence_dir.iterdir():
            os.chown(entry, account.pw_uid, account.pw_gid)
        probe = subprocess.run(
            ["runuser", "-u", BROKER_OS_USER, "--", "test", "-w", str(self.persistence_dir)],
            check=False,
        )
        if probe.returncode != 0:
            raise BrokerError(
                f"OS user '{BROKER_OS_USER}' cannot write {self.persistence_dir} (a parent "
                "directory is not traversable). Set ONESCREEN_DATA_DIR to a directory it can "
                "reach, e.g. /var/lib/onescreen."
            )
        return BROKER_OS_USER

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def _reap(self, pid: int, *, timeout_s: float) -> None:
        if self._process is not None and self._process.pid == pid:
            self._process.wait(timeout=timeout_s)

    def _log_tail(self, lines: int = 8) -> str:
        tail: list[str] = []
        for path in (self.output_file, self.log_file):
            try:
                tail += path.read_text(errors="replace").strip().splitlines()[-lines:]
            except OSError:
                continue
        return " | ".join(tail) or f"(no output; see {self.log_file})"

    @contextmanager
    def _lock(self):
        with (self.root / "broker.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def managed_broker(settings: Settings) -> ManagedBroker:
    """The managed broker these settings describe (it may not be running)."""
    from data.engine import embedded_data_dir

    return ManagedBroker(root=embedded_data_dir(settings) / "mqtt", port=settings.mqtt_broker_port)


def broker_url(settings: Settings) -> str:
    """ONESCREEN_MQTT_URL when set, otherwise the managed broker's URL (started on demand)."""
    if settings.mqtt_url:
        return settings.mqtt_url
    return managed_broker(settings).ensure_running()


def parse_broker_url(url: str) -> tuple[str, int]:
    """Host and port of an mqtt:// (or tcp://) URL; port 1883 when not given."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise BrokerError(f"broker URL must look like mqtt://host:1883, not {url!r}")
    return parts.hostname, parts.port or 1883
