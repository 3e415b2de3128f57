"""Signing in and out, what each role sees, and handling an incident end to end, in Chromium
against the real server (CSP on: any blocked script or style would be a console error)."""

from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import expect

from tests.browser.conftest import (
    USER_PASSWORD,
    open_incident,
    open_page,
    screenshot,
    set_warning_in_form,
    wait_maps_settled,
)

PUDONG = "310115"
CHONGMING = "310151"
# the incidents map's view: how many dots lie outside it, and whether the city's outlines
# overflow it (they fit inside when it shows the whole city)
MAP_VIEW = """() => {
    const map = document.querySelector("#incidents-map").getBoundingClientRect();
    const dots = [...document.querySelectorAll("#incidents-map path.os-incident-point")]
        .map(d => d.getBoundingClientRect())
        .map(r => [r.x + r.width / 2, r.y + r.height / 2]);
    const outside = dots.filter(([x, y]) =>
        x < map.left || x > map.right || y < map.top || y > map.bottom).length;
    const lines = [...document.querySelectorAll("#incidents-map path[stroke='#9fdcff']")]
        .map(p => p.getBoundingClientRect());
    const left = Math.min(...lines.map(r => r.left)), right = Math.max(...lines.map(r => r.right));
    const top = Math.min(...lines.map(r => r.top)), bottom = Math.max(...lines.map(r => r.bottom));
    return {outside: outside, dots: dots.length,
            cityOverflows: left < map.left - 5 || right > map.right + 5
                || top < map.top - 5 || bottom > map.bottom + 5};
}"""


