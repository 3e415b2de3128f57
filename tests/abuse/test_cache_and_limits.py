"""Abuse: nobody can flush everyone's cache (issue 18 item 6), and one session cannot starve the
others with expensive callbacks (item 7)."""

from __future__ import annotations

import json
import re
import secrets
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa

from bench.harness import serving
from components import ids
from data import access
from data.engine import create_db_engine
from data.scope import CITY
from localservers.base import free_port
from serving.events import TAGS_KEY
from serving.shared_cache import KEY_PREFIX
from tests.conftest import app_on, owner_of, seeded_database
from tests.dash_client import client_for, post_callback, sign_in
from tests.integration.test_incident_handling import _open_incident
from web.services import services
from web.session import CSRF_COOKIE, CSRF_HEADER

pytestmark = pytest.mark.integration
PUDONG, HUANGPU = "310115", "310101"
RENDER = "web.shared_answers.render_answer"
PASSWORD = "abuse tests passphrase"
CYCLES = 40


@pytest.fixture(scope="module")
def city_url(pg_cluster):
    with seeded_database(pg_cluster, prefix="abuse_cache", random_seed=13) as url:
        yield url


@pytest.fixture(scope="module")
def app(city_url, redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    # nothing falls due by the clock during a test: every recompute is an invalidation's
    settings = {
        "redis_url": redis_url,
        "ui_refresh_seconds": 600,
        "ui_stale_seconds": 1200,
        # these tests count recomputes, not requests (the limits are tested below)
        "sign_in_rate_limit": "10000 per minute",
        "callback_rate_limit": "10000 per minute",
    }
    with app_on(city_url, **settings) as dash_app, dash_app.server.app_context():
        dash_app.server.test_client().get("/login")  # Dash registers callbacks now
        yield dash_app


def _tiles(app, session, *, district):
    values = {
        "district-state.data": {"district": district},
        "os-lang.data": "zh",
        "os-refresh.n_intervals": 1,
        "category.value": None,
    }

    def value_of(ident, prop):
        name = ident["key"] if isinstance(ident, dict) else ident
        return values.get(f"{name}.{prop}")

    response = post_callback(app, "district-tiles.children", value_of, session=session)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response


def _renders(app) -> int:
    return services().results.stats.by_key.get(RENDER, 0)


def _sign_in_and_out(client, username: str) -> None:
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="form_token" value="([^"]+)"', form).group(1)
    signed_in = client.post(
        "/login", data={"username": username, "password": PASSWORD, "form_token": token}
    )
    assert signed_in.status_code == 303, signed_in.get_data(as_text=True)[:300]
    csrf = client.get_cookie(CSRF_COOKIE).value
    assert client.post("/logout", headers={CSRF_HEADER: csrf}).status_code == 303


# item 6: invalidate only what changed ---------------------------------------------------------


def test_a_sign_in_and_out_storm_leaves_everyone_elses_shared_panels(app, redis_url):
    owner = owner_of(app)
    other = sign_in(owner, role="viewer")
    stormer = access.create_user(
        owner, username=f"storm-{secrets.token_hex(3)}", role="operator", password=PASSWORD
    )
    _tiles(app, other, district=PUDONG)  # the other user's panel, computed once
    before = []
    for _ in range(20):
        started = time.perf_counter()
        _tiles(app, other, district=PUDONG)
        before.append(time.perf_counter() - started)
    store = redis.Redis.from_url(redis_url)
    results_before = {key for key in store.scan_iter(KEY_PREFIX + "results:*")}
    generation = services().listener.state.generation
    renders = _renders(app)
    during = []
    client = app.server.test_client()
    for _ in range(CYCLES):
        _sign_in_and_out(client, stormer.username)
        started = time.perf_counter()
        _tiles(app, other, district=PUDONG)
        during.append(time.perf_counter() - started)
    median_before, median_during = statistics.median(before), statistics.median(during)
    print(
        f"other user's panel median: {median_before * 1000:.1f} ms before, "
        f"{median_during * 1000:.1f} ms during {CYCLES} sign-in/out cycles"
    )
    assert services().listener.state.generation == generation
    # the other user's panel was never rendered again, and every shared result is still there
    assert _renders(app) == renders
    assert results_before <= {key for key in store.scan_iter(KEY_PREFIX + "results:*")}
    assert median_during <= 3 * median_before + 0.010


