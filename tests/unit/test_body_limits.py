"""The body-limit middleware and the deadline probe, on a bare Flask app (no database)."""

from __future__ import annotations

import json
import threading
import time

from flask import Flask, request
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.bodies import CountingBody
from web.health import DeadlineProbe
from web.limits import BodyLimits, limit_for

LIMITS = {"/api/v1/readings": 4000, "/_dash-update-component": 1000, "": 100}


def _app() -> tuple[Flask, list[int]]:
    app = Flask("limits-test")
    called: list[int] = []

    @app.post("/<path:anything>")
    def swallow(anything: str):
        called.append(1)
        try:
            return {"read": len(request.get_data())}
        except Exception:  # as careless code does: the middleware's 413 must still stand
            return {"error": "oops"}, 500

    app.wsgi_app = BodyLimits(app.wsgi_app, LIMITS)  # type: ignore[method-assign]
    return app, called


def _post(app: Flask, path: str, *, size: int, chunked: bool):
    environ = EnvironBuilder(path=path, method="POST", data=b"x" * size).get_environ()
    source = CountingBody(size, b"x")
    if chunked:
        environ.pop("CONTENT_LENGTH")
        environ.update(
            {
                "wsgi.input": source,
                "wsgi.input_terminated": True,
                "HTTP_TRANSFER_ENCODING": "chunked",
            }
        )
    body, status, headers = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    return int(status.split()[0]), b"".join(body), headers, source


def test_the_longest_route_prefix_decides():
    assert limit_for(LIMITS, "/api/v1/readings") == 4000
    assert limit_for(LIMITS, "/_dash-update-component") == 1000
    assert limit_for(LIMITS, "/login") == 100
    assert limit_for(LIMITS, "/api/v1/health") == 100


def test_a_declared_length_over_the_limit_never_reaches_the_app():
    app, called = _app()
    status, body, headers, _ = _post(app, "/api/v1/readings", size=4001, chunked=False)
    assert status == 413 and not called
    assert json.loads(body)["error"]["code"] == "too_large"
    assert headers["Content-Type"] == "application/json"
    status, body, headers, _ = _post(app, "/login", size=101, chunked=False)
    assert status == 413 and headers["Content-Type"].startswith("text/plain")
    assert _post(app, "/login", size=100, chunked=False)[0] == 200


def test_a_chunked_body_is_counted_and_refused_past_the_limit_whatever_the_app_did():
    app, called = _app()
    status, body, _, source = _post(app, "/_dash-update-component", size=10**7, chunked=True)
    assert status == 413 and called  # the app saw an error and answered 500: replaced
    assert b"too large" in body
    assert source.taken <= 1001  # one byte past the limit tells it apart, no more
    status, body, _, source = _post(app, "/_dash-update-component", size=1000, chunked=True)
    assert status == 200 and json.loads(body) == {"read": 1000}


def test_a_chunked_body_the_app_did_not_read_is_still_limited():
    app = Flask("unread")
    app.post("/login")(lambda: "fine")
    app.wsgi_app = BodyLimits(app.wsgi_app, LIMITS)  # type: ignore[method-assign]
    status, _, _, source = _post(app, "/login", size=10**6, chunked=True)
    assert status == 413 and source.taken <= 101
    assert _post(app, "/login", size=50, chunked=True)[0] == 200


def test_a_probe_answers_by_its_deadline_with_one_check_in_flight():
    release, started = threading.Event(), []

    def check() -> dict:
        started.append(1)
        release.wait(10)
        return {"status": "ready"}

    probe = DeadlineProbe(check, deadline_s=0.3, name="test-probe")
    begun = time.monotonic()
    verdicts = []
    callers = [threading.Thread(target=lambda: verdicts.append(probe())) for _ in range(5)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(5)
    assert time.monotonic() - begun < 1.5
    assert len(verdicts) == 5 and all(v.figures is None for v in verdicts)
    assert "did not answer within 0.3 s" in verdicts[0].reason
    assert len(started) == 1
    later = time.monotonic()
    # at once (well inside the 0.3 s deadline), no new check
    assert probe().figures is None and time.monotonic() - later < 0.25
    assert len(started) == 1
    release.set()
    # once the stuck check has ended, the next probe checks anew and answers (a loaded machine
    # may take a moment to run the released thread)
    deadline = time.monotonic() + 5
    verdict = probe()
    while verdict.figures is None and time.monotonic() < deadline:
        time.sleep(0.05)
        verdict = probe()
    assert verdict.figures == {"status": "ready"}
    assert len(started) >= 2
