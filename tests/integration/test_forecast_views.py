"""Early warning (预警) on the device page, the incidents page, walls and kiosks, through the
Flask stack as the web role: the engine's incidents are inserted as the owner per the revision
0006 contract (kind, expected_at, detail, foreseen_by, lead_s) with a learned normal."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from plotly.utils import PlotlyJSONEncoder

from data.devices import device_baseline, forecast_rules
from data.displays import create_display_token
from data.incident_reads import (
    IncidentMarks,
    device_findings,
    forecast_summary,
    imminent_forecasts,
    incident_list,
    incident_marks,
    new_critical_incidents,
)
from tests.conftest import app_on, owner_of
from tests.dash_client import post_callback, request_as, sign_in
from tests.forecast_data import (
    baseline,
    forecast_detail,
    open_incident,
    ponding_device,
    ramp,
    supersede,
)

pytestmark = pytest.mark.integration
PUDONG = "310115"
NEAR_TITLE = ("预计 20 分钟后超过报警值 15 cm", "Forecast: above alarm limit 15 cm in 20 min")
SECRET_TITLE = ("他区预警（不应可见）", "Other district's forecast (must stay hidden)")


@pytest.fixture(scope="module")
def app(live_city_url):
    with app_on(live_city_url) as dash_app:
        dash_app.server.test_client().get("/login")  # Dash registers callbacks on a first request
        yield dash_app


@pytest.fixture(scope="module")
def scene(app) -> dict:
    """A ramping underpass in Pudong with a critical 预警 20 min out, one 50 min out, a
    device-health finding, a 预警 superseded by its alarm, and another district's 预警."""
    owner = owner_of(app)
    marks = incident_marks(owner)
    with owner.connect() as conn:
        other = conn.execute(
            sa.text(
                "SELECT d.district_adcode FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE d.district_adcode <> :p AND t.code LIKE 'flood.ponding.%'"
                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            {"p": PUDONG},
        ).scalar_one()
    ramping = ponding_device(owner, district=PUDONG)
    ramp(owner, ramping)
    baseline(owner, ramping.id, median=1.0, spread=0.5)
    detail = forecast_detail(ramping.limit, minutes=20, value=0.8 * ramping.limit)
    near = open_incident(
        owner, ramping.id, kind="forecast", minutes_ahead=20, rule_code="forecast_high",
        detail=detail, title=NEAR_TITLE,
    )  # fmt: skip
    health = open_incident(
        owner, ramping.id, kind="health", severity="minor", rule_code="stuck",
        detail={"check": "stuck", "because_zh": "读数连续 12 次完全相同",
                "because_en": "12 identical readings in a row"},
        title=("传感器读数停滞", "Sensor stuck"),
    )  # fmt: skip
    far_device = ponding_device(owner, district=PUDONG, skip=1)
    far = open_incident(
        owner, far_device.id, kind="forecast", minutes_ahead=50, rule_code="forecast_high",
        detail=forecast_detail(far_device.limit, minutes=50, value=9.0),
    )  # fmt: skip
    foreseen_device = ponding_device(owner, district=PUDONG, skip=2)
    foreseen = open_incident(
        owner, foreseen_device.id, kind="forecast", minutes_ahead=1, rule_code="forecast_high",
        detail=forecast_detail(foreseen_device.limit, minutes=1, value=14.0),
        opened_minutes_ago=23,
    )  # fmt: skip
    alarm = supersede(owner, foreseen, lead_s=23 * 60)
    hidden_device = ponding_device(owner, district=other)
    hidden = open_incident(
        owner, hidden_device.id, kind="forecast", minutes_ahead=10, rule_code="forecast_high",
        detail=forecast_detail(hidden_device.limit, minutes=10, value=12.0), title=SECRET_TITLE,
    )  # fmt: skip
    return {
        "marks": marks,
        "other": other,
        "ramping": ramping,
        "near": near,
        "health": health,
        "far": far,
        "foreseen": foreseen,
        "alarm": alarm,
        "hidden": hidden,
    }


def _post(app, output_fragment: str, values: dict, *, session=None):
    def value_of(ident, prop):
        name = (
            json.dumps(ident, separators=(",", ":"), sort_keys=True)
            if isinstance(ident, dict)
            else ident
        )
        return values.get(f"{name}.{prop}")

    return post_callback(app, output_fragment, value_of, session=session)


def _texts(node) -> str:
    """Every string in a Dash component tree as JSON (for "does it say …")."""
    return json.dumps(node, ensure_ascii=False, cls=PlotlyJSONEncoder)


# The reads ----------------------------------------------------------------------------------


def test_reads_tell_the_kinds_apart(app, scene):
    owner = owner_of(app)
    from datetime import timedelta

    from data.clock import database_now

    end = database_now(owner) + timedelta(minutes=1)
    frame = incident_list(
        owner, start=end - timedelta(days=1), end=end, district=PUDONG, kinds=("forecast",)
    )
    assert set(frame["kind"]) == {"forecast"}
    assert {scene["near"], scene["far"], scene["foreseen"]} <= set(frame["id"])
    alarms = incident_list(owner, start=end - timedelta(days=1), end=end, kinds=("alarm",))
    assert scene["alarm"] in set(alarms["id"]) and scene["near"] not in set(alarms["id"])
    findings = device_findings(owner, device_id=scene["ramping"].id)
    assert set(findings["kind"]) == {"forecast", "health"}
    assert findings.set_index("id").loc[scene["near"], "detail"]["because_en"].startswith("Pond")
    # a wall takes a critical 预警 when its breach is near, not when it is opened
    coming = imminent_forecasts(owner, within_s=1800, district=PUDONG)
    assert scene["near"] in set(coming["id"]) and scene["far"] not in set(coming["id"])
    assert scene["hidden"] not in set(coming["id"]) and scene["foreseen"] not in set(coming["id"])
    news, _ = new_critical_incidents(owner, after=scene["marks"])
    assert scene["near"] not in set(news["id"]) and scene["alarm"] in set(news["id"])
    summary = forecast_summary(owner, district=PUDONG)
    assert "device_id" not in summary and "title_zh" not in summary
    assert summary["forecasts"].sum() >= 2
    learned = device_baseline(owner, device_id=scene["ramping"].id)
    assert learned is not None and learned.slots == 24 and learned.median[0] == 1.0
    rules = forecast_rules(
        owner, type_id=_type_of(owner, scene), category="flood", value_kind="analog"
    )
    assert [rule.code for rule in rules] == ["forecast_high"] and rules[0].horizon_s == 3600


def _type_of(owner, scene) -> int:
    with owner.connect() as conn:
        return conn.execute(
            sa.text("SELECT type_id FROM device WHERE id = :id"), {"id": scene["ramping"].id}
        ).scalar_one()


def test_bad_reads_are_refused(app):
    from data.checks import InvalidQuery

    owner = owner_of(app)
    with pytest.raises(InvalidQuery):
        imminent_forecasts(owner, within_s=5)
    with pytest.raises(InvalidQuery):
        forecast_summary(owner, district="'; drop")
    with pytest.raises(InvalidQuery):
        device_findings(owner, device_id=-1)
    with pytest.raises(InvalidQuery):
        new_critical_incidents(owner, after=IncidentMarks(0), limit=0)


# The device page ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_device_chart_draws_the_forecast_and_the_learned_normal(app, scene, lang):
    session = sign_in(owner_of(app), role="operator")
    values = {
        "device-window.value": "6h",
        "os-refresh.n_intervals": 1,
        "device-id.data": scene["ramping"].id,
        "os-lang.data": lang,
    }
    response = _post(app, "device-series.figure", values, session=session)
    assert response.status_code == 200, response.data[:300]
    answer = response.get_json()["response"]
    names = [trace.get("name") for trace in answer["device-series"]["figure"]["data"]]
    expected = (
        ["Usual range (median ± spread)", "Forecast", "Expected breach"]
        if lang == "en"
        else ["常态范围（中位数 ± 离散度）", "趋势预测", "预计超限"]
    )
    for label in expected:
        assert label in names, names
    why = _texts(answer["device-why"]["children"])
    assert ("Ponding has risen" if lang == "en" else "积水深度 30 分钟内持续上升") in why
    assert ("12 identical readings" if lang == "en" else "读数连续 12 次完全相同") in why
    assert f"incident={scene['near']}" in why


# The incidents page -------------------------------------------------------------------------


def _table(app, session, **values):
    base = {"os-lang.data": "zh", "incidents-window.value": "24h", "os-refresh.n_intervals": 1}
    response = _post(
        app,
        "incidents-table.data",
        {**base, **{f"incidents-{k}.value": v for k, v in values.items()}},
        session=session,
    )
    assert response.status_code == 200, response.data[:300]
    return response.get_json()["response"]["incidents-table"]["data"]


def test_the_incidents_table_filters_by_kind_and_counts_down(app, scene):
    session = sign_in(owner_of(app), role="operator")
    rows = _table(app, session, kind="forecast", district=PUDONG)
    assert rows and {row["kind"] for row in rows} == {"预警"}
    near = next(row for row in rows if row["id"] == scene["near"])
    assert near["expected"] in {"19 分钟后", "20 分钟后"}
    resolved = next(row for row in rows if row["id"] == scene["foreseen"])
    assert resolved["expected"] == ""  # superseded: no countdown
    health = _table(app, session, kind="health", district=PUDONG)
    assert scene["health"] in {row["id"] for row in health}
    assert {row["kind"] for row in health} == {"设备健康"}
    # a forged kind is not a filter: everything, as for "all"
    forged = _table(app, session, kind="'; DROP TABLE incident; --", district=PUDONG)
    assert {"预警", "设备健康"} <= {row["kind"] for row in forged}


def test_a_bad_kind_in_the_url_is_refused_with_a_notice(app):
    import pages.incidents as page

    with request_as(app):
        bad = _texts(page.layout(kind="<script>"))
        good = _texts(page.layout(kind="forecast"))
    assert "参数 kind 的取值无效" in bad and "<script>" not in bad
    assert "参数 kind 的取值无效" not in good and '"value": "forecast"' in good


def _detail(app, session, incident_id: int, lang: str = "zh"):
    values = {
        "incidents-selected.data": incident_id,
        "incidents-action-done.data": 0,
        "os-refresh.n_intervals": 1,
        "os-lang.data": lang,
    }
    response = _post(app, "incidents-detail.children", values, session=session)
    assert response.status_code == 200, response.data[:300]
    return _texts(response.get_json()["response"])


def test_the_detail_says_why_and_how_far_ahead_an_alarm_was_foreseen(app, scene):
    session = sign_in(owner_of(app), role="operator")
    forecast = _detail(app, session, scene["near"])
    assert "研判依据" in forecast and "积水深度 30 分钟内持续上升" in forecast
    assert "93%" in forecast and "超限概率" in forecast
    alarm = _detail(app, session, scene["alarm"])
    assert "提前 23 分钟预警" in alarm and f"incident={scene['foreseen']}" in alarm
    english = _detail(app, session, scene["foreseen"], lang="en")
    assert f"Superseded by alarm #{scene['alarm']}" in english
    assert "Superseded by the alarm" in english  # the 'superseded' event in the history


def test_a_district_manager_sees_no_other_districts_forecast(app, scene):
    manager = sign_in(owner_of(app), role="district_manager", districts=(PUDONG,))
    rows = _table(app, manager, kind="forecast", district=scene["other"])
    assert SECRET_TITLE[0] not in {row["title"] for row in rows}
    everywhere = _table(app, manager, kind="forecast")
    assert scene["hidden"] not in {row["id"] for row in everywhere}
    assert scene["near"] in {row["id"] for row in everywhere}
    forged = _detail(app, manager, scene["hidden"])
    assert SECRET_TITLE[0] not in forged and "事件不存在" in forged


# Walls and kiosks ---------------------------------------------------------------------------


def _alerts(app, token: str, mode: str, marks: IncidentMarks) -> dict:
    values = {
        "os-refresh.n_intervals": 3,
        "wall-marks.data": {"settled": str(marks.settled)},
        "wall-watch.data": [],
        "wall-config.data": {"token": token, "lang": "zh", "mode": mode},
    }
    response = _post(app, "wall-alerts.data", values)
    assert response.status_code == 200, response.data[:300]
    return response.get_json()["response"]["wall-alerts"]["data"]


def test_a_wall_is_told_of_a_critical_forecast_near_its_breach_a_kiosk_is_not(app, scene):
    owner = owner_of(app)
    wall = create_display_token(owner, kind="wall", district=PUDONG, label="fx wall")
    news = _alerts(app, wall, "wall", scene["marks"])["new"]
    forecasts = {item["id"]: item for item in news if item["kind"] == "forecast"}
    assert scene["near"] in forecasts and scene["far"] not in forecasts
    assert scene["hidden"] not in forecasts  # another district's, for a district wall
    assert forecasts[scene["near"]]["expected"] > 0
    assert any(item["id"] == scene["alarm"] and item["kind"] == "alarm" for item in news)
    kiosk = create_display_token(owner, kind="kiosk", label="fx kiosk")
    assert _alerts(app, kiosk, "kiosk", scene["marks"])["new"] == []


def test_the_attention_card_of_a_forecast_is_not_an_alarms(app, scene):
    wall = create_display_token(owner_of(app), kind="wall", label="fx wall card")
    values = {
        "wall-attention.data": {"incident": {"id": scene["near"]}, "queued": 0, "overflow": 0},
        "os-refresh.n_intervals": 1,
        "wall-config.data": {"token": wall, "lang": "zh", "mode": "wall"},
    }
    response = _post(app, "wall-attention-body.children", values)
    assert response.status_code == 200, response.data[:300]
    card = _texts(response.get_json()["response"]["wall-attention-body"]["children"])
    assert "os-wall-fx-badge" in card and "尚未超限" in card and "分钟后" in card
    assert "紧急" not in card


def test_a_kiosk_shows_forecasts_by_area_without_devices(app, scene):
    kiosk = create_display_token(owner_of(app), kind="kiosk", label="fx kiosk strip")
    values = {
        "os-refresh.n_intervals": 1,
        "wall-config.data": {"token": kiosk, "lang": "zh", "mode": "kiosk"},
    }
    response = _post(app, "kiosk-forecasts.children", values)
    assert response.status_code == 200, response.data[:300]
    strip = _texts(response.get_json()["response"]["kiosk-forecasts"]["children"])
    assert "预警提示" in strip and "防汛" in strip
    assert scene["ramping"].code not in strip and NEAR_TITLE[0] not in strip
