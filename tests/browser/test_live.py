"""The live dashboard: panels refresh by themselves, say how old their data is, and turn amber
when it is stale — also when the server stops answering — against a server refreshing every 2 s."""

from __future__ import annotations

import itertools
import re
import time

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, Route, expect

from data.kpis import city_kpis
from tests.browser.conftest import (
    LIVE_REFRESH_SECONDS,
    LIVE_STALE_SECONDS,
    VIEWPORTS,
    open_page,
    screenshot,
    write_readings_now,
)
from tests.browser.test_dashboard import PUDONG, page_paths, tile_value, wait_ready

FRESH = re.compile(r"^更新于 \d{2}:\d{2}:\d{2}$")
FRESH_EN = re.compile(r"^Updated \d{2}:\d{2}:\d{2}$")
DASH_UPDATES = "**/_dash-update-component"
# what carries a data-age badge: every panel, and the 城市体征 strip (issue 19)
LIVE_PANELS = ".os-panel, .os-vitals"


def badge_texts(page: Page) -> list[str]:
    return page.locator(".os-fresh").all_inner_texts()


def expect_every_panel_fresh(page: Page, pattern: re.Pattern = FRESH) -> None:
    """Every panel on the page has one badge, each showing a time and none of them stale."""
    # a loaded machine can reach network idle before Dash has rendered the page's layout
    expect(page.locator(".os-panel").nth(2)).to_be_attached()
    # the 城市体征 strip is a live panel too, with its own badge (issue 19)
    panels = page.locator(LIVE_PANELS).count()
    assert panels >= 3
    expect(page.locator(".os-fresh")).to_have_count(panels)
    expect(page.locator(".os-fresh")).to_have_text([pattern] * panels)
    expect(page.locator(".os-fresh-stale")).to_have_count(0)


def live_paths(engine: sa.Engine) -> dict[str, str]:
    paths = page_paths(engine)
    return {name: paths[name] for name in ("overview", "district", "incidents", "device")}


def test_every_panel_of_every_page_shows_its_data_age(live_server_fast, live_engine, browser):
    for name, path in live_paths(live_engine).items():
        page, log = open_page(browser)
        page.goto(live_server_fast + path)
        wait_ready(page)
        expect_every_panel_fresh(page)
        page.context.close()
        assert log.errors == [], (name, log.errors)
    page, _log = open_page(browser)
    page.goto(live_server_fast + "/?lang=en")
    wait_ready(page)
    expect_every_panel_fresh(page, FRESH_EN)
    page.context.close()


def test_every_panel_refreshes_by_itself(live_server_fast, live_engine, browser):
    for name, path in live_paths(live_engine).items():
        page, log = open_page(browser)
        page.goto(live_server_fast + path)
        wait_ready(page)
        expect_every_panel_fresh(page)
        before = badge_texts(page)
        # each badge's time moves on with the panel's refreshed data (cache TTL < refresh tick)
        page.wait_for_function(
            "before => Array.from(document.querySelectorAll('.os-fresh'))"
            ".every((badge, i) => badge.textContent && badge.textContent !== before[i])",
            arg=before,
            timeout=(4 * LIVE_REFRESH_SECONDS + 4) * 1000,
        )
        expect(page.locator(".os-fresh-stale")).to_have_count(0)
        page.context.close()
        assert log.errors == [], (name, log.errors)


def test_a_reading_written_shows_on_the_overview_tiles_within_seconds(
    live_server_fast, live_engine, browser
):
    page, log = open_page(browser)
    page.goto(live_server_fast + "/")
    wait_ready(page)
    before = int(tile_value(page, "readings_today").replace(",", ""))
    assert before == city_kpis(live_engine).readings_today
    # 40 devices report again, each at its latest value
    with live_engine.connect() as conn:
        latest = conn.execute(
            sa.text("SELECT device_id, value FROM device_latest ORDER BY device_id LIMIT 40")
        ).all()
    written = write_readings_now(live_engine, values={row[0]: float(row[1]) for row in latest})
    assert written == 40
    started = time.monotonic()
    page.wait_for_function(
        "least => Number(document.querySelector(\".os-tile-value[data-key='readings_today']\")"
        ".textContent.replace(/,/g, '')) >= least",
        arg=before + written,
        timeout=10_000,
    )
    elapsed = time.monotonic() - started
    after = int(tile_value(page, "readings_today").replace(",", ""))
    assert after >= before + written
    # one refresh tick plus the cache TTL, with room for a busy machine
    assert elapsed < LIVE_REFRESH_SECONDS + 6, elapsed
    expect(page.locator(".os-fresh-stale")).to_have_count(0)
    page.context.close()
    assert log.errors == [], log.errors


