"""Build the OneScreen Dash app: `create_app()`, and `server` for WSGI servers."""

from __future__ import annotations

import dash
from dash import Dash, dcc, html
from werkzeug.middleware.proxy_fix import ProxyFix

from components import ids, replay, shell
from config import Settings, get_settings
from data.safe_text import install_log_escaping
from displays import alerts, slots
from displays import page as display_page
from panels import (
    event_actions,
    freshness,
    incident_actions,
    incident_dispatch,
    warning_actions,
)
from web.boundaries import register_boundary_routes
from web.context import register_context_routes
from web.device_layer import register_device_routes
from web.headers import register_headers
from web.ingest_api import register_ingest_routes
from web.limits import install_body_limits
from web.login import register_login_routes
from web.preload import register_preloads
from web.ratelimit import install_limits
from web.review_export import register_review_routes
from web.services import attach as attach_services
from web.session import register_session
from web.shared_answers import register_response_cache
from web.timing import register_timing

CALLBACK_SETS = (
    shell.CALLBACKS,
    replay.CALLBACKS,
    freshness.CALLBACKS,
    incident_actions.CALLBACKS,
    incident_dispatch.CALLBACKS,
    event_actions.CALLBACKS,
    warning_actions.CALLBACKS,
    slots.CALLBACKS,
    alerts.CALLBACKS,
    display_page.CALLBACKS,
)


def create_app(settings: Settings | None = None) -> Dash:
    """A multipage Dash app with every module of pages/ registered, owning its services
    (settings, caches: web.services); no database work here."""
    settings = settings or get_settings()
    install_log_escaping()  # usernames and topics reach the web workers' logs too
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="pages",
        title="一屏观全城 OneScreen",
        # None: no "Updating…" title while callbacks run (documented; the stub says str only)
        update_title=None,  # type: ignore[arg-type]
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
    if settings.trusted_proxies:
        # the client's address and scheme as the proxies in front say (serve's nginx overwrites
        # what a client sends); request.remote_addr is then the client's, for audit and limits
        app.server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.server.wsgi_app, x_for=settings.trusted_proxies, x_proto=1
        )
    # the pages' callbacks come with their modules, which Dash runs for every app; the rest
    # are declared on callback sets and registered here
    for callbacks in CALLBACK_SETS:
        callbacks.register(app)
    attach_services(app.server, settings)
    register_timing(app.server)
    # before the gate: the policy is hashed at the first request, even one the gate turns away
    register_headers(app)
    register_session(app.server)
    register_login_routes(app.server)
    # after the gate (it finds the session a limit counts against), before the shared answers
    install_limits(app, settings)
    # after the gate: the scope it sets keys the shared answers
    register_response_cache(app)
    register_boundary_routes(app.server)
    register_context_routes(app.server)
    register_device_routes(app.server)
    register_preloads(app.server)
    register_review_routes(app.server)
    register_ingest_routes(app.server)
    # around the whole Flask app: a body over its route's limit is refused before anything
    # (the session gate's form parsing included) reads it
    install_body_limits(app.server, settings.body_limits())
    return app


def __getattr__(name: str):
    # `gunicorn app:server` asks for the module attribute; build the app only then.
    if name == "server":
        return create_app().server
    raise AttributeError(name)
