"""What the benches and browser tests share: the bench PostgreSQL cluster, and a `cli.py serve`
of their own on free ports with a data directory of its own. What they start, they stop."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from config import CHROMIUM, get_settings, load_settings
from data import access, writes
from data.access import SessionTicket
from data.engine import create_db_engine
from localservers.base import free_port
from localservers.mosquitto import managed_broker
from localservers.nginx import managed_nginx
from localservers.postgres import EmbeddedPostgres
from localservers.redis import managed_redis

ROOT = Path(__file__).resolve().parents[1]
# beside the developer's embedded cluster (54329), never the same one; a fixed port, as the
# cluster keeps the seeded cities that --reuse finds again
BENCH_PG_PORT = int(os.environ.get("ONESCREEN_BENCH_PG_PORT", "54339"))


# headless on a machine without internet: no background traffic that would only be refused
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def launch_chromium(playwright, *extra_args: str):
    """Debian's headless Chromium through Playwright, with the benches' flags."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])


def bench_cluster() -> EmbeddedPostgres:
    """The bench PostgreSQL cluster (ONESCREEN_DATA_DIR/bench-pg, port 54339)."""
    settings = get_settings()
    return EmbeddedPostgres(
        root=settings.data_dir / "bench-pg",
        port=BENCH_PG_PORT,
        bin_dir=settings.pg_bin_dir,
        os_user=settings.pg_os_user,
    )


def start_bench_cluster() -> str:
    """Start the bench cluster unless it runs, to be stopped when this process exits if this
    call started it; returns its URL."""
    cluster = bench_cluster()
    if not cluster.is_running():
        atexit.register(cluster.stop)
    return cluster.ensure_running()


def bench_database(name: str, *, reuse: bool) -> str:
    """URL of database `name` on the bench cluster (started if needed): kept if `reuse` and it
    holds a seeded city, otherwise created anew and empty."""
    base = start_bench_cluster()
    url = f"{base.rsplit('/', 1)[0]}/{name}"
    if reuse and is_seeded(url):
        return url
    return fresh_database(base, name=name)