@pytest.mark.parametrize("skew_hours", [-3, 2])
def test_a_wrong_browser_clock_does_not_make_fresh_data_look_delayed(
    live_server_fast, browser, skew_hours
):
    page, log = open_page(browser)
    page.add_init_script(
        f"(() => {{ const real = Date.now; Date.now = () => real() + {skew_hours * 3600_000}; }})()"
    )
    page.goto(live_server_fast + "/")
    wait_ready(page)
    expect_every_panel_fresh(page)
    page.wait_for_timeout((LIVE_STALE_SECONDS + 1) * 1000)
    expect_every_panel_fresh(page)
    page.context.close()
    assert log.errors == [], log.errors


def test_badges_turn_amber_when_the_server_stops_answering_and_recover(live_server_fast, browser):
    # no `page` fixture: the refused requests are meant to log errors in the console
    page, _log = open_page(browser)
    page.goto(live_server_fast + "/")
    wait_ready(page)
    expect_every_panel_fresh(page)
    panels = page.locator(LIVE_PANELS).count()
    content = tile_value(page, "devices")

    page.route(DASH_UPDATES, lambda route: route.abort())
    stale = page.locator(".os-fresh.os-fresh-stale")
    expect(stale).to_have_count(panels, timeout=(LIVE_STALE_SECONDS + 4) * 1000)
    expect(stale).to_have_text([re.compile(r"^更新于 \d{2}:\d{2}:\d{2} · 数据延迟$")] * panels)
    expect(page.locator("#os-clock.os-clock-stale")).to_have_count(1)
    # the last good content stays, marked as old rather than replaced
    assert tile_value(page, "devices") == content
    for viewport in VIEWPORTS:
        width, height = VIEWPORTS[viewport]
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(500)
        screenshot(page, "overview-stale")
    page.set_viewport_size({"width": 1920, "height": 1080})

    page.unroute(DASH_UPDATES)
    expect(page.locator(".os-fresh-stale")).to_have_count(
        0, timeout=(2 * LIVE_REFRESH_SECONDS + 6) * 1000
    )
    expect_every_panel_fresh(page)
    expect(page.locator("#os-clock.os-clock-stale")).to_have_count(0)
    page.context.close()


def refresh_tick(request) -> int | None:
    """The refresh tick that triggered a callback request, or None."""
    if "_dash-update-component" not in request.url or request.method != "POST":
        return None
    body = request.post_data_json or {}
    if "os-refresh.n_intervals" not in (body.get("changedPropIds") or []):
        return None
    for item in body.get("inputs") or []:
        if isinstance(item, dict) and item.get("id") == "os-refresh":
            return item.get("value")
    return None


def test_a_busy_server_makes_the_page_ask_at_every_other_refresh(live_server_fast, browser):
    page, log = open_page(browser)
    asked: list[int] = []
    page.on(
        "request",
        lambda request: asked.append(tick) if (tick := refresh_tick(request)) is not None else None,
    )
    page.goto(live_server_fast + "/")
    wait_ready(page)
    expect_every_panel_fresh(page)
    page.wait_for_timeout(4 * LIVE_REFRESH_SECONDS * 1000)
    calm = sorted(set(asked))
    assert any(b - a == 1 for a, b in itertools.pairwise(calm)), calm

    def busy(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "x-onescreen-busy": "2"})

    # the server says it is renewing answers behind: the page eases off
    page.route(DASH_UPDATES, busy)
    page.wait_for_timeout(2 * LIVE_REFRESH_SECONDS * 1000)
    asked.clear()
    page.wait_for_timeout(5 * LIVE_REFRESH_SECONDS * 1000)
    paced = sorted(set(asked))
    assert len(paced) >= 2 and all(tick % 2 == 0 for tick in paced), paced
    assert page.evaluate("window.onescreenLimits.skipped") > 0
    # what the page shows still comes in, at half the pace
    expect(page.locator(".os-fresh").first).to_have_text(FRESH)
    page.unroute(DASH_UPDATES)
    page.context.close()
    assert log.errors == [], log.errors