def test_a_signed_out_session_is_refused_at_once_and_only_it(app):
    owner = owner_of(app)
    leaving, staying = sign_in(owner), sign_in(owner)
    _tiles(app, leaving, district=PUDONG)
    _tiles(app, staying, district=PUDONG)
    out = client_for(app, leaving).post("/logout", headers={CSRF_HEADER: leaving.csrf_token})
    assert out.status_code == 303
    gone = post_callback(app, "district-tiles.children", lambda *_: None, session=leaving)
    assert gone.status_code == 204  # anonymous now: no data
    assert _tiles(app, staying, district=PUDONG).status_code == 200


def _act(app, session, *, incident: int, action: str = "note"):
    key = next(k for k in app.callback_map if ids.INCIDENT_ACTION_MESSAGE in k)
    trigger = {"action": action, "type": ids.INCIDENT_ACTION}
    outputs = [
        {"id": part.rsplit(".", 1)[0], "property": part.rsplit(".", 1)[1]}
        for part in key.strip(".").split("...")
    ]
    response = client_for(app, session).post(
        "/_dash-update-component",
        headers={CSRF_HEADER: session.csrf_token},
        json={
            "output": key,
            "outputs": outputs,
            "inputs": [[{"id": trigger, "property": "n_clicks", "value": 1}]],
            "state": [
                {"id": ids.INCIDENT_SELECTED, "property": "data", "value": incident},
                {"id": ids.INCIDENT_NOTE, "property": "value", "value": "abuse test note"},
                {"id": ids.INCIDENT_ASSIGNEE, "property": "value", "value": None},
                {"id": ids.INCIDENT_ACTION_DONE, "property": "data", "value": 0},
                {"id": ids.LANG, "property": "data", "value": "en"},
            ],
            "changedPropIds": ['{"action":"note","type":"os-incident-action"}.n_clicks'],
        },
    )
    assert response.status_code == 200 and "os-action-ok" in response.get_data(as_text=True)


def test_an_incident_action_outdates_its_district_and_the_city_only(app):
    owner = owner_of(app)
    operator = sign_in(owner)
    pudong = sign_in(owner, role="district_manager", districts=(PUDONG,))
    huangpu = sign_in(owner, role="district_manager", districts=(HUANGPU,))
    incident = _open_incident(owner, district=PUDONG)
    for session, district in ((operator, PUDONG), (pudong, PUDONG), (huangpu, HUANGPU)):
        _tiles(app, session, district=district)
    time.sleep(1.1)  # past any earlier test's invalidation interval
    _act(app, operator, incident=incident)
    renders = _renders(app)
    _tiles(app, huangpu, district=HUANGPU)
    assert _renders(app) == renders, "another district's panel was recomputed"
    _tiles(app, pudong, district=PUDONG)
    assert _renders(app) == renders + 1, "the district's panel was not recomputed"
    _tiles(app, operator, district=PUDONG)
    assert _renders(app) == renders + 2, "the city's panel was not recomputed"


def test_a_flood_of_actions_outdates_a_district_once_per_interval(app, redis_url):
    owner = owner_of(app)
    operator = sign_in(owner)
    incident = _open_incident(owner, district=PUDONG)
    store = redis.Redis.from_url(redis_url)
    time.sleep(1.1)
    first = int(store.hget(TAGS_KEY, PUDONG) or 0)
    started = time.monotonic()
    for _ in range(15):
        _act(app, operator, incident=incident)
    elapsed = time.monotonic() - started
    bumped = int(store.hget(TAGS_KEY, PUDONG) or 0) - first
    # one at once, then at most one per second
    assert 1 <= bumped <= 2 + int(elapsed)
    time.sleep(1.2)
    # the last action is covered too, by one outdating after the interval
    assert int(store.hget(TAGS_KEY, PUDONG) or 0) - first == bumped + 1
    assert int(store.hget(TAGS_KEY, CITY) or 0) >= bumped + 1


def test_sign_in_posts_are_limited_per_client(city_url):
    with app_on(city_url, sign_in_rate_limit="5 per minute") as limited:
        client = limited.server.test_client()
        answers = [client.post("/login", data={"username": "x"}) for _ in range(8)]
        assert [a.status_code for a in answers[:5]] == [200] * 5
        refused = answers[-1]
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        # another client still signs in
        elsewhere = {"REMOTE_ADDR": "10.9.8.7"}
        answer = client.post("/login", data={"username": "x"}, environ_base=elsewhere)
        assert answer.status_code == 200


# item 7: per-session limits on callbacks ------------------------------------------------------


