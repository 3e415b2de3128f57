"""Playlist grammar, display options and the kiosk's masking (pure functions)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from components.feed import mask_personal
from components.ranking import wall_ranking as ranking_children
from displays.playlist import (
    DEFAULT_INTERVAL_S,
    MAX_VIEW_ITEMS,
    View,
    display_options,
    parse_views,
    within_scope,
)

DISTRICTS = {
    "310101": ("黄浦区", "Huangpu"),
    "310115": ("浦东新区", "Pudong"),
    "310104": ("徐汇区", "Xuhui"),
}
CATEGORIES = {"flood": ("防汛防台", "Flood control"), "elderly": ("养老", "Elderly care")}
STREETS = {"310115001": "310115", "310101002": "310101"}


def parse(text: str):
    return parse_views(text, districts=DISTRICTS, categories=CATEGORIES, streets=STREETS)


def test_items_of_every_kind_parse_in_order():
    parsed = parse("city, 310115 ,flood,310115001,310101:flood,districts:elderly")
    assert parsed.rejected == []
    assert [v.key for v in parsed.views] == [
        "city",
        "310115",
        "city:flood",
        "310115001",
        "310101:flood",
        "310101:elderly",
        "310104:elderly",
        "310115:elderly",
    ]
    street = parsed.views[3]
    assert (street.district, street.street, street.category) == ("310115", "310115001", None)


def test_scenario_views_are_their_own_items():
    parsed = parse("topic:flood,310115:topic:flood,districts:topic:elderly,310101002:topic:flood")
    assert parsed.rejected == []
    keys = [v.key for v in parsed.views]
    assert keys == [
        "city:topic:flood",
        "310115:topic:flood",
        "310101:topic:elderly",
        "310104:topic:elderly",
        "310115:topic:elderly",
        "310101002:topic:flood",
    ]
    assert all(v.topic for v in parsed.views) and parse("flood").views[0].topic is False
    # a scenario keeps being one when a district display narrows the city to its district
    assert [v.key for v in within_scope(parsed.views[:1], district="310104")] == [
        "310104:topic:flood"
    ]


@pytest.mark.parametrize(
    "bad", ["topic:", "topic:nope", "310115:topic:", "310199:topic:flood", "topic:topic:flood"]
)
def test_a_scenario_item_must_name_a_known_place_and_scenario(bad: str):
    parsed = parse(f"city,{bad}")
    assert [v.key for v in parsed.views] == ["city"] and parsed.rejected == [bad]


@pytest.mark.parametrize(
    "bad",
    ["310199", "mars", "310115:nope", "city:", "<script>", "310115001:flood:x", "DISTRICTS"],
)
def test_unknown_items_are_reported_not_guessed(bad: str):
    parsed = parse(f"city,{bad}")
    assert [v.key for v in parsed.views] == ["city"]
    assert parsed.rejected == [bad[:40]]


def test_huge_inputs_are_bounded():
    assert parse("x" * 10_000).views == []
    assert len(parse(",".join(["city"] * 700)).views) == MAX_VIEW_ITEMS
    assert parse(None).views == []  # type: ignore[arg-type]


def test_scope_keeps_only_the_district():
    views = parse("city,310101,310115,310115001:flood,city").views
    scoped = within_scope(views, district="310115")
    # the city becomes the district, and the district twice running shows once
    assert [v.key for v in scoped] == ["310115", "310115001:flood", "310115"]
    assert [v.key for v in within_scope(parse("310101").views, district="310115")] == ["310115"]


def test_options_merge_url_over_saved_over_defaults():
    saved = {"views": "310101,310104", "interval_s": 45, "attention_s": 20, "sound": True}
    options = display_options(
        {"interval": "12"}, saved=saved, districts=DISTRICTS, categories=CATEGORIES, streets=STREETS
    )
    assert [v.key for v in options.views] == ["310101", "310104"]
    assert (options.interval_s, options.attention_s, options.sound) == (12, 20, True)
    assert options.notes == []
    default = display_options(
        {}, saved=None, districts=DISTRICTS, categories=CATEGORIES, streets=STREETS
    )
    assert default.views[0] == View()
    assert len(default.views) == 1 + len(DISTRICTS)
    assert default.interval_s == DEFAULT_INTERVAL_S


@pytest.mark.parametrize(
    ("params", "note"),
    [
        ({"interval": "1"}, "interval=1"),
        ({"interval": "abc"}, "interval=abc"),
        ({"interval": "nan"}, "interval=nan"),
        ({"attention": "inf"}, "attention=inf"),
        ({"reload": "-3"}, "reload=-3"),
        ({"metric": "drop table"}, "metric=drop table"),
        ({"views": "nowhere"}, "views: nowhere"),
    ],
)
def test_bad_options_fall_back_with_a_note(params: dict, note: str):
    options = display_options(
        params, saved=None, districts=DISTRICTS, categories=CATEGORIES, streets=STREETS
    )
    assert note in options.notes
    assert options.views  # never an empty playlist
    assert 5 <= options.interval_s <= 3600 and math.isfinite(options.reload_hours)


def test_kiosk_masks_personal_incidents_only():
    frame = pd.DataFrame(
        {
            "id": [1, 2],
            "category_code": ["elderly", "flood"],
            "title_zh": ["南京东路街道紧急呼叫按钮报警 1", "陆家嘴积水 32cm"],
            "title_en": ["SOS button alarm in Nanjing Rd E", "Ponding 32cm"],
            "street_code": ["310101002", "310115001"],
            "street_zh": ["南京东路街道", "陆家嘴街道"],
            "street_en": ["Nanjing Rd E", "Lujiazui"],
            "device_id": [11, 12],
            "trigger_value": [1.0, 32.0],
            "lon": [121.48, 121.5],
            "lat": [31.23, 31.24],
        }
    )
    masked = mask_personal(frame, categories=CATEGORIES)
    elderly, flood = masked.iloc[0], masked.iloc[1]
    assert elderly["title_zh"] == "养老服务事件" and elderly["title_en"] == "Elderly care incident"
    assert elderly["street_zh"] is None and elderly["device_id"] is None
    assert pd.isna(elderly["trigger_value"]) and pd.isna(elderly["lon"])
    assert flood["title_zh"] == "陆家嘴积水 32cm" and flood["street_zh"] == "陆家嘴街道"
    assert frame.loc[0, "title_zh"].startswith("南京东路")  # the input is not changed


def test_ranking_is_worst_first_and_bounded():
    from data.areas import AreaMetric

    def area(code: str, open_incidents: int) -> AreaMetric:
        return AreaMetric(
            code=code, name_zh=code, name_en=code, area_km2=10.0, approximate=False,
            devices_total=10, devices_online=9, devices_warning=0, devices_alarm=0,
            open_incidents=open_incidents, open_critical=0, open_major=0, open_minor=0,
            readings_last_hour=5, label_lon=121.0, label_lat=31.0,
        )  # fmt: skip

    rows = ranking_children(
        [area(str(i), i) for i in range(20)], metric="open_incidents", lang="zh", limit=5
    )
    names = [row.children[1].children[0].children for row in rows]
    assert names == ["19", "18", "17", "16", "15"]
