"""Wall and kiosk callbacks through the Flask stack with forged and hostile browser values."""

from __future__ import annotations

import json
import math
import time

import pytest
import sqlalchemy as sa

from data.displays import create_display_token, revoke_display_tokens
from tests.conftest import app_on, owner_of
from tests.dash_client import post_callback

pytestmark = pytest.mark.integration
PUDONG, HUANGPU = "310115", "310101"


@pytest.fixture(scope="module")
def app(live_city_url):
    with app_on(live_city_url) as dash_app:
        dash_app.server.test_client().get("/")
        yield dash_app


def _post(app, output_fragment: str, values: dict):
    """POST a callback with `values` named by the full "id.property" as Dash writes them."""

    def value_of(ident, prop):
        name = (
            json.dumps(ident, separators=(",", ":"), sort_keys=True)
            if isinstance(ident, dict)
            else ident
        )
        return values.get(f"{name}.{prop}")

    return post_callback(app, output_fragment, value_of)


SLOT_A_VIEW = '{"slot":"a","type":"wall-view"}.data'
SLOT_A_SENT = '{"slot":"a","type":"wall-sent"}.data'


def _slot(app, token: str, view: dict, **config: object):
    return _post(
        app,
        '{"slot":"a","type":"wall-tiles"}.children',
        {
            SLOT_A_VIEW: view,
            "os-refresh.n_intervals": 1,
            SLOT_A_SENT: None,
            "wall-config.data": {
                "token": token,
                "lang": "zh",
                "metric": "open_incidents",
                **config,
            },
        },
    )


def view(district=None, street=None, category=None, **extra) -> dict:
    place = street or district or "city"
    return {"district": district, "street": street, "category": category, "key": place, **extra}


def test_a_valid_view_returns_the_slot_and_its_readiness(app):
    token = create_display_token(owner_of(app), kind="wall", label="cb wall")
    response = _slot(app, token, view(PUDONG))
    assert response.status_code == 200, response.data[:300]
    body = response.get_json()["response"]
    assert body['{"slot":"a","type":"wall-ready"}']["data"] == {
        "key": PUDONG,
        "title": "浦东新区 · 区级态势",
    }
    assert body['{"slot":"a","type":"wall-areas"}']["url"].endswith(f"/{PUDONG}/streets.geojson")


@pytest.mark.parametrize(
    "forged",
    [
        view(HUANGPU),  # outside the token's district
        view(None),  # the whole city, for a district token
        view(["310115"]),  # unhashable
        view(PUDONG, street="310101002"),  # a street of another district
        view(PUDONG, category="'; DROP TABLE incident; --"),
        {"district": {"$ne": 1}},
        "city",
        None,
    ],
)
def test_a_district_token_gets_nothing_outside_its_district(app, forged):
    token = create_display_token(owner_of(app), kind="wall", district=PUDONG, label="cb pudong")
    response = _slot(app, token, forged)
    assert response.status_code == 204, response.data[:300]


@pytest.mark.parametrize(
    "config",
    [
        {"token": "wrong-token-wrong-token-wrong-tok"},
        {"token": ["a list"]},
        {"token": None},
        {"token": "x" * 10_000},
    ],
)
def test_no_valid_token_no_data(app, config):
    response = _slot(app, config["token"], view(PUDONG))
    assert response.status_code == 204


def test_hostile_focus_and_metric_values_do_not_break_the_slot(app):
    token = create_display_token(owner_of(app), kind="wall", label="cb hostile")
    focus = {"id": "1; drop", "lon": math.inf, "lat": "x", "severity": "<b>"}
    response = _slot(app, token, view(PUDONG, focus=focus), metric="DROP TABLE", lang="klingon")
    assert response.status_code == 200, response.data[:300]
    body = response.get_json()["response"]
    assert body['{"slot":"a","type":"wall-focus"}']["data"]["features"] == []
    assert "未结事件" in json.dumps(body, ensure_ascii=False)  # default metric and language


def test_a_kiosk_token_always_gets_masked_data_even_claiming_to_be_a_wall(app):
    engine = owner_of(app)
    with engine.begin() as conn:
        elderly = conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, title_zh, title_en, opened_at, geom)"
                " SELECT d.id, d.type_id, 'elderly', d.district_adcode, d.street_code,"
                " 'cb_test', 'major', s.name_zh || '紧急呼叫按钮报警 张阿姨家',"
                " 'SOS button alarm', now(), d.geom"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " JOIN street s ON s.code = d.street_code"
                " WHERE t.category_code = 'elderly' ORDER BY d.id LIMIT 1"
                " RETURNING district_adcode, title_zh"
            )
        ).one()
    kiosk = create_display_token(engine, kind="kiosk", label="cb kiosk")
    wall = create_display_token(engine, kind="wall", label="cb wall 2")
    target = view(elderly.district_adcode, category="elderly")
    forged = json.dumps(_slot(app, kiosk, target, mode="wall").get_json(), ensure_ascii=False)
    assert elderly.title_zh not in forged and "养老服务事件" in forged
    honest = json.dumps(_slot(app, wall, target, mode="wall").get_json(), ensure_ascii=False)
    assert elderly.title_zh in honest


def test_alerts_say_revoked_once_the_token_is_revoked(app):
    token = create_display_token(owner_of(app), kind="wall", label="cb doomed")
    values = {
        "os-refresh.n_intervals": 3,
        "wall-marks.data": {"settled": "NaN", "incident": [1]},
        "wall-watch.data": ["1", -5, 10**20, None],
        "wall-config.data": {"token": token, "lang": "zh"},
    }
    response = _post(app, "wall-alerts.data", values)
    assert response.status_code == 200, response.data[:300]
    assert response.get_json()["response"]["wall-alerts"]["data"]["new"] == []
    revoke_display_tokens(owner_of(app), token=token)
    time.sleep(1.1)  # the grant is cached for a second
    response = _post(app, "wall-alerts.data", values)
    assert response.get_json()["response"]["wall-alerts"]["data"]["revoked"] is True


def test_a_kiosk_learns_no_incident_statuses(app):
    engine = owner_of(app)
    with engine.connect() as conn:
        watched = list(
            conn.execute(sa.text("SELECT id FROM incident ORDER BY id LIMIT 5")).scalars()
        )
    values = {
        "os-refresh.n_intervals": 3,
        "wall-marks.data": {"settled": "-1"},
        "wall-watch.data": watched,
    }
    answers = {}
    for kind in ("wall", "kiosk"):
        token = create_display_token(engine, kind=kind, label=f"cb statuses {kind}")
        config = {"token": token, "lang": "zh", "mode": kind}
        response = _post(app, "wall-alerts.data", {**values, "wall-config.data": config})
        assert response.status_code == 200, response.data[:300]
        answers[kind] = response.get_json()["response"]["wall-alerts"]["data"]["statuses"]
    assert len(answers["wall"]) == len(watched) and answers["kiosk"] == {}
