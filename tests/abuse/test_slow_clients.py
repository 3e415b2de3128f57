"""Slow, oversized and lying clients against a real `cli.py serve` (nginx in front of gunicorn,
2 workers × 8 threads): they cost the proxy a connection, never a web thread; and what `serve`
runs as root runs unprivileged, its output naming no display token."""

from __future__ import annotations

import gzip
import http.client
import os
import pwd
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench.harness import serving
from bench.slow_clients import request_seconds, slow_connections, stalled_body_held_seconds
from config import get_settings
from data import access
from data.engine import create_db_engine
from localservers.nginx import error_body
from tests.conftest import seeded_database

pytestmark = pytest.mark.integration

# the proxy's client timeouts for this server: short, so that the file stays quick
CLIENT_TIMEOUT_S = 3
SLOW_CLIENTS = 24  # more than the web server's 16 threads
CALLBACK = "/_dash-update-component"
INGEST = "/api/v1/readings"
# a client on another loopback address than the proxy's own connections to gunicorn
CLIENT_ADDRESS = "127.0.0.2"


@dataclass
class Served:
    """The running server of this module."""

    base: str
    data_dir: Path
    log_path: Path
    db_url: str

    @property
    def port(self) -> int:
        """The public port."""
        return int(urlsplit(self.base).port or 80)


@pytest.fixture(scope="module")
def served(pg_cluster) -> Iterator[Served]:
    """One `serve` (web, ingest worker, a slow simulator) for the whole file."""
    data_dir = Path(tempfile.mkdtemp(prefix="onescreen-slow-"))
    data_dir.chmod(0o755)  # the accounts the servers run as must reach it
    log_path = data_dir / "serve.log"
    try:
        with seeded_database(pg_cluster, prefix="abuse_slow", random_seed=11) as url:
            env = {
                "DATABASE_URL": url,
                "ONESCREEN_DATA_DIR": str(data_dir),
                "ONESCREEN_WEB_WORKERS": "2",
                "ONESCREEN_WEB_THREADS": "8",
                "ONESCREEN_PROXY": "nginx",
                "ONESCREEN_PROXY_CLIENT_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_S),
                "ONESCREEN_SIMULATE": "true",
                "ONESCREEN_SIMULATE_RATE": "5",
                "ONESCREEN_MQTT_CLIENT_ID": f"slow-{secrets.token_hex(4)}",
                "ONESCREEN_LOG_LEVEL": "WARNING",
            }
            with serving(env, log_path=log_path, ready_path="/login", timeout_s=90) as base:
                yield Served(base=base, data_dir=data_dir, log_path=log_path, db_url=url)
        assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _normal_requests_stay_quick(base: str, *, count: int = 5) -> list[float]:
    times = [request_seconds(base + "/login", timeout_s=15) for _ in range(count)]
    assert max(times) < 1.0, times
    return times


def test_slow_headers_do_not_delay_anyone_else(served):
    with slow_connections(served.base, SLOW_CLIENTS, gap_s=0.2):
        _normal_requests_stay_quick(served.base)


def test_trickling_bodies_hold_no_web_thread(served):
    with slow_connections(served.base, SLOW_CLIENTS, body=True, gap_s=0.2):
        _normal_requests_stay_quick(served.base)
    # a body that stops coming is dropped after the proxy's timeout, unanswered (nginx logs a
    # 408 and sends nothing to a client that stopped sending), without the app ever seeing it
    held, answer = stalled_body_held_seconds(served.base, limit_s=CLIENT_TIMEOUT_S + 20)
    assert CLIENT_TIMEOUT_S - 0.5 < held < CLIENT_TIMEOUT_S + 3, (held, answer)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def _read_answer(sock: socket.socket) -> tuple[int, str]:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def _length(data: bytes) -> int:
    found = re.search(rb"(?i)content-length:\s*(\d+)", data.split(b"\r\n\r\n", 1)[0])
    return int(found.group(1)) if found else 0


