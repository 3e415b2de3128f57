"""Who is asking: the session gate in front of every request, CSRF checks, session cookies.

A browser holds only a random session id (HttpOnly cookie); the role and districts come from the
database at each request and become the request's database scope, so row-level security limits
every query the request makes. Walls and kiosks have no session: their callbacks state the
scope of their display token themselves.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from flask import Flask, Response, g, has_request_context, redirect, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

from config import STATIC_PREFIXES
from data import access
from data.access import Principal
from data.cache import TtlCache
from data.errors import OneScreenError
from data.scope import NO_SCOPE, Scope, set_scope
from serving.shared_cache import SharedCache
from web.services import services

log = logging.getLogger(__name__)

SESSION_COOKIE = "onescreen_session"
# dash-renderer sends this cookie's value back as X-CSRFToken with every callback request
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"

# reachable without a session: static files, public geometry, the token-checked ingest API
PUBLIC_PATHS = frozenset(
    {
        "/login",
        "/setup",
        "/_favicon.ico",
        "/favicon.ico",
        "/api/v1/readings",
        "/api/v1/health",
        "/api/v1/ready",
        "/api/v1/openapi.json",
    }
)
# Dash's own endpoints: walls and kiosks use them without a session (their callbacks check the
# display token); everything else they serve needs a signed-in scope to return data
DASH_ENDPOINTS = frozenset(
    {"/_dash-layout", "/_dash-dependencies", "/_dash-update-component", "/_reload-hash"}
)
DISPLAY_PAGES = frozenset({"/wall", "/kiosk"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _sessions() -> TtlCache | SharedCache:
    """The session cache of the app serving this request (see web.services.session_cache)."""
    return services().sessions


def current_principal() -> Principal | None:
    """The signed-in person of this request, None for walls, kiosks and anonymous requests (and
    outside any request)."""
    return g.get("principal") if has_request_context() else None


def client_address() -> str:
    """The client's address (behind n trusted proxies, the n-th from the right of
    X-Forwarded-For: create_app's ProxyFix has put it in remote_addr)."""
    return (request.remote_addr or "")[:64]


def _public(path: str) -> bool:
    if path in PUBLIC_PATHS or path.startswith(STATIC_PREFIXES):
        return True
    # boundaries are public geometry; a district's device points are not
    return path.startswith("/geo/") and not path.endswith("/devices.json")


def _gate() -> BaseResponse | None:
    """Find the session, set the request's scope, refuse what needs one it does not have."""
    g.principal = None
    g.csrf_token = None
    set_scope(NO_SCOPE)
    if request.path.startswith(STATIC_PREFIXES):
        return None
    refused: BaseResponse | None = _find_session()
    if refused is None:
        refused = _check_change(request.path)
    if refused is None:
        refused = _check_access(request.path)
    return refused


def _find_session() -> Response | None:
    """The session cookie's principal and scope into `g`; 503 when sessions cannot be checked."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        found = _sessions().get(access.find_session, **_session_query(token)).value
    except (SQLAlchemyError, OneScreenError) as exc:
        log.warning("session check failed: %s", exc)
        return plain(503, "sign-in temporarily unavailable / 登录服务暂不可用")
    # a shared answer may be a little older than the session's end
    if found is not None and found.expires_at > datetime.now(UTC):
        g.principal = found.principal
        g.csrf_token = found.csrf_token
        set_scope(
            Scope(
                districts=found.principal.scope,
                actor=found.principal.username if found.principal.can_act else "",
            )
        )
    return None


def _check_change(path: str) -> Response | None:
    """403 for a state-changing request from another site, or without the session's CSRF token."""
    if request.method not in UNSAFE_METHODS:
        return None
    if not _same_site():
        return plain(403, "cross-site request refused / 拒绝跨站请求")
    if g.principal is not None and path not in PUBLIC_PATHS:
        # a signed-in browser's every change carries the session's CSRF token
        sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token", "")
        if not same_token(sent, g.csrf_token):
            return plain(403, "CSRF token missing or wrong / 请求校验失败，请刷新页面")
    return None


def _check_access(path: str) -> BaseResponse | None:
    """Let public paths through; send the signed-out to sign in, one district's manager to it."""
    if _public(path) or path in DASH_ENDPOINTS or path in DISPLAY_PAGES or path == "/logout":
        return None
    if g.principal is None:
        if path.startswith(("/api/", "/geo/")):
            return plain(401, "sign in first / 请先登录")
        return redirect(f"/login?next={quote(next_target(request.full_path), safe='/?=&')}")
    if path == "/" and len(g.principal.districts) == 1 and not g.principal.sees_city:
        # one district's manager starts in that district
        query = f"?{request.query_string.decode()}" if request.query_string else ""
        return redirect(f"/district/{g.principal.districts[0]}{query}")
    return None


def _same_site() -> bool:
    """Whether a state-changing request comes from our own pages (or from no page at all, as
    the ingest API's machine clients do): browsers say so in Sec-Fetch-Site and Origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == request.host_url.rstrip("/")


def next_target(value: object) -> str:
    """A same-site path to go to after signing in ('/' for anything else)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value or len(value) > 2000:
        return "/"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return path if not path.startswith(("/login", "/logout", "/setup")) else "/"


def plain(status: int, message: str) -> Response:
    """A short plain-text answer (refusals and errors of the gate and the sign-in routes)."""
    return Response(message + "\n", status=status, mimetype="text/plain")


def same_token(sent: object, expected: object) -> bool:
    """Constant-time equality of two tokens; anything odd (non-ASCII, empty) is simply unequal."""
    if not isinstance(sent, str) or not isinstance(expected, str) or not expected:
        return False
    return secrets.compare_digest(sent.encode(), expected.encode())


def _session_query(token: str) -> dict:
    """The arguments of the session check of `token` (the key of its remembered answer)."""
    return {
        "engine": services().engine,
        "token": token,
        "idle_timeout": timedelta(minutes=services().settings.session_idle_minutes),
    }


def forget_session(token: str) -> None:
    """Drop the remembered answer for the session `token` (after its sign-out), and only it:
    this worker at once, the others at once with Redis, else within SESSION_CHECK_SECONDS."""
    _sessions().forget(access.find_session, **_session_query(token))


# Cookies --------------------------------------------------------------------------------------


def set_session_cookies(response: BaseResponse, ticket: access.SessionTicket) -> None:
    """Give the browser its new session: the HttpOnly session id and the CSRF cookie."""
    secure = services().settings.secure_cookies
    max_age = int(services().settings.session_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE,
        ticket.token,
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="Lax",
        path="/",
    )
    set_csrf_cookie(response, ticket.csrf_token)


def set_csrf_cookie(response: BaseResponse, csrf_token: str) -> None:
    """The session's CSRF token as the cookie dash-renderer echoes back."""
    # readable by the page's scripts (dash-renderer echoes it as X-CSRFToken); worthless alone
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token,
        max_age=int(services().settings.session_hours * 3600),
        httponly=False,
        secure=services().settings.secure_cookies,
        samesite="Strict",
        path="/",
    )


def clear_session_cookies(response: BaseResponse) -> None:
    """Make the browser forget its session."""
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/")


def register_session(server: Flask) -> None:
    """Put the session gate in front of every request of the server."""
    server.before_request(_gate)
    # a worker thread serves many requests: none inherits the scope of the one before
    server.teardown_request(lambda _exc: set_scope(NO_SCOPE))