def test_a_panel_that_never_got_data_turns_amber_too(live_server_fast, browser):
    page, _log = open_page(browser)

    def only_the_page_layout(route: Route) -> None:
        # the page itself (the pages container) loads; every panel callback fails
        if "_pages_content" in (route.request.post_data or ""):
            route.continue_()
        else:
            route.abort()

    page.route(DASH_UPDATES, only_the_page_layout)
    page.goto(live_server_fast + "/")
    expect(page.locator(".os-panel")).to_have_count(4)
    # the map's colours come with the page; the other panels never receive anything
    stale = page.locator(".os-fresh-stale")
    # the four panels and the 城市体征 strip
    expect(stale).to_have_count(5, timeout=(LIVE_STALE_SECONDS + 4) * 1000)
    expect(page.locator(".os-panel-tiles .os-fresh")).to_have_text("数据延迟")
    expect(page.locator(".os-panel-map .os-fresh")).to_have_text(
        re.compile(r"^更新于 \d{2}:\d{2}:\d{2} · 数据延迟$")
    )
    page.context.close()


def map_view(page: Page) -> list[str]:
    """Where the Leaflet map looks: its pane offset and its zoom proxy (scale and origin)."""
    return page.evaluate(
        "() => ['.leaflet-map-pane', '.leaflet-proxy'].map("
        "sel => document.querySelector(sel).style.transform)"
    )


def zoom_the_district_map(page: Page, server: str) -> list[str]:
    """Open Pudong's page, let its map settle, zoom it with the wheel: the view the user chose."""
    page.goto(server + f"/district/{PUDONG}")
    wait_ready(page)
    expect(page.locator("path.os-area").first).to_be_visible()
    # the fit to the district's streets, and any late layer's: the view holds still for a second
    # (on a loaded machine a layer can arrive after the first second and fit again)
    initial, deadline = map_view(page), time.monotonic() + 15
    while time.monotonic() < deadline:
        page.wait_for_timeout(1000)
        now = map_view(page)
        if now == initial:
            break
        initial = now
    map_box = page.locator(".leaflet-container").first.bounding_box()
    assert map_box
    page.mouse.move(map_box["x"] + map_box["width"] / 3, map_box["y"] + map_box["height"] / 3)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(1000)  # the zoom animation
    zoomed = map_view(page)
    assert zoomed[1] != initial[1], (initial, zoomed)
    return zoomed


def test_refreshing_keeps_the_map_view(live_server_fast, browser):
    page, log = open_page(browser)
    zoomed = zoom_the_district_map(page, live_server_fast)
    before = page.locator(".os-panel-map .os-fresh").inner_text()
    # the map's data refreshes (its as-of moves on) but its view stays where the user put it
    page.wait_for_function(
        "before => document.querySelector('.os-panel-map .os-fresh').textContent !== before",
        arg=before,
        timeout=(2 * LIVE_REFRESH_SECONDS + 4) * 1000,
    )
    page.wait_for_timeout(LIVE_REFRESH_SECONDS * 1000)
    assert map_view(page) == zoomed
    page.context.close()
    assert log.errors == [], log.errors


# every street of the map in one new colour, as a refresh that recolours streets sets it
RECOLOUR_STREETS = """colour => {
    const codes = Array.from(document.querySelectorAll('path.os-area'), path =>
        Array.from(path.classList).find(name => /^os-area-\\d+$/.test(name)).slice(8));
    const colors = Object.fromEntries(codes.map(code => [code, colour]));
    window.dash_clientside.set_props('district-areas', {hideout: {colors: colors}});
    return codes.length;
}"""


