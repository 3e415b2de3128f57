"""Child processes `serve` keeps alive (web server, MQTT ingest worker, simulator): restarted
with backoff when they exit, stopped with the server, never outliving it, and never root: when
root starts them they run as the unprivileged account the embedded PostgreSQL runs as."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config import PROJECT_ROOT, get_settings
from localservers.base import grant_passage, unprivileged_account

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # a killed server must not leave a worker or simulator behind
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@functools.cache
def child_account(name: str) -> pwd.struct_passwd | None:
    """The account children run as when root starts them: `name` (created when missing), let
    through the directories above this checkout and its Python (e.g. a pyenv under /root);
    None, with a warning, when it still cannot run them (then they run as root)."""
    account = unprivileged_account(name, create=True, what="web server, ingest and simulator")
    if account is None or _can_run_checkout(name):
        return account
    interpreter = Path(sys.executable).resolve()
    try:
        for path in (interpreter, PROJECT_ROOT / "cli.py"):
            for directory in grant_passage(path, account):
                log.warning(
                    "OS user '%s' may now pass through %s (ACL, search only)", name, directory
                )
    except OSError as exc:
        log.warning("cannot let OS user '%s' through to %s: %s", name, interpreter, exc)
    if _can_run_checkout(name):
        return account
    log.warning(
        "OS user '%s' cannot run %s from %s: the web server, ingest worker and simulator run "
        "as root; put the checkout and its Python where it can read them (e.g. /opt/onescreen)",
        name,
        sys.executable,
        PROJECT_ROOT,
    )
    return None


def _can_run_checkout(name: str) -> bool:
    probe = [sys.executable, "-c", "import config"]
    run = subprocess.run(
        ["runuser", "-u", name, "--", *probe], cwd=PROJECT_ROOT, capture_output=True
    )
    return run.returncode == 0


def _start_as(account: pwd.struct_passwd | None) -> Callable[[], None]:
    """What the child does before running its command: become `account`, then die with us."""

    def prepare() -> None:
        if account is not None:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        # after the change of user, which clears the parent-death signal
        _die_with_parent()

    return prepare


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
    # the account it runs as when root starts it (None: the embedded PostgreSQL's)
    user: str | None = None

    def start(self) -> None:
        """Start the command (as the unprivileged account, when root starts it)."""
        account = None
        if os.geteuid() == 0:
            account = child_account(self.user or get_settings().pg_os_user)
        env = dict(self.env if self.env is not None else os.environ)
        if account is not None:
            env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
        output = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "cli.py"), *self.args],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                preexec_fn=_start_as(account),
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
