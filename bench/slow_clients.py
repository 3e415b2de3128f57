"""Slow clients against a real `cli.py serve`: how long a normal request waits while N
connections send their headers a byte at a time, or trickle a request body, and how long the
server keeps a connection whose body stopped coming.

    python -m bench.slow_clients [--clients 0,16,24] [--seconds 12]

Serves an empty, migrated database of the bench cluster (ONESCREEN_DATA_DIR/bench-pg, port
54339) with `serve --no-seed`, 2 gunicorn workers × 8 threads, no ingest or simulator.
Target (issue 18): a normal request's delay stays under ~1 s with 24 slow connections.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from bench.harness import ROOT, bench_database, serving

DATABASE = "onescreen_slow_clients_bench"
HEADER = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow-bench\r\nAccept: */*\r\n"
FORM_HEAD = (
    "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n"
)
INGEST_HEAD = (
    "POST /api/v1/readings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "Authorization: Bearer slow-bench\r\nContent-Length: {length}\r\n\r\n"
)


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _trickle(sockets: list[socket.socket], payload: bytes, stop: threading.Event, gap_s: float):
    """Send `payload` a byte at a time on every socket, one byte each per `gap_s`, until `stop`
    (a socket the server closed is dropped)."""
    for index in range(len(payload)):
        for sock in list(sockets):
            try:
                sock.send(payload[index : index + 1])
            except OSError:
                sockets.remove(sock)
        if stop.wait(gap_s):
            return


@contextmanager
def slow_connections(
    base: str, count: int, *, body: bool = False, gap_s: float = 0.5
) -> Iterator[list[socket.socket]]:
    """`count` connections to `base` sending, a byte per `gap_s`, either a request's headers
    (never finished) or an ingest POST's body (headers at once); closed when the block ends."""
    sockets = [_connect(base) for _ in range(count)]
    payload = HEADER + b"X-Padding: " + b"x" * 4000
    if body:
        length = 100_000
        for sock in sockets:
            sock.sendall(INGEST_HEAD.format(length=length).encode() + b'{"readings": [')
        payload = b" " * length
    stop = threading.Event()
    sender = threading.Thread(target=_trickle, args=(sockets, payload, stop, gap_s), daemon=True)
    sender.start()
    try:
        time.sleep(min(1.0, 4 * gap_s))  # every connection is with the server before we measure
        yield sockets
    finally:
        stop.set()
        sender.join(5)
        for sock in sockets:
            sock.close()


def request_seconds(url: str, *, timeout_s: float = 60) -> float:
    """Seconds one GET of `url` takes to answer (any status), or `timeout_s` when it does not."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError:
        pass
    except OSError:
        return timeout_s
    return time.monotonic() - started


def stalled_body_held_seconds(base: str, *, limit_s: float = 90) -> tuple[float, bytes]:
    """Seconds the server keeps a sign-in form POST (the app reads its body) whose body stops
    after a few bytes, and the first bytes it answered (empty when it just closed)."""
    sock = _connect(base)
    sock.settimeout(limit_s)
    started = time.monotonic()
    sock.sendall(FORM_HEAD.format(length=1000).encode() + b"username=a&password=")
    try:
        answer = sock.recv(4096)
    except OSError:
        answer = b""
    finally:
        sock.close()
    return time.monotonic() - started, answer


def measure(base: str, *, clients: list[int], seconds: float) -> None:
    """Print a normal request's latency under each count of slow header and body senders."""
    url = base + "/login"
    for body in (False, True):
        kind = "trickling bodies" if body else "slow headers"
        for count in clients:
            with slow_connections(base, count, body=body):
                times = []
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    times.append(request_seconds(url, timeout_s=seconds + 30))
                    time.sleep(0.2)
            print(
                f"{count:3d} {kind:16s}: normal request median {statistics.median(times):6.2f} s,"
                f" max {max(times):6.2f} s ({len(times)} requests)",
                flush=True,
            )
    held, answer = stalled_body_held_seconds(base)
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed, no answer)"
    print(f"stalled form body: held {held:.1f} s, then {status}", flush=True)


def main() -> None:
    """Serve the bench database and measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="0,16,24", help="slow connections per step")
    parser.add_argument("--seconds", type=float, default=12, help="measuring time per step")
    parser.add_argument(
        "--proxy", choices=["nginx", "none"], default="nginx", help="ONESCREEN_PROXY of the server"
    )
    args = parser.parse_args()
    url = bench_database(DATABASE, reuse=False)
    env = {
        "DATABASE_URL": url,
        "ONESCREEN_WEB_WORKERS": "2",
        "ONESCREEN_WEB_THREADS": "8",
        "ONESCREEN_LOG_LEVEL": "WARNING",
        "ONESCREEN_SIMULATE": "false",
        "ONESCREEN_PROXY": args.proxy,
    }
    log_path = ROOT / ".onescreen" / "bench-slow-clients-serve.log"
    serve = serving(env, log_path=log_path, ready_path="/login", serve_args=["--no-ingest"])
    with serve as base:
        measure(base, clients=[int(n) for n in args.clients.split(",")], seconds=args.seconds)


if __name__ == "__main__":
    main()
