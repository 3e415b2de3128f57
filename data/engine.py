"""The database engine: embedded cluster or DATABASE_URL, with errors a user can act on."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from config import PROJECT_ROOT, Settings, get_settings
from data.errors import DatabaseUnavailable, PostgisMissing
from localservers.ha import HaCluster
from localservers.postgres import EmbeddedPostgres

log = logging.getLogger(__name__)


SYSTEM_DATA_ROOT = Path("/var/lib/onescreen")


def _traversable_by_others(path: Path) -> bool:
    return all(
        parent.stat().st_mode & stat.S_IXOTH for parent in [path, *path.parents] if parent.exists()
    )


def embedded_data_dir(settings: Settings) -> Path:
    """Where the embedded cluster lives.

    As root the cluster belongs to an unprivileged user, who cannot reach a checkout under, say,
    /root; the default then moves to /var/lib/onescreen/<checkout hash>. A data directory set
    explicitly is always used as given.
    """
    chosen = settings.data_dir
    explicit = "data_dir" in settings.model_fields_set
    if os.geteuid() == 0 and not explicit and not _traversable_by_others(chosen):
        digest = hashlib.sha1(str(PROJECT_ROOT).encode()).hexdigest()[:10]
        return SYSTEM_DATA_ROOT / digest
    return chosen


def embedded_cluster(settings: Settings) -> EmbeddedPostgres | HaCluster:
    """The embedded cluster these settings describe (it may not exist yet): one PostgreSQL, or
    with ONESCREEN_HA a Patroni cluster behind HAProxy."""
    if settings.ha:
        return HaCluster(
            root=embedded_data_dir(settings) / "ha",
            base_port=settings.ha_base_port,
            bin_dir=settings.pg_bin_dir,
            os_user=settings.pg_os_user,
        )
    return EmbeddedPostgres(
        root=embedded_data_dir(settings) / "pg",
        port=settings.pg_port,
        bin_dir=settings.pg_bin_dir,
        os_user=settings.pg_os_user,
    )


def embedded_read_url(settings: Settings) -> str | None:
    """The embedded HA cluster's replicas (ONESCREEN_HA without a DATABASE_URL), if any."""
    if settings.database_url is not None or not settings.ha:
        return None
    cluster = embedded_cluster(settings)
    return cluster.read_url() if isinstance(cluster, HaCluster) else None


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, otherwise the embedded cluster's URL (started on demand)."""
    if settings.database_url is not None:
        return settings.database_url
    return embedded_cluster(settings).ensure_running()


@dataclass(frozen=True)
class Timeouts:
    """How long each step of a database call may take, in seconds (0 = no limit): opening a
    connection, one statement, one lock wait, a transaction left idle, and the wait for a free
    pooled connection."""

    connect: int = 5
    statement: float = 0
    lock: float = 0
    idle_in_transaction: float = 0
    pool: float = 30

    def server_options(self) -> str:
        """The session settings that make PostgreSQL enforce them (libpq's `options`)."""
        limits = {
            "statement_timeout": self.statement,
            "lock_timeout": self.lock,
            "idle_in_transaction_session_timeout": self.idle_in_transaction,
        }
        return " ".join(f"-c {name}={round(s * 1000)}" for name, s in limits.items() if s > 0)


# the background jobs': no limit on a statement or a lock wait (refits and rollups run long)
BACKGROUND_TIMEOUTS = Timeouts()


def request_timeouts(settings: Settings) -> Timeouts:
    """The timeouts of every database call a web request makes (ONESCREEN_WEB_DB_*)."""
    return Timeouts(
        connect=settings.web_db_connect_timeout_seconds,
        statement=settings.web_db_statement_timeout_seconds,
        lock=settings.web_db_lock_timeout_seconds,
        idle_in_transaction=settings.web_db_idle_transaction_seconds,
        pool=settings.web_db_pool_timeout_seconds,
    )


