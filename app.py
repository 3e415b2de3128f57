"""Build the OneScreen Dash app: `create_app()`, and `server` for WSGI servers."""

from __future__ import annotations

import time

import dash
from dash import Dash, dcc, html
from flask import Flask, Response, g

from components import ids
from components.auth import register_auth
from components.boundaries import register_boundary_routes
from components.device_layer import register_device_routes
from components.response_cache import register_response_cache
from config import get_settings
from ingest.http_api import register_ingest_routes


def create_app() -> Dash:
    """A multipage Dash app with every module of pages/ registered; no database work here."""
    settings = get_settings()
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="pages",
        title="一屏观全城 OneScreen",
        update_title=None,
        # page layouts are functions of the URL: their ids exist only while that page is shown
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    app.layout = html.Div(
        className="os-root",
        children=[
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            dcc.Interval(id=ids.REFRESH, interval=int(settings.ui_refresh_seconds * 1000)),
            dcc.Interval(id=ids.CLOCK_TICK, interval=1000),
            dash.page_container,
        ],
    )
    app.server.config["DEBUG"] = settings.debug
    _time_requests(app.server)
    register_auth(app)
    # after the gate: the scope it sets keys the shared answers
    register_response_cache(app)
    register_boundary_routes(app.server)
    register_device_routes(app.server)
    register_ingest_routes(app.server)
    return app


def _time_requests(server: Flask) -> None:
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


def __getattr__(name: str):
    # `gunicorn app:server` asks for the module attribute; build the app only then.
    if name == "server":
        return create_app().server
    raise AttributeError(name)
