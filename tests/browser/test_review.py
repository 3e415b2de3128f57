"""The after-action review page (/review): its figures are the store's, it prints to PDF, its CSV
downloads in the reader's scope, and forged areas and windows are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from components.review import review_kpis
from data.clock import CITY_TZ
from data.review import review
from tests.browser.conftest import SCREENSHOTS, VIEWPORTS, open_page, screenshot

PUDONG = "310115"


def _window() -> tuple[datetime, datetime]:
    """The last day, ending a few minutes ago on the minute (what happens later is not in it)."""
    end = (datetime.now(UTC) - timedelta(minutes=3)).replace(second=0, microsecond=0)
    return end - timedelta(hours=24), end


def _url(base: str, start: datetime, end: datetime, **more: str) -> str:
    fmt = "%Y-%m-%d %H:%M"
    query = {"from": start.astimezone(CITY_TZ).strftime(fmt),
             "to": end.astimezone(CITY_TZ).strftime(fmt), **more}  # fmt: skip
    return base + "/review?" + "&".join(f"{k}={v}" for k, v in query.items()).replace(" ", "%20")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_the_review_shows_the_stores_figures_and_prints(
    live_server, live_engine, browser, viewport
):
    page, log = open_page(browser, viewport)
    start, end = _window()
    page.goto(_url(live_server, start, end))
    expected = review_kpis(review(live_engine, start=start, end=end), "zh")
    assert int(expected[0][1].replace(",", "")) > 0, "the seeded day has incidents"
    values = page.locator(".os-review-kpi-value")
    expect(values).to_have_count(len(expected))
    assert values.all_inner_texts() == [value for _label, value in expected]
    expect(page.locator(".os-review-chart .main-svg").first).to_be_visible()
    expect(page.locator(".os-review-table").first).to_be_visible()
    expect(page.locator(".os-review-window")).to_contain_text(
        start.astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M")
    )
    screenshot(page, "review")
    page.locator(".os-review").evaluate("el => el.scrollTo(0, el.scrollHeight)")
    screenshot(page, "review-end")
    if viewport == "1920x1080":
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4", landscape=True, print_background=True)
        assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
        (SCREENSHOTS / "review.pdf").write_bytes(pdf)
        page.screenshot(path=str(SCREENSHOTS / "review-print.png"), full_page=True)
        # on paper: no header, no form, the whole report (not the scrolled box)
        expect(page.locator(".os-review-form")).to_be_hidden()
        assert page.evaluate("document.documentElement.scrollHeight") > VIEWPORTS[viewport][1]
    page.context.close()
    assert log.errors == [], log.errors


def test_the_csv_is_the_readers_own_and_forgeries_are_refused(live_server, live_engine, browser):
    page, log = open_page(browser, user="pudong")
    start, end = _window()
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    window = f"from={start.strftime(fmt)}&to={end.strftime(fmt)}"
    answer = page.request.get(f"{live_server}/review.csv?{window}")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    lines = answer.text().lstrip("\ufeff").splitlines()
    mine = review(live_engine, start=start, end=end, district=PUDONG).by_district
    assert len(lines) - 1 == int(mine.incidents.sum()) > 0
    assert all(f",{PUDONG}," in line for line in lines[1:])  # RLS: Pudong's rows only
    for forged, status in (
        (f"{window}&district=310101", 403),
        (f"{window}&district=31011%27", 400),
        ("from=2026-01-01&to=2026-03-01", 400),
        ("from=tomorrow", 400),
    ):
        answer = page.request.get(f"{live_server}/review.csv?{forged}")
        assert answer.status == status, (forged, answer.text())
        assert "Traceback" not in answer.text()
    # the page says so too: another district is not theirs, a bad window is explained
    page.goto(f"{live_server}/review?district=310101")
    expect(page.locator(".os-notfound")).to_be_visible()
    page.goto(f"{live_server}/review?from=2026-03-01&to=2026-01-01&lang=en")
    expect(page.locator(".os-review-bad")).to_contain_text("end must be after start")
    page.context.close()
    assert log.errors == [], log.errors
