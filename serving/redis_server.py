"""A project-managed local redis-server for `serve` when ONESCREEN_REDIS_URL names none."""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from config import Settings
from data.errors import OneScreenError

log = logging.getLogger(__name__)

REDIS_SERVER = "redis-server"
# Debian's redis-server package creates this account; as root the server runs as it
REDIS_OS_USER = "redis"
START_TIMEOUT_S = 10.0


class RedisServerError(OneScreenError):
    """The managed Redis cannot be started; the message says why and what to do."""


@dataclass(frozen=True)
class ManagedRedis:
    """Handle on the redis-server at `root` (config, password, pid file, log) on `port`."""

    root: Path
    port: int

    @property
    def conf_file(self) -> Path:
        return self.root / "redis.conf"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "redis.log"

    def url(self) -> str:
        """redis:// URL with the server's password."""
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    @staticmethod
    def installed() -> bool:
        """Whether a redis-server binary is on this machine."""
        return shutil.which(REDIS_SERVER) is not None

    def ensure_running(self) -> bool:
        """Start the server unless ours already answers; whether this call started it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if not self.password_file.exists():
                self.password_file.write_text(secrets.token_hex(24) + "\n")
                self.password_file.chmod(0o600)
            if self.answers():
                return False
            self._start()
            return True

    def stop(self, *, timeout_s: float = 10.0) -> bool:
        """Stop the server this handle started (by pid file); False when none was running."""
        pid = self._pid()
        if pid is None or not _alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def config_text(self) -> str:
        """The server's configuration: loopback only, password, nothing written to disk."""
        password = self.password_file.read_text().strip()
        return "\n".join(
            [
                "bind 127.0.0.1",
                f"port {self.port}",
                "protected-mode yes",
                f"requirepass {password}",
                # a cache and a channel: nothing worth keeping across restarts
                'save ""',
                "appendonly no",
                "maxmemory 512mb",
                "maxmemory-policy allkeys-lru",
                f"dir {self.root}",
                f"logfile {self.log_file}",
                "loglevel warning",
                "daemonize no",
                "",
            ]
        )

    def _start(self) -> None:
        binary = shutil.which(REDIS_SERVER)
        if binary is None:
            raise RedisServerError(
                "redis-server is not installed (`apt-get install redis-server`, or run "
                "scripts/install-system-deps.sh), or set ONESCREEN_REDIS_URL to a Redis server."
            )
        self.conf_file.write_text(self.config_text())
        self.conf_file.chmod(0o600)
        argv = [binary, str(self.conf_file)]
        account = _unprivileged_account()
        if account is not None:
            for path in (self.root, self.conf_file, self.password_file):
                os.chown(path, account.pw_uid, account.pw_gid)
            self.log_file.touch(exist_ok=True)
            os.chown(self.log_file, account.pw_uid, account.pw_gid)
            argv = ["runuser", "-u", account.pw_name, "--", *argv]
        log.info("starting redis-server on 127.0.0.1:%s (%s)", self.port, self.root)
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # its own session: a Ctrl-C meant for `serve` reaches it through `serve` instead
            start_new_session=True,
        )
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise RedisServerError(
                    f"redis-server exited at start (code {process.returncode}): {self._log_tail()}"
                )
            if self.answers():
                return
            time.sleep(0.05)
        process.kill()
        self.pid_file.unlink(missing_ok=True)
        raise RedisServerError(
            f"redis-server did not answer on port {self.port} within {START_TIMEOUT_S:.0f} s: "
            f"{self._log_tail()}"
        )

    def answers(self) -> bool:
        """Whether ours answers a PING now."""
        import redis

        try:
            client = redis.Redis.from_url(self.url(), socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _log_tail(self, lines: int = 6) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return f"(no log at {self.log_file})"
        return " | ".join(tail) or f"(empty log {self.log_file})"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with (self.root / "redis.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _unprivileged_account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(REDIS_OS_USER)
    except KeyError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def managed_redis(settings: Settings) -> ManagedRedis:
    """The managed Redis these settings describe (it may not be running)."""
    from data.engine import embedded_data_dir

    # one per port: servers of different ports beside each other never share or stop one
    root = embedded_data_dir(settings) / f"redis-{settings.redis_port}"
    return ManagedRedis(root=root, port=settings.redis_port)
