"""Pure builders of the resources screens: units on maps (who is parked, who is out and where
to, what kiosks leave out), coverage colours, the playbook's progress, travel-time words."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from plotly.utils import PlotlyJSONEncoder

from components.resources import (
    COVERAGE_COLORS,
    UNIT_LEND,
    coverage_style,
    minutes,
    playbook_progress,
    reserve_rows,
    sent_row,
    task_rows,
    unit_table,
)
from components.unit_layer import unit_features


def _row(**values) -> dict:
    row = {
        "id": 1,
        "code": "PT-310115-001",
        "name_zh": "浦东新区排水泵车 1 号",
        "name_en": "Pudong pump truck 1",
        "kind_code": "pump_truck",
        "unit_class": "vehicle",
        "status": "available",
        "lon": 121.5,
        "lat": 31.2,
        "parked": True,
        "target_lon": None,
        "target_lat": None,
        "job_category": None,
    }
    return {**row, **values}


def _text(component) -> str:
    return json.dumps(component, cls=PlotlyJSONEncoder, ensure_ascii=False)


def test_parked_units_cluster_and_busy_ones_come_with_their_route():
    rows = [
        _row(),
        _row(id=2, status="en_route", parked=False, target_lon=121.6, target_lat=31.25),
        _row(id=3, status="on_site", parked=False, target_lon=121.6, target_lat=31.25),
    ]
    parked, moving = unit_features(rows, lang="zh", wall=False)
    assert len(parked["features"]) == 1
    kinds = [f["geometry"]["type"] for f in moving["features"]]
    # the en-route unit has its line to the job; the one on site is there already
    assert kinds == ["LineString", "Point", "Point"]
    line = moving["features"][0]["geometry"]["coordinates"]
    assert line == [[121.5, 31.2], [121.6, 31.25]]
    assert moving["features"][1]["properties"]["tip"] == "浦东新区排水泵车 1 号 · 在途"


def test_walls_name_nobody_and_kiosks_hide_jobs_at_peoples_homes():
    rows = [
        _row(
            id=2,
            status="on_site",
            parked=False,
            target_lon=121.6,
            target_lat=31.2,
            job_category="elderly",
        ),
        _row(
            id=3,
            status="en_route",
            parked=False,
            target_lon=121.6,
            target_lat=31.2,
            job_category="flood",
        ),
    ]
    _, wall = unit_features(rows, lang="zh", wall=True)
    assert len(wall["features"]) == 3
    assert all("tip" not in f["properties"] for f in wall["features"])
    _, kiosk = unit_features(rows, lang="zh", wall=True, masked=True)
    assert [f["properties"].get("s") for f in kiosk["features"]] == ["en_route", "en_route"]


def test_coverage_colours_go_green_to_orange_to_red():
    streets = [
        {"code": "a", "name_zh": "甲", "name_en": "A", "eta_s": 200.0, "blind": False},
        {"code": "b", "name_zh": "乙", "name_en": "B", "eta_s": 840.0, "blind": False},
        {"code": "c", "name_zh": "丙", "name_en": "C", "eta_s": 1300.0, "blind": True},
        {"code": "d", "name_zh": "丁", "name_en": "D", "eta_s": None, "blind": True},
    ]
    style = coverage_style(streets, lang="en")
    assert [style["colors"][c] for c in "abcd"] == [
        COVERAGE_COLORS[0],
        COVERAGE_COLORS[2],
        COVERAGE_COLORS[3],
        COVERAGE_COLORS[4],
    ]
    assert style["tips"]["c"] == "C · fastest available unit ~22 min"


def test_the_playbooks_progress_reads_done_of_total_and_overdue():
    idle = _text(playbook_progress(None, lang="zh"))
    assert "预案未启动" in idle
    shown = _text(playbook_progress({"done": 12, "open": 6, "total": 18, "overdue": 2}, lang="zh"))
    assert "预案 12 / 18 已完成" in shown and "2 项超时" in shown and "67%" in shown


def test_travel_times_are_rounded_minutes_never_seconds():
    assert [minutes(s) for s in (None, 10, 89, 91, 1500)] == [
        "—",
        "~1 min",
        "~1 min",
        "~2 min",
        "~25 min",
    ]


def test_a_late_unit_says_so_and_an_arrived_one_says_on_site():
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    unit = _row(status="en_route", eta_at=now - timedelta(minutes=3), metres_left=2500.0)
    assert "超时" in _text(sent_row(unit, lang="zh", now=now, buttons=[]))
    unit = _row(status="on_site", eta_at=now, metres_left=20.0)
    text = _text(sent_row(unit, lang="zh", now=now, buttons=[]))
    assert "已到场" in text and "km" not in text


def test_tasks_offer_send_only_when_a_unit_is_needed_and_none_is_sent():
    base = {
        "id": 7,
        "level": 4,
        "status": "open",
        "text_zh": "泵车预置",
        "text_en": "Pre-position",
        "target_code": None,
        "owner": "team:ops-310115",
        "units": 0,
        "overdue": False,
        "due_at": datetime(2026, 12, 4, 9, 30, tzinfo=UTC),
        "done_at": None,
    }
    needs = _text(task_rows([{**base, "kind_code": "pump_truck"}], lang="zh", acting=True))
    assert "os-task-do-send" in needs and "os-task-do-done" in needs
    staffed = _text(
        task_rows([{**base, "kind_code": "pump_truck", "units": 1}], lang="zh", acting=True)
    )
    assert "os-task-do-send" not in staffed and "已派 1" in staffed
    read_only = _text(task_rows([{**base, "kind_code": None}], lang="zh", acting=False))
    assert "os-task-do" not in read_only and "17:30" in read_only


def _buttons(component) -> list[dict]:
    """The ids of every button under a Dash component, in document order."""
    found = []
    stack = [component]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            stack.extend(reversed(node))
            continue
        if type(node).__name__ == "Button":
            found.append(node.id)
        children = getattr(node, "children", None)
        if children is not None and not isinstance(children, str):
            stack.append(children)
    return found


NAMES = {"310106": ("静安区", "Jing'an"), "310115": ("浦东新区", "Pudong")}


def test_a_lent_unit_says_where_and_only_the_city_may_take_it_back_when_free():
    rows = [
        _row(code="GT-1", lent_to="310106", eta_at=None, status="available"),
        _row(code="GT-2", lent_to="310106", eta_at=None, status="on_site"),
        _row(code="PT-3", lent_to=None, eta_at=None, district_adcode="310106"),
    ]
    table = unit_table(rows, lang="en", district_names=NAMES)
    text = json.dumps(table.to_plotly_json(), cls=PlotlyJSONEncoder)
    assert text.count("lent to Jing'an") == 2
    assert _buttons(table) == []  # the reserve section holds the buttons (ids are unique)
    lent = rows[:2]
    city = reserve_rows(lent, [], lang="en", district=None, district_names=NAMES, lender=True)
    # a unit out on a job is not taken back
    assert _buttons(city) == [{"type": UNIT_LEND, "unit": "GT-1", "to": ""}]
    text = json.dumps(city.to_plotly_json(), cls=PlotlyJSONEncoder, ensure_ascii=False)
    assert "City reserve · 2 on loan" in text
    viewer = reserve_rows(lent, [], lang="en", district=None, district_names=NAMES, lender=False)
    assert _buttons(viewer) == []


def test_a_districts_board_offers_the_free_reserve_nearest_it_to_lend():
    free = [
        {
            "code": "GT-9",
            "kind_code": "generator_truck",
            "name_zh": "市应急发电车 9 号",
            "name_en": "City generator truck 9",
            "metres": 1234.0,
        }
    ]
    lent = [_row(code="GT-1", lent_to="310115", eta_at=None, status="available")]
    board = reserve_rows(
        lent, free, lang="en", district="310115", district_names=NAMES, lender=True
    )
    assert _buttons(board) == [
        {"type": UNIT_LEND, "unit": "GT-1", "to": ""},
        {"type": UNIT_LEND, "unit": "GT-9", "to": "310115"},
    ]
    text = json.dumps(board.to_plotly_json(), cls=PlotlyJSONEncoder)
    assert "City reserve" in text and "Pudong" in text and "1.2 km" in text
    seen = reserve_rows(
        lent, free, lang="en", district="310115", district_names=NAMES, lender=False
    )
    assert _buttons(seen) == []
    empty = reserve_rows([], [], lang="zh", district="310115", district_names=NAMES, lender=True)
    text = json.dumps(empty.to_plotly_json(), cls=PlotlyJSONEncoder, ensure_ascii=False)
    assert "暂无" in text
