"""Early warning (预警) in Chromium: the device chart's forecast band, the incidents page's kind
filter, a wall's attention for a critical 预警 and a kiosk's public strip, zh and en, with
screenshots at 1920×1080 and 3840×2160 (also copied to /tmp/shots/views for review)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from data.displays import create_display_token
from tests.browser.conftest import open_page, screenshot
from tests.forecast_data import (
    baseline,
    forecast_detail,
    open_incident,
    ponding_device,
    ramp,
    supersede,
)

pytestmark = pytest.mark.browser
PUDONG = "310115"
SHOTS = Path("/tmp/shots/views")
TITLE = ("预计 20 分钟后超过报警值 15 cm", "Forecast: above alarm limit 15 cm in 20 min")


@pytest.fixture(scope="module")
def scene(live_engine) -> Iterator[dict]:
    """A Pudong underpass ramping to its limit with a critical 预警 20 min out and a learned
    normal, and an alarm a 预警 foresaw 23 min ahead; all resolved afterwards (other modules'
    walls must not be drawn to them)."""
    device = ponding_device(live_engine, district=PUDONG, skip=3)
    ramp(live_engine, device)
    baseline(live_engine, device.id, median=1.0, spread=0.6)
    near = open_incident(
        live_engine, device.id, kind="forecast", minutes_ahead=20, rule_code="forecast_high",
        detail=forecast_detail(device.limit, minutes=20, value=0.8 * device.limit), title=TITLE,
    )  # fmt: skip
    other = ponding_device(live_engine, district=PUDONG, skip=4)
    foreseen = open_incident(
        live_engine, other.id, kind="forecast", minutes_ahead=1, rule_code="forecast_high",
        detail=forecast_detail(other.limit, minutes=1, value=14.0), opened_minutes_ago=23,
    )  # fmt: skip
    alarm = supersede(live_engine, foreseen, lead_s=23 * 60)
    yield {"device": device, "near": near, "foreseen": foreseen, "alarm": alarm}
    with live_engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE incident SET status = 'resolved', resolved_at = now()"
                " WHERE id = ANY(:ids) AND status <> 'resolved'"
            ),
            {"ids": [near, alarm]},
        )


def _shot(page, name: str) -> None:
    path = screenshot(page, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


@pytest.mark.parametrize(("lang", "size"), [("zh", "1920x1080"), ("en", "3840x2160")])
def test_the_device_chart_shows_the_forecast_band_and_why(live_server, browser, scene, lang, size):
    page, log = open_page(browser, size)
    query = "?lang=en&window=6h" if lang == "en" else "?window=6h"
    page.goto(f"{live_server}/device/{scene['device'].id}{query}")
    legend = page.locator("#device-series .legend")
    forecast, band = ("Forecast", "Usual range") if lang == "en" else ("趋势预测", "常态范围")
    expect(legend).to_contain_text(forecast, timeout=30_000)
    expect(legend).to_contain_text(band)
    expect(page.locator("#device-series")).to_contain_text(
        re.compile("Breach expected" if lang == "en" else "预计 .* 超限")
    )
    why = page.locator("#device-why-list")
    expect(why).to_contain_text(TITLE[1] if lang == "en" else TITLE[0])
    expect(why.locator(".os-kind-forecast")).to_be_visible()
    _shot(page, f"fx-device-{lang}")
    page.context.close()
    assert log.errors == [], log.errors


@pytest.mark.parametrize("size", ["1920x1080", "3840x2160"])
def test_the_incidents_page_filters_to_forecasts_from_the_url(live_server, browser, scene, size):
    page, log = open_page(browser, size)
    page.goto(f"{live_server}/incidents?kind=forecast&incident={scene['near']}")
    table = page.locator("#incidents-table")
    expect(table).to_contain_text(TITLE[0], timeout=30_000)
    kinds = table.locator("td[data-dash-column='kind']")
    assert set(kinds.all_inner_texts()) == {"预警"}
    # the scene's 预警 (the live city's own, opened by the engine meanwhile, may be listed too)
    row = table.locator("tr", has_text=TITLE[0]).first
    expect(row.locator("td[data-dash-column='expected']")).to_contain_text("分钟后")
    detail = page.locator("#incidents-detail")
    expect(detail).to_contain_text("研判依据")
    expect(detail).to_contain_text("超限概率")
    _shot(page, "fx-incidents-forecast")
    # another kind chosen on the page: the URL follows, the rows change
    page.locator("#incidents-kind label", has_text="告警").click()
    expect(page).to_have_url(re.compile(r"kind=alarm"))
    expect(table.locator("td[data-dash-column='kind']").first).to_have_text("告警")
    page.context.close()
    assert log.errors == [], log.errors


def test_a_foreseen_alarm_links_to_its_forecast(live_server, browser, scene):
    page, log = open_page(browser)
    page.goto(f"{live_server}/incidents?lang=en&incident={scene['alarm']}")
    link = page.locator("#incident-foreseen-link")
    expect(page.locator(".os-foreseen").first).to_contain_text("Foreseen 23 min ahead")
    link.click()
    expect(page).to_have_url(re.compile(rf"incident={scene['foreseen']}"))
    expect(page.locator("#incidents-detail")).to_contain_text(
        f"Superseded by alarm #{scene['alarm']}"
    )
    page.context.close()
    assert log.errors == [], log.errors


def test_an_unknown_kind_is_refused_cleanly(live_server, browser):
    page, log = open_page(browser)
    page.goto(f"{live_server}/incidents?kind=%3Cscript%3Ealert(1)%3C/script%3E")
    expect(page.locator(".os-filter-note")).to_contain_text("参数 kind 的取值无效")
    expect(page.locator("#incidents-kind label:has(input:checked)")).to_have_text("全部")
    page.context.close()
    assert log.errors == [], log.errors


@pytest.mark.parametrize(("lang", "size"), [("zh", "1920x1080"), ("en", "3840x2160")])
def test_a_critical_forecast_takes_the_wall_in_its_own_colour(
    live_server_fast, live_engine, browser, scene, lang, size
):
    token = create_display_token(live_engine, kind="wall", district=PUDONG, label="fx wall")
    page, log = open_page(browser, size, user=None)
    params = urlencode({"token": token, "views": PUDONG, "interval": 3600, "lang": lang})
    page.goto(f"{live_server_fast}/wall?{params}")
    root = page.locator("#wall-root")
    expect(root).to_have_class(re.compile("os-wall-attention-forecast"), timeout=40_000)
    card = page.locator("#wall-attention-body")
    # the soonest critical 预警 of the district (other modules' may be nearer than ours)
    expect(card).to_contain_text(
        re.compile("above alarm limit" if lang == "en" else "超过报警值"), timeout=20_000
    )
    expect(card.locator(".os-wall-fx-badge")).to_have_text(
        "Early warning" if lang == "en" else "预警"
    )
    expect(card.locator(".os-wall-fx-countdown")).to_contain_text(
        "min" if lang == "en" else "分钟后"
    )
    expect(page.locator("#wall-title")).to_contain_text(
        "Early warning" if lang == "en" else "预警 · 即将超限"
    )
    badge = card.locator(".os-wall-fx-badge")
    color = badge.evaluate("el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(255, 106, 213)"  # the 预警 colour, not the alarm's red
    page.wait_for_timeout(1500)  # the attention chart settles
    _shot(page, f"fx-wall-{lang}")
    page.context.close()
    assert log.errors == [], log.errors


@pytest.mark.parametrize("size", ["1920x1080", "3840x2160"])
def test_a_kiosk_shows_forecasts_by_area_only(live_server, live_engine, browser, scene, size):
    token = create_display_token(live_engine, kind="kiosk", label="fx kiosk")
    page, log = open_page(browser, size, user=None)
    page.goto(f"{live_server}/kiosk?{urlencode({'token': token, 'views': 'city'})}")
    strip = page.locator("#kiosk-forecasts")
    expect(strip.locator(".os-kiosk-fx-title")).to_have_text("预警提示", timeout=30_000)
    expect(strip).to_contain_text("浦东新区")
    assert scene["device"].code not in strip.inner_text()
    assert page.locator(".os-wall-attention-forecast").count() == 0  # kiosks take no alerts
    page.wait_for_timeout(1500)
    _shot(page, "fx-kiosk")
    page.context.close()
    assert log.errors == [], log.errors