def test_sign_in_and_out_through_the_form(live_server, browser):
    for viewport in ("1920x1080", "3840x2160"):
        page, log = open_page(browser, viewport, user=None)
        page.goto(f"{live_server}/incidents")
        expect(page).to_have_url(re.compile(r"/login\?next=/incidents"))
        expect(page.locator(".os-login-form h2")).to_have_text("登录")
        screenshot(page, "login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "wrong password here")
        page.click("button[type=submit]")
        expect(page.locator(".os-login-error")).to_have_text("用户名或密码错误")
        page.fill("input[name=password]", USER_PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{live_server}/incidents")
        expect(page.locator(".os-account-name")).to_have_text("admin")
        expect(page.locator(".os-account-role")).to_contain_text("管理员")
        page.click(".os-signout")
        expect(page).to_have_url(f"{live_server}/login")
        page.goto(f"{live_server}/")
        expect(page).to_have_url(re.compile(r"/login"))
        page.context.close()
        assert log.errors == [], log.errors


def test_a_district_manager_sees_only_their_district(live_server, live_engine, browser):
    page, log = open_page(browser, user="pudong")
    page.goto(f"{live_server}/")
    expect(page).to_have_url(re.compile(rf"/district/{PUDONG}"))
    expect(page.locator(".os-account-role")).to_contain_text("浦东新区")
    expect(page.locator(".os-tile-devices .os-tile-value")).not_to_have_text("–")
    with live_engine.connect() as conn:
        pudong_devices = conn.execute(
            sa.text("SELECT count(*) FROM device WHERE district_adcode = :d"), {"d": PUDONG}
        ).scalar_one()
    expect(page.locator(".os-tile-devices .os-tile-value")).to_have_text(f"{pudong_devices:,}")
    # another district's page: refused
    page.goto(f"{live_server}/district/310101")
    expect(page.locator("body")).to_contain_text("无权查看该区域")
    # incidents: only Pudong to choose from, only Pudong in the table
    page.goto(f"{live_server}/incidents?window=30d")
    expect(page.locator("#incidents-count")).not_to_be_empty()
    page.wait_for_function("document.querySelectorAll('#incidents-table tbody tr td').length > 0")
    districts = page.locator("#incidents-table td[data-dash-column=district]").all_inner_texts()
    assert districts and set(districts) == {"浦东新区"}, set(districts)
    # their own district is chosen, and the map shows it: zoomed in past the whole city, every
    # one of its incidents in view
    expect(page.locator("#incidents-district")).to_contain_text("浦东新区")
    expect(page.locator("#incidents-district")).not_to_contain_text("全部行政区")
    expect(page.locator("#incidents-map path.os-incident-point").first).to_be_visible()
    wait_maps_settled(page)  # the map's fit to the district is animated
    view = page.evaluate(MAP_VIEW)
    assert view["dots"] > 0 and view["outside"] == 0 and view["cityOverflows"], view
    screenshot(page, "incidents-pudong-manager")
    page.context.close()
    assert log.errors == [], log.errors


def test_an_incident_is_handled_end_to_end_and_its_history_shows_who(
    live_server, live_engine, browser
):
    incident = open_incident(live_engine, district=PUDONG)
    page, log = open_page(browser, user="pudong")
    page.goto(f"{live_server}/incidents?incident={incident}&window=30d")
    expect(page.locator("#incidents-detail h3")).to_have_text("浏览器测试事件")
    note = page.locator("#incidents-note")
    history = page.locator(".os-history tbody tr")
    expect(history).to_have_count(1)  # opened

    def act(action: str, comment: str, status: str, rows: int) -> None:
        if comment:
            note.fill(comment)
        page.click(f".os-action-{action}")
        expect(page.locator(".os-action-ok")).to_be_visible()
        expect(page.locator("#incidents-detail .os-facts")).to_contain_text(status)
        expect(history).to_have_count(rows)

    act("acknowledge", "到场核实", "处置中", 2)
    # nobody assigned yet: the picker says so in Chinese, not Dash's "Select..."
    expect(page.locator("#incidents-assignee")).to_contain_text("选择处置人…")
    page.locator("#incidents-assignee").click()
    page.get_by_text("浦东新区城运中心", exact=True).click()
    act("assign", "", "处置中", 3)
    act("note", "已关阀，等待抢修", "处置中", 4)
    screenshot(page, "incident-handling")
    act("resolve", "管道已修复", "已办结", 5)
    act("reopen", "复查仍有泄漏", "待处置", 6)
    texts = history.all_inner_texts()
    kinds = [row.split("\t")[1] for row in texts]
    assert kinds == ["发生", "确认", "指派", "备注", "办结", "重新打开"]
    assert all("\tpudong\t" in row for row in texts[1:])
    assert "→ 浦东新区城运中心" in texts[2] and "复查仍有泄漏" in texts[5]
    # a comment is required: the server says so, nothing changes
    note.fill("")
    page.click(".os-action-acknowledge")
    expect(page.locator(".os-action-error")).to_have_text("a comment is required")
    expect(history).to_have_count(6)
    with live_engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM incident WHERE id = :id"), {"id": incident}
        ).scalar_one()
    assert status == "open"
    page.context.close()
    assert log.errors == [], log.errors


def test_a_viewer_sees_incidents_but_no_handling(live_server, live_engine, browser):
    incident = open_incident(live_engine, district=PUDONG)
    page, log = open_page(browser, user="viewer")
    page.goto(f"{live_server}/incidents?incident={incident}&window=30d")
    expect(page.locator("#incidents-detail h3")).to_have_text("浏览器测试事件")
    expect(page.locator("#incidents-actions")).to_contain_text("只读账号")
    expect(page.locator(".os-action")).to_have_count(0)
    page.context.close()
    assert log.errors == [], log.errors


def _make_event(engine: sa.Engine, *, district: str, members: int) -> tuple[int, list[int]]:
    """An active water-mains event of `members` open alarms over two of `district`'s streets, as
    the rules pass groups them: its id and its members'."""
    with engine.begin() as conn:
        streets = (
            conn.execute(
                sa.text("SELECT code FROM street WHERE district_adcode = :d ORDER BY code LIMIT 2"),
                {"d": district},
            )
            .scalars()
            .all()
        )
        group = conn.execute(
            sa.text(
                "INSERT INTO incident_group (category_code, opened_at, last_member_at, districts,"
                " streets) VALUES ('water', now() - interval '20 minutes', now(), :ds, :ss)"
                " RETURNING id"
            ),
            {"ds": [district], "ss": streets},
        ).scalar_one()
        ids = conn.execute(
            sa.text(
                "INSERT INTO incident (category_code, district_adcode, street_code, rule_code,"
                " severity, status, title_zh, title_en, opened_at, geom, group_id, grouped_at)"
                " SELECT 'water', s.district_adcode, s.code, 'browser-event-' || n, 'major',"
                "   'open', '管网压力骤降', 'Pressure drop',"
                "   now() - n * interval '4 minutes', s.label_point, :g, now()"
                " FROM generate_series(1, :members) AS n"
                " JOIN street s ON s.code = (CAST(:ss AS text[]))[1 + n % 2]"
                " RETURNING id"
            ),
            {"g": group, "members": members, "ss": streets},
        ).scalars()
        return group, list(ids)


def test_an_event_is_one_line_that_opens_into_its_members_handled_as_one(
    live_server, live_engine, browser
):
    # water mains in Chongming: no other test's incidents there for the rules to add to it
    group, members = _make_event(live_engine, district=CHONGMING, members=4)
    try:
        _handle_the_event(live_server, live_engine, browser, group)
    finally:  # the other tests' feeds, walls and kiosks never meet this event
        with live_engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE incident SET group_id = NULL WHERE group_id = :g"), {"g": group}
            )
            conn.execute(sa.text("DELETE FROM incident WHERE id = ANY(:ids)"), {"ids": members})
            conn.execute(sa.text("DELETE FROM incident_group WHERE id = :g"), {"g": group})


