"""POST a Dash callback through the Flask stack exactly as the browser's renderer would."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import g

from data import access
from data.access import Principal, SessionTicket
from data.scope import Scope, scoped
from web.session import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE


def _parse(text: str) -> Any:
    return json.loads(text) if text.startswith("{") else text


def _of_type(ident: Any, kind: object) -> bool:
    """Whether a callback input's id is a pattern of `kind` (a button type)."""
    return isinstance(ident, dict) and ident.get("type") == kind


def sign_in(engine, *, role: str = "operator", districts: tuple[str, ...] = ()) -> SessionTicket:
    """A session of a new user with `role` (and `districts`), as after signing in."""
    user = access.create_user(
        engine,
        username=f"{role.replace('_', '-')}-{secrets.token_hex(4)}",
        role=role,
        password=secrets.token_urlsafe(16),
        districts=districts,
    )
    return access.open_session(engine, principal=user, lifetime=timedelta(hours=1))


OPERATOR = Principal(user_id=0, username="tester", display_name="", role="operator", districts=())


@contextmanager
def request_as(app, principal: Principal = OPERATOR) -> Iterator[None]:
    """Run the block inside a request of `principal` (page layouts called directly)."""
    with app.server.test_request_context("/"):
        g.principal = principal
        g.csrf_token = "test"
        actor = principal.username if principal.can_act else ""
        with scoped(Scope(districts=principal.scope, actor=actor)):
            yield


def client_for(app, session: SessionTicket | None):
    """A Flask test client carrying `session`'s cookies (none for None)."""
    client = app.server.test_client()
    if session is not None:
        client.set_cookie(SESSION_COOKIE, session.token)
        client.set_cookie(CSRF_COOKIE, session.csrf_token)
    return client


def _outputs(key: str) -> list[dict[str, Any]] | dict[str, Any]:
    """The outputs of callback `key` as the renderer posts them (a list for multi-output)."""
    outputs = [
        {"id": _parse(p.rsplit(".", 1)[0]), "property": p.rsplit(".", 1)[1]}
        for p in key.strip(".").split("...")
    ]
    return outputs if key.startswith("..") else outputs[0]


def post_callback(
    app,
    output_fragment: str,
    value_of: Callable[[Any, str], Any],
    *,
    session: SessionTicket | None = None,
    csrf: str | None = None,
    changed: str | None = None,
):
    """POST the callback whose output names `output_fragment`; `value_of(id, property)` gives
    each input's and state's value; as the browser of `session` (which sends its CSRF token,
    unless `csrf` says what to send instead), `changed` the "id.property" that fired it.
    Returns the Flask response."""
    key = next(k for k in app.callback_map if output_fragment in k)
    spec = app.callback_map[key]

    def fill(items: list[dict]) -> list[dict]:
        return [
            {
                "id": _parse(item["id"]),
                "property": item["property"],
                "value": value_of(_parse(item["id"]), item["property"]),
            }
            for item in items
        ]

    outputs = _outputs(key)
    headers = {}
    if session is not None or csrf is not None:
        headers[CSRF_HEADER] = csrf if csrf is not None else session.csrf_token
    return client_for(app, session).post(
        "/_dash-update-component",
        headers=headers,
        json={
            "output": key,
            "outputs": outputs,
            "inputs": fill(spec["inputs"]),
            "state": fill(spec["state"]),
            "changedPropIds": [changed] if changed else [],
        },
    )


def post_click(
    app,
    output_fragment: str,
    button: dict[str, Any],
    value_of: Callable[[Any, str], Any],
    *,
    session: SessionTicket | None = None,
):
    """POST the callback whose output names `output_fragment` as the browser does when the
    pattern-matched `button` (its whole id) is clicked once: the ALL input of its type holds
    that one button (any other ALL input none), the states come from `value_of(id, property)`.
    Returns the Flask response."""
    key = next(k for k in app.callback_map if output_fragment in k)
    spec = app.callback_map[key]
    button_id = json.dumps(button, sort_keys=True, separators=(",", ":"))
    outputs = _outputs(key)
    states = [
        {
            "id": _parse(item["id"]),
            "property": item["property"],
            "value": value_of(_parse(item["id"]), item["property"]),
        }
        for item in spec["state"]
    ]
    headers = {CSRF_HEADER: session.csrf_token} if session is not None else {}
    return client_for(app, session).post(
        "/_dash-update-component",
        headers=headers,
        json={
            "output": key,
            "outputs": outputs,
            "inputs": [
                [{"id": button, "property": "n_clicks", "value": 1}]
                if _of_type(_parse(item["id"]), button.get("type"))
                else []
                for item in spec["inputs"]
            ],
            "state": states,
            "changedPropIds": [f"{button_id}.n_clicks"],
        },
    )
