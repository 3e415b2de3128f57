"""A project-managed local redis-server for `serve` when ONESCREEN_REDIS_URL names none."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from config import Settings
from data.errors import OneScreenError
from localservers.base import LocalServer

REDIS_SERVER = "redis-server"


class RedisServerError(OneScreenError):
    """The managed Redis cannot be started; the message says why and what to do."""


@dataclass(eq=False)
class ManagedRedis(LocalServer):
    """Handle on the redis-server at `root` (config, password, pid file, log) on `port`."""

    root: Path
    port: int
    # Debian's redis-server package creates this account; as root the server runs as it
    os_user: str = "redis"

    kind = "redis-server"
    port_variable = "ONESCREEN_REDIS_PORT"
    url_variable = "ONESCREEN_REDIS_URL"
    error = RedisServerError
    start_timeout_s = 10.0

    @property
    def conf_file(self) -> Path:
        """The redis.conf written on every start."""
        return self.root / "redis.conf"

    @property
    def password_file(self) -> Path:
        """The server's password, one line."""
        return self.root / "password"

    @property
    def pid_file(self) -> Path:
        """The file redis-server writes its pid to."""
        return self.root / "redis.pid"

    @property
    def log_file(self) -> Path:
        """redis-server's own log."""
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
        """Start the server unless ours already runs; whether this call started it."""
        return self.start_if_stopped()

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
                # keep the command line (with this file) that tells our server from another
                "set-proc-title no",
                "",
            ]
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

    def _ready(self) -> bool:
        return self.answers()

    def _start(self) -> None:
        binary = shutil.which(REDIS_SERVER)
        if binary is None:
            raise RedisServerError(
                "redis-server is not installed (`apt-get install redis-server`, or run "
                "scripts/install-system-deps.sh), or set ONESCREEN_REDIS_URL to a Redis server."
            )
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_hex(24) + "\n")
        self.password_file.chmod(0o600)
        self.conf_file.write_text(self.config_text())
        self.conf_file.chmod(0o600)
        self.log_file.touch(exist_ok=True)
        self.give_to_owner(self.root, self.conf_file, self.password_file, self.log_file)
        self.check_writable_by_owner(self.root)
        self._spawn(self.as_owner([binary, str(self.conf_file)]))


def managed_redis(settings: Settings) -> ManagedRedis:
    """The managed Redis these settings describe (it may not be running)."""
    from data.engine import embedded_data_dir

    # one per port: servers of different ports beside each other never share or stop one
    root = embedded_data_dir(settings) / f"redis-{settings.redis_port}"
    return ManagedRedis(root=root, port=settings.redis_port)