def fresh_database(cluster_url: str, *, name: str) -> str:
    """Drop and recreate database `name` on the server of `cluster_url`; return its URL."""
    server = cluster_url.rsplit("/", 1)[0]
    admin = create_db_engine(f"{server}/postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{server}/{name}"


def settle(engine: Engine) -> None:
    """VACUUM ANALYZE and CHECKPOINT, so timings do not race autovacuum after a bulk load."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
        conn.execute(sa.text("CHECKPOINT"))


def is_seeded(url: str) -> bool:
    """Whether the database at `url` exists, is migrated and holds a seeded city."""
    try:
        engine = create_db_engine(url)
        try:
            return writes.get_meta(engine, key="seed") is not None
        finally:
            engine.dispose()
    except Exception:  # missing database, unmigrated schema: not seeded either way
        return False


@contextmanager
def serving(
    env: Mapping[str, str],
    *,
    log_path: Path,
    port: int | None = None,
    ready_path: str = "/",
    timeout_s: float = 120,
    serve_args: Sequence[str] = (),
) -> Iterator[str]:
    """`cli.py serve --no-seed [serve_args]` on `port` (a free one by default) with `env` over
    this process's environment and its output in `log_path`, until the block ends; yields its
    base URL (its nginx, unless ONESCREEN_PROXY=none) once `ready_path` answers 200. Whatever
    Redis, Mosquitto or nginx it leaves running is stopped."""
    port = port or free_port()
    full_env, scratch = _isolated_env(env)
    log_path.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no data dir yet
    with open(log_path, "w") as log:
        # a session of its own: stopping it reaches its ingest worker and simulator too, and a
        # Ctrl-C in the terminal reaches only the caller, which then stops it
        process = subprocess.Popen(
            [sys.executable, "cli.py", "serve", "--no-seed", "--port", str(port), *serve_args],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base + ready_path, process, log_path=log_path, timeout_s=timeout_s)
        yield base
    finally:
        stop_process_group(process)
        _stop_local_servers(full_env, log_path=log_path, port=port)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _isolated_env(env: Mapping[str, str]) -> tuple[dict[str, str], Path | None]:
    """This process's environment with `env` over it, kept away from a developer's `make run`:
    unless `env` says otherwise, the Redis and Mosquitto that `serve` starts get free ports and
    a data directory of their own (returned, to be removed), and no URL names the developer's."""
    full = {**os.environ, **env}
    if not full.get("DATABASE_URL"):
        raise ValueError("serving() needs DATABASE_URL: it never starts the embedded cluster")
    scratch = None
    if "ONESCREEN_DATA_DIR" not in env:
        scratch = Path(tempfile.mkdtemp(prefix="onescreen-serve-"))
        scratch.chmod(0o755)  # as root, the mosquitto and redis accounts must reach it
        full["ONESCREEN_DATA_DIR"] = str(scratch)
    own = {
        "ONESCREEN_MQTT_BROKER_PORT": str(free_port()),
        "ONESCREEN_REDIS_PORT": str(free_port()),
        "ONESCREEN_MQTT_URL": "",
        "ONESCREEN_REDIS_URL": "",
    }
    full.update({name: value for name, value in own.items() if name not in env})
    return full, scratch


def _stop_local_servers(env: Mapping[str, str], *, log_path: Path, port: int) -> None:
    """Stop the Mosquitto (which outlives `serve` by design), and the Redis and nginx (which
    outlive it only when it was killed) that the `serve` of `env` on `port` started, saying so
    in its log."""
    settings = load_settings(
        data_dir=Path(env["ONESCREEN_DATA_DIR"]),
        mqtt_broker_port=int(env["ONESCREEN_MQTT_BROKER_PORT"]),
        redis_port=int(env["ONESCREEN_REDIS_PORT"]),
    )
    proxy = managed_nginx(settings, host="127.0.0.1", port=port, upstream_ports=(0,))
    for server in (managed_broker(settings), managed_redis(settings), proxy):
        if server.stop():
            with open(log_path, "a") as log:
                log.write(f"harness: stopped the {server.kind} serve left on port {server.port}\n")


def _wait_until_ready(
    url: str, process: subprocess.Popen, *, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group `process` leads, SIGKILL whatever of it lingers."""
    # serve's own shutdown may take 10 s for the rules and 20 s for its children: killing it
    # sooner left the Redis it started running
    for sig, wait_s in ((signal.SIGTERM, 45), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; its children got the same signal and get a moment to follow
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.2)
        if not _group_alive(process.pid):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def bench_session(engine: Engine, *, role: str = "operator") -> SessionTicket:
    """A signed-in session of the bench's own user with `role` (created on first use)."""
    username = f"bench-{role.replace('_', '-')}"
    user = access.find_user(engine, username=username)
    if user is None:
        import secrets

        user = access.create_user(
            engine, username=username, role=role, password=secrets.token_urlsafe(24)
        )
    return access.open_session(engine, principal=user, lifetime=timedelta(hours=12))


def browser_cookies(ticket: SessionTicket, *, host: str = "127.0.0.1") -> list[dict]:
    """Playwright cookies that sign a browser context in with `ticket` (any port of `host`)."""
    from web.session import CSRF_COOKIE, SESSION_COOKIE

    return [
        {"name": SESSION_COOKIE, "value": ticket.token, "domain": host, "path": "/"},
        {"name": CSRF_COOKIE, "value": ticket.csrf_token, "domain": host, "path": "/"},
    ]


def signed_in_client(app, ticket: SessionTicket):
    """A Flask test client of `app` carrying `ticket`'s cookies; post with
    headers=csrf_header(ticket)."""
    from web.session import CSRF_COOKIE, SESSION_COOKIE

    client = app.server.test_client()
    client.set_cookie(SESSION_COOKIE, ticket.token)
    client.set_cookie(CSRF_COOKIE, ticket.csrf_token)
    return client


def csrf_header(ticket: SessionTicket) -> dict[str, str]:
    """The header a signed-in browser sends with every callback."""
    from web.session import CSRF_HEADER

    return {CSRF_HEADER: ticket.csrf_token}
