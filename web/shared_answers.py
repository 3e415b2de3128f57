"""Dashboard panel answers rendered once per period for every viewer who would get the same one.

Hundreds of screens on the overview or a district post the same refresh callbacks with the same
inputs: each answer is a pure function of the callback's inputs and state, the viewer's access
scope and the data of the moment. So the answer itself (Dash's JSON response) goes through the
shared cache, keyed by those and nothing else — not the interval counters, which differ per
browser — and one render per period serves every viewer. Only the answers of callbacks
declared shared (panels.place.SHARED_OUTPUTS) are shared; every other callback runs for
its caller as before.

An answer may be served some seconds after it was rendered (by the cache's design, and more so
when a busy worker renews it in the background: serving.renewal), so the ages of its panels'
as-of stamps are set again when it is sent, from the instant each stamp dates (server clock):
the browser dates data by receipt minus age, and must never think an answer fresher than it is.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

import dash
from dash import Dash
from dash.exceptions import PreventUpdate
from flask import Response, copy_current_request_context, g, request

from data.scope import current_scope, scoped
from panels.place import SHARED_OUTPUTS
from web.services import services

DASH_UPDATE = "/_dash-update-component"
# each browser counts its own ticks: only whether an interval has fired matters to a panel
COUNTERS = frozenset({"n_intervals"})
# an as-of stamp in Dash's compact JSON (panels.reads.asof_payload: at, age, clock)
_AGE = re.compile(rb'"at":(-?\d+),"age":(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?),"clock":')
# an answer sent this soon after its render started states its ages to within the render's
# time, far below a badge's second: sent as it is (the rewrite reads a whole answer)
ALREADY_TRUE_MS = 50.0
# set on answers from a worker whose renewals fall behind: how many refresh ticks a page may let
# pass per one it asks on (assets/onescreen_limits.js)
BUSY_HEADER = "X-OneScreen-Busy"
# what a request's g holds that a panel's render may read (web.session's gate sets them)
_CARRIED_G = ("principal", "csrf_token")


class _Unshared(Exception):
    """An answer that must not be stored (an error): carries the response to send anyway."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def first_output(output: object) -> str | None:
    """`id.property` of the first output in a Dash callback request's "output" field."""
    if not isinstance(output, str):
        return None
    return output.strip(".").split("...", 1)[0] or None


def answer_key(body: dict[str, Any]) -> str:
    """A digest of what the answer depends on in the request body."""

    def normalise(items: object) -> object:
        if isinstance(items, list):
            return [normalise(item) for item in items]
        if isinstance(items, dict) and items.get("property") in COUNTERS:
            return {**items, "value": items.get("value") is not None}
        return items

    relevant = {
        "output": body.get("output"),
        "inputs": normalise(body.get("inputs")),
        "state": normalise(body.get("state")),
        "changed": body.get("changedPropIds"),
    }
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def render_answer(*, body_key: str) -> tuple[int, bytes, str | None]:
    """Run the callback of the current request through Dash (`body_key` only keys the cache)."""
    del body_key
    try:
        response = dash.get_app().dispatch()
    except PreventUpdate:
        return 204, b"", None
    if response.status_code != 200:
        raise _Unshared(response)
    return 200, response.get_data(), response.mimetype


def aged(data: bytes, *, now_ms: float, rendered_ms: float) -> bytes:
    """The answer `data` with every as-of stamp's age as it is at `now_ms` (server clock, the
    stamps' own), never younger than it was rendered with (at `rendered_ms`)."""
    if now_ms - rendered_ms < ALREADY_TRUE_MS:
        return data

    def at_now(match: re.Match[bytes]) -> bytes:
        age = max(float(match[2]), (now_ms - int(match[1])) / 1000)
        return b'"at":%s,"age":%s,"clock":' % (match[1], str(round(age, 3)).encode())

    return _AGE.sub(at_now, data)


def pace_every(*, refresh_s: float, stale_s: float) -> int:
    """Refresh ticks per one asked that a page told the server is pressed may take: 2 when a
    tick let pass still leaves a refresh's room before its badges turn amber, else 1 (never)."""
    return 2 if 3 * refresh_s <= stale_s else 1


def carried(job: Callable[[], Any]) -> Callable[[], Any]:
    """`job` made to run on another thread as part of the current request: a copy of its request
    context (an app context and `g` of its own, so the request's teardown is not run on its
    `g` twice), its access scope and who is signed in; nothing else of its context variables."""
    scope = current_scope()
    kept = {name: g.get(name) for name in _CARRIED_G}

    def in_request() -> Any:
        for name, value in kept.items():
            setattr(g, name, value)
        return job()

    pushed = copy_current_request_context(in_request)

    def in_scope() -> Any:
        with scoped(scope):
            return pushed()

    return lambda: contextvars.Context().run(in_scope)


def register_response_cache(app: Dash) -> None:
    """Answer shared panel callbacks from the shared cache (after the sign-in gate ran)."""

    @app.server.before_request
    def shared_answer() -> Response | None:
        if request.method != "POST" or request.path != DASH_UPDATE:
            return None
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or first_output(body.get("output")) not in SHARED_OUTPUTS:
            return None
        # the same partition the reads use (data.scope.Scope.partition)
        partition = current_scope().partition
        results = services().results
        key = answer_key(body)
        try:
            cached = results.get(render_answer, partition, carry=carried, body_key=key)
        except _Unshared as unshared:
            return unshared.response
        status, data, mimetype = cached.value
        data = aged(data, now_ms=time.time() * 1000, rendered_ms=cached.as_of.timestamp() * 1000)
        response = Response(data, status=status, mimetype=mimetype)
        if results.pressed:
            settings = services().settings
            every = pace_every(
                refresh_s=settings.ui_refresh_seconds, stale_s=settings.ui_stale_seconds
            )
            if every > 1:
                response.headers[BUSY_HEADER] = str(every)
        return response
