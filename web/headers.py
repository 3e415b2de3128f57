"""Security headers on every answer: the content security policy (our own scripts, the hashes of
Dash's inline ones, the tile server for images), no framing or sniffing, no shared caching of
personal answers."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from dash import Dash
from flask import Response, current_app, g, request

from web.services import services
from web.session import CSRF_COOKIE, set_csrf_cookie


def content_security_policy(script_hashes: Sequence[str]) -> str:
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
    tiles = services().settings.map_tile_url
    if not tiles or not tiles.startswith(("http://", "https://")):
        return ""
    parts = urlsplit(tiles)
    return f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"


def _headers(response: Response) -> Response:
    """The headers every answer carries, and the CSRF cookie again where the browser lost it."""
    headers = response.headers
    policy = current_app.config.get("ONESCREEN_CSP")
    if policy:
        headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if services().settings.environment == "production":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if g.get("principal") is not None or request.path in ("/login", "/setup"):
        # personal pages and answers are never kept by shared caches (routes that know better,
        # such as public geometry, say so themselves)
        headers.setdefault("Cache-Control", "no-store")
    csrf_token = g.get("csrf_token")
    if csrf_token and request.cookies.get(CSRF_COOKIE) != csrf_token:
        # e.g. a browser whose CSRF cookie was cleared: the renderer needs it before it posts
        set_csrf_cookie(response, csrf_token)
    return response


def register_headers(app: Dash) -> None:
    """Add the security headers to every answer of the app's server (its CSP is hashed from the
    app's inline scripts at the first request)."""
    server = app.server

    @server.before_request
    def _policy() -> None:
        # Dash's inline scripts (one per clientside callback) are known only once every page
        # module is imported: hash them at the first request
        if "ONESCREEN_CSP" not in server.config:
            server.config["ONESCREEN_CSP"] = content_security_policy(app.csp_hashes())

    server.after_request(_headers)
