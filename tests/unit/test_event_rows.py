"""An event in the feed: one line saying what, how many alarms in how many districts, where,
how many wait; it opens its members on pages and is plain on walls."""

from __future__ import annotations

import pandas as pd
from dash import dcc, html

from components.feed import feed_children
from tests.unit.conftest import component_text


def _event(**overrides) -> dict:
    row = {
        "line": "event",
        "id": 42,
        "category_code": "flood",
        "event_zh": "暴雨积水",
        "event_en": "Rainstorm flooding",
        "members": 47,
        "live": 30,
        "unacknowledged": 12,
        "criticals_open": 9,
        "severity": "critical",
        "status": "open",
        "kind": "alarm",
        "opened_at": pd.Timestamp("2026-07-21 06:02", tz="UTC"),
        "last_at": pd.Timestamp("2026-07-21 06:40", tz="UTC"),
        "n_districts": 3,
        "n_streets": 14,
        "districts_zh": ["黄浦区", "徐汇区", "长宁区"],
        "districts_en": ["Huangpu", "Xuhui", "Changning"],
    }
    return {**row, **overrides}


CATEGORIES = {"flood": ("防汛防台", "Flood control")}


def test_an_event_is_one_line_with_its_count_districts_and_waiting_alarms():
    (row,) = feed_children(pd.DataFrame([_event()]), lang="zh", categories=CATEGORIES)
    assert isinstance(row, dcc.Link) and "event=42" in row.href
    text = component_text(row)
    assert "暴雨积水 · 47 条告警 · 3 个区 · 待处置 12" in text
    assert "14:02" in text and "–14:40" in text  # its span, city time
    assert "黄浦区、徐汇区 等" in text  # two districts named, the rest said
    classes = row.className.split()
    assert "os-feed-event" in classes and "os-feed-sev-critical" in classes


def test_an_event_line_in_english_on_a_wall_is_plain_and_one_district_is_named():
    event = _event(n_districts=1, districts_en=["Pudong"], unacknowledged=0, status="acknowledged")
    (row,) = feed_children(pd.DataFrame([event]), lang="en", categories=CATEGORIES, link=False)
    assert isinstance(row, html.Div)
    text = component_text(row)
    assert "Rainstorm flooding · 47 alarms" in text
    assert "districts" not in text and "unacknowledged" not in text
    assert "Flood control · Pudong" in text


def test_an_events_live_early_warnings_lead_its_line_with_the_soonest_breach():
    now = pd.Timestamp("2026-07-21 06:45", tz="UTC").to_pydatetime()
    soon = pd.Timestamp("2026-07-21 06:57", tz="UTC")
    (row,) = feed_children(
        pd.DataFrame([_event(forecasts=3, next_breach=soon)]),
        lang="zh",
        categories=CATEGORIES,
        now=now,
    )
    title = row.children[2]
    chip = title.children[0]
    assert chip.className == "os-feed-countdown" and chip.children == "预警 3 · 最早 12 分钟后"
    assert component_text(title).endswith("暴雨积水 · 47 条告警 · 3 个区 · 待处置 12")
    # none live: nothing said; in English
    (plain,) = feed_children(
        pd.DataFrame([_event(forecasts=0, next_breach=None)]), lang="zh", categories=CATEGORIES
    )
    assert "预警" not in component_text(plain)
    (english,) = feed_children(
        pd.DataFrame([_event(forecasts=1, next_breach=soon)]),
        lang="en",
        categories=CATEGORIES,
        now=now,
    )
    assert "early warnings 1 · earliest in 12 min" in component_text(english)


def test_event_and_incident_lines_mix_in_one_feed():
    incident = {
        "line": "incident",
        "id": 7,
        "opened_at": pd.Timestamp("2026-07-21 06:50", tz="UTC"),
        "district_zh": "浦东新区",
        "district_en": "Pudong",
        "street_zh": "",
        "street_en": "",
        "category_code": "flood",
        "severity": "major",
        "status": "open",
        "kind": "alarm",
        "title_zh": "积水超限",
        "title_en": "Ponding above limit",
    }
    rows = feed_children(pd.DataFrame([incident, _event()]), lang="zh", categories=CATEGORIES)
    assert [("os-feed-event" in row.className) for row in rows] == [False, True]
    assert "incident=7" in rows[0].href