def _body(dependencies: list[dict], fragment: str, values: dict) -> dict:
    """The body a browser posts for the callback naming `fragment`, `values` by component id."""
    spec = next(item for item in dependencies if fragment in item["output"])

    def ident(text: str):
        return json.loads(text) if text.startswith("{") else text

    def fill(items):
        return [
            {"id": ident(i["id"]), "property": i["property"], "value": values.get(i["id"])}
            for i in items
        ]

    outputs = [
        {"id": ident(part.rsplit(".", 1)[0]), "property": part.rsplit(".", 1)[1]}
        for part in spec["output"].strip(".").split("...")
    ]
    return {
        "output": spec["output"],
        "outputs": outputs if spec["output"].startswith("..") else outputs[0],
        "inputs": fill(spec["inputs"]),
        "state": fill(spec["state"]),
        "changedPropIds": [f"{ids.REFRESH}.n_intervals"],
    }


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def _client(base: str, ticket) -> requests.Session:
    """A script signed in as `ticket`, posting callbacks as its browser would."""
    web = requests.Session()
    web.cookies.set("onescreen_session", ticket.token)
    web.headers.update({CSRF_HEADER: ticket.csrf_token, "Origin": base})
    return web


def _timed(web: requests.Session, url: str, body: dict, *, pause: float = 0.0) -> float:
    """How long `body` took to answer (200), then a pause."""
    started = time.perf_counter()
    answer = web.post(url, json=body, timeout=30)
    took = time.perf_counter() - started
    assert answer.status_code == 200, answer.text[:300]
    time.sleep(pause)
    return took


def _flood(web: requests.Session, url: str, bodies: list[dict], *, per_second: float) -> list:
    """Post `bodies` at `per_second` from 16 threads; the answers' statuses (in a list that fills
    while the flood runs: its thread is returned with it)."""
    statuses: list[int] = []

    def one(body: dict) -> None:
        answer = web.post(url, json=body, timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["error"] == "too_many_requests"

    def run() -> None:
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            for n, body in enumerate(bodies):
                pool.submit(one, body)
                time.sleep(max(0.0, (n + 1) / per_second - (time.monotonic() - start)))

    thread = threading.Thread(target=run)
    thread.start()
    return [thread, statuses]


def test_a_callback_flood_gets_429_while_another_session_stays_fast(
    city_url, mqtt_broker, tmp_path: Path
):
    owner = create_db_engine(city_url)
    flooder, other = sign_in(owner), sign_in(owner, role="viewer")
    with owner.connect() as conn:
        devices = list(
            conn.execute(sa.text("SELECT id FROM device ORDER BY id LIMIT 180")).scalars()
        )
    owner.dispose()
    env = {
        "DATABASE_URL": city_url,
        "ONESCREEN_LOG_LEVEL": "WARNING",
        "ONESCREEN_SIMULATE": "false",
        "ONESCREEN_MQTT_URL": mqtt_broker,
        "ONESCREEN_MQTT_CLIENT_ID": f"abuse-{free_port()}",
        "ONESCREEN_WEB_WORKERS": "2",
    }
    with serving(env, log_path=tmp_path / "serve.log", ready_path="/login") as base:
        url = base + "/_dash-update-component"
        viewer = _client(base, other)
        dependencies = viewer.get(base + "/_dash-dependencies", timeout=30).json()
        tiles = _body(dependencies, "overview-tiles.children", {ids.REFRESH: 1, ids.LANG: "zh"})
        for _ in range(3):
            _timed(viewer, url, tiles)  # rendered once, then shared
        before = [_timed(viewer, url, tiles, pause=0.1) for _ in range(25)]
        series = [
            _body(
                dependencies,
                f"{ids.DEVICE_SERIES}.figure",
                {ids.DEVICE_WINDOW: "7d", ids.REFRESH: 1, ids.DEVICE_ID: device, ids.LANG: "zh"},
            )
            for device in devices
        ]
        flooding, statuses = _flood(_client(base, flooder), url, series, per_second=30)
        time.sleep(1.0)
        during = []
        while flooding.is_alive() and len(during) < 40:
            during.append(_timed(viewer, url, tiles, pause=0.1))
        flooding.join()
    refused = statuses.count(429)
    p50b, p95b = _percentiles(before)
    p50d, p95d = _percentiles(during)
    print(
        f"other session's tiles p50/p95: {p50b * 1000:.0f}/{p95b * 1000:.0f} ms before, "
        f"{p50d * 1000:.0f}/{p95d * 1000:.0f} ms during a flood of {len(statuses)} 7-day series"
        f" at 30/s ({refused} refused with 429)"
    )
    assert refused >= len(statuses) // 3, statuses
    assert p50d <= 4 * p50b + 0.1 and p95d <= 4 * p95b + 0.3
