"""预警 on the live panels in a real Chromium: tiles, feed countdown, map outlines and markers,
the timeline ahead of now; zh and en; screenshots at 1920×1080 and 3840×2160 to look at."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from data.kpis import area_kpis
from tests.browser.conftest import VIEWPORTS, open_page
from tests.browser.test_dashboard import PUDONG, tile_value, wait_ready
from tests.forecast_incidents import calm_device, open_incident, resolve

SHOTS = Path("/tmp/shots/panels")
FORECAST = "#ff6ad5"


def _flood_quiet_district(engine: sa.Engine) -> str:
    """A district other than Pudong with no live flood incident but a calm flood device."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT d.district_adcode FROM device d JOIN device_type t ON t.id = d.type_id"
                " JOIN device_latest l ON l.device_id = d.id"
                " WHERE t.category_code = 'flood' AND d.status = 'active' AND l.level = 0"
                "   AND d.district_adcode <> :pudong"
                "   AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.status <> 'resolved'"
                "       AND i.category_code = 'flood' AND i.district_adcode = d.district_adcode)"
                " GROUP BY 1 ORDER BY 1 LIMIT 1"
            ),
            {"pudong": PUDONG},
        ).scalar_one()


@pytest.fixture(scope="module")
def forecasts(live_engine: sa.Engine) -> Iterator[dict]:
    """Live 预警 as the foresight engine writes them: one on a quiet Pudong street in 23 min,
    one in a flood-quiet district in 41 min, a device-health incident, and an alarm foreseen
    21 min ahead; resolved when the module ends."""
    quiet = calm_device(live_engine, district=PUDONG, quiet_street=True)
    made = {"device": quiet, "district": _flood_quiet_district(live_engine)}
    made["pudong"] = open_incident(live_engine, quiet, minutes=23)
    elsewhere = calm_device(live_engine, district=made["district"])
    made["elsewhere"] = open_incident(live_engine, elsewhere, minutes=41)
    made["health"] = open_incident(
        live_engine, calm_device(live_engine, district=PUDONG), kind="health", severity="minor"
    )
    made["alarm"] = open_incident(
        live_engine,
        calm_device(live_engine, district=PUDONG),
        kind="alarm",
        foreseen_by=made["pudong"],
        lead_s=1260,
    )
    yield made
    for key in ("pudong", "elsewhere", "health", "alarm"):
        resolve(live_engine, made[key])


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 0, "height": 0}
    page.screenshot(path=str(SHOTS / f"{name}-{size['width']}x{size['height']}.png"))


def _forecast_outlines(page: Page) -> int:
    return page.eval_on_selector_all(
        "path.os-area", f"ps => ps.filter(p => p.getAttribute('stroke') === '{FORECAST}').length"
    )


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_overview_shows_forecasts_in_tiles_feed_and_map(live_server_fast, browser, forecasts, lang):
    page, log = open_page(browser)
    query = "?category=flood" + ("&lang=en" if lang == "en" else "")
    page.goto(live_server_fast + "/" + query)
    wait_ready(page)
    tile = page.locator(".os-tile-forecasts")
    expect(tile.locator(".os-tile-value")).to_have_text(re.compile(r"^[1-9]"))
    earliest = r"最早 2[0-3] 分钟后" if lang == "zh" else r"earliest in 2[0-3] min"
    expect(tile).to_contain_text(re.compile(earliest))
    expect(page.locator(".os-tile-health a")).to_have_attribute("href", re.compile("kind=health"))
    countdown = (
        r"预计 2[0-3] 分钟后超过报警值 15 cm"
        if lang == "zh"
        else r"in 2[0-3] min: above alarm limit 15 cm"
    )
    row = page.locator(".os-feed-kind-forecast", has_text=re.compile(countdown))
    expect(row).to_have_count(1)
    expect(row.locator(".os-badge")).to_have_text("预警" if lang == "zh" else "Early warning")
    lead = "提前 21 分钟预警" if lang == "zh" else "foreseen 21 min ahead"
    expect(page.locator(".os-feed-lead", has_text=lead)).to_have_count(1)
    # the flood-quiet district has a 预警 and no flood alarm: outlined and labelled
    expect(page.locator(f"path.os-area-{forecasts['district']}")).to_have_attribute(
        "stroke", FORECAST
    )
    expect(page.locator(".os-map-label-forecast").first).to_be_visible()
    page.context.close()
    assert log.errors == [], log.errors


