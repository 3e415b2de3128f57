"""Every live critical and major incident is a marker on the maps, on top, pulsing until
acknowledged (issue 19 item 3): two critical gas alarms in 南京东路, a sliver at city zoom.

On the server whose pages refresh every 2 s: its reads are cached for about that long (the
other's for an hour, outdated only by the writers that announce themselves), so the markers
follow what these tests write straight into the store, without a reload."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from components.incident_markers import GROUP_MIN
from data.incident_reads import live_incident_points
from tests.browser.conftest import LIVE_REFRESH_SECONDS, open_page
from tests.forecast_incidents import insert_incident, resolve

HUANGPU = "310101"
NANJING_EAST = "310101002"


def _quiet_device(engine: sa.Engine, *, street: str, skip: tuple[int, ...] = ()) -> int:
    """A device of `street` without a live incident (gas first)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT d.id FROM device d JOIN device_type t ON t.id = d.type_id"
                    " WHERE d.street_code = :street AND d.id <> ALL(:skip)"
                    "   AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.device_id = d.id"
                    "                   AND i.status <> 'resolved')"
                    " ORDER BY t.category_code <> 'gas', d.id LIMIT 1"
                ),
                {"street": street, "skip": list(skip)},
            ).scalar_one()
        )


def _gas_alarm(engine: sa.Engine, device_id: int, severity: str = "critical") -> int:
    return insert_incident(
        engine,
        device_id=device_id,
        kind="alarm",
        rule_code="markers_test",
        severity=severity,
        title=("南京东路燃气泄漏报警 测试", "Gas leak alarm, Nanjing Rd E (test)"),
        detail={},
        expected_minutes=None,
        opened_minutes_ago=1,
        trigger_value=42.0,
    )


def _acknowledge(engine: sa.Engine, incident_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE incident SET status = 'acknowledged',"
                " acknowledged_at = greatest(now(), opened_at) WHERE id = :id"
            ),
            {"id": incident_id},
        )


@pytest.fixture(scope="module")
def alarms(live_engine):
    """Two open critical alarms and one minor in 南京东路; resolved afterwards."""
    first = _quiet_device(live_engine, street=NANJING_EAST)
    second = _quiet_device(live_engine, street=NANJING_EAST, skip=(first,))
    third = _quiet_device(live_engine, street=NANJING_EAST, skip=(first, second))
    made = {
        "critical": [_gas_alarm(live_engine, first), _gas_alarm(live_engine, second)],
        "minor": _gas_alarm(live_engine, third, severity="minor"),
    }
    yield made
    for incident in [*made["critical"], made["minor"]]:
        resolve(live_engine, incident)


def _live_ids(engine: sa.Engine, district: str | None = None) -> set[int]:
    return {int(i) for i in live_incident_points(engine, district=district)["id"]}


def _marker_ids(page: Page) -> set[int]:
    """The incidents on the map: its dots and the members of its street bubbles."""
    classes = page.locator(".leaflet-os-incidents-pane .os-inc-marker").evaluate_all(
        "els => els.map(e => e.getAttribute('class'))"
    )
    grouped = page.locator(".leaflet-os-incidents-groups-pane .os-inc-group-count").evaluate_all(
        "els => els.map(e => e.getAttribute('data-ids'))"
    )
    dots = [int(c.split("os-inc-id-")[1].split()[0]) for c in classes]
    members = [int(i) for ids in grouped for i in ids.split()]
    assert len(dots) + len(members) == len(set(dots) | set(members)), "an incident drawn twice"
    return set(dots) | set(members)


def _z(page: Page, selector: str) -> int:
    return int(page.locator(selector).first.evaluate("e => getComputedStyle(e).zIndex"))


def _open_and_check(
    page: Page, url: str, engine: sa.Engine, alarms: dict, district: str | None
) -> None:
    """Each of our criticals is a pulsing marker in the top pane; the pane holds exactly the
    live critical and major alarms of the store (read before and after the page's own read)."""
    before = _live_ids(engine, district)
    # whatever the page shows is read after `before`: a cached answer lives about a period
    time.sleep(LIVE_REFRESH_SECONDS + 1)
    page.goto(url)
    expect(page.locator("path.os-area").first).to_be_visible()
    for incident in alarms["critical"]:
        marker = page.locator(f".os-inc-id-{incident}")
        expect(marker).to_be_visible()
        expect(page.locator(f".os-inc-id-{incident}.os-inc-critical.os-inc-pulse")).to_be_visible()
        # its ring, in the pane under the dots that pulses as a whole
        expect(page.locator(f".os-inc-halo-id-{incident}")).to_have_count(1)
    expect(page.locator(f".os-inc-id-{alarms['minor']}")).to_have_count(0)
    shown = _marker_ids(page)
    after = _live_ids(engine, district)
    assert before & after <= shown <= before | after, (shown, before, after)
    # drawn over the areas (overlay pane) and over labels and device clusters (marker pane)
    top = _z(page, ".leaflet-os-incidents-pane")
    rings = _z(page, ".leaflet-os-incidents-pulse-pane")
    assert top > rings > _z(page, ".leaflet-marker-pane") > _z(page, ".leaflet-overlay-pane")
    # the rings' pane blinks (闪烁)
    pulse = page.locator(".leaflet-os-incidents-pulse-pane").first
    seen = set()
    for _ in range(6):
        seen.add(pulse.evaluate("e => getComputedStyle(e).opacity"))
        page.wait_for_timeout(300)
    assert len(seen) == 2, seen


def test_critical_incidents_are_pulsing_markers_on_top_until_acknowledged(
    live_server_fast, live_engine, browser, alarms
):
    base = live_server_fast
    page, log = open_page(browser)
    _open_and_check(page, base + "/", live_engine, alarms, None)
    # a marker stays visible where Huangpu is a few pixels wide: inside the map's box
    box = page.locator(f".os-inc-id-{alarms['critical'][0]}").bounding_box()
    assert box is not None and box["width"] >= 18

    _open_and_check(page, f"{base}/district/{HUANGPU}?lang=en", live_engine, alarms, HUANGPU)
    tip = page.locator(f".os-inc-id-{alarms['critical'][0]}")
    tip.hover()
    expect(page.locator(".os-map-tip", has_text="Nanjing Rd E (test)")).to_be_visible()

    # acknowledged: still on the map, no longer pulsing (at the next refresh, no reload); the
    # other keeps pulsing
    page.goto(base + "/")
    acked, other = alarms["critical"]
    expect(page.locator(f".os-inc-id-{acked}.os-inc-pulse")).to_be_visible()
    _acknowledge(live_engine, acked)
    marker = page.locator(f".os-inc-id-{acked}")
    expect(page.locator(f".os-inc-id-{acked}.os-inc-critical.os-inc-acked")).to_be_visible()
    expect(page.locator(f".os-inc-halo-id-{acked}")).to_have_count(0)
    expect(page.locator(f".os-inc-halo-id-{other}")).to_have_count(1)
    expect(page.locator(f".os-inc-id-{other}.os-inc-pulse")).to_be_visible()

    # a click opens the incident
    marker.dispatch_event("click")
    expect(page).to_have_url(f"{base}/incidents?incident={acked}")
    expect(page.locator("#incidents-detail")).to_contain_text("南京东路燃气泄漏报警")
    page.context.close()
    assert log.errors == [], log.errors


def test_the_incidents_map_draws_critical_over_minor(live_server_fast, browser, alarms):
    page, log = open_page(browser)
    page.goto(live_server_fast + "/incidents")
    expect(page.locator("path.os-incident-critical").first).to_be_attached()
    expect(page.locator("path.os-incident-minor").first).to_be_attached()
    order = page.locator("path.os-incident-point").evaluate_all(
        "els => els.map(e => e.getAttribute('class'))"
    )
    last_minor = max(i for i, c in enumerate(order) if "os-incident-minor" in c)
    first_critical = min(i for i, c in enumerate(order) if "os-incident-critical" in c)
    assert last_minor < first_critical, order
    page.context.close()
    assert log.errors == [], log.errors


def test_a_streets_many_majors_are_one_bubble_that_opens_into_them_at_street_zoom(
    live_server_fast, live_engine, browser
):
    """GROUP_MIN or more majors in one street: one numbered bubble at city zoom, blinking
    while any is unacknowledged; a click zooms to the street, where each is its own dot."""
    made: list[int] = []
    try:
        for _ in range(GROUP_MIN):
            device = _quiet_device(live_engine, street=NANJING_EAST)
            made.append(_gas_alarm(live_engine, device, severity="major"))
        street_majors = {
            int(i)
            for i, severity, street in live_incident_points(live_engine, district=HUANGPU)[
                ["id", "severity", "street_code"]
            ].itertuples(index=False)
            if severity == "major" and street == NANJING_EAST
        }
        page, log = open_page(browser)
        time.sleep(LIVE_REFRESH_SECONDS + 1)
        # city zoom (a district page may fit Huangpu at street zoom already)
        page.goto(f"{live_server_fast}/?lang=en")
        count = page.locator(f"text.os-inc-group-count[data-ids~='{made[0]}']")
        expect(count).to_have_count(1)
        ids = {int(i) for i in (count.get_attribute("data-ids") or "").split()}
        assert set(made) <= ids and ids == street_majors, (ids, street_majors)
        expect(count).to_have_text(str(len(ids)))
        # the bubble: one circle for the street, blinking (its ring in the blinking pane)
        circle = page.locator(f"path.os-inc-group.os-inc-group-street-{NANJING_EAST}")
        expect(circle).to_have_count(1)
        expect(circle).to_have_class(re.compile(r"\bos-inc-pulse\b"))
        # (criticals of the street may be drawn over its centre: by event, not by pointer)
        circle.dispatch_event("mouseover")
        expect(page.locator(".os-map-tip", has_text="major alarms")).to_be_visible()
        circle.dispatch_event("click")
        for incident in made:
            expect(page.locator(f".os-inc-id-{incident}.os-inc-major.os-inc-pulse")).to_be_visible()
        expect(count).to_have_count(0)
        page.context.close()
        assert log.errors == [], log.errors
    finally:
        for incident in made:
            resolve(live_engine, incident)
