"""What a web worker prepares before it takes its first request.

A worker builds its caches on first use: the first view of a district after a start waited
for its device snapshot (~1 s per 100k devices, more while the other worker did the same) and
its boundary bodies, the first chart for plotly to build its validators (0.2–2 s), and a
warm-up running in the background beside the first requests slowed them all (one interpreter
lock). So gunicorn's post_worker_init runs the warm-up to completion (or until its budget is
spent; the rest then finishes in the background) before the worker accepts a connection: until
one worker has, the server answers nothing, which is how a readiness check sees it is not
ready yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
from flask import Flask
from plotly.io.json import to_json_plotly
from sqlalchemy.exc import SQLAlchemyError

from components.timeline import timeline_figure
from data.checks import InvalidQuery
from data.errors import OneScreenError
from web.boundaries import warm_boundaries
from web.device_layer import warm_snapshots

log = logging.getLogger(__name__)

# gunicorn stops a worker silent for its timeout: the warm-up reports in far more often
_HEARTBEAT_SECONDS = 1.0


def warm_figures() -> None:
    """Build and serialise one timeline chart with every kind of mark it draws, as a callback
    does (plotly makes its validators on first use)."""
    end = datetime.now(UTC)
    start = end - timedelta(hours=24)
    figure = timeline_figure(
        pd.DataFrame({"bucket": [start], "severity": ["minor"], "incidents": [1]}),
        stack="severity",
        lang="zh",
        start=start,
        end=end,
        categories={},
        handled=pd.DataFrame({"bucket": [start], "kind": ["resolved"], "events": [1]}),
        ahead=pd.DataFrame({"expected_at": [end + timedelta(minutes=30)]}),
        ahead_end=end + timedelta(hours=3),
    )
    to_json_plotly(figure)


def warm(server: Flask) -> None:
    """Build the first chart, and the device snapshots and boundary bodies of every district
    (logs what failed)."""
    started = time.perf_counter()
    warm_figures()
    try:
        snapshots = warm_snapshots(server)
        bodies = warm_boundaries(server)
    except (SQLAlchemyError, OneScreenError, InvalidQuery) as exc:
        # the first requests then build what they need, as without a warm-up
        log.warning("warm-up incomplete: %s", exc)
        return
    log.info(
        "warmed %d device snapshots and %d boundary bodies in %.1f s",
        snapshots,
        bodies,
        time.perf_counter() - started,
    )


def warm_before_serving(
    server: Flask, *, budget_s: float, heartbeat: Callable[[], None] = lambda: None
) -> bool:
    """Run the warm-up, waiting at most `budget_s` (calling `heartbeat` meanwhile); whether it
    finished. What is left runs on in the background."""
    thread = threading.Thread(target=warm, args=(server,), name="onescreen-warm-up", daemon=True)
    thread.start()
    deadline = time.monotonic() + budget_s
    while thread.is_alive() and time.monotonic() < deadline:
        heartbeat()
        thread.join(min(_HEARTBEAT_SECONDS, max(0.0, deadline - time.monotonic())))
    if thread.is_alive():
        log.warning("warm-up still running after %.0f s: serving meanwhile", budget_s)
        return False
    return True