def test_district_page_outlines_the_street_and_runs_the_timeline_ahead(
    live_server_fast, live_engine, browser, forecasts
):
    page, log = open_page(browser)
    page.goto(f"{live_server_fast}/district/{PUDONG}")
    wait_ready(page)
    street = forecasts["device"]["street_code"]
    expect(page.locator(f"path.os-area-{street}")).to_have_attribute("stroke", FORECAST)
    # drawn above its neighbours, so no stroke of theirs covers its outline
    page.wait_for_function(
        f"() => {{ const p = document.querySelector('path.os-area-{street}');"
        " return p && !p.parentNode.querySelector(':scope > path.os-area-"
        f"{street} ~ path.os-area'); }}"
    )
    expect(page.locator(".os-legend")).to_contain_text("预警（尚无告警）")
    expect(page.locator(".os-legend")).to_contain_text("预警")
    expect(page.locator(".os-panel-timeline .legendtext", has_text="预计超限")).to_have_count(1)
    expect(page.locator(".os-panel-timeline")).to_contain_text("现在")
    kpis = area_kpis(live_engine, district=PUDONG)
    assert tile_value(page, "forecasts") == f"{kpis.forecasts_open:,}"
    assert tile_value(page, "open_incidents") == f"{kpis.open_total:,}"
    page.context.close()
    assert log.errors == [], log.errors


def _marker_state(page: Page, base: str, device_id: int, engine) -> int | None:
    """The device's marker state once the device snapshots show its 预警 (or the last seen)."""
    with engine.connect() as conn:
        lon, lat = conn.execute(
            sa.text("SELECT ST_X(geom), ST_Y(geom) FROM device WHERE id = :id"), {"id": device_id}
        ).one()
    # zoomed in, the devices of the view's box are sent one by one
    box = f"{lon - 0.01:.2f},{lat - 0.01:.2f},{lon + 0.01:.2f},{lat + 0.01:.2f}"
    url = f"{base}/geo/district/{PUDONG}/devices.json?zoom=17&category=flood&bbox={box}"
    deadline = time.monotonic() + 130
    state = None
    # device snapshots are rebuilt once a minute (per worker): wait for ones taken after the 预警
    while time.monotonic() < deadline:
        features = page.request.get(url).json()["features"]
        state = {f["properties"]["id"]: f["properties"]["s"] for f in features}.get(device_id)
        if state == 1:
            break
        time.sleep(3)
    return state


def test_a_device_with_a_forecast_is_a_forecast_marker(
    live_server_fast, live_engine, browser, forecasts
):
    page, log = open_page(browser)
    page.goto(f"{live_server_fast}/district/{PUDONG}")
    # components.theme.STATE_RANK: 1 = forecast
    assert _marker_state(page, live_server_fast, forecasts["device"]["id"], live_engine) == 1
    page.context.close()
    assert log.errors == [], log.errors


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_screenshots_of_forecasts_on_overview_and_district(
    live_server_fast, live_engine, browser, forecasts, viewport
):
    page, _log = open_page(browser, viewport)
    _marker_state(page, live_server_fast, forecasts["device"]["id"], live_engine)
    page.context.close()
    for lang in ("zh", "en"):
        page, log = open_page(browser, viewport)
        suffix = "?lang=en" if lang == "en" else ""
        page.goto(live_server_fast + "/" + suffix)
        wait_ready(page)
        expect(page.locator(".os-panel-timeline .legendtext").first).to_be_visible()
        page.wait_for_timeout(800)
        _shot(page, f"overview-{lang}")
        page.goto(f"{live_server_fast}/district/{PUDONG}{suffix}")
        wait_ready(page)
        expect(page.locator(".os-panel-timeline .legendtext").first).to_be_visible()
        page.wait_for_timeout(800)
        _shot(page, f"district-{lang}")
        assert _forecast_outlines(page) >= 1
        page.context.close()
        assert log.errors == [], log.errors