def _handle_the_event(live_server: str, live_engine: sa.Engine, browser, group: int) -> None:
    page, log = open_page(browser, user="operator")
    page.goto(f"{live_server}/incidents")
    line = page.locator("#incidents-table tbody tr", has_text=re.compile(r"· 4 条告警"))
    expect(line).to_have_count(1)
    expect(line.locator("td[data-dash-column=kind]")).to_have_text("事件")
    line.locator("td[data-dash-column=title]").click()
    # the line opens into its members: the bar says which event, the table lists the four
    expect(page).to_have_url(re.compile(rf"event={group}"))
    bar = page.locator("#incidents-event-bar")
    expect(bar).to_be_visible()
    expect(bar).to_contain_text(f"仅显示事件 #{group}")
    expect(bar).to_contain_text("作用于您辖区内的 4 条在办告警")
    rows = page.locator("#incidents-table td[data-dash-column=title]")
    expect(rows).to_have_count(4)
    page.fill("#incidents-event-note", "泵车已出发")
    bar.locator(".os-action-acknowledge").click()
    expect(bar.locator(".os-action-ok")).to_have_text("全部确认：4 条告警")
    expect(page.locator("#incidents-table td[data-dash-column=status]")).to_have_text(
        ["处置中"] * 4
    )
    page.locator("#incidents-event-assignee").click()
    page.get_by_text("崇明区城运中心", exact=True).click()
    bar.locator(".os-action-assign").click()
    expect(bar.locator(".os-action-ok")).to_have_text("全部指派：4 条告警")
    screenshot(page, "incident-event-handled")
    with live_engine.connect() as conn:
        handled = conn.execute(
            sa.text("SELECT status, assignee FROM incident WHERE group_id = :g"), {"g": group}
        ).all()
    assert set(handled) == {("acknowledged", f"team:ops-{CHONGMING}")}
    # acknowledging again: the server says there is nothing left to acknowledge
    page.fill("#incidents-event-note", "再次确认")
    bar.locator(".os-action-acknowledge").click()
    expect(bar.locator(".os-action-error")).to_contain_text("already acknowledged")
    page.context.close()
    assert log.errors == [], log.errors
    # a reader sees the event and its members, and no handling
    page, log = open_page(browser, user="viewer")
    page.goto(f"{live_server}/incidents?event={group}")
    expect(page.locator("#incidents-event-bar")).to_contain_text("只读账号")
    expect(page.locator("#incidents-event-bar .os-action")).to_have_count(0)
    page.context.close()
    assert log.errors == [], log.errors


