"""Who is asking: sign-in, sign-out and first-start setup pages, the session gate in front of
every request, CSRF checks and security headers.

A browser holds only a random session id (HttpOnly cookie); the role and districts come from the
database at each request and become the request's database scope, so row-level security limits
every query the request makes. Walls and kiosks have no session: their callbacks state the
scope of their display token themselves.
"""

from __future__ import annotations

import functools
import html
import logging
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from dash import Dash
from flask import Response, current_app, g, has_request_context, redirect, request
from sqlalchemy.exc import SQLAlchemyError

from components.i18n import t
from config import get_settings
from data import access
from data.access import AccessError, LoginThrottled, Principal
from data.cache import TtlCache
from data.engine import get_engine
from data.errors import OneScreenError
from data.scope import NO_SCOPE, Scope, set_scope
from serving.shared_cache import SharedCache, create_shared_cache

log = logging.getLogger(__name__)

SESSION_COOKIE = "onescreen_session"
# dash-renderer sends this cookie's value back as X-CSRFToken with every callback request
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
# the sign-in form's own CSRF token (double submit: cookie and form field must agree)
LOGIN_COOKIE = "onescreen_login"

# reachable without a session: static files, public geometry, the token-checked ingest API
PUBLIC_PATHS = frozenset(
    {
        "/login",
        "/setup",
        "/_favicon.ico",
        "/favicon.ico",
        "/api/v1/readings",
        "/api/v1/health",
        "/api/v1/openapi.json",
    }
)
# Dash's own endpoints: walls and kiosks use them without a session (their callbacks check the
# display token); everything else they serve needs a signed-in scope to return data
DASH_ENDPOINTS = frozenset(
    {"/_dash-layout", "/_dash-dependencies", "/_dash-update-component", "/_reload-hash"}
)
DISPLAY_PAGES = frozenset({"/wall", "/kiosk"})
STATIC_PREFIXES = ("/assets/", "/_dash-component-suites/")
SESSION_CHECK_SECONDS = 2.0
# the session's visit is noted once a minute; role and district changes clear the cache
SHARED_SESSION_SECONDS = 30.0
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@functools.cache
def _sessions() -> TtlCache | SharedCache:
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


def current_principal() -> Principal | None:
    """The signed-in person of this request, None for walls, kiosks and anonymous requests (and
    outside any request)."""
    return g.get("principal") if has_request_context() else None


def client_address() -> str:
    """The client's address (the n-th from the right of X-Forwarded-For behind n proxies)."""
    proxies = get_settings().trusted_proxies
    if proxies:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        if len(forwarded) >= proxies and forwarded[-proxies]:
            return forwarded[-proxies][:64]
    return (request.remote_addr or "")[:64]


def _public(path: str) -> bool:
    if path in PUBLIC_PATHS or path.startswith(STATIC_PREFIXES):
        return True
    # boundaries are public geometry; a district's device points are not
    return path.startswith("/geo/") and not path.endswith("/devices.json")


def _gate() -> Response | None:
    """Find the session, set the request's scope, refuse what needs one it does not have."""
    g.principal = None
    g.csrf_token = None
    set_scope(NO_SCOPE)
    if request.path.startswith(STATIC_PREFIXES):
        return None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        settings = get_settings()
        try:
            found = (
                _sessions()
                .get(
                    access.find_session,
                    engine=get_engine(),
                    token=token,
                    idle_timeout=timedelta(minutes=settings.session_idle_minutes),
                )
                .value
            )
        except (SQLAlchemyError, OneScreenError) as exc:
            log.warning("session check failed: %s", exc)
            return _plain(503, "sign-in temporarily unavailable / 登录服务暂不可用")
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
    path = request.path
    if request.method in UNSAFE_METHODS and not _same_site():
        return _plain(403, "cross-site request refused / 拒绝跨站请求")
    if request.method in UNSAFE_METHODS and g.principal is not None and path not in PUBLIC_PATHS:
        # a signed-in browser's every change carries the session's CSRF token
        sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token", "")
        if not _same_token(sent, g.csrf_token):
            return _plain(403, "CSRF token missing or wrong / 请求校验失败，请刷新页面")
    if _public(path) or path in DASH_ENDPOINTS or path in DISPLAY_PAGES or path == "/logout":
        return None
    if g.principal is None:
        if path.startswith(("/api/", "/geo/")):
            return _plain(401, "sign in first / 请先登录")
        return redirect(f"/login?next={quote(_next_target(request.full_path), safe='/?=&')}")
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


def _next_target(value: object) -> str:
    """A same-site path to go to after signing in ('/' for anything else)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value or len(value) > 2000:
        return "/"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return path if not path.startswith(("/login", "/logout", "/setup")) else "/"


def _plain(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


# Security headers -----------------------------------------------------------------------------


def content_security_policy(script_hashes: list[str]) -> str:
    """The policy: our own scripts plus the hashes of Dash's inline ones, no eval anywhere."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self' " + " ".join(script_hashes),
            # plotly and leaflet inject <style> blocks and position everything by style attribute
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:" + _tile_origin(),
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _tile_origin() -> str:
    """The configured tile server's origin, for img-src ('{s}' subdomains become a wildcard)."""
    tiles = get_settings().map_tile_url
    if not tiles or not tiles.startswith(("http://", "https://")):
        return ""
    parts = urlsplit(tiles)
    return f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"


def _headers(response: Response) -> Response:
    headers = response.headers
    policy = current_app.config.get("ONESCREEN_CSP")
    if policy:
        headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if get_settings().environment == "production":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if g.get("principal") is not None or request.path in ("/login", "/setup"):
        # personal pages and answers are never kept by shared caches (routes that know better,
        # such as public geometry, say so themselves)
        headers.setdefault("Cache-Control", "no-store")
    csrf_token = g.get("csrf_token")
    if csrf_token and request.cookies.get(CSRF_COOKIE) != csrf_token:
        # e.g. a browser whose CSRF cookie was cleared: the renderer needs it before it posts
        _set_csrf_cookie(response, csrf_token)
    return response


# Cookies --------------------------------------------------------------------------------------


def _set_session_cookies(response: Response, ticket: access.SessionTicket) -> None:
    secure = get_settings().secure_cookies
    max_age = int(get_settings().session_hours * 3600)
    response.set_cookie(
        SESSION_COOKIE,
        ticket.token,
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="Lax",
        path="/",
    )
    _set_csrf_cookie(response, ticket.csrf_token)


def _set_csrf_cookie(response: Response, csrf_token: str) -> None:
    # readable by the page's scripts (dash-renderer echoes it as X-CSRFToken); worthless alone
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token,
        max_age=int(get_settings().session_hours * 3600),
        httponly=False,
        secure=get_settings().secure_cookies,
        samesite="Strict",
        path="/",
    )


def _clear_session_cookies(response: Response) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/")


# Pages ----------------------------------------------------------------------------------------


def _lang() -> str:
    return "en" if request.args.get("lang") == "en" else "zh"


def _form_page(
    *, lang: str, title: str, action: str, fields: str, error: str = "", note: str = ""
) -> Response:
    """A sign-in style page: the form, and a fresh login CSRF token in cookie and field."""
    form_token = secrets.token_urlsafe(24)
    body = f"""<!DOCTYPE html>
<html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · {html.escape(t("app.title", lang))}</title>
<link rel="stylesheet" href="/assets/onescreen_login.css"></head>
<body class="os-login-body"><main class="os-login">
<h1 class="os-login-brand">{html.escape(t("app.title", lang))}
<span>{html.escape(t("app.subtitle", lang))}</span></h1>
<form class="os-login-form" method="post" action="{html.escape(action)}">
<h2>{html.escape(title)}</h2>
{f'<p class="os-login-error" role="alert">{html.escape(error)}</p>' if error else ""}
{f'<p class="os-login-note">{html.escape(note)}</p>' if note else ""}
<input type="hidden" name="form_token" value="{form_token}">
{fields}
</form></main></body></html>"""
    # a refused form is a normal page with its message (browsers log 4xx documents as errors)
    response = Response(body, status=200, mimetype="text/html")
    response.set_cookie(
        LOGIN_COOKIE,
        form_token,
        max_age=3600,
        httponly=True,
        secure=get_settings().secure_cookies,
        samesite="Strict",
        path="/",
    )
    return response


def _field(name: str, label: str, *, kind: str = "text", value: str = "", auto: str = "") -> str:
    return (
        f'<label>{html.escape(label)}<input name="{name}" type="{kind}" required'
        f' value="{html.escape(value)}" autocomplete="{auto}" maxlength="256"></label>'
    )


def _form_token_ok() -> bool:
    return _same_token(request.form.get("form_token", ""), request.cookies.get(LOGIN_COOKIE, ""))


def _same_token(sent: object, expected: object) -> bool:
    """Constant-time equality of two tokens; anything odd (non-ASCII, empty) is simply unequal."""
    if not isinstance(sent, str) or not isinstance(expected, str) or not expected:
        return False
    return secrets.compare_digest(sent.encode(), expected.encode())


def _login_fields(lang: str, *, username: str = "", target: str = "/") -> str:
    return (
        _field("username", t("auth.username", lang), value=username, auto="username")
        + _field("password", t("auth.password", lang), kind="password", auto="current-password")
        + f'<input type="hidden" name="next" value="{html.escape(target)}">'
        + f'<button type="submit">{html.escape(t("auth.sign_in", lang))}</button>'
    )


