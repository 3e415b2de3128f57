"""Health and readiness: `GET /api/v1/health` (the ingest figures) and `GET /api/v1/ready`.

Both answer within the health deadline whatever the database does. The check runs in a thread
of its own and the request waits for it at most that long; a database that never answers (its
processes stopped, TCP still accepted by the kernel) costs one stuck check per endpoint and
worker — later callers share the check in flight, or hear at once that it has not answered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import psycopg
from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError

from data.engine import ping
from data.errors import report_failure
from data.ingest_store import ingest_health
from web.services import EXTENSION, AppServices

log = logging.getLogger(__name__)

PROBES = "onescreen_probes"


@dataclass(frozen=True)
class Verdict:
    """What one check found: its figures, or why the database is not ready."""

    figures: dict[str, Any] | None
    reason: str = ""
    checked_ms: float = 0.0


class DeadlineProbe:
    """Runs `check` in a daemon thread, at most one at a time, and waits for it at most
    `deadline_s` from the moment that check started."""

    def __init__(self, check: Callable[[], dict[str, Any]], *, deadline_s: float, name: str):
        self._check = check
        self._deadline_s = deadline_s
        self._name = name
        self._lock = threading.Lock()
        self._running: Future[dict[str, Any]] | None = None
        self._started = 0.0

    def __call__(self) -> Verdict:
        """The verdict of the check in flight (started now unless one runs)."""
        with self._lock:
            if self._running is None or self._running.done():
                self._running, self._started = Future(), time.monotonic()
                threading.Thread(
                    target=self._run, args=(self._running,), name=self._name, daemon=True
                ).start()
            running, started = self._running, self._started
        waited = time.monotonic() - started
        try:
            figures = running.result(timeout=max(0.0, self._deadline_s - waited))
        except TimeoutError:
            return Verdict(None, self._late(time.monotonic() - started))
        except Exception as exc:  # the check's own failure, told without its details
            return Verdict(None, _reason(exc))
        return Verdict(figures, checked_ms=round((time.monotonic() - started) * 1000, 1))

    def _late(self, waited: float) -> str:
        reason = f"database did not answer within {self._deadline_s:g} s"
        if waited > self._deadline_s + 1:
            reason += f" (the check in flight has waited {waited:.0f} s)"
        return reason

    def _run(self, outcome: Future[dict[str, Any]]) -> None:
        try:
            outcome.set_result(self._check())
        except Exception as exc:  # handed to the callers, who answer 503
            outcome.set_exception(exc)


def _reason(exc: Exception) -> str:
    """Why the check failed, for an anonymous caller: no host, port or query."""
    report_failure(log, "health check failed", exc)
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, psycopg.errors.QueryCanceled):
        return "database query was cancelled (statement timeout)"
    if isinstance(orig, psycopg.OperationalError):
        return "database unavailable"
    return "database check failed"


def _ready_check(made: AppServices) -> dict[str, Any]:
    """A trivial query on each engine requests use: the owner's (sign-in, sessions, ingest) and
    the dashboards' reads (the web role, on the replica when there is one)."""
    ping(made.engine)
    ping(made.read_engine)
    return {"status": "ready"}


def _answer(verdict: Verdict, code: str) -> Response:
    if verdict.figures is None:
        response = jsonify({"error": {"code": code, "message": verdict.reason}})
        response.status_code = 503
        response.headers["Retry-After"] = "5"
    else:
        response = jsonify({**verdict.figures, "checked_ms": verdict.checked_ms})
    response.headers["Cache-Control"] = "no-store"
    return response


def register_health_routes(app: Flask) -> None:
    """Add /api/v1/health and /api/v1/ready to the Flask server (after its services)."""
    made: AppServices = app.extensions[EXTENSION]
    deadline = made.settings.health_timeout_seconds
    health = DeadlineProbe(
        lambda: ingest_health(made.engine), deadline_s=deadline, name="onescreen-health"
    )
    ready = DeadlineProbe(lambda: _ready_check(made), deadline_s=deadline, name="onescreen-ready")
    app.extensions[PROBES] = {"health": health, "ready": ready}

    @app.get("/api/v1/health")
    def health_view() -> Response:
        """The ingest figures of the store; 503 with the reason when it does not answer."""
        return _answer(health(), "unavailable")

    @app.get("/api/v1/ready")
    def ready_view() -> Response:
        """200 when the database answers a trivial query in time; 503 with the reason."""
        return _answer(ready(), "not_ready")