def test_a_district_manager_holds_their_districts_scenario_view_and_sets_its_level(
    live_server, live_engine, browser
):
    page, log = open_page(browser, user="pudong")
    # the district page's scenario links open the scenario in the district
    page.goto(f"{live_server}/district/{PUDONG}")
    expect(page.locator("path.os-area").first).to_be_visible()
    # left at once, in the middle of the map's first fit: a removed map's late zoom end once
    # threw '_leaflet_pos' (onescreen_core.js)
    page.locator(f"#district-warnings a[href='/topic/flood?district={PUDONG}']").click()
    expect(page).to_have_url(re.compile(rf"/topic/flood\?district={PUDONG}$"))
    expect(page.locator(".os-panel-map h2").first).to_have_text("防汛防台 · 浦东新区")
    # Pudong's streets, not the city's districts, with the figures of Pudong's devices only
    with live_engine.connect() as conn:
        streets, ponding = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM street WHERE district_adcode = :d),"
                " (SELECT count(*) FROM device d JOIN device_type t ON t.id = d.type_id"
                "  WHERE d.district_adcode = :d AND d.status = 'active'"
                "  AND t.measurand = 'ponding')"
            ),
            {"d": PUDONG},
        ).one()
    expect(page.locator("path.os-area")).to_have_count(streets)
    underpasses = page.locator("#topic-district-figures .os-topic-tile").nth(1)
    expect(underpasses).to_contain_text("在线")
    online = int(
        re.search(r"在线 ([\d,]+) 台中", underpasses.inner_text()).group(1).replace(",", "")
    )
    assert 0 < online <= ponding
    expect(page.locator("#topic-district-trend-box .xy").first).to_be_visible(timeout=15_000)
    # the manager sets Pudong's level (not the city's: that needs the whole city)
    set_warning_in_form(page, "III 级 黄色", "区内积水点位预置")
    expect(page.locator("#warn-message")).to_contain_text("III 级 黄色预警")
    try:
        with live_engine.connect() as conn:
            held = conn.execute(
                sa.text(
                    "SELECT override, override_by FROM warning_level"
                    " WHERE topic_code = 'flood' AND district_adcode = :d"
                ),
                {"d": PUDONG},
            ).one()
        assert held == (3, "pudong")
        page.reload()
        expect(page.locator("#topic-district-warning .os-level").first).to_have_text(
            "III 级 黄色预警"
        )
        expect(page.locator("#topic-district-trend-box .xy").first).to_be_visible(timeout=15_000)
        expect(page.locator("#topic-district-timeline-box .xy").first).to_be_visible()
        # the scenario's map draws no device clusters, so its legend has none either
        expect(page.locator("#topic-district-legend")).not_to_contain_text("设备状态")
        screenshot(page, "topic-flood-pudong")
        # another district's scenario view is refused; so is one that does not exist
        page.goto(f"{live_server}/topic/flood?district=310101")
        expect(page.locator("body")).to_contain_text("无权查看该区域")
        page.goto(f"{live_server}/topic/flood?district=999999")
        expect(page.locator("body")).to_contain_text("没有这个专题")
        # the city's scenario view offers a district manager no form: the city's is not theirs
        page.goto(f"{live_server}/topic/flood")
        expect(page.locator(".os-topic-tile").first).to_be_visible()
        expect(page.locator("#warn-set")).to_have_count(0)
    finally:
        page.goto(f"{live_server}/topic/flood?district={PUDONG}")
        set_warning_in_form(page, "恢复自动判定", "解除")
        expect(page.locator("#warn-message")).to_contain_text("预警等级已设定")
        page.context.close()
    assert log.errors == [], log.errors