def login() -> Response:
    """GET: the sign-in form; POST: check the password (throttled) and open a session."""
    lang = _lang()
    target = _next_target(request.values.get("next", "/"))
    title = t("auth.sign_in", lang)
    action = "/login" + ("?lang=en" if lang == "en" else "")
    if request.method == "GET":
        if current_principal() is not None:
            return redirect(target)
        return _form_page(
            lang=lang, title=title, action=action, fields=_login_fields(lang, target=target)
        )
    username = request.form.get("username", "")[:100]
    fields = _login_fields(lang, username=username, target=target)
    if not _form_token_ok():
        return _form_page(
            lang=lang, title=title, action=action, fields=fields, error=t("auth.expired", lang)
        )
    engine = get_engine()
    address = client_address()
    try:
        principal = access.authenticate(
            engine, username=username, password=request.form.get("password", ""), address=address
        )
    except LoginThrottled as exc:
        access.record_throttled(
            engine, actor=username or "-", address=address, retry_after_s=exc.retry_after_s
        )
        page = _form_page(
            lang=lang,
            title=title,
            action=action,
            fields=fields,
            error=t("auth.throttled", lang, minutes=max(1, round(exc.retry_after_s / 60))),
        )
        page.status_code = 429
        page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    if principal is None:
        access.record_audit(engine, actor=username or "-", action="login-failed", address=address)
        return _form_page(
            lang=lang, title=title, action=action, fields=fields, error=t("auth.wrong", lang)
        )
    settings = get_settings()
    ticket = access.open_session(
        engine,
        principal=principal,
        lifetime=timedelta(hours=settings.session_hours),
        address=address,
        user_agent=request.headers.get("User-Agent", ""),
    )
    access.record_audit(engine, actor=principal.username, action="login", address=address)
    response = redirect(target, code=303)
    _set_session_cookies(response, ticket)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


def logout() -> Response:
    """End the session (POST with its CSRF token; the gate has checked it) and go to sign-in."""
    if request.method != "POST":
        return _plain(405, "sign out with the button / 请使用退出按钮")
    principal = current_principal()
    token = request.cookies.get(SESSION_COOKIE)
    if principal is not None and token:
        engine = get_engine()
        access.close_session(engine, token=token)
        # this worker forgets it at once; the others at once with Redis, else within seconds
        _sessions().clear()
        access.record_audit(
            engine, actor=principal.username, action="logout", address=client_address()
        )
    response = redirect("/login", code=303)
    _clear_session_cookies(response)
    return response


def setup() -> Response:
    """The one-time administrator setup: with the code `serve` printed, create the first admin."""
    lang = _lang()
    engine = get_engine()
    title = t("auth.setup", lang)
    if access.has_admin(engine):
        return redirect("/login", code=303)
    code = request.values.get("code", "")[:64]
    fields = (
        f'<input type="hidden" name="code" value="{html.escape(code)}">'
        + _field("username", t("auth.username", lang), value="admin", auto="username")
        + _field("password", t("auth.new_password", lang), kind="password", auto="new-password")
        + _field("again", t("auth.again", lang), kind="password", auto="new-password")
        + f'<button type="submit">{html.escape(t("auth.create_admin", lang))}</button>'
    )
    note = t("auth.setup_note", lang, chars=access.MIN_PASSWORD_CHARS)
    if request.method == "GET":
        return _form_page(lang=lang, title=title, action="/setup", fields=fields, note=note)
    error = ""
    password = request.form.get("password", "")
    if not _form_token_ok():
        error = t("auth.expired", lang)
    elif password != request.form.get("again", ""):
        error = t("auth.mismatch", lang)
    else:
        try:
            admin = access.complete_setup(
                engine,
                code=code,
                username=request.form.get("username", "").strip().lower(),
                password=password,
            )
        except AccessError as exc:
            error = str(exc)
    if error:
        return _form_page(
            lang=lang, title=title, action="/setup", fields=fields, note=note, error=error
        )
    address = client_address()
    access.record_audit(engine, actor=admin.username, action="setup-admin", address=address)
    ticket = access.open_session(
        engine,
        principal=admin,
        lifetime=timedelta(hours=get_settings().session_hours),
        address=address,
        user_agent=request.headers.get("User-Agent", ""),
    )
    response = redirect("/", code=303)
    _set_session_cookies(response, ticket)
    return response


def register_auth(app: Dash) -> None:
    """Put the session gate and security headers in front of the app's server, add the auth
    pages."""
    server = app.server

    @server.before_request
    def _policy() -> None:
        # Dash's inline scripts (one per clientside callback) are known only once every page
        # module is imported: hash them at the first request
        if "ONESCREEN_CSP" not in server.config:
            server.config["ONESCREEN_CSP"] = content_security_policy(app.csp_hashes())

    server.before_request(_gate)
    # a worker thread serves many requests: none inherits the scope of the one before
    server.teardown_request(lambda _exc: set_scope(NO_SCOPE))
    server.after_request(_headers)
    server.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    server.add_url_rule("/logout", "logout", logout, methods=["GET", "POST"])
    server.add_url_rule("/setup", "setup", setup, methods=["GET", "POST"])
