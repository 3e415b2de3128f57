"""回放 in Chromium: scrub the overview back in time and it shows the store's figures of that
instant in a violet REPLAY frame; play at 60× and the instant runs on; pause; back to live; a
shared replay link opens at its instant; district and scenario views replay too, read only."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from components import ids
from components.choropleth import color_for, metric_value, scale_for
from data import writes
from data.areas import district_metrics
from data.clock import CITY_TZ, database_now
from data.displays import create_display_token
from data.kpis import area_kpis
from tests.browser.conftest import ConsoleLog, open_page, screenshot

OUTSIDE_VIEWPORT_JS = (Path(__file__).parent / "js" / "outside_viewport.js").read_text()

PUDONG = "310115"


def _at(page: Page) -> datetime | None:
    """The instant the page's URL replays."""
    raw = page.evaluate("new URL(location.href).searchParams.get('at')")
    return datetime.fromisoformat(raw).replace(tzinfo=CITY_TZ) if raw else None


def _history(engine) -> None:
    """Status history from an hour back (the server's own refreshes began when it started)."""
    now = database_now(engine)
    for minutes in (60, 45, 30, 15):
        writes.refresh_status(engine, at=now - timedelta(minutes=minutes))


def _tiles_match(page: Page, engine, at: datetime) -> None:
    """The tiles show the store's figures of `at`."""
    kpis = area_kpis(engine, at=at, replay=True)
    expect(page.locator(".os-tile-value[data-key='devices']")).to_have_text(
        f"{kpis.devices_total:,}"
    )
    expect(page.locator(".os-tile-value[data-key='open_incidents']")).to_have_text(
        f"{kpis.open_total:,}"
    )


def _fills_match(page: Page, engine, at: datetime) -> None:
    """Each district is painted its own value at `at` (the open-incidents metric)."""
    scale = scale_for("open_incidents")
    expected = {
        a.code: color_for(metric_value(a, "open_incidents"), scale)
        for a in district_metrics(engine, at=at, replay=True)
    }
    page.wait_for_function(
        "n => document.querySelectorAll('path.os-area').length >= n", arg=len(expected)
    )
    fills = page.eval_on_selector_all(
        "path.os-area",
        "ps => Object.fromEntries(ps.map(p => [[...p.classList].find("
        "c => /^os-area-\\d+$/.test(c)).slice(8), p.getAttribute('fill')]))",
    )
    assert fills == expected


@pytest.mark.parametrize(("viewport", "lang"), [("1920x1080", "zh"), ("3840x2160", "en")])
def test_scrub_play_pause_and_back_to_live(live_server_fast, live_engine, browser, viewport, lang):
    _history(live_engine)
    page, log = open_page(browser, viewport)
    page.goto(f"{live_server_fast}/?lang={lang}")
    bar = page.locator(".os-replay-bar")
    expect(bar).to_be_visible()
    expect(page.locator(".os-replaying")).to_have_count(0)
    expect(page.locator(".os-replay-live")).to_be_visible()
    # scrub: a click on the slider's rail, twenty minutes back from now
    rail = page.locator(".os-replay-slider .rc-slider-rail")
    box = rail.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * (1 - 20 / 1440), box["y"] + box["height"] / 2)
    expect(page.locator(".os-replaying")).to_be_visible()
    page.wait_for_function("new URL(location.href).searchParams.get('at') !== null")
    at = _at(page)
    assert at is not None and timedelta(minutes=5) < datetime.now(CITY_TZ) - at < timedelta(hours=1)
    expect(page.locator(".os-replay-time")).to_have_text(at.strftime("%Y-%m-%d %H:%M:%S"))
    _tiles_match(page, live_engine, at)
    _fills_match(page, live_engine, at)
    screenshot(page, f"replay-{lang}")
    # play at 60×: the instant runs on by about a minute per second
    page.get_by_role("button", name="▶ 60×").click()
    expect(page.locator(".os-replay-playing")).to_be_visible()
    page.wait_for_function(
        "t => new Date(new URL(location.href).searchParams.get('at') + '+08:00') - new Date(t)"
        " >= 60000",
        arg=at.isoformat(),
        timeout=30_000,
    )
    page.get_by_role("button", name="❚❚").click()
    expect(page.locator(".os-replay-playing")).to_have_count(0)
    paused = _at(page)
    assert paused is not None and paused > at
    page.wait_for_timeout(4500)  # two refresh periods: a paused replay stays where it is
    assert _at(page) == paused
    _tiles_match(page, live_engine, paused)
    screenshot(page, f"replay-paused-{lang}")
    # back to live
    page.get_by_role("button", name="回到实时" if lang == "zh" else "Back to live").click()
    expect(page.locator(".os-replaying")).to_have_count(0)
    assert _at(page) is None
    page.context.close()
    assert log.errors == [], log.errors


