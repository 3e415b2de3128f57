"""What the benches and browser tests share: the bench PostgreSQL cluster, and a `cli.py serve`
of their own on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from config import get_settings
from data import access, writes
from data.access import SessionTicket
from data.bench_support import fresh_database
from data.embedded import EmbeddedPostgres, free_port
from data.engine import create_db_engine

ROOT = Path(__file__).resolve().parents[1]
# beside the developer's embedded cluster (54329), never the same one
BENCH_PG_PORT = 54339


CHROMIUM = os.environ.get("ONESCREEN_CHROMIUM", "/usr/bin/chromium")
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


def bench_database(name: str, *, reuse: bool) -> str:
    """URL of database `name` on the bench cluster (started if needed): kept if `reuse` and it
    holds a seeded city, otherwise created anew and empty."""
    base = bench_cluster().ensure_running()
    url = f"{base.rsplit('/', 1)[0]}/{name}"
    if reuse and is_seeded(url):
        return url
    return fresh_database(base, name=name)


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
) -> Iterator[str]:
    """`cli.py serve --no-seed` on `port` (a free one by default) with `env` over this process's
    environment and its output in `log_path`, until the block ends; yields its base URL once
    `ready_path` answers 200."""
    port = port or free_port()
    with open(log_path, "w") as log:
        # a session of its own: stopping it reaches its ingest worker and simulator too, and a
        # Ctrl-C in the terminal reaches only the caller, which then stops it
        process = subprocess.Popen(
            [sys.executable, "cli.py", "serve", "--no-seed", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env},
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