def test_recoloured_streets_keep_the_map_view(live_server_fast, browser):
    """A street's new colour redraws the streets layer, which fits the map to its bounds again
    (dash-leaflet's zoomToBounds): a map its user moved keeps the user's view."""
    page, log = open_page(browser)
    zoomed = zoom_the_district_map(page, live_server_fast)
    assert page.evaluate(RECOLOUR_STREETS, "#ff00aa") > 10
    # the layer was redrawn with the new colours (the fit comes with that redraw)
    expect(page.locator("path.os-area[fill='#ff00aa']").first).to_be_attached()
    page.wait_for_timeout(1000)  # a fit's animation, had there been one
    assert map_view(page) == zoomed
    page.context.close()
    assert log.errors == [], log.errors


def test_stale_badges_fit_every_panel_header(live_server_fast, live_engine, browser):
    paths = {**live_paths(live_engine), "district-en": f"/district/{PUDONG}?lang=en"}
    for name, path in paths.items():
        page, _log = open_page(browser)
        page.goto(live_server_fast + path)
        wait_ready(page)
        expect_every_panel_fresh(page, FRESH_EN if name.endswith("-en") else FRESH)
        panels = page.locator(LIVE_PANELS).count()
        page.route(DASH_UPDATES, lambda route: route.abort())
        # stale after LIVE_STALE_SECONDS; the margin is for a loaded 2-core CI machine
        expect(page.locator(".os-fresh-stale")).to_have_count(
            panels, timeout=(LIVE_STALE_SECONDS + 12) * 1000
        )
        for viewport, (width, height) in VIEWPORTS.items():
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(300)
            # each badge sits on one line inside its panel's header, right of the title
            for head in page.locator(".os-panel-head").all():
                header, title = head.bounding_box(), head.locator(".os-panel-title").bounding_box()
                badge = head.locator(".os-fresh").bounding_box()
                assert header and title and badge, (name, viewport)
                assert badge["x"] >= title["x"] + title["width"], (name, viewport, title, badge)
                assert badge["x"] + badge["width"] <= header["x"] + header["width"] + 1, (
                    name,
                    viewport,
                    header,
                    badge,
                )
                assert badge["height"] <= title["height"] * 1.2, (name, viewport, title, badge)
            screenshot(page, f"{name}-stale")
        page.context.close()


def test_a_refreshing_district_posts_only_its_panels_and_the_ranking_still_clicks(
    live_server_fast, browser
):
    page, log = open_page(browser)
    posted: list[str] = []
    rankings_drawn: list[bool] = []

    def remember(request) -> None:
        if request.url.endswith("/_dash-update-component"):
            posted.append(str((request.post_data_json or {}).get("output", "")))

    def drawn(response) -> None:
        if response.url.endswith("/_dash-update-component") and response.status == 200:
            rankings_drawn.append('"district-ranking"' in response.text())

    page.on("request", remember)
    page.goto(live_server_fast + f"/district/{PUDONG}")
    wait_ready(page)
    page.on("response", drawn)
    posted.clear()
    page.wait_for_timeout((2 * LIVE_REFRESH_SECONDS + 1) * 1000)
    # the page refreshed and sent its ranking anew...
    assert sum("district-tiles" in output for output in posted) >= 2
    assert any(rankings_drawn)
    # ...which asked the server nothing else: re-rendered rows are not clicks
    assert [output for output in posted if "os-query-store" in output] == [], posted
    ranking = page.locator("#district-ranking button")
    name = ranking.first.locator("span").first.inner_text()
    ranking.first.click()
    expect(page.locator(".os-crumb-current")).to_have_text(name)
    # the same street again un-scopes the page
    page.locator("#district-ranking button.os-rank-selected").click()
    expect(page.locator(".os-crumb-current")).not_to_have_text(name)
    page.context.close()
    assert log.errors == [], log.errors
