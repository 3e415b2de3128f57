"""Child processes `serve` keeps alive (MQTT ingest worker, simulator): restarted with backoff
when they exit, stopped with the server, and never outliving it."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from config import PROJECT_ROOT

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # a killed server must not leave a worker or simulator behind
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised command (arguments after `cli.py`)."""

    name: str
    args: list[str]
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    env: dict[str, str] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the command."""
        output = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "cli.py"), *self.args],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                preexec_fn=_die_with_parent,
            )
        finally:
            if output:
                output.close()
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)


class Supervisor:
    """Keeps children running until stop()."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="onescreen-supervisor", daemon=True
        )

    def start(self) -> Supervisor:
        """Start every child and the watcher."""
        for child in self.children:
            child.start()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for child in self.children:
                if child.process is None or child.process.poll() is None:
                    continue
                code = child.process.returncode
                # a child that keeps dying is retried less and less often
                backoff = min(2 ** min(child.restarts, 5), 30)
                if time.monotonic() - child.started_at < backoff:
                    continue
                child.restarts += 1
                log.warning("%s exited with %s; restarting (#%d)", child.name, code, child.restarts)
                child.start()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop watching, then terminate every child (kill it if it does not finish)."""
        self._stop.set()
        for child in self.children:
            if child.process and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(5)
