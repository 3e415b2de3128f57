"""A project-managed Mosquitto MQTT broker for when ONESCREEN_MQTT_URL names none: no anonymous
access, a login per sender with an ACL, client ids bound to logins, a message size limit."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config import Settings
from data.errors import OneScreenError
from localservers.base import LocalServer

MOSQUITTO = "mosquitto"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
# a message of 2,000 readings (the simulator's and the benches' largest) is ~170 KB
DEFAULT_MAX_PACKET_BYTES = 256 * 1024


class BrokerError(OneScreenError):
    """The broker cannot be started or reached; the message says why and what to do."""


@dataclass(frozen=True)
class BrokerLogin:
    """One login of the broker: its password hash (Mosquitto's $7$ form) and what it may do."""

    username: str
    password_hash: str
    publish: tuple[str, ...] = ()  # topics it may publish to
    read: tuple[str, ...] = ()  # topic filters it may subscribe to and receive


@dataclass(frozen=True)
class BrokerAuth:
    """The broker's password and ACL files: who may connect, and to which topics."""

    logins: Sequence[BrokerLogin] = field(default_factory=tuple)

    def password_text(self) -> str:
        """The password_file: `login:hash` lines."""
        return "".join(f"{login.username}:{login.password_hash}\n" for login in self.logins)

    def acl_text(self) -> str:
        """The acl_file: each login's topics; anything not listed is denied (no anonymous
        lines, no patterns)."""
        lines = ["# Written by OneScreen from its database; rewritten when tokens change."]
        for login in self.logins:
            lines += ["", f"user {login.username}"]
            lines += [f"topic write {topic}" for topic in login.publish]
            lines += [f"topic read {topic}" for topic in login.read]
        return "\n".join(lines) + "\n"


def write_auth_files(auth: BrokerAuth, directory: Path) -> bool:
    """Write the password and ACL files into `directory` (0600, each replaced whole so the
    broker never reads half a file); whether either changed."""
    from data.displays import write_private

    changed = False
    for name, text in ((PASSWORD_FILE, auth.password_text()), (ACL_FILE, auth.acl_text())):
        path = directory / name
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        write_private(path, text)
        changed = True
    return changed


@dataclass(eq=False)
class ManagedBroker(LocalServer):
    """Handle on the Mosquitto at `root` (config, pid file, log, persistence) on `port`."""

    root: Path
    port: int
    binary: str = MOSQUITTO
    # Debian's mosquitto drops root privileges to this account unless told otherwise
    os_user: str = "mosquitto"
    # the largest MQTT packet a client may send (CONNECT, PUBLISH, …): larger ones are refused
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES

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

    @property
    def password_file(self) -> Path:
        """Logins and their password hashes, written from the database."""
        return self.root / PASSWORD_FILE

    @property
    def acl_file(self) -> Path:
        """What each login may publish and read, written from the database."""
        return self.root / ACL_FILE

    def ensure_running(self) -> str:
        """Start the broker unless ours already runs (with the logins last written, none at
        first); returns its mqtt:// URL."""
        self.start_if_stopped()
        return self.url

    def apply_auth(self, auth: BrokerAuth) -> bool:
        """Rewrite the password and ACL files; a running broker reloads them (SIGHUP) when they
        changed, which also refuses connected clients whose login is gone. Whether they changed."""
        self.root.mkdir(parents=True, exist_ok=True)
        changed = self._write_auth(auth)
        if changed and self.is_running():
            self.reload()
        return changed

    def reload(self) -> None:
        """Make the running broker re-read its password and ACL files."""
        pid = self._pid()
        if pid is not None and self.is_running():
            os.kill(pid, signal.SIGHUP)

    def _write_auth(self, auth: BrokerAuth) -> bool:
        with self._lock():
            changed = write_auth_files(auth, self.root)
        # as root, mosquitto reads them as the account it drops to
        self.give_to_owner(self.password_file, self.acl_file)
        return changed

    def config_text(self, *, run_as: str | None) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            "# Written by OneScreen (localservers/mosquitto.py); rewritten on every start.",
            f"listener {self.port} 127.0.0.1",
            # every client logs in; a login may use only the topics its ACL names
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
            # a client's id is its login: nobody can take over (and wipe) another's session,
            # such as the ingest worker's persistent one with its backlog
            "use_username_as_clientid true",
            f"max_packet_size {self.max_packet_bytes}",
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
        # a broker started with other settings (an older, open configuration, another port or
        # size limit) is restarted with these; its persistent sessions survive on disk
        try:
            current = self.conf_file.read_text()
        except OSError:
            return False
        return current == self.config_text(run_as=self._run_as())

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
        for path in (self.password_file, self.acl_file):
            if not path.exists():  # no logins yet: nobody may connect
                write_auth_files(BrokerAuth(), self.root)
        self.give_to_owner(self.password_file, self.acl_file)
        self.conf_file.write_text(self.config_text(run_as=run_as))
        # mosquitto starts as whoever starts it and drops root privileges itself (`user` line)
        self._spawn([binary, "-c", str(self.conf_file)], output=self.output_file)

    def _run_as(self) -> str | None:
        """The `user` line's account: None unless root starts it (root when it has none)."""
        if os.geteuid() != 0:
            return None
        return self.os_user if self.owner() is not None else "root"

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

    return ManagedBroker(
        root=embedded_data_dir(settings) / "mqtt",
        port=settings.mqtt_broker_port,
        max_packet_bytes=settings.mqtt_max_message_bytes,
    )
