"""Production serving: shared panel answers and sessions through Redis in the Flask stack, and
`cli.py serve` as gunicorn workers with a Redis of its own and the new-data channel."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa

from bench.harness import serving
from config import get_settings
from data import ingest_store
from data.engine import create_db_engine
from localservers.base import free_port
from panels import reads as live
from serving.events import VERSION_KEY
from tests.conftest import app_on, owner_of
from tests.dash_client import client_for, post_callback, sign_in
from web import session as web_session
from web.session import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE

pytestmark = pytest.mark.integration
PUDONG = "310115"
RENDER = "web.shared_answers.render_answer"
SESSION_LOOKUP = "data.access.find_session"


@pytest.fixture(scope="module")
def app(live_city_url, redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    with (
        app_on(live_city_url, redis_url=redis_url) as dash_app,
        dash_app.server.app_context(),
    ):
        # the caches these tests count are the app's own (web.services), shared through Redis
        dash_app.server.test_client().get("/login")  # Dash registers callbacks now
        yield dash_app


def _tiles(app, session, *, district=PUDONG, tick=1, category=None):
    values = {
        "district-state.data": {"district": district},
        "os-lang.data": "zh",
        "os-refresh.n_intervals": tick,
        "category.value": category,
    }

    def value_of(ident, prop):
        name = ident["key"] if isinstance(ident, dict) else ident
        return values.get(f"{name}.{prop}")

    return post_callback(app, "district-tiles.children", value_of, session=session)


def _ageless(response) -> bytes:
    """A panel answer with its as-of stamps' ages blanked."""
    return re.sub(rb'"age":[0-9.eE+-]+', b'"age":0', response.get_data())


def _renders() -> int:
    return live.shared_cache().stats.by_key.get(RENDER, 0)


def test_the_caches_are_the_shared_ones(app):
    assert type(live.shared_cache()).__name__ == "SharedCache"
    assert type(web_session._sessions()).__name__ == "SharedCache"


def test_viewers_of_one_scope_share_one_render_whatever_their_tick(app):
    owner = owner_of(app)
    first, second = sign_in(owner), sign_in(owner)
    before = _renders()
    one = _tiles(app, first, tick=3, category="flood")
    two = _tiles(app, second, tick=917, category="flood")
    assert one.status_code == two.status_code == 200
    # one render: the same bytes but for the stamps' ages, brought forward to when each is sent
    assert _ageless(one) == _ageless(two)
    assert "district-tiles" in one.get_data(as_text=True)
    assert _renders() == before + 1


def test_other_inputs_and_other_scopes_render_their_own(app):
    owner = owner_of(app)
    operator = sign_in(owner)
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    viewer = sign_in(owner, role="viewer")
    before = _renders()
    assert _tiles(app, operator, category="fire").status_code == 200
    assert _tiles(app, operator, category="gas").status_code == 200  # another input
    assert _tiles(app, manager, category="fire").status_code == 200  # another scope
    assert _tiles(app, viewer, category="fire").status_code == 200  # may not act: another
    assert _renders() == before + 4


def test_a_forged_district_is_not_answered_from_anyone_elses_render(app):
    owner = owner_of(app)
    operator = sign_in(owner)
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    assert _tiles(app, operator, district="310101", category="water").status_code == 200
    # the same body from a Pudong manager: never the operator's Huangpu answer
    assert _tiles(app, manager, district="310101", category="water").status_code == 204


def test_callbacks_that_are_not_panels_are_never_shared(app):
    owner = owner_of(app)
    session = sign_in(owner)
    before = _renders()
    response = client_for(app, session).post(
        "/_dash-update-component",
        headers={CSRF_HEADER: session.csrf_token},
        json={
            "output": "..os-clock.children...os-clock.title..",
            "outputs": [],
            "inputs": [],
            "state": [],
            "changedPropIds": [],
        },
    )
    assert response.status_code != 200 or _renders() == before
    assert _renders() == before


def _stamps(response) -> list[dict]:
    """The as-of stamps in a panel answer."""
    answer = json.loads(response.get_data())["response"]
    return [props["data"] for props in answer.values() if "age" in (props.get("data") or {})]


