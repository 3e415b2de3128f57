"""Per-client limits: how often and how many at once one session may ask for Dash callbacks, and
how often one address may post the sign-in forms.

Rates are Flask-Limiter's (moving windows, counted in Redis so every worker shares them; this
process's memory without Redis, when one process serves). Concurrency is a small Redis sorted set
of the requests in flight per client, each entry dated so a crashed worker's expire by
themselves. Callbacks are counted per signed-in session (a digest of its id), per display token
and address for walls and kiosks, and per address for everyone else. A refused callback gets
429 with Retry-After and a short JSON body, which assets/onescreen_limits.js shows calmly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import time
from typing import cast

import redis
from dash import Dash
from flask import Response, g, jsonify, request
from flask_limiter import Limit, Limiter, RequestLimit

from components.i18n import t
from config import Settings
from data.displays import find_display_grant
from data.scope import NO_SCOPE
from serving.events import connect
from web.review_export import REVIEW_CSV_PATH, REVIEW_RATE
from web.services import services
from web.session import SESSION_COOKIE, client_address, current_principal, plain

log = logging.getLogger(__name__)

CALLBACK_PATH = "/_dash-update-component"
SIGN_IN_PATHS = frozenset({"/login", "/logout", "/setup"})
LIMITS_PREFIX = "onescreen:limits"
INFLIGHT_PREFIX = "onescreen:inflight:"
# a request in flight longer than this is taken for a crashed worker's and no longer counted
INFLIGHT_MAX_AGE_S = 60.0
_POLL_S = 0.02
DISPLAY_CONFIG_ID = "wall-config"
QUIET_HEADER = "X-OneScreen-Refusal"
REFUSED_HEADER = "X-OneScreen-Refused"
# callbacks of the busiest page per refresh (measured: a 4K wall rotating views, 5–7 a tick
# before the incident markers added one; the overview 6 with its markers and vitals strip),
# and the headroom over it no screen in normal use comes near
CALLBACKS_PER_REFRESH = 10
HEADROOM = 3


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _display_token() -> str | None:
    """The display token a wall or kiosk callback states (in its config store), if any."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None
    for group in ("state", "inputs"):
        items = body.get(group)
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and item.get("id") == DISPLAY_CONFIG_ID:
                value = item.get("value")
                token = value.get("token") if isinstance(value, dict) else None
                return token if isinstance(token, str) and 8 <= len(token) <= 200 else None
    return None


def _valid_display(token: str) -> bool:
    # the very read the display's callback makes first (same key): costs nothing more
    found = services().results.get(
        find_display_grant, NO_SCOPE.partition, engine=services().read_engine, token=token
    )
    return found.value is not None


def client_key() -> str:
    """Whom a callback is counted against: the signed-in session, the display (its token from
    its address), else the address (found once a request)."""
    if "limit_key" not in g:
        g.limit_key = _find_client_key()
    return cast(str, g.limit_key)


def _find_client_key() -> str:
    token = request.cookies.get(SESSION_COOKIE)
    if current_principal() is not None and token:
        return f"session:{_digest(token)}"
    display = _display_token()
    if display is not None:
        try:
            if _valid_display(display):
                return f"display:{_digest(display)}@{client_address()}"
        except Exception as error:  # the callback itself will say what is wrong
            log.debug("display token not checked for the limit: %s", error)
    return f"address:{client_address()}"


def _is_callback() -> bool:
    return request.method == "POST" and request.path == CALLBACK_PATH


def _retry_after(seconds: float) -> str:
    return str(max(1, int(seconds + 0.999)))


def refused_callback(retry_after_s: float) -> Response:
    """The answer to a refused callback: 429 with Retry-After and a short JSON body; to our own
    pages, which say they handle refusals, the same as a 204 with X-OneScreen-Refused (browsers
    log every 4xx fetch as a console error)."""
    # both languages: the page shows the one it is in (assets/onescreen_limits.js)
    refusal = {
        "error": "too_many_requests",
        "retry_after": int(_retry_after(retry_after_s)),
        "message": {"zh": t("limit.refused", "zh"), "en": t("limit.refused", "en")},
    }
    if request.headers.get(QUIET_HEADER) == "quiet":
        response = Response(status=204)
        response.headers[REFUSED_HEADER] = json.dumps(refusal)  # ASCII: \u escapes
    else:
        response = jsonify(refusal)
        response.status_code = 429
    response.headers["Retry-After"] = str(refusal["retry_after"])
    response.headers["Cache-Control"] = "no-store"
    return response


def _callback_breach(limit: RequestLimit) -> Response:
    return refused_callback(limit.reset_at - time.time())


def _form_breach(limit: RequestLimit) -> Response:
    response = plain(429, f"{t('limit.forms', 'en')} / {t('limit.forms', 'zh')}")
    response.headers["Retry-After"] = _retry_after(limit.reset_at - time.time())
    return response


