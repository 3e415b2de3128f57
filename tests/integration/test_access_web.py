"""The web front door through the Flask stack: sign-in, throttling, the session gate, CSRF,
security headers, and forged callbacks of a district manager (the attacks the issue names)."""

from __future__ import annotations

import json
import re
import secrets

import pytest
import sqlalchemy as sa

from data import access
from tests.conftest import owner_of
from tests.dash_client import client_for, post_callback, sign_in
from web.session import CSRF_COOKIE, SESSION_COOKIE

pytestmark = pytest.mark.integration
PUDONG = "310115"
PASSWORD = "front door passphrase"


@pytest.fixture(scope="module")
def app(live_app):
    return live_app


@pytest.fixture(scope="module")
def owner(app):
    """The owner's engine on the app's database."""
    return owner_of(app)


def _other_district(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT district_adcode FROM incident WHERE district_adcode <> :p"
                " AND status = 'open' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            {"p": PUDONG},
        ).scalar_one()


def _login_form(client, path: str = "/login") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return re.search(r'name="form_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


# Signing in -----------------------------------------------------------------------------------


def test_pages_need_a_session_but_walls_static_files_and_geometry_do_not(app):
    client = app.server.test_client()
    for path in ("/", "/incidents", "/district/310115", "/device/1"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login?next=")
    assert client.get("/geo/district/310115/devices.json").status_code == 401
    assert client.get("/login").status_code == 200
    assert client.get("/wall").status_code == 200  # it says it needs a token
    assert client.get("/geo/districts.geojson").status_code == 200
    assert client.get("/assets/onescreen_login.css").status_code == 200


def test_sign_in_sets_safe_cookies_and_goes_where_it_was_asked(app, owner):
    name = f"op-{secrets.token_hex(3)}"
    access.create_user(owner, username=name, role="operator", password=PASSWORD)
    client = app.server.test_client()
    token = _login_form(client)
    response = client.post(
        "/login",
        data={"username": name, "password": PASSWORD, "form_token": token, "next": "/incidents"},
    )
    assert response.status_code == 303 and response.location == "/incidents"
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
    assert "HttpOnly" in cookies[SESSION_COOKIE] and "SameSite=Lax" in cookies[SESSION_COOKIE]
    assert "HttpOnly" not in cookies[CSRF_COOKIE]  # dash-renderer must read it
    page = client.get("/incidents")
    assert page.status_code == 200
    headers = page.headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
    entries = [e for e in access.audit_entries(owner, limit=20) if e["actor"] == name]
    assert entries and entries[0]["action"] == "login"


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_sign_in_never_redirects_off_site(app, owner, target):
    name = f"op-{secrets.token_hex(3)}"
    access.create_user(owner, username=name, role="operator", password=PASSWORD)
    client = app.server.test_client()
    token = _login_form(client)
    response = client.post(
        "/login", data={"username": name, "password": PASSWORD, "form_token": token, "next": target}
    )
    assert response.status_code == 303 and response.location == "/"


def test_sign_in_refuses_forms_without_their_token_and_wrong_passwords(app, owner):
    name = f"op-{secrets.token_hex(3)}"
    access.create_user(owner, username=name, role="operator", password=PASSWORD)
    client = app.server.test_client()
    _login_form(client)
    # a cross-site login form carries no token (and cannot read the cookie)
    forged = client.post("/login", data={"username": name, "password": PASSWORD})
    assert "页面已过期" in forged.get_data(as_text=True)
    assert SESSION_COOKIE not in str(forged.headers)
    token = _login_form(client)
    wrong = client.post("/login", data={"username": name, "password": "nope", "form_token": token})
    assert "用户名或密码错误" in wrong.get_data(as_text=True)
    assert SESSION_COOKIE not in str(wrong.headers)
    cross = client.post(
        "/login",
        data={"username": name, "password": PASSWORD, "form_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403


def test_brute_force_sign_in_is_throttled_with_retry_after(app, owner):
    name = f"op-{secrets.token_hex(3)}"
    access.create_user(owner, username=name, role="operator", password=PASSWORD)
    client = app.server.test_client()
    statuses = []
    for attempt in range(access.MAX_FAILURES_PER_USER_AND_ADDRESS + 1):
        token = _login_form(client)
        statuses.append(
            client.post(
                "/login",
                data={"username": name, "password": f"guess{attempt}", "form_token": token},
            ).status_code
        )
    assert statuses == [200] * access.MAX_FAILURES_PER_USER_AND_ADDRESS + [429]
    token = _login_form(client)
    locked = client.post(
        "/login", data={"username": name, "password": PASSWORD, "form_token": token}
    )
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    actions = {e["action"] for e in access.audit_entries(owner, limit=50) if e["actor"] == name}
    assert {"login-failed", "login-throttled"} <= actions and "login" not in actions


def test_first_start_setup_creates_the_administrator_once(app, owner, monkeypatch):
    monkeypatch.setattr(access, "has_admin", lambda engine: False)
    code = access.issue_setup_code(owner)
    client = app.server.test_client()
    token = _login_form(client, f"/setup?code={code}")
    name = f"root-{secrets.token_hex(3)}"
    mismatch = client.post(
        "/setup",
        data={
            "code": code,
            "username": name,
            "password": PASSWORD,
            "again": "x",
            "form_token": token,
        },
    )
    assert "两次输入的密码不一致" in mismatch.get_data(as_text=True)
    token = _login_form(client, f"/setup?code={code}")
    done = client.post(
        "/setup",
        data={
            "code": code,
            "username": name,
            "password": PASSWORD,
            "again": PASSWORD,
            "form_token": token,
        },
    )
    assert done.status_code == 303 and access.find_user(owner, username=name).is_admin
    token = _login_form(client, f"/setup?code={code}")
    again = client.post(
        "/setup",
        data={
            "code": code,
            "username": name + "x",
            "password": PASSWORD,
            "again": PASSWORD,
            "form_token": token,
        },
    )
    assert again.status_code == 200 and access.find_user(owner, username=name + "x") is None


# CSRF and sessions ----------------------------------------------------------------------------


def _tiles(app, district: str, session, **kwargs):
    values = {
        "district-state.data": {"district": district},
        "os-lang.data": "zh",
    }

    def value_of(ident, prop):
        name = ident["key"] if isinstance(ident, dict) else ident
        return values.get(f"{name}.{prop}")

    return post_callback(app, "district-tiles.children", value_of, session=session, **kwargs)


def test_callbacks_without_the_csrf_token_are_refused(app, owner):
    session = sign_in(owner, role="operator")
    assert _tiles(app, PUDONG, session).status_code == 200
    assert _tiles(app, PUDONG, session, csrf="").status_code == 403
    assert _tiles(app, PUDONG, session, csrf="forged-token-123").status_code == 403
    assert _tiles(app, PUDONG, session, csrf="\u00fc\u00e9-not-ascii").status_code == 403
    other = sign_in(owner, role="operator")
    assert _tiles(app, PUDONG, session, csrf=other.csrf_token).status_code == 403


def test_sign_out_needs_the_csrf_token_and_ends_the_session(app, owner):
    session = sign_in(owner, role="viewer")
    client = client_for(app, session)
    assert client.get("/incidents").status_code == 200
    assert client.post("/logout").status_code == 403  # a cross-site form cannot sign you out
    out = client.post("/logout", data={"csrf_token": session.csrf_token})
    assert out.status_code == 303 and out.location == "/login"
    client.set_cookie(SESSION_COOKIE, session.token)  # replaying the old cookie
    assert client.get("/incidents").status_code == 302


# A district manager forging requests -------------------------------------------------------


def test_a_district_manager_gets_nothing_of_another_district(app, owner):
    other = _other_district(owner)
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    client = client_for(app, manager)
    # pages and the device layer
    assert client.get("/").location == f"/district/{PUDONG}"
    assert client.get(f"/geo/district/{other}/devices.json?zoom=11").status_code == 403
    assert client.get(f"/geo/district/{PUDONG}/devices.json?zoom=11").status_code == 200
    # the district tiles callback with the other district's code
    forged = _tiles(app, other, manager)
    assert forged.status_code == 204  # nothing at all
    own = _tiles(app, PUDONG, manager)
    assert own.status_code == 200
    # the incidents table with the other district as filter: none of its incidents
    values = {"incidents-district.value": other, "os-lang.data": "zh"}

    def value_of(ident, prop):
        name = ident["key"] if isinstance(ident, dict) else ident
        return values.get(f"{name}.{prop}")

    table = post_callback(app, "incidents-table.data", value_of, session=manager)
    assert table.status_code == 200
    rows = table.get_json()["response"]["incidents-table"]["data"]
    with owner.connect() as conn:
        other_titles = set(
            conn.execute(
                sa.text("SELECT title_zh FROM incident WHERE district_adcode = :d"), {"d": other}
            ).scalars()
        )
        pudong_titles = set(
            conn.execute(
                sa.text("SELECT title_zh FROM incident WHERE district_adcode = :d"), {"d": PUDONG}
            ).scalars()
        )
    assert rows == [] or {row["title"] for row in rows} <= pudong_titles
    assert not ({row["title"] for row in rows} & (other_titles - pudong_titles))


def test_a_district_manager_cannot_act_on_another_districts_incident(app, owner):
    other = _other_district(owner)
    with owner.connect() as conn:
        incident = conn.execute(
            sa.text(
                "SELECT id FROM incident WHERE district_adcode = :d AND status = 'open' LIMIT 1"
            ),
            {"d": other},
        ).scalar_one()
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    values = {
        "incidents-selected.data": incident,
        "incidents-note.value": "forged acknowledgement",
        "incidents-action-done.data": 0,
        "os-lang.data": "en",
    }

    def value_of(ident, prop):
        if isinstance(ident, dict):  # the ALL button list: one click on "acknowledge"
            return [1]
        return values.get(f"{ident}.{prop}")

    response = post_callback(
        app,
        "incidents-action-message.children",
        value_of,
        session=manager,
    )
    body = response.get_data(as_text=True)
    assert response.status_code in (200, 204)
    assert "done" not in body
    with owner.connect() as conn:
        status, events = conn.execute(
            sa.text(
                "SELECT status, (SELECT count(*) FROM incident_event e WHERE e.incident_id = i.id"
                " AND e.note = 'forged acknowledgement') FROM incident i WHERE id = :id"
            ),
            {"id": incident},
        ).one()
    assert status == "open" and events == 0


def test_a_wall_token_cannot_act(app, owner):
    from data.displays import create_display_token

    token = create_display_token(owner, kind="wall")
    with owner.connect() as conn:
        incident = conn.execute(
            sa.text("SELECT id FROM incident WHERE status = 'open' LIMIT 1")
        ).scalar_one()
    values = {
        "incidents-selected.data": incident,
        "incidents-note.value": "wall says hi",
        "incidents-action-done.data": 0,
        "os-lang.data": "en",
        # the wall's config store does not exist on this page; a token anywhere changes nothing
        "wall-config.data": {"token": token},
    }

    def value_of(ident, prop):
        if isinstance(ident, dict):
            return [1]
        return values.get(f"{ident}.{prop}")

    response = post_callback(app, "incidents-action-message.children", value_of)
    assert response.status_code == 204
    with owner.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM incident WHERE id = :id"), {"id": incident}
        ).scalar_one()
    assert status == "open"


def test_another_districts_device_page_is_not_found_for_a_district_manager(app, owner):
    import dash
    from plotly.utils import PlotlyJSONEncoder

    from data.access import Principal
    from tests.dash_client import request_as

    other = _other_district(owner)
    with owner.connect() as conn:
        foreign, own = (
            conn.execute(
                sa.text("SELECT min(id) FROM device WHERE district_adcode = :d"), {"d": code}
            ).scalar_one()
            for code in (other, PUDONG)
        )
    manager = Principal(0, "pudong-test", "", "district_manager", (PUDONG,))
    page = next(p for p in dash.page_registry.values() if p["module"].endswith("device"))
    with request_as(app, manager):
        refused = json.dumps(
            page["layout"](device_id=str(foreign)), cls=PlotlyJSONEncoder, ensure_ascii=False
        )
        shown = json.dumps(
            page["layout"](device_id=str(own)), cls=PlotlyJSONEncoder, ensure_ascii=False
        )
    assert f"没有编号为 {foreign} 的设备" in refused
    assert f"没有编号为 {own} 的设备" not in shown