def test_a_busy_worker_answers_with_its_last_render_and_renews_it_behind(app):
    cache = live.shared_cache()
    renewer = cache._renewer
    assert renewer is not None
    session = sign_in(owner_of(app))
    first = _tiles(app, session, category="heat")
    assert first.status_code == 200 and _stamps(first)
    rendered = time.time()
    held = [renewer.try_slot() for _ in range(renewer.slots)]  # every computing slot busy
    try:
        assert all(held)
        # due, whatever the key's phase and however quiet the city
        time.sleep(cache.period_seconds + cache.quiet_seconds + 0.2)
        before, renders = cache.stats.deferred, _renders()
        second = _tiles(app, session, category="heat", tick=2)
        assert second.status_code == 200 and cache.stats.deferred == before + 1
        assert _renders() == renders  # nothing rendered in the request
    finally:
        for taken in held:
            if taken:
                renewer.release()
    # the served copy says how old its data is now, not how old it was when rendered
    late = time.time() - rendered
    for old, new in zip(_stamps(first), _stamps(second), strict=True):
        assert new["at"] == old["at"] and new["age"] >= old["age"] + late - 0.5
        assert abs(new["age"] - (time.time() * 1000 - new["at"]) / 1000) < 1.0
    # the renewal ran through Dash on a background thread, in the viewer's request and scope
    deadline = time.monotonic() + 10
    while _renders() == renders and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _renders() == renders + 1
    third = _tiles(app, session, category="heat", tick=3)
    assert third.status_code == 200
    assert min(stamp["at"] for stamp in _stamps(third)) > max(s["at"] for s in _stamps(first))


def test_a_session_is_checked_once_for_many_requests_and_sign_out_is_at_once(app):
    owner = owner_of(app)
    session = sign_in(owner)
    cache = web_session._sessions()
    before = cache.stats.by_key.get(SESSION_LOOKUP, 0)
    for tick in range(5):
        assert _tiles(app, session, tick=tick).status_code == 200
    assert cache.stats.by_key.get(SESSION_LOOKUP, 0) == before + 1
    client = client_for(app, session)
    out = client.post("/logout", headers={CSRF_HEADER: session.csrf_token})
    assert out.status_code == 303
    # every worker forgets it at once: the next request is anonymous (no data, sent to sign in)
    assert _tiles(app, session).status_code == 204
    page = client.get("/")
    assert page.status_code in (302, 303) and "/login" in page.headers["Location"]


# gunicorn -------------------------------------------------------------------------------------


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_runs_gunicorn_workers_sharing_a_redis_it_starts(live_city_url, mqtt_broker):
    redis_port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="onescreen-serving-"))
    data_dir.chmod(0o755)  # the redis account must reach its directory
    env = {
        "DATABASE_URL": live_city_url,
        "ONESCREEN_DATA_DIR": str(data_dir),
        "ONESCREEN_WEB_WORKERS": "2",
        "ONESCREEN_REDIS_PORT": str(redis_port),
        "ONESCREEN_SIMULATE": "false",
        "ONESCREEN_MQTT_URL": mqtt_broker,
        "ONESCREEN_MQTT_CLIENT_ID": f"serving-{redis_port}",
        "ONESCREEN_LOG_LEVEL": "INFO",
        "ONESCREEN_REDIS_URL": "",
    }
    log_path = data_dir / "serve.log"
    owner = create_db_engine(live_city_url)
    session = sign_in(owner)
    token = ingest_store.create_token(owner, source="serving-test", city_wide=True, label="tests")
    with owner.connect() as conn:
        device = conn.execute(
            sa.text(
                "SELECT d.id FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.value_kind = 'analog' AND d.status = 'active' ORDER BY d.id LIMIT 1"
            )
        ).scalar_one()
    try:
        with serving(env, log_path=log_path, ready_path="/login") as base:
            text = log_path.read_text()
            assert "2 gunicorn workers, shared cache on Redis" in text
            assert text.count("Booting worker") == 2
            password = (data_dir / f"redis-{redis_port}" / "password").read_text().strip()
            local = redis.Redis(host="127.0.0.1", port=redis_port, password=password)
            web = requests.Session()
            web.cookies.set(SESSION_COOKIE, session.token)
            web.cookies.set(CSRF_COOKIE, session.csrf_token)
            assert web.get(base + "/", timeout=30).status_code == 200
            body = _refresh_body(web, base, "overview-tiles.children")
            # panel callbacks through gunicorn: answered, their results kept in Redis
            for _ in range(4):
                answer = web.post(
                    base + "/_dash-update-component",
                    headers={CSRF_HEADER: session.csrf_token, "Origin": base},
                    json=body,
                    timeout=30,
                )
                assert answer.status_code == 200, log_path.read_text()[-3000:]
            assert any(key.startswith(b"onescreen:result:") for key in local.scan_iter("*"))
            # a reading through the web workers' ingest API announces new data to everyone
            version = int(local.get(VERSION_KEY) or 0)
            stored = web.post(
                base + "/api/v1/readings",
                headers={"Authorization": f"Bearer {token}"},
                json=[{"device_id": device, "ts": datetime.now(UTC).isoformat(), "value": 1.0}],
                timeout=30,
            )
            assert stored.status_code == 200, stored.text[:300]
            assert int(local.get(VERSION_KEY) or 0) > version
        # the Redis serve started stops with it (not the harness's clean-up after it)
        assert not _port_open(redis_port)
        assert "stopped the redis-server" not in log_path.read_text()
        assert "Traceback" not in log_path.read_text()
    finally:
        owner.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def _listening(log: str) -> dict[int, int]:
    """Port → pid of each gunicorn master the serve log says is listening."""
    found = re.findall(r"Listening at: http://127\.0\.0\.1:(\d+) \((\d+)\)", log)
    return {int(port): int(pid) for port, pid in found}


