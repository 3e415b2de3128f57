"""The sign-in, sign-out and first-start setup pages: plain HTML forms with their own CSRF token."""

from __future__ import annotations

import html
import secrets
from datetime import timedelta

from flask import Flask, Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from components.i18n import t
from data import access
from data.access import AccessError, LoginThrottled
from web.services import services
from web.session import (
    SESSION_COOKIE,
    clear_session_cookies,
    client_address,
    current_principal,
    forget_session,
    next_target,
    plain,
    same_token,
    set_session_cookies,
)

# the sign-in form's own CSRF token (double submit: cookie and form field must agree)
LOGIN_COOKIE = "onescreen_login"


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
        secure=services().settings.secure_cookies,
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
    return same_token(request.form.get("form_token", ""), request.cookies.get(LOGIN_COOKIE, ""))


def _login_fields(lang: str, *, username: str = "", target: str = "/") -> str:
    return (
        _field("username", t("auth.username", lang), value=username, auto="username")
        + _field("password", t("auth.password", lang), kind="password", auto="current-password")
        + f'<input type="hidden" name="next" value="{html.escape(target)}">'
        + f'<button type="submit">{html.escape(t("auth.sign_in", lang))}</button>'
    )


def login() -> BaseResponse:
    """GET: the sign-in form; POST: check the password (throttled) and open a session."""
    lang = _lang()
    target = next_target(request.values.get("next", "/"))
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
    engine = services().engine
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
    settings = services().settings
    ticket = access.open_session(
        engine,
        principal=principal,
        lifetime=timedelta(hours=settings.session_hours),
        address=address,
        user_agent=request.headers.get("User-Agent", ""),
    )
    access.record_audit(engine, actor=principal.username, action="login", address=address)
    response = redirect(target, code=303)
    set_session_cookies(response, ticket)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


def logout() -> BaseResponse:
    """End the session (POST with its CSRF token; the gate has checked it) and go to sign-in."""
    if request.method != "POST":
        return plain(405, "sign out with the button / 请使用退出按钮")
    principal = current_principal()
    token = request.cookies.get(SESSION_COOKIE)
    if principal is not None and token:
        engine = services().engine
        access.close_session(engine, token=token)
        forget_session(token)
        access.record_audit(
            engine, actor=principal.username, action="logout", address=client_address()
        )
    response = redirect("/login", code=303)
    clear_session_cookies(response)
    return response


def setup() -> BaseResponse:
    """The one-time administrator setup: with the code `serve` printed, create the first admin."""
    lang = _lang()
    engine = services().engine
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
        lifetime=timedelta(hours=services().settings.session_hours),
        address=address,
        user_agent=request.headers.get("User-Agent", ""),
    )
    response = redirect("/", code=303)
    set_session_cookies(response, ticket)
    return response


def register_login_routes(server: Flask) -> None:
    """Add the sign-in, sign-out and setup pages to the server."""
    server.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    server.add_url_rule("/logout", "logout", logout, methods=["GET", "POST"])
    server.add_url_rule("/setup", "setup", setup, methods=["GET", "POST"])
