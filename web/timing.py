"""A Server-Timing header on every answer: the time spent in the app, queueing excluded."""

from __future__ import annotations

import time

from flask import Flask, Response, g


def register_timing(server: Flask) -> None:
    """A Server-Timing header on every answer: time spent in the app, queueing excluded (what
    browsers' developer tools and bench/load.py show beside the latency they see)."""

    @server.before_request
    def start_clock() -> None:
        g.onescreen_started = time.perf_counter()

    @server.after_request
    def stop_clock(response: Response) -> Response:
        started = g.get("onescreen_started")
        if started is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
        return response
