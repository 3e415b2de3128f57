"""What one app owns: its settings and the caches its requests read through.

`create_app()` makes them (`attach`) and requests reach them through Flask's `current_app`
(`services()`), so two apps in one process — tests, a bench beside a server — never share a
cache, and nothing has to be reset between them.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from flask_caching import Cache

from config import Settings
from data.cache import TtlCache
from serving.shared_cache import SharedCache, create_shared_cache

EXTENSION = "onescreen"
# well under the refresh tick: a reading ingested shows within one tick plus this
RESULTS_TTL_SECONDS = 1.0
RESULTS_MAX_ENTRIES = 512
# reference lists (districts, streets, categories, bounds) change only with an import
REFERENCE_SECONDS = 300
SESSION_CHECK_SECONDS = 2.0
# the session's visit is noted once a minute; role and district changes clear the cache
SHARED_SESSION_SECONDS = 30.0


@dataclass
class AppServices:
    """The settings, panel-results cache, session cache and reference memo of one app."""

    settings: Settings
    results: TtlCache | SharedCache
    sessions: TtlCache | SharedCache
    reference: Cache


def results_cache(settings: Settings) -> TtlCache | SharedCache:
    """The cache every panel read goes through: shared by all web workers through Redis when
    ONESCREEN_REDIS_URL is set, otherwise this process's own."""
    period = settings.cache_seconds or settings.ui_refresh_seconds
    shared = create_shared_cache(
        period_seconds=period,
        # a result no writer has outdated may serve a while longer, but never long enough to
        # turn a freshness badge amber
        quiet_seconds=max(0.0, min(3 * period, settings.ui_stale_seconds / 2 - period)),
        namespace="results",
        max_local_entries=RESULTS_MAX_ENTRIES,
    )
    if shared is not None:
        return shared
    return TtlCache(
        ttl_seconds=min(RESULTS_TTL_SECONDS, settings.ui_refresh_seconds / 2),
        max_entries=RESULTS_MAX_ENTRIES,
    )


def session_cache() -> TtlCache | SharedCache:
    """Sessions looked up in the last seconds: a dashboard's burst of callbacks costs one
    query. Without Redis each worker keeps its own for SESSION_CHECK_SECONDS, so a sign-out
    reaches every worker within that; with Redis all workers share one answer per session for
    SHARED_SESSION_SECONDS, and a sign-out or revocation clears it everywhere at once."""
    shared = create_shared_cache(
        period_seconds=SHARED_SESSION_SECONDS,
        quiet_seconds=0,
        namespace="sessions",
        max_local_entries=4096,
    )
    if shared is not None:
        return shared
    return TtlCache(ttl_seconds=SESSION_CHECK_SECONDS, max_entries=4096)


def attach(server: Flask, settings: Settings) -> AppServices:
    """Make this app's services and hang them on its Flask server."""
    reference = Cache(
        server,
        config={"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": REFERENCE_SECONDS},
    )
    made = AppServices(
        settings=settings,
        results=results_cache(settings),
        sessions=session_cache(),
        reference=reference,
    )
    server.extensions[EXTENSION] = made
    return made


def services() -> AppServices:
    """The services of the app handling the current request (or app context)."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
