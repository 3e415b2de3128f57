"""What one app owns: its settings, engines, Redis link and the caches its requests read through.

`create_app()` makes them (`attach`) and requests reach them through Flask's `current_app`
(`services()`), so two apps in one process — tests, a bench beside a server — never share an
engine or a cache, and nothing has to be reset between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app
from flask_caching import Cache
from sqlalchemy.engine import Engine

from config import Settings
from data.cache import TtlCache
from data.engine import Timeouts, create_db_engine, request_timeouts, resolve_database_url
from data.scope import create_web_engine, read_url_for, web_url_for
from serving.events import EventListener, connect
from serving.renewal import Renewer
from serving.shared_cache import SharedCache, create_shared_cache

_T = TypeVar("_T")
EXTENSION = "onescreen"
# well under the refresh tick: a reading ingested shows within one tick plus this
RESULTS_TTL_SECONDS = 1.0
RESULTS_MAX_ENTRIES = 512
# answers a busy worker has queued for renewal; beyond, their copies serve and a later ask queues
RENEWAL_QUEUE = 64
# reference lists (districts, streets, categories, bounds) change only with an import
REFERENCE_SECONDS = 300
SESSION_CHECK_SECONDS = 2.0
# the session's visit is noted once a minute; role and district changes clear the cache
SHARED_SESSION_SECONDS = 30.0


class AppServices:
    """The settings, engines, Redis link, caches and reference memo of one app.

    Engines are made on first use (building the app does no database work); with Redis the
    caches are shared by every worker and follow the new-data channel.
    """

    def __init__(self, settings: Settings, *, reference: Cache) -> None:
        self.settings = settings
        self.reference = reference
        self.redis = connect(settings.redis_url)
        self.listener = EventListener(self.redis) if self.redis is not None else None
        self._lock = threading.RLock()
        self._made: dict[str, Any] = {}

    def _once(self, name: str, make: Callable[[], _T]) -> _T:
        # made on first use: building the app does no database work (an embedded cluster
        # would start) and connects to nothing
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]

    @property
    def results(self) -> TtlCache | SharedCache:
        """The panel-results cache."""
        return self._once("results", self._results_cache)

    @property
    def sessions(self) -> TtlCache | SharedCache:
        """The session cache."""
        return self._once("sessions", self._session_cache)

    @property
    def engine(self) -> Engine:
        """The owner's engine (sessions, sign-in, ingest): DATABASE_URL or the embedded one."""
        return self._once(
            "owner",
            lambda: create_db_engine(resolve_database_url(self.settings), timeouts=self.timeouts),
        )

    @property
    def timeouts(self) -> Timeouts:
        """The connect, statement, lock and pool timeouts of every database call a request makes."""
        return request_timeouts(self.settings)

    @property
    def owner_url(self) -> str:
        """The owner's URL with its password (the web role's and the cache's secrets)."""
        return self.engine.url.render_as_string(hide_password=False)

    @property
    def web_engine(self) -> Engine:
        """The web role's engine, bound by row-level security to the request's scope."""
        return self._once(
            "web",
            lambda: create_web_engine(
                web_url_for(self.settings, owner_url=self.owner_url),
                timeouts=self.timeouts,
                pool_size=self.pool_size,
            ),
        )

    @property
    def read_engine(self) -> Engine:
        """Where dashboard reads go: the web role on the read replica, else the web engine."""
        web_url = self.web_engine.url.render_as_string(hide_password=False)
        read_url = read_url_for(self.settings, web_url=web_url)
        if read_url == web_url:
            return self.web_engine
        return self._once(
            "read",
            lambda: create_web_engine(read_url, timeouts=self.timeouts, pool_size=self.pool_size),
        )

    @property
    def pool_size(self) -> int:
        """Connections each web engine keeps: one per request thread, so a busy worker does
        not open and close overflow connections (a backend's fork and sign-in) per burst."""
        return self.settings.web_threads

    def _renewer(self) -> Renewer | None:
        """The slots a worker computes panel answers in, and the background renewal beyond."""
        settings = self.settings
        if settings.answer_slots == 0:
            return None
        return Renewer(
            slots=settings.answer_slots,
            queue_size=RENEWAL_QUEUE,
            # a copy that old still shows in time for its badge to say so (ui_stale_seconds)
            max_age_seconds=settings.ui_stale_seconds,
            # a renewal waiting half a refresh for its turn: the answers fall behind
            pressed_wait_seconds=settings.ui_refresh_seconds / 2,
        )

    def _shared(
        self,
        *,
        period_seconds: float,
        quiet_seconds: float,
        namespace: str,
        max_local_entries: int,
        renewer: Renewer | None = None,
    ) -> SharedCache | None:
        """A cache shared by every worker through Redis, None without Redis."""
        if self.redis is None:
            return None
        return create_shared_cache(
            client=self.redis,
            events=self.listener,
            owner_url=self.owner_url,
            period_seconds=period_seconds,
            quiet_seconds=quiet_seconds,
            namespace=namespace,
            max_local_entries=max_local_entries,
            renewer=renewer,
        )

    def _results_cache(self) -> TtlCache | SharedCache:
        """The cache every panel read goes through: shared by all web workers through Redis
        when ONESCREEN_REDIS_URL is set, otherwise this process's own."""
        settings = self.settings
        period = settings.cache_seconds or settings.ui_refresh_seconds
        shared = self._shared(
            period_seconds=period,
            # a result no writer has outdated may serve a while longer, but never long enough
            # to turn a freshness badge amber
            quiet_seconds=max(0.0, min(3 * period, settings.ui_stale_seconds / 2 - period)),
            namespace="results",
            max_local_entries=RESULTS_MAX_ENTRIES,
            renewer=self._renewer(),
        )
        if shared is not None:
            return shared
        return TtlCache(
            ttl_seconds=min(RESULTS_TTL_SECONDS, settings.ui_refresh_seconds / 2),
            max_entries=RESULTS_MAX_ENTRIES,
        )

    def _session_cache(self) -> TtlCache | SharedCache:
        """Sessions looked up in the last seconds: a dashboard's burst of callbacks costs one
        query. Without Redis each worker keeps its own for SESSION_CHECK_SECONDS, so a sign-out
        reaches every worker within that; with Redis all workers share one answer per session
        for SHARED_SESSION_SECONDS, and a sign-out or revocation clears it everywhere at once."""
        shared = self._shared(
            period_seconds=SHARED_SESSION_SECONDS,
            quiet_seconds=0,
            namespace="sessions",
            max_local_entries=4096,
        )
        if shared is not None:
            return shared
        return TtlCache(ttl_seconds=SESSION_CHECK_SECONDS, max_entries=4096)

    def close(self) -> None:
        """Let go of every connection this app holds."""
        with self._lock:
            made, self._made = list(self._made.values()), {}
        for thing in made:
            if isinstance(thing, Engine):
                thing.dispose()


def attach(server: Flask, settings: Settings) -> AppServices:
    """Make this app's services and hang them on its Flask server."""
    reference = Cache(
        server,
        config={"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": REFERENCE_SECONDS},
    )
    made = AppServices(settings, reference=reference)
    server.extensions[EXTENSION] = made
    return made


def services() -> AppServices:
    """The services of the app handling the current request (or app context)."""
    return current_app.extensions[EXTENSION]


def web_engine() -> Engine:
    """The web role's engine of the app serving this request."""
    return services().web_engine


def read_engine() -> Engine:
    """The dashboard-read engine of the app serving this request."""
    return services().read_engine
