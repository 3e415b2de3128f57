"""Abuse: request bodies over their route's limit (issue 18 item 2) and health checks while the
database hangs (item 10), against a real gunicorn worker over a PostgreSQL cluster of this
module's own that the tests freeze (SIGSTOP: the kernel still accepts TCP, nothing answers)
and thaw; and queries that would run forever, cut off by the request engines' timeouts."""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from components.i18n import t
from config import load_settings
from data import migrate
from data.engine import create_background_engine, create_db_engine
from data.errors import database_down
from localservers.base import free_port
from localservers.postgres import EmbeddedPostgres
from tests.conftest import app_on, owner_of
from tests.dash_client import post_callback, sign_in
from web.limits import limit_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = load_settings()
LIMITS = SETTINGS.body_limits()
ROUTES = ["/_dash-update-component", "/api/v1/readings", "/login"]
MB = 1024 * 1024
# what the kernel's socket buffers (both ends of a loopback connection) may take in beyond
# what the server read before it refused
BUFFERED = 8 * MB


@dataclass(frozen=True)
class Server:
    """A gunicorn of this module: its port and its one worker's pid."""

    port: int
    worker: int


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def _signal_cluster(cluster: EmbeddedPostgres, sig: signal.Signals) -> None:
    """Send `sig` to the postmaster and every backend and auxiliary process of the cluster."""
    postmaster = int(cluster.pid_file.read_text().split()[0])
    for pid in [postmaster, *_children(postmaster)]:
        os.kill(pid, sig)


@contextmanager
def frozen(cluster: EmbeddedPostgres) -> Iterator[None]:
    """The cluster stopped (not dead) for the block: connections accepted, nothing answered."""
    _signal_cluster(cluster, signal.SIGSTOP)
    try:
        yield
    finally:
        _signal_cluster(cluster, signal.SIGCONT)


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedPostgres]:
    """A throwaway migrated cluster of this module's own (the tests freeze it)."""
    root = Path(tempfile.mkdtemp(prefix="onescreen-frozen-"))
    root.chmod(0o755)  # the unprivileged cluster owner must be able to reach its directory
    pg = EmbeddedPostgres(
        root=root / "pg", port=free_port(), bin_dir=SETTINGS.pg_bin_dir, os_user=SETTINGS.pg_os_user
    )
    engine = create_db_engine(pg.ensure_running())
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield pg
    finally:
        _signal_cluster(pg, signal.SIGCONT)  # a failed test may have left it stopped
        pg.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(cluster) -> Iterator[Server]:
    """`gunicorn app:server` with gunicorn.conf.py, one worker of 4 threads, over the cluster."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": cluster.url(),
        "ONESCREEN_HOST": "127.0.0.1",
        "ONESCREEN_PORT": str(port),
        "ONESCREEN_WEB_WORKERS": "1",
        "ONESCREEN_WEB_THREADS": "4",
        "ONESCREEN_REDIS_URL": "",
        "ONESCREEN_LOG_LEVEL": "WARNING",
    }
    log_path = Path(tempfile.mkdtemp(prefix="onescreen-gunicorn-")) / "gunicorn.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_serving(port, process, log_path)
        [worker] = _children(process.pid)
        yield Server(port=port, worker=worker)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        shutil.rmtree(log_path.parent, ignore_errors=True)


def _wait_until_serving(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if _get(port, "/api/v1/openapi.json", timeout=5)[0] == 200:
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")


def _get(port: int, path: str, *, timeout: float = 10) -> tuple[int | str, dict, float]:
    """(status or the error's name, JSON answer or {}, seconds taken) of GET `path`."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(body) if is_json else {}, time.monotonic() - started
    except OSError as exc:
        return type(exc).__name__, {}, time.monotonic() - started
    finally:
        connection.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _headers(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Origin: http://127.0.0.1\r\n{extra}\r\n"
    ).encode()


# a JSON-looking chunk: an array that never ends
CHUNK = b"[" + b"1," * (32 * 1024 - 1)
FRAME = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)


def _answer_complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _chunked_upload(port: int, path: str, *, total: int) -> tuple[bytes, int]:
    """POST `total` bytes chunked to `path` as fast as the server takes them, reading its answer
    as it comes; returns (the answer, body bytes sent) once it is complete or the server hung up."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(_headers(path, "Transfer-Encoding: chunked\r\n"))
    sock.setblocking(False)
    answer, sent, pending, writing = b"", 0, memoryview(b""), True
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not _answer_complete(answer):
            writing = writing and (sent < total or bool(pending))
            readable, writable, _ = select.select([sock], [sock] if writing else [], [], 1)
            if readable:
                data = _received(sock)
                if not data:
                    break
                answer += data
            if writable:
                if not pending:
                    pending = memoryview(FRAME if sent < total else b"0\r\n\r\n")
                    sent += len(CHUNK) if sent < total else 0
                try:
                    pending = pending[sock.send(pending) :]
                except OSError:
                    # the server refused and closed (a reset, as the body was unread): its
                    # answer may still be queued here, so stop sending and read on
                    writing = False
    finally:
        sock.close()
    return answer, sent


def _received(sock: socket.socket) -> bytes:
    """What the socket has to read; empty once the server hung up (a reset is reported only
    after the data that came before it has been read)."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _blind_upload(port: int, path: str, *, total: int) -> tuple[int, str]:
    """Send `total` bytes chunked without looking at the answer, as http.client and most
    clients do; returns (bytes sent, how it ended)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sent = 0
    try:
        sock.sendall(_headers(path, "Transfer-Encoding: chunked\r\n"))
        while sent < total:
            sock.sendall(FRAME)
            sent += len(CHUNK)
        sock.sendall(b"0\r\n\r\n")
        return sent, sock.recv(200).decode(errors="replace")
    except OSError as exc:
        return sent, type(exc).__name__
    finally:
        sock.close()


def _status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _check_refusal(path: str, body: bytes) -> None:
    if path.startswith("/api/"):
        assert json.loads(body)["error"]["code"] == "too_large"
    else:
        assert b"too large" in body and b"Traceback" not in body


# bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server, path):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    started = time.monotonic()
    try:
        sock.sendall(_headers(path, f"Content-Length: {200 * MB}\r\n"))
        answer = b""
        while not _answer_complete(answer):  # not one byte of the body was sent
            data = sock.recv(65536)
            assert data, f"closed without an answer: {answer!r}"
            answer += data
    except TimeoutError:
        pytest.fail(f"{path}: no answer within 10 s to a {200 * MB}-byte declared body")
    finally:
        sock.close()
    status, body = _status_and_body(answer)
    assert status == 413, answer[:300]
    assert time.monotonic() - started < 5
    _check_refusal(path, body)


@pytest.mark.parametrize("path", ROUTES)
def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(server, path):
    answer, sent = _chunked_upload(server.port, path, total=200 * MB)
    assert answer, f"{path}: no answer after {sent} bytes"
    status, body = _status_and_body(answer)
    assert status == 413, answer[:300]
    _check_refusal(path, body)
    assert sent < limit_for(LIMITS, path) + BUFFERED, f"{path}: the server took {sent} bytes"


def test_a_200_mb_chunked_upload_leaves_the_worker_as_it_was(server):
    before = _rss_mb(server.worker)
    sent, ending = _blind_upload(server.port, "/_dash-update-component", total=200 * MB)
    after = _rss_mb(server.worker)
    # refused after about the limit: the sender hears so (reset) long before 200 MB
    assert sent < limit_for(LIMITS, "/_dash-update-component") + BUFFERED, (sent, ending)
    assert after - before < 64, f"worker RSS {before:.0f} MB -> {after:.0f} MB"
    assert _get(server.port, "/api/v1/openapi.json")[0] == 200


def test_bodies_within_their_limit_are_served_and_keep_the_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        body = [b'{"readings": [', b"]}"]
        headers = {"Content-Type": "application/json"}
        connection.request("POST", "/api/v1/readings", iter(body), headers, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 401  # read, judged on its merits (no token), not refused
        assert json.loads(response.read())["error"]["code"] == "unauthorized"
        connection.request("GET", "/api/v1/openapi.json")  # the same connection serves on
        assert connection.getresponse().status == 200
    finally:
        connection.close()


# health and readiness ---------------------------------------------------------------------


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_health_and_ready_answer_503_in_time_while_the_database_is_frozen(server, cluster):
    for path in ("/api/v1/health", "/api/v1/ready"):
        status, answer, _ = _get(server.port, path)
        assert status == 200, (path, answer)
    with ThreadPoolExecutor(4) as pool:  # every gunicorn thread started before counting
        list(pool.map(lambda _: _get(server.port, "/api/v1/ready"), range(8)))
    threads = _threads(server.worker)
    with frozen(cluster), ThreadPoolExecutor(4) as pool:
        for _round in range(3):
            paths = ["/api/v1/health", "/api/v1/ready"] * 2
            for path, (status, answer, seconds) in zip(
                paths, pool.map(lambda p: _get(server.port, p, timeout=10), paths), strict=True
            ):
                assert status == 503, (path, status, answer)
                assert "did not answer within 2 s" in answer["error"]["message"]
                assert seconds < 2.5, (path, seconds)
        # one check in flight per endpoint, however many callers
        assert _threads(server.worker) <= threads + 2
    deadline = time.monotonic() + 15
    while _get(server.port, "/api/v1/ready")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    for path in ("/api/v1/health", "/api/v1/ready"):
        status, answer, _ = _get(server.port, path)
        assert status == 200, (path, answer)
    assert answer["status"] == "ready"


# statement, lock and pool timeouts -----------------------------------------------------------


def test_every_engine_of_a_request_has_timeouts_and_the_jobs_engine_none(db_url, seeded):
    with app_on(db_url) as app:
        made = app.server.extensions["onescreen"]
        for engine in (made.engine, made.web_engine, made.read_engine):
            with engine.connect() as conn:
                shown = {
                    name: conn.execute(sa.text(f"SHOW {name}")).scalar_one()
                    for name in (
                        "statement_timeout",
                        "lock_timeout",
                        "idle_in_transaction_session_timeout",
                    )
                }
                params = conn.connection.driver_connection.info.get_parameters()
            assert shown == {
                "statement_timeout": "15s",
                "lock_timeout": "5s",
                "idle_in_transaction_session_timeout": "1min",
            }
            assert params["connect_timeout"] == "3"
            assert engine.pool.timeout() == 5  # type: ignore[attr-defined]
    jobs = create_background_engine(db_url)
    try:
        with jobs.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "0"
    finally:
        jobs.dispose()


def test_a_query_that_would_wait_forever_is_cut_off_and_the_panel_says_so(db_url, seeded):
    settings = {"web_db_statement_timeout_seconds": 1, "web_db_lock_timeout_seconds": 600}
    with app_on(db_url, **settings) as app:
        app.server.test_client().get("/login")  # Dash registers callbacks on a first request
        owner = owner_of(app)
        session = sign_in(owner, role="operator")
        answers: list = []

        def table() -> None:
            answers.append(
                post_callback(
                    app,
                    "incidents-table.data",
                    lambda ident, prop: "zh" if f"{ident}.{prop}" == "os-lang.data" else None,
                    session=session,
                )
            )

        worker = threading.Thread(target=table, daemon=True)
        with owner.connect() as blocker:
            # held until the block ends: the page's query would wait for it forever
            blocker.execute(sa.text("LOCK TABLE incident IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            worker.start()
            worker.join(10)
            waited = time.monotonic() - started
            blocker.rollback()
        worker.join(10)
        assert waited < 8, f"the incidents table waited {waited:.1f} s for the lock"
        [response] = answers
        assert response.status_code == 200
        assert t("panel.unavailable", "zh") in response.get_data(as_text=True)
        reads = app.server.extensions["onescreen"].read_engine
        with reads.connect() as conn:
            started = time.monotonic()
            with pytest.raises(OperationalError) as cut:
                conn.execute(sa.text("SELECT pg_sleep(60)"))
        assert time.monotonic() - started < 5
        assert database_down(cut.value)  # told as an outage: the pages' "unavailable"