def _request_head(path: str, length_header: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer not-a-token\r\n{length_header}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("path", [CALLBACK, INGEST])
def test_a_declared_oversized_body_is_refused_by_the_proxy(served, path):
    limit = get_settings().body_limits()[path]
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        started = time.monotonic()
        # no body follows: only a proxy that reads the header alone answers at once
        sock.sendall(_request_head(path, f"Content-Length: {limit + 1}"))
        status, body = _read_answer(sock)
    assert time.monotonic() - started < 2
    assert status == 413
    assert body == error_body(413, json_body=path.startswith("/api/"))


@pytest.mark.parametrize("path", [CALLBACK, INGEST])
def test_an_oversized_chunked_body_is_refused_while_it_streams(served, path):
    limit = get_settings().body_limits()[path]
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(_request_head(path, "Transfer-Encoding: chunked"))
        sent = 0
        try:
            # twice the limit at most: the proxy answers (and stops reading) long before
            while sent < 2 * limit:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass
        status, body = _read_answer(sock)
    assert status == 413
    assert body == error_body(413, json_body=path.startswith("/api/"))


def _login_from(base: str, *, username: str, forged: str) -> int:
    """A failed sign-in from CLIENT_ADDRESS claiming to come from `forged`; its status."""
    parts = urlsplit(base)

    def connection() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=15, source_address=(CLIENT_ADDRESS, 0)
        )

    first = connection()
    first.request("GET", "/login", headers={"X-Forwarded-For": forged})
    page = first.getresponse()
    form = page.read().decode()
    cookie = page.getheader("Set-Cookie", "").split(";", 1)[0]
    form_token = re.search(r'name="form_token" value="([^"]+)"', form)
    assert form_token, form[:500]
    second = connection()
    second.request(
        "POST",
        "/login",
        body=f"username={username}&password=wrong-password&form_token={form_token.group(1)}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "X-Forwarded-For": forged,
        },
    )
    return second.getresponse().status


def test_a_forged_forwarded_for_is_not_the_clients_address(served):
    username = f"xff-{secrets.token_hex(4)}"
    assert _login_from(served.base, username=username, forged="203.0.113.9") == 200
    engine = create_db_engine(served.db_url)
    try:
        entries = access.audit_entries(engine, limit=50, action="login-failed")
    finally:
        engine.dispose()
    addresses = [str(entry["ip"]) for entry in entries if entry["actor"] == username]
    # the client's own address: neither the forged one nor the proxy's (127.0.0.1)
    assert [address.split("/")[0] for address in addresses] == [CLIENT_ADDRESS]


def test_health_and_compressed_geobuf_pass_through(served):
    health = http.client.HTTPConnection("127.0.0.1", served.port, timeout=15)
    health.request("GET", "/api/v1/health")
    answer = health.getresponse()
    assert answer.status in (200, 503) and answer.getheader("Content-Type") == "application/json"
    assert answer.read().startswith(b"{")
    geo = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    geo.request("GET", "/geo/districts.pbf", headers={"Accept-Encoding": "gzip"})
    answer = geo.getresponse()
    assert answer.status == 200, answer.read()[:300]
    assert answer.getheader("Content-Encoding") == "gzip"
    assert len(gzip.decompress(answer.read())) > 1000


def _processes_of(data_dir: Path) -> dict[int, tuple[str, int]]:
    """pid → (command line, uid) of every process started with this data directory."""
    marker = f"ONESCREEN_DATA_DIR={data_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        found[int(entry.name)] = (cmdline, uid)
    return found


def test_web_workers_ingest_and_simulator_run_unprivileged(served):
    expected = pwd.getpwnam(get_settings().pg_os_user).pw_uid if os.geteuid() == 0 else os.getuid()
    processes = _processes_of(served.data_dir)
    kinds = {"gunicorn": [], "ingest-mqtt": [], "simulate": []}
    for cmdline, uid in processes.values():
        for kind, uids in kinds.items():
            if kind in cmdline:
                uids.append(uid)
    # the gunicorn master and its 2 workers, the ingest worker, the simulator
    assert len(kinds["gunicorn"]) == 3 and kinds["ingest-mqtt"] and kinds["simulate"], processes
    assert {uid for uids in kinds.values() for uid in uids} == {expected}
    pid = int((served.data_dir / f"nginx-{served.port}" / "nginx.pid").read_text())
    workers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == pid]
    assert workers and all(_uid(p) != 0 for p in workers)


def _parent(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _uid(proc: Path) -> int:
    return int(re.search(r"^Uid:\s+(\d+)", (proc / "status").read_text(), re.M).group(1))  # type: ignore[union-attr]


def test_serve_prints_where_the_display_urls_are_never_the_tokens(served):
    output = served.log_path.read_text()
    urls = served.data_dir / "display-urls.txt"
    assert "token=" not in output
    assert str(urls) in output
    assert urls.stat().st_mode & 0o777 == 0o600
    text = urls.read_text()
    assert f"wall: {served.base}/wall?token=" in text
    assert f"kiosk: {served.base}/kiosk?token=" in text