def create_db_engine(
    url: str,
    *,
    pool_size: int = 5,
    server_options: str = "",
    timeouts: Timeouts = BACKGROUND_TIMEOUTS,
) -> Engine:
    """A psycopg 3 engine for `url`, with a readable error for a malformed URL
    (`server_options`: settings for every session, as in libpq's `options`; `timeouts`: those
    of web requests, or none beyond connecting for the CLI and background jobs)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnavailable(f"DATABASE_URL is not a valid URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise DatabaseUnavailable(
            f"DATABASE_URL uses driver '{parsed.drivername}'; OneScreen needs postgresql://"
        )
    options = " ".join(part for part in (timeouts.server_options(), server_options) if part)
    return sa.create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=timeouts.pool,
        connect_args={
            "connect_timeout": timeouts.connect,
            "application_name": "onescreen",
            **({"options": options} if options else {}),
        },
    )


def ping(engine: Engine) -> None:
    """One trivial query: raises when the database does not answer it."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).scalar_one()


# background jobs (status snapshot, incident rules, retention) yield the CPU to the dashboards
BACKGROUND_NICENESS = 10


def create_background_engine(url: str) -> Engine:
    """An engine for background jobs: one core per query at most, and — when PostgreSQL runs
    on this machine and its backends are ours to see — below the dashboards' CPU priority."""
    # on a small machine a parallel scan for a job takes every core the dashboards wait for
    engine = create_db_engine(
        url, pool_size=2, server_options="-c max_parallel_workers_per_gather=0"
    )
    sa.event.listen(engine, "connect", _lower_backend_priority)
    return engine


def _lower_backend_priority(
    dbapi_connection: psycopg.Connection[Any], _record: ConnectionPoolEntry
) -> None:
    """Renice this connection's backend if it is a process of this machine's PostgreSQL."""
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), current_setting('data_directory')")
            row = cursor.fetchone()
    except psycopg.Error as exc:  # a role that may not read the setting: leave it be
        log.debug("background priority not set: %s", exc)
        row = None
    dbapi_connection.rollback()
    if row is None:
        return
    pid, data_directory = row
    try:
        # the same pid on another machine would be some other process: only ours if it works
        # in the data directory this server reports
        if os.path.realpath(f"/proc/{pid}/cwd") != os.path.realpath(data_directory):
            return
        os.setpriority(
            os.PRIO_PROCESS, pid, max(os.getpriority(os.PRIO_PROCESS, pid), BACKGROUND_NICENESS)
        )
    except OSError as exc:
        log.debug("background priority not set for backend %s: %s", pid, exc)


def psycopg_connection(conn: sa.Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under `conn`, for what SQLAlchemy does not wrap (COPY, scripts)."""
    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"expected a psycopg connection, got {type(driver).__name__}")
    return driver


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql+psycopg":
            parsed = parsed.set(drivername="postgresql")
        return parsed.render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def check_database(engine: Engine, *, require_postgis: bool = True) -> str:
    """Connect once; return the server version or raise a message that says what to do."""
    where = describe_url(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            if require_postgis:
                _check_postgis(conn)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"cannot connect to {where}: {reason}") from None
    except DBAPIError as exc:
        raise DatabaseUnavailable(f"database error at {where}: {exc.orig}") from None
    return str(version)


def _check_postgis(conn: sa.Connection) -> None:
    installed = conn.execute(
        sa.text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
    ).scalar_one_or_none()
    if installed:
        return
    available = conn.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    ).scalar_one_or_none()
    if not available:
        raise PostgisMissing(
            "PostGIS is not installed on this PostgreSQL server. On Debian/Ubuntu: "
            "`apt-get install postgresql-15-postgis-3`, then run `python cli.py db upgrade`."
        )


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    engine = create_db_engine(resolve_database_url(settings))
    log.info("database: %s", describe_url(engine.url.render_as_string(hide_password=False)))
    return engine