def test_two_web_servers_behind_nginx_one_killed_no_request_fails(live_city_url):
    """ONESCREEN_WEB_INSTANCES=2: nginx spreads requests over two gunicorns; one is killed
    outright, every request still answers (nginx passes it to the other), and serve brings the
    dead one back on its port."""
    env = {
        "DATABASE_URL": live_city_url,
        "ONESCREEN_WEB_INSTANCES": "2",
        "ONESCREEN_WEB_WORKERS": "1",
        "ONESCREEN_SIMULATE": "false",
        "ONESCREEN_LOG_LEVEL": "INFO",
    }
    log_path = Path(tempfile.mkdtemp(prefix="onescreen-webs-")) / "serve.log"
    with serving(env, log_path=log_path, ready_path="/login", serve_args=["--no-ingest"]) as base:
        deadline = time.monotonic() + 60
        while len(_listening(log_path.read_text())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        masters = _listening(log_path.read_text())
        assert len(masters) == 2, log_path.read_text()[-2000:]
        assert "2 web servers of 1 gunicorn worker, shared cache on Redis" in log_path.read_text()
        # "Listening" is the master's line; each worker still loads the app before it answers
        for port in masters:
            _wait_for_answer(f"http://127.0.0.1:{port}/login", deadline=time.monotonic() + 90)
        # nginx rests a web server that refused it while it booted for FAIL_REST_S (5 s): a CI
        # run once met both at rest, and every request answered 502 for those seconds
        _wait_for_answer(base + "/login", deadline=time.monotonic() + 15)
        web = requests.Session()
        first = [web.get(base + "/login", timeout=30).status_code for _ in range(6)]
        assert first == [200] * 6, log_path.read_text()[-3000:] + _nginx_errors(log_path)
        # the pages' styles and scripts: fetched from a web server once, then nginx's own copy
        styles = re.findall(r'href="(/assets/[^"]+)"', web.get(base + "/login").text)
        assert styles
        fetched = [web.get(base + styles[0], timeout=30) for _ in range(2)]
        assert [answer.headers.get("X-Cache") for answer in fetched] == ["MISS", "HIT"]
        assert fetched[0].content == fetched[1].content and len(fetched[0].content) > 500
        assert "X-Cache" not in web.get(base + "/login").headers  # pages are never kept
        port, pid = sorted(masters.items())[0]
        os.kill(pid, signal.SIGKILL)  # its worker notices its parent gone and exits too
        answers = []
        for _ in range(40):
            answers.append(web.get(base + "/login", timeout=30).status_code)
            time.sleep(0.1)
        assert answers == [200] * 40
        while time.monotonic() < deadline + 60:
            again = _listening(log_path.read_text())
            if again.get(port) not in (None, pid):
                break
            time.sleep(0.5)
        assert again.get(port) not in (None, pid), log_path.read_text()[-2000:]
    assert "Traceback" not in log_path.read_text()


def _nginx_errors(log_path: Path) -> str:
    """The end of the error log of the nginx that the serve logging to `log_path` runs."""
    found = re.search(r"in (/\S+)/display-urls\.txt", log_path.read_text())
    logs = sorted(Path(found.group(1)).rglob("error.log")) if found else []
    return "".join(f"\n{log}:\n{log.read_text()[-2000:]}" for log in logs)


def _wait_for_answer(url: str, *, deadline: float) -> None:
    """Wait until `url` answers 200 (a web server that has finished loading the app)."""
    status = None
    while time.monotonic() < deadline:
        try:
            status = requests.get(url, timeout=10).status_code
        except requests.RequestException as error:
            status = repr(error)
        if status == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200 (last: {status})")


def _refresh_body(web: requests.Session, base: str, output_fragment: str) -> dict:
    """The body a browser posts on a refresh tick for the callback naming `output_fragment`
    (from the server's own callback list)."""
    dependencies = web.get(base + "/_dash-dependencies", timeout=30).json()
    spec = next(item for item in dependencies if output_fragment in item["output"])

    def fill(items: list[dict]) -> list[dict]:
        return [
            {
                "id": json.loads(item["id"]) if item["id"].startswith("{") else item["id"],
                "property": item["property"],
                "value": 1 if item["property"] == "n_intervals" else None,
            }
            for item in items
        ]

    outputs = [
        {
            "id": json.loads(part.rsplit(".", 1)[0])
            if part.startswith("{")
            else part.rsplit(".", 1)[0],
            "property": part.rsplit(".", 1)[1],
        }
        for part in spec["output"].strip(".").split("...")
    ]
    return {
        "output": spec["output"],
        "outputs": outputs if spec["output"].startswith("..") else outputs[0],
        "inputs": fill(spec["inputs"]),
        "state": fill(spec["state"]),
        "changedPropIds": ["os-refresh.n_intervals"],
    }


def test_one_worker_serves_without_redis(live_city_url, mqtt_broker):
    data_dir = Path(tempfile.mkdtemp(prefix="onescreen-single-"))
    data_dir.chmod(0o755)  # nginx's workers must reach their temp files
    env = {
        "DATABASE_URL": live_city_url,
        "ONESCREEN_DATA_DIR": str(data_dir),
        "ONESCREEN_WEB_WORKERS": "1",
        "ONESCREEN_SIMULATE": "false",
        "ONESCREEN_MQTT_URL": mqtt_broker,
        "ONESCREEN_MQTT_CLIENT_ID": f"single-{free_port()}",
        "ONESCREEN_REDIS_URL": "",
    }
    owner = create_db_engine(live_city_url)
    session = sign_in(owner)
    log_path = data_dir / "serve.log"
    try:
        with serving(env, log_path=log_path, ready_path="/login") as base:
            assert "(1 gunicorn worker, no Redis: per-process cache, behind nginx)" in (
                log_path.read_text()
            )
            web = requests.Session()
            web.cookies.set(SESSION_COOKIE, session.token)
            web.cookies.set(CSRF_COOKIE, session.csrf_token)
            body = _refresh_body(web, base, "overview-tiles.children")
            answer = web.post(
                base + "/_dash-update-component",
                headers={CSRF_HEADER: session.csrf_token, "Origin": base},
                json=body,
                timeout=30,
            )
            assert answer.status_code == 200 and "overview-tiles" in answer.text
        assert log_path.read_text().count("Booting worker") == 1
        assert not (data_dir / "redis-56379").exists()
    finally:
        owner.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_without_redis_server_serve_falls_back_to_one_process(monkeypatch, capsys):
    from cli.serve import _start_managed_redis
    from localservers.redis import ManagedRedis

    monkeypatch.setattr(ManagedRedis, "installed", staticmethod(lambda: False))
    # this module's shared-cache fixture may have named a Redis in the environment meanwhile
    settings = get_settings().model_copy(update={"redis_url": None})
    managed, after = _start_managed_redis(settings)
    assert managed is None and after.redis_url is None
    assert "redis-server is not installed" in capsys.readouterr().err


def test_jobs_runs_rules_and_status_refresh_and_stops_cleanly(live_city_url, redis_url):
    import os
    import signal
    import subprocess
    import sys
    import time

    from config import PROJECT_ROOT

    client = redis.Redis.from_url(redis_url)
    version = int(client.get(VERSION_KEY) or 0)
    env = {
        **os.environ,
        "DATABASE_URL": live_city_url,
        "ONESCREEN_REDIS_URL": redis_url,
        "ONESCREEN_STATUS_REFRESH_SECONDS": "5",
    }
    process = subprocess.Popen(
        [sys.executable, "cli.py", "jobs"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        # the status refresh announces new data on every pass
        while int(client.get(VERSION_KEY) or 0) <= version and time.monotonic() < deadline:
            time.sleep(0.2)
        assert int(client.get(VERSION_KEY) or 0) > version
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "background jobs: incident rules every" in output
    assert "Traceback" not in output