class InFlight:
    """At most `limit` requests in flight per key, across every worker (Redis) or this process;
    a request over it waits up to `wait_s` for a slot."""

    def __init__(self, client: redis.Redis | None, *, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self._client = client
        self._local: dict[str, int] = {}
        self._freed = threading.Condition()

    def acquire(self, key: str) -> str | None:
        """A ticket for a slot of `key` (to release), None if none came free in time."""
        ticket = secrets.token_hex(8)
        deadline = time.monotonic() + self.wait_s
        while True:
            if self._take(key, ticket):
                return ticket
            if time.monotonic() >= deadline:
                return None
            if self._client is None:
                with self._freed:
                    self._freed.wait(timeout=deadline - time.monotonic())
            else:
                time.sleep(_POLL_S)

    def release(self, key: str, ticket: str) -> None:
        """Give the slot back."""
        if self._client is None:
            with self._freed:
                self._local[key] = max(0, self._local.get(key, 0) - 1)
                if not self._local[key]:
                    del self._local[key]
                self._freed.notify_all()
            return
        try:
            self._client.zrem(INFLIGHT_PREFIX + key, ticket)
        except redis.RedisError as error:
            log.debug("in-flight release failed (it expires by itself): %s", error)

    def _take(self, key: str, ticket: str) -> bool:
        if self._client is None:
            with self._freed:
                if self._local.get(key, 0) >= self.limit:
                    return False
                self._local[key] = self._local.get(key, 0) + 1
                return True
        now = time.time()
        try:
            taken = self._client.eval(
                _TAKE,
                1,
                INFLIGHT_PREFIX + key,
                now - INFLIGHT_MAX_AGE_S,
                now,
                self.limit,
                ticket,
                int(INFLIGHT_MAX_AGE_S * 1000),
            )
        except redis.RedisError as error:
            log.debug("in-flight count failed, request let through: %s", error)
            return True
        return bool(taken)


_TAKE = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('zadd', KEYS[1], ARGV[2], ARGV[4])
redis.call('pexpire', KEYS[1], ARGV[5])
return 1
"""


def callback_rate(settings: Settings) -> str:
    """The callbacks one client may send (ONESCREEN_CALLBACK_RATE_LIMIT, else sized from the
    refresh period): a sustained rate of HEADROOM × the busiest page's, and bursts of 20/s (a
    4K wall's first view asks ~25 in its first 2 s)."""
    if settings.callback_rate_limit:
        return settings.callback_rate_limit
    per_minute = math.ceil(
        max(300, HEADROOM * CALLBACKS_PER_REFRESH * 60 / settings.ui_refresh_seconds)
    )
    per_2s = max(40, math.ceil(per_minute / 30 * 2))
    return f"{per_2s} per 2 seconds;{per_minute} per minute"


def _limiter(settings: Settings) -> Limiter:
    storage = settings.redis_url or "memory://"
    options: dict[str, str | int] = {}
    if settings.redis_url:
        options = {"socket_timeout": 1, "socket_connect_timeout": 1}
    return Limiter(
        key_func=client_key,
        storage_uri=storage,
        storage_options=options,
        strategy="moving-window",
        key_prefix=LIMITS_PREFIX,
        # a Redis that does not answer costs the limits, never the answers
        swallow_errors=True,
        default_limits=[
            Limit(
                callback_rate(settings),
                key_function=client_key,
                exempt_when=lambda: not _is_callback(),
                on_breach=_callback_breach,
            ),
            Limit(
                REVIEW_RATE,
                key_function=client_key,
                exempt_when=lambda: request.path != REVIEW_CSV_PATH,
                on_breach=_form_breach,
            ),
            Limit(
                settings.sign_in_rate_limit,
                key_function=lambda: f"address:{client_address()}",
                exempt_when=lambda: request.method != "POST" or request.path not in SIGN_IN_PATHS,
                on_breach=_form_breach,
            ),
        ],
    )


def install_limits(app: Dash, settings: Settings) -> None:
    """Limit callbacks per session and sign-in posts per address (after the session gate, before
    shared answers: a shared answer is counted too)."""
    server = app.server
    limiter = _limiter(settings)
    limiter.init_app(server)
    in_flight = InFlight(
        connect(settings.redis_url),
        limit=settings.callback_concurrency,
        wait_s=settings.callback_queue_seconds,
    )
    server.extensions["onescreen_limits"] = (limiter, in_flight)

    @server.before_request
    def take_slot() -> Response | None:
        if not _is_callback():
            return None
        key = client_key()
        ticket = in_flight.acquire(key)
        if ticket is None:
            return refused_callback(1.0)
        g.inflight = (key, ticket)
        return None

    @server.teardown_request
    def give_slot(_error: BaseException | None) -> None:
        held = cast(tuple[str, str] | None, g.pop("inflight", None))
        if held is not None:
            in_flight.release(*held)
