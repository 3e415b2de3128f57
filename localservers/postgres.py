"""A project-local PostgreSQL 15 + PostGIS cluster that OneScreen creates, starts and stops."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from data.errors import EmbeddedClusterError
from localservers.base import LocalServer

log = logging.getLogger(__name__)

DATABASE_NAME = "onescreen"
SUPERUSER = "onescreen"

# Sized for a 2-core / 24 GB box doing seed-scale bulk loads; real deployments tune their own.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "2GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "max_connections": "200",
    "timezone": "UTC",
    "log_min_messages": "warning",
}


@dataclass(eq=False)
class EmbeddedPostgres(LocalServer):
    """Handle on the cluster at `root` (data/, run/ socket dir, log, password file)."""

    root: Path
    port: int
    bin_dir: Path
    os_user: str = "onescreen"

    kind = "PostgreSQL"
    port_variable = "ONESCREEN_PG_PORT"
    url_variable = "DATABASE_URL"
    error = EmbeddedClusterError
    create_os_user = True

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (PGDATA)."""
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory of the server's Unix socket."""
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        """The server log pg_ctl writes."""
        return self.root / "postgres.log"

    @property
    def password_file(self) -> Path:
        """The superuser's password, one line."""
        return self.root / "password"

    @property
    def pid_file(self) -> Path:
        """postmaster.pid in the data directory."""
        return self.data_dir / "postmaster.pid"

    @property
    def conf_file(self) -> Path:
        """postgresql.conf in the data directory."""
        return self.data_dir / "postgresql.conf"

    def url(self) -> str:
        """SQLAlchemy URL of the cluster's application database."""
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def ensure_running(self) -> str:
        """Create the cluster if needed, start it if stopped, and return its URL."""
        self._check_binaries()
        self.start_if_stopped()
        self._ensure_database()
        return self.url()

    def is_running(self) -> bool:
        """True when pg_ctl reports a live postmaster for our data directory."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run([self._bin("pg_ctl"), "status", "-D", str(self.data_dir)], check=False)
        return result.returncode == 0

    def stop(self, *, timeout_s: float = 60.0) -> bool:
        """Stop the cluster with a fast shutdown; returns False when it was not running."""
        if not self.is_running():
            return False
        pg_ctl = [self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
        self._run([*pg_ctl, "-t", f"{timeout_s:.0f}"])
        return True

    def destroy(self) -> None:
        """Stop the cluster and delete its files (tests use throwaway clusters)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _check_binaries(self) -> None:
        for name in ("initdb", "pg_ctl", "postgres"):
            if not (self.bin_dir / name).exists():
                raise EmbeddedClusterError(
                    f"PostgreSQL server binary {self.bin_dir / name} not found. Install it with "
                    "`apt-get install postgresql-15 postgresql-15-postgis-3`, set "
                    "ONESCREEN_PG_BIN_DIR, or point DATABASE_URL at an existing server."
                )

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        # initdb and pg_ctl refuse to run as root, so root hands them to an unprivileged user
        argv = self.as_owner(argv)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise EmbeddedClusterError(
                f"`{' '.join(argv[-4:])}` failed: "
                + " | ".join(detail)
                + f" (log: {self.log_file})"
            )
        return result

    def _prepare_directories(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.root.parent.stat().st_uid == os.geteuid():
            # the cluster owner must be able to pass through the folder that holds it
            self.root.parent.chmod(self.root.parent.stat().st_mode | 0o011)
        self.socket_dir.mkdir(exist_ok=True)
        self.give_to_owner(self.root, self.socket_dir)
        self.check_writable_by_owner(self.root)
        os.chmod(self.root, 0o700)

    def _start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        options = " ".join(f"-c {key}={value}" for key, value in SERVER_SETTINGS.items())
        options += f" -p {self.port} -k {self.socket_dir}"
        log.info("starting embedded PostgreSQL on 127.0.0.1:%s", self.port)
        pg_ctl = [self._bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data_dir)]
        self._run([*pg_ctl, "-l", str(self.log_file), "-o", options])

    def _initdb(self) -> None:
        self._prepare_directories()
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.give_to_owner(self.password_file)
        os.chmod(self.password_file, 0o600)
        log.info("creating embedded PostgreSQL cluster in %s", self.data_dir)
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(self.password_file),
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )

    def _ensure_database(self) -> None:
        ensure_database(port=self.port, password=self.password_file.read_text().strip())


def ensure_database(*, port: int, password: str) -> None:
    """Create the application database on the server at 127.0.0.1:`port` unless it exists."""
    import psycopg

    conninfo = f"host=127.0.0.1 port={port} user={SUPERUSER} password={password}"
    with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
