"""Every supported screen shape has a layout that fits it: the 16 districts named and valued
without overlap (the 中心城区 in its inset), no panel across a seam between screens, no panel
mostly empty; and a kiosk shows where its visitor is. One page, resized from shape to shape."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from data.displays import create_display_token
from tests.browser.conftest import ConsoleLog, screenshot, wait_maps_settled
from tests.browser.test_wall import active, display_url, wait_shown

SHAPES_JS = (Path(__file__).parent / "js" / "shapes.js").read_text()
# width × height → the seams between its 16:9 screens, and the shape's name
SHAPES = {
    "1920x1080": ((), "standard"),
    "2560x1440": ((), "standard"),
    "3840x2160": ((), "standard"),
    "3840x1080": ((1920,), "twin"),
    "5760x1080": ((1920, 3840), "ultrawide"),
    "1080x1920": ((), "portrait"),
}
MAX_EMPTY = 0.30
# each y tick label of a chart: where it is on screen, its text, its font size there
TICK_SPANS_JS = """panel => [...document.querySelectorAll(panel + " g.ytick text")].map(t => {
    const r = t.getBoundingClientRect();
    // its font size on screen (the canvas is scaled to the screen)
    const em = parseFloat(getComputedStyle(t).fontSize) * r.height / t.getBBox().height;
    return [r.top, r.bottom, t.textContent, em];
}).sort((a, b) => a[0] - b[0])"""


def ticks_apart(spans: list) -> bool:
    """At least two tick labels, each centre a font size or more below the one above (figures
    are ~0.7 of it tall: some room between them)."""
    return len(spans) >= 2 and all(
        (b[0] + b[1]) / 2 - (a[0] + a[1]) / 2 >= a[3] for a, b in itertools.pairwise(spans)
    )


def _open(browser: Browser, url: str, *, touch: bool = False) -> tuple[Page, ConsoleLog]:
    context = browser.new_context(
        viewport={"width": 1920, "height": 1080}, locale="zh-CN", has_touch=touch
    )
    page = context.new_page()
    log = ConsoleLog()
    page.on("console", log.on_console)
    page.on("pageerror", log.on_page_error)
    page.goto(url)
    wait_shown(page)
    return page, log


@pytest.fixture(scope="module")
def wall(live_server, live_engine, browser) -> Iterator[Page]:
    """One city wall, resized to each shape in turn."""
    token = create_display_token(live_engine, kind="wall", label="shapes wall")
    url = display_url(live_server, "/wall", token, views="city", interval=3600)
    page, log = _open(browser, url)
    yield page
    page.context.close()
    assert log.errors == [], log.errors


def settle(page: Page, width: int, height: int, shape: str) -> None:
    """Resize to the shape, until the maps were fitted again and their labels set apart."""
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function(f"() => document.documentElement.dataset.wallShape === '{shape}'")
    expect(active(page, ".os-core-inset")).to_be_visible()
    expect(active(page, ".os-core-inset .os-map-label")).to_have_count(7)
    expect(active(page, ".os-wall-area-timeline .js-plotly-plot .main-svg").first).to_be_visible()
    wait_maps_settled(page)  # refit on the container's new size, then the labels' pass


@pytest.mark.parametrize("size", list(SHAPES))
def test_every_shape_names_all_districts_and_keeps_panels_full_and_off_the_seams(wall, size):
    width, height = map(int, size.split("x"))
    seams, shape = SHAPES[size]
    settle(wall, width, height, shape)
    layout = wall.evaluate(SHAPES_JS, list(seams))
    # under CI load the labels' pass can run before a refit has settled and leave labels on each
    # other until their next redraw (a live wall redraws them with its data; this static test
    # wall does not: seen twice in CI on the portrait shape, never on a quiet machine). What is
    # checked here is where the pass puts them: it is run again, as the next redraw would
    for _ in range(4):
        if not layout["overlaps"]:
            break
        wall.evaluate("() => window.onescreen.core.maps.forEach(window.onescreen.core.declutter)")
        wall.wait_for_timeout(500)
        layout = wall.evaluate(SHAPES_JS, list(seams))
    # all 16 districts, each once, each with its figure: 9 on the city map, 7 in the inset
    names = [label["name"] for label in layout["labels"]]
    assert len(names) == 16 and len(set(names)) == 16, names
    assert all(label["value"] for label in layout["labels"]), layout["labels"]
    assert sum(label["inset"] for label in layout["labels"]) == 7
    assert layout["overlaps"] == [], layout["overlaps"]
    assert layout["outside"] == [] and layout["covered"] == [], layout
    # labels readable from the back of the room: not smaller than on a 1080-line screen
    scale = min(width / 1920, height / 1080) if width > height else width / 1080
    heights = [label["box"]["bottom"] - label["box"]["top"] for label in layout["labels"]]
    assert min(heights) >= 30 * scale, heights
    assert layout["crossing"] == [], layout["crossing"]
    assert max(layout["empty"].values()) <= MAX_EMPTY, layout["empty"]
    # the timeline's counts stand apart, on the portrait wall's short chart too (plotly lays
    # its ticks out again a moment after the resize)
    for _ in range(10):
        spans = wall.evaluate(TICK_SPANS_JS, ".os-wall-slot-active .os-panel-timeline")
        if ticks_apart(spans):
            break
        wall.wait_for_timeout(500)
    assert ticks_apart(spans), spans
    screenshot(wall, "shapes-wall")


def test_the_kiosk_lights_where_the_visitor_is_and_keeps_its_prompt_off_the_map_keys(
    live_server, live_engine, browser
):
    token = create_display_token(live_engine, kind="kiosk", label="shapes kiosk")
    page, log = _open(
        browser, display_url(live_server, "/kiosk", token, views="city", idle=600), touch=True
    )
    city = page.get_by_role("button", name="全市")
    up = page.get_by_role("button", name="返回上级")
    everything = page.get_by_role("button", name="全部")
    # at city level: 全市 and 全部 lit, 返回上级 looks unavailable
    expect(city).to_have_class(_has("os-kiosk-btn-on"))
    expect(everything).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_class(_has("os-kiosk-btn-off"))
    lit, plain = (b.evaluate("e => getComputedStyle(e).backgroundColor") for b in (city, up))
    assert lit != plain
    for size in ("1920x1080", "1080x1920"):
        width, height = map(int, size.split("x"))
        page.set_viewport_size({"width": width, "height": height})
        wait_maps_settled(page)
        prompt = page.locator(".os-kiosk-attract").bounding_box()
        assert prompt is not None
        for keys in (".leaflet-control-scale", ".os-legend", ".os-core-inset"):
            other = active(page, keys).first.bounding_box()
            assert other is not None and not _meets(prompt, other), (size, keys, prompt, other)
        # every control on screen
        for button in page.locator(".os-kiosk-btn").all():
            box = button.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width + 1, box
        screenshot(page, "shapes-kiosk")
    page.set_viewport_size({"width": 1920, "height": 1080})
    # a category and a district: those lit, 返回上级 available again
    page.get_by_role("button", name="供水").tap()
    expect(page.get_by_role("button", name="供水")).to_have_class(_has("os-kiosk-btn-on"))
    expect(everything).not_to_have_class(_has("os-kiosk-btn-on"))
    active(page, "path.os-area-310115").first.tap()
    expect(page.locator("#wall-title")).to_contain_text("浦东新区", timeout=10_000)
    expect(up).not_to_have_class(_has("os-kiosk-btn-off"))
    expect(city).not_to_have_class(_has("os-kiosk-btn-on"))
    # a district's streets: no inset of the city's centre
    expect(active(page, ".os-core-inset")).to_be_hidden()
    page.context.close()
    assert log.errors == [], log.errors


def _has(name: str) -> re.Pattern:
    return re.compile(rf"(^|\s){name}(\s|$)")


def _meets(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )
