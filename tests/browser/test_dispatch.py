"""Dispatch in the browser (issue 21): an incident's detail suggests the fastest suitable units,
sending one puts it on the incident's map with its route and in the history; arrival and
release return it to service; a district manager is offered only what they may send; the
resource board and a scenario view show the units, coverage and the playbook's tasks."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import expect

from data.dispatch import suggest_units
from data.playbooks import progress, tasks
from tests.browser.conftest import open_incident, open_page, screenshot, wait_maps_settled

PUDONG = "310115"


def _unit(engine: sa.Engine, code: str) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT id, status, incident_id, district_adcode FROM resource WHERE code = :code"
            ),
            {"code": code},
        ).one()


def test_an_incident_gets_the_suggested_unit_sent_on_the_map_and_back(
    live_server, live_engine, browser
):
    incident = open_incident(live_engine, district=PUDONG, category="flood", severity="critical")
    expected = suggest_units(live_engine, incident_id=incident, k=5)
    assert expected, "the seeded fleet serves flood alarms in Pudong"
    for viewport in ("3840x2160", "1920x1080"):
        page, log = open_page(browser, viewport, user="operator")
        page.goto(f"{live_server}/incidents?incident={incident}&window=24h")
        rows = page.locator("#incidents-dispatch .os-dispatch-send")
        expect(rows.first).to_be_visible()
        # the panel's order is the data layer's (fastest first, a local unit ahead when close)
        names = page.locator("#incidents-dispatch .os-dispatch-name").all_inner_texts()
        assert names[0].startswith(expected[0].name_zh), names
        expect(page.locator("#incidents-dispatch")).to_contain_text("估算")
        if viewport == "1920x1080":
            break
        wait_maps_settled(page)
        screenshot(page, "dispatch-suggested")
        page.context.close()
        assert log.errors == [], log.errors
    page.locator("#incidents-dispatch .os-dispatch-send").first.click()
    expect(page.locator("#incidents-dispatch-message .os-action-ok")).to_contain_text(
        expected[0].code
    )
    unit = _unit(live_engine, expected[0].code)
    assert (unit.status, unit.incident_id) == ("dispatched", incident)
    # on the incident's map: the unit and its dashed route to the incident
    expect(page.locator("#incidents-map .os-unit-dispatched")).to_have_count(1)
    expect(page.locator('#incidents-map path[stroke-dasharray="6 5"]')).to_have_count(1)
    expect(page.locator("#incidents-dispatch .os-sent-dispatched")).to_have_count(1)
    expect(page.locator(".os-history tbody tr", has_text="派遣")).to_have_count(1)
    page.locator(".os-panel-map").scroll_into_view_if_needed()
    wait_maps_settled(page)
    screenshot(page, "dispatch-sent")
    page.locator("#incidents-dispatch .os-dispatch-arrive").first.click()
    expect(page.locator("#incidents-dispatch .os-sent-on_site")).to_have_count(1)
    page.locator("#incidents-dispatch .os-dispatch-release").first.click()
    expect(page.locator("#incidents-dispatch .os-sent-on_site")).to_have_count(0)
    assert _unit(live_engine, expected[0].code).status == "available"
    expect(page.locator(".os-history tbody tr", has_text="收队")).to_have_count(1)
    kinds = page.locator(".os-history tbody tr").all_inner_texts()
    assert [row.split("\t")[1] for row in kinds][-3:] == ["派遣", "到场", "收队"]
    page.context.close()
    assert log.errors == [], log.errors


def test_a_district_manager_is_offered_only_their_units_and_a_viewer_none_to_send(
    live_server, live_engine, browser
):
    incident = open_incident(live_engine, district=PUDONG, category="flood", severity="critical")
    page, log = open_page(browser, user="pudong")
    page.goto(f"{live_server}/incidents?incident={incident}&window=24h")
    expect(page.locator("#incidents-dispatch .os-dispatch-send").first).to_be_visible()
    with live_engine.connect() as conn:
        pudong_codes = set(
            conn.execute(
                sa.text("SELECT name_zh FROM resource WHERE district_adcode = :d OR lent_to = :d"),
                {"d": PUDONG},
            ).scalars()
        )
    shown = [
        name.removesuffix("本区").strip()
        for name in page.locator("#incidents-dispatch .os-dispatch-name").all_inner_texts()
    ]
    assert shown and all(name in pudong_codes for name in shown), shown
    page.context.close()
    assert log.errors == [], log.errors
    viewer, viewer_log = open_page(browser, user="viewer")
    viewer.goto(f"{live_server}/incidents?incident={incident}&window=24h")
    expect(viewer.locator("#incidents-dispatch .os-dispatch-row").first).to_be_visible()
    expect(viewer.locator("#incidents-dispatch .os-dispatch-send")).to_have_count(0)
    viewer.context.close()
    assert viewer_log.errors == [], viewer_log.errors


def test_the_resource_board_shows_coverage_units_and_the_playbooks_tasks(
    live_server, live_engine, browser
):
    with live_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO warning_level_change (topic_code, district_adcode, from_level,"
                " to_level, source, actor, reason) VALUES ('flood', :d, NULL, 4, 'operator',"
                " 'browser-test', 'board test')"
            ),
            {"d": PUDONG},
        )
    # what the board lists and counts, computed directly (other tests may have raised Pudong)
    listed = tasks(live_engine, topic="flood", district=PUDONG)
    assert sum(task["status"] == "open" for task in listed) >= 3
    for viewport in ("1920x1080", "3840x2160"):
        page, log = open_page(browser, viewport, user="operator")
        page.goto(f"{live_server}/resources?topic=flood&district={PUDONG}")
        expect(page.locator("#resources-tasks .os-task")).to_have_count(len(listed))
        counted = progress(live_engine, district=PUDONG)["flood"]
        expect(page.locator("#resources-summary")).to_contain_text(
            f"预案 {counted['done']} / {counted['total']}"
        )
        # the streets take their coverage colours from the hideout
        expect(page.locator("#resources-map path.os-area").first).to_be_visible()
        wait_maps_settled(page)
        screenshot(page, "resource-board")
        if viewport == "1920x1080":
            page.locator("#resources-tasks .os-task-do-done").first.click()
            done = sum(task["status"] == "done" for task in listed) + 1
            expect(page.locator("#resources-tasks .os-task.os-task-done")).to_have_count(done)
            expect(page.locator("#resources-summary")).to_contain_text(f"预案 {done} / ")
        page.context.close()
        assert log.errors == [], log.errors


def test_the_city_lends_a_reserve_unit_to_a_district_on_its_board_and_takes_it_back(
    live_server, live_engine, browser
):
    district = "310104"
    page, log = open_page(browser, "1920x1080", user="operator")
    page.goto(f"{live_server}/resources?topic=power&district={district}")
    reserve = page.locator("#resources-units .os-reserve .os-dispatch-row:not(.os-unit-lent)")
    expect(reserve.first).to_be_visible()
    expect(page.locator("#resources-units .os-reserve-head")).to_contain_text("徐汇")
    code = reserve.first.locator(".os-dispatch-meta").inner_text().split(" · ")[0].strip()
    screenshot(page, "resource-board-reserve")
    reserve.first.locator(".os-unit-do-lend").click()
    expect(page.locator("#resources-message .os-action-ok")).to_contain_text("已借调至徐汇")
    # lent: at the top of the reserve, with its take-back button, and noted in the units list
    lent_row = page.locator("#resources-units .os-reserve .os-unit-lent", has_text=code)
    expect(lent_row).to_contain_text("借调至徐汇")
    expect(lent_row.locator(".os-unit-do-back")).to_have_count(1)
    listed = page.locator("#resources-units .os-board-units .os-unit-lent", has_text=code)
    expect(listed).to_contain_text("借调至徐汇")
    with live_engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT lent_to FROM resource WHERE code = :code"), {"code": code}
            ).scalar_one()
            == district
        )
    lent_row.locator(".os-unit-do-back").click()
    expect(page.locator("#resources-message .os-action-ok")).to_contain_text("已收回市级")
    expect(lent_row).to_have_count(0)
    expect(listed).to_have_count(0)
    page.context.close()
    assert log.errors == [], log.errors