def test_a_shared_replay_opens_at_its_instant_on_every_view(live_server_fast, live_engine, browser):
    _history(live_engine)
    at = (database_now(live_engine) - timedelta(minutes=40)).astimezone(CITY_TZ)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S")
    page, log = open_page(browser)
    page.goto(f"{live_server_fast}/?at={stamp}")
    expect(page.locator(".os-replaying .os-replay-time")).to_have_text(
        at.strftime("%Y-%m-%d %H:%M:%S")
    )
    _tiles_match(page, live_engine, at.replace(microsecond=0))
    # a district page replays its device clusters from the grid counters then
    page.goto(f"{live_server_fast}/district/{PUDONG}?at={stamp}&lang=en")
    expect(page.locator(".os-replaying")).to_be_visible()
    kpis = area_kpis(live_engine, district=PUDONG, at=at.replace(microsecond=0), replay=True)
    expect(page.locator(".os-tile-value[data-key='devices']")).to_have_text(
        f"{kpis.devices_total:,}"
    )
    page.wait_for_load_state("networkidle")
    expect(page.locator(".os-cluster").first).to_be_visible()
    assert page.locator("path.os-device").count() == 0  # counts then, not devices
    expect(page.locator(".os-legend")).to_contain_text("maintenance as offline")
    screenshot(page, "replay-district")
    # a scenario view replays read only: no form that sets a level
    page.goto(f"{live_server_fast}/topic/flood?at={stamp}")
    expect(page.locator(".os-replaying")).to_be_visible()
    expect(page.locator(".os-warn-form")).to_have_count(0)
    screenshot(page, "replay-topic")
    # the incident centre replays its queue read only: no buttons that handle or dispatch
    page.goto(f"{live_server_fast}/incidents?at={stamp}")
    expect(page.locator(".os-replaying")).to_be_visible()
    expect(page.locator(".os-incidents-side .os-detail")).to_be_visible()
    expect(page.locator(f"#{ids.INCIDENT_ACTIONS}")).to_be_hidden()
    expect(page.locator("#incidents-table .dash-cell").first).to_be_visible()
    screenshot(page, "replay-incidents")
    page.context.close()
    assert log.errors == [], log.errors


@pytest.mark.parametrize("size", ["1920x1080", "5760x1080", "1080x1920"])
def test_a_wall_loops_over_a_window_of_the_past(live_server_fast, live_engine, browser, size):
    _history(live_engine)
    token = create_display_token(live_engine, kind="wall", label="replay wall")
    now = database_now(live_engine).astimezone(CITY_TZ)
    start, end = now - timedelta(minutes=55), now - timedelta(minutes=20)
    window = f"{start:%Y-%m-%dT%H:%M}/{end:%Y-%m-%dT%H:%M}"
    width, height = (int(side) for side in size.split("x"))
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    page = context.new_page()
    log = ConsoleLog()
    page.on("console", log.on_console)
    page.on("pageerror", log.on_page_error)
    query = urlencode(
        {"token": token, "views": "city,310115", "interval": 3600, "replay": window, "speed": 60}
    )
    page.goto(f"{live_server_fast}/wall?{query}")
    expect(page.locator(".os-wall-replay .os-replay-badge")).to_be_visible()
    expect(page.locator(".os-wall-slot-active .os-tile-value").first).to_be_visible()
    shown = page.locator(".os-wall-replay .os-replay-time")
    expect(shown).to_contain_text("60×")

    def instant() -> datetime:
        text = f"{start:%Y}-{shown.inner_text()[:11]}"
        return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=CITY_TZ)

    first = instant()
    # the window is given to the minute, and the header shows the instant to the minute
    assert start.replace(second=0, microsecond=0) <= first <= end
    # a minute of the window each second: the header's instant moves on
    page.wait_for_timeout(2500)
    assert instant() != first
    result = page.evaluate(OUTSIDE_VIEWPORT_JS)
    assert result["count"] == 0, result["bad"]
    screenshot(page, "wall-replay")
    context.close()
    assert log.errors == [], log.errors
