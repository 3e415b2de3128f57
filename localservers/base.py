"""What every local server shares: its files under one root, its port, its pid, the OS account it
runs as when root starts it, and start (or reuse), wait-until-ready and stop."""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import signal
import socket
import struct
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from data.errors import OneScreenError

log = logging.getLogger(__name__)

POLL_S = 0.05


class LocalServer(ABC):
    """A server on 127.0.0.1:`port` with its files under `root`. Subclasses are dataclasses that
    declare `root`, `port` and `os_user` (the account it runs as when started by root)."""

    root: Path
    port: int
    os_user: str

    kind: ClassVar[str]  # what messages call it
    port_variable: ClassVar[str]  # the setting that moves it to another port
    url_variable: ClassVar[str]  # the setting that names a server that runs already instead
    error: ClassVar[type[OneScreenError]]
    # only the embedded cluster creates its account; the others come with their Debian package
    create_os_user: ClassVar[bool] = False
    start_timeout_s: ClassVar[float] = 15.0

    # the process this handle started, so that stopping it also reaps it
    _process: subprocess.Popen[bytes] | None = None

    @property
    @abstractmethod
    def pid_file(self) -> Path:
        """The file that names the server's process."""

    @property
    @abstractmethod
    def log_file(self) -> Path:
        """The server's own log."""

    @property
    @abstractmethod
    def conf_file(self) -> Path:
        """The configuration file the server is started with (on its command line)."""

    @abstractmethod
    def _start(self) -> None:
        """Start the server (the port is free); return once it accepts connections."""

    # start, reuse, stop --------------------------------------------------------------------

    def start_if_stopped(self) -> bool:
        """Start the server unless ours already runs here; whether this call started it."""
        self.root.mkdir(parents=True, exist_ok=True)
        # serve, simulate and the ingest worker may all ask at once: one of them starts it
        with self._lock():
            if self.is_running():
                if self._serves_configured_port():
                    return False
                # ours, but listening where the settings no longer say: restart it there
                log.info("managed %s moves to port %d", self.kind, self.port)
                self.stop()
            if port_open(self.port):
                raise self.error(self.port_taken_message())
            self._start()
        return True

    def is_running(self) -> bool:
        """True when the pid file names a live process started with our configuration file."""
        pid = self._pid()
        if pid is None or not self._alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        # a substring: nginx rewrites its command line into one "master process …" title
        return str(self.conf_file).encode() in cmdline

    def stop(self, *, timeout_s: float = 10.0) -> bool:
        """Stop the server (SIGTERM, SIGKILL after `timeout_s`); False when it was not running."""
        pid = self._pid()
        if pid is None or not self.is_running():
            self.pid_file.unlink(missing_ok=True)
            return False
        signal_group(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout_s=timeout_s):
            log.warning("%s (pid %s) ignored SIGTERM; killing it", self.kind, pid)
            signal_group(pid, signal.SIGKILL)
            self._wait_gone(pid, timeout_s=5.0)
        self.pid_file.unlink(missing_ok=True)
        self._process = None
        return True

    def port_taken_message(self) -> str:
        """What to tell a user whose port for this server some other program holds."""
        return (
            f"port {self.port} is already taken by another program; set {self.port_variable} "
            f"to a free port, or {self.url_variable} to use a {self.kind} that runs already."
        )

    def _serves_configured_port(self) -> bool:
        """Whether the running server listens on `port` (only a broker moves with its setting)."""
        return True

    # processes -----------------------------------------------------------------------------

    def _spawn(self, argv: list[str], *, output: Path | None = None) -> None:
        """Start `argv` in a session of its own, record its pid and wait until it is ready."""
        log.info("starting %s on 127.0.0.1:%s (%s)", self.kind, self.port, self.root)
        with open(output or os.devnull, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # its own session: a Ctrl-C in the terminal that started it does not reach it
                start_new_session=True,
            )
        self._process = process
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self.error(
                    f"{self.kind} exited at start (code {process.returncode}): {self._log_tail()}"
                )
            if self._ready():
                return
            time.sleep(POLL_S)
        signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)
        raise self.error(
            f"{self.kind} did not accept connections on port {self.port} within "
            f"{self.start_timeout_s:.0f} s: {self._log_tail()}"
        )

    def _ready(self) -> bool:
        """Whether a freshly started server accepts connections."""
        return port_open(self.port)

    def _pid(self) -> int | None:
        try:
            # the first line (PostgreSQL's postmaster.pid has more)
            return int(self.pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None  # also reaps it
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    def _wait_gone(self, pid: int, *, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True

    def _log_files(self) -> tuple[Path, ...]:
        return (self.log_file,)

    def _log_tail(self, lines: int = 8) -> str:
        tail: list[str] = []
        for path in self._log_files():
            try:
                tail += path.read_text(errors="replace").strip().splitlines()[-lines:]
            except OSError:
                continue
        return " | ".join(tail) or f"(no output; see {self.log_file})"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with (self.root / "server.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # the OS account ------------------------------------------------------------------------

    def owner(self) -> pwd.struct_passwd | None:
        """The account the server runs as: `os_user` when root starts it (None otherwise, and
        when that account does not exist and is not ours to create: it then runs as root)."""
        return unprivileged_account(self.os_user, create=self.create_os_user, what=self.kind)

    def as_owner(self, argv: list[str]) -> list[str]:
        """`argv` run as the server's account (unchanged when it runs as whoever started it)."""
        account = self.owner()
        return argv if account is None else ["runuser", "-u", account.pw_name, "--", *argv]

    def give_to_owner(self, *paths: Path) -> None:
        """Hand `paths` to the server's account, when root starts it."""
        account = self.owner()
        if account is None:
            return
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)

    def check_writable_by_owner(self, path: Path) -> None:
        """Fail with advice when the server's account cannot write `path` (a parent directory
        it cannot pass through)."""
        account = self.owner()
        if account is None:
            return
        probe = subprocess.run(["runuser", "-u", account.pw_name, "--", "test", "-w", str(path)])
        if probe.returncode != 0:
            raise self.error(
                f"OS user '{account.pw_name}' cannot write {path} (a parent directory is not "
                "traversable). Set ONESCREEN_DATA_DIR to a directory it can reach, e.g. "
                "/var/lib/onescreen."
            )


def unprivileged_account(name: str, *, create: bool, what: str) -> pwd.struct_passwd | None:
    """The account `what` runs as when root starts it: `name` (a system account made now when
    missing and `create`); None when not root, or when it is missing and not ours to create."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        if not create:
            log.warning("no '%s' OS user: the managed %s runs as root", name, what)
            return None
    useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    subprocess.run([*useradd, name], check=True, capture_output=True)
    return pwd.getpwnam(name)


_ACL_XATTR = "system.posix_acl_access"
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = 1, 2, 4, 8, 16, 32
_ACL_NO_ID = 0xFFFFFFFF
_ACL_EXECUTE = 1


def grant_passage(path: Path, account: pwd.struct_passwd) -> list[Path]:
    """Let `account` pass through (search, not list or read) every directory above `path` it
    cannot, with a POSIX ACL entry for it alone; the directories changed."""
    changed = []
    for directory in reversed(path.resolve().parents):
        probe = ["runuser", "-u", account.pw_name, "--", "test", "-x", str(directory)]
        if subprocess.run(probe, capture_output=True).returncode == 0:
            continue
        entries = _acl_entries(directory)
        entries[(_ACL_USER, account.pw_uid)] = entries.get((_ACL_USER, account.pw_uid), 0)
        entries[(_ACL_USER, account.pw_uid)] |= _ACL_EXECUTE
        # the mask bounds every named entry and the group: their union, so nobody gains more
        group_class = (_ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP)
        entries[(_ACL_MASK, _ACL_NO_ID)] = 0
        mask = 0
        for (tag, _), perm in entries.items():
            mask |= perm if tag in group_class else 0
        entries[(_ACL_MASK, _ACL_NO_ID)] = mask
        blob = struct.pack("<I", 2) + b"".join(
            struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(entries.items())
        )
        os.setxattr(directory, _ACL_XATTR, blob)
        changed.append(directory)
    return changed


def _acl_entries(directory: Path) -> dict[tuple[int, int], int]:
    """(tag, id) → permissions of `directory`'s access ACL (from its mode when it has none)."""
    try:
        blob = os.getxattr(directory, _ACL_XATTR)
    except OSError:
        mode = directory.stat().st_mode
        return {
            (_ACL_USER_OBJ, _ACL_NO_ID): (mode >> 6) & 7,
            (_ACL_GROUP_OBJ, _ACL_NO_ID): (mode >> 3) & 7,
            (_ACL_OTHER, _ACL_NO_ID): mode & 7,
        }
    return {(tag, ident): perm for tag, perm, ident in struct.iter_unpack("<HHI", blob[4:])}


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to the session `pid` leads (the server and a runuser around it), or to `pid`."""
    try:
        group = os.getpgid(pid)
        if group == pid:
            os.killpg(group, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind `host`:`port` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
