"""The scenario views' figures as data, and their tiles built from measurands' state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from components.topics import (
    FIGURES,
    SHOWS,
    TOPICS,
    duration_text,
    figure_tiles,
    topic_links,
    topic_measurands,
    topic_points,
)
from data.topic_reads import AlarmTimes, MeasurandNow, Place
from tests.unit.conftest import component_text, measurands_by_category

PLACE = Place("南京东路街道", "Nanjing Road (E)", "黄浦区", "Huangpu")


def _state(measurand: str, **changes) -> MeasurandNow:
    base = MeasurandNow(
        measurand=measurand, unit="cm", decimals=1, binary=False, normal_min=0.0,
        normal_max=5.0, alarm_min=None, alarm_max=15.0, total=100, online=90, above_normal=7,
        above_alarm=3, below_normal=0, below_alarm=0, streets_alarm=2, served_alarm=0,
        unserved_alarm=0, area_alarm_km2=0.0, patches_alarm=0, highest=31.5,
        lowest=0.0, highest_at=PLACE, lowest_at=PLACE,
    )  # fmt: skip
    return replace(base, **changes)


def test_every_figure_reads_its_scenarios_own_measurands():
    by_category = measurands_by_category()
    assert set(FIGURES) == set(TOPICS)
    for topic, figures in FIGURES.items():
        assert 4 <= len(figures) <= 6, topic
        assert {f.show for f in figures} <= set(SHOWS)
        # a figure reads its scenario's devices (flood's heaviest rain also the weather stations')
        assert all(set(f.measurands) & by_category[topic] for f in figures), topic
        assert set(topic_measurands(topic)) <= set().union(*by_category.values())


def test_a_count_tile_says_how_many_of_how_many_online_and_turns_orange_beyond_alarm():
    tiles = figure_tiles("flood", {"ponding": _state("ponding")}, lang="zh")
    underpasses = tiles[1]
    assert "积水超 15 cm 的下立交" in component_text(underpasses)
    assert "3" in component_text(underpasses) and "在线 90 台中" in component_text(underpasses)
    assert "离线 10" in component_text(underpasses)
    assert "os-topic-alarm" in underpasses.className
    calm = figure_tiles("flood", {"ponding": _state("ponding", above_alarm=0)}, lang="zh")
    assert "os-topic-zero" in calm[1].className


def test_an_extreme_tile_names_where_and_its_line():
    tiles = figure_tiles("flood", {"ponding": _state("ponding")}, lang="en")
    deepest = component_text(tiles[2])
    assert "31.5 cm" in deepest and "Nanjing Road (E) · Huangpu" in deepest
    assert "warning line 5.0 cm" in deepest
    assert "os-topic-alarm" in tiles[2].className  # above 15 cm


def test_the_highest_rain_is_the_highest_of_either_gauge():
    states = {
        "rain_gauge": _state("rain_gauge", unit="mm/h", highest=22.0, normal_max=16.0),
        "rainfall": _state("rainfall", unit="mm/h", highest=61.2, alarm_max=50.0),
    }
    assert "61.2 mm/h" in component_text(figure_tiles("flood", states, lang="zh")[0])


def test_estimates_say_they_are_and_what_they_rest_on():
    outage = _state("outage", above_alarm=5, served_alarm=1234, unserved_alarm=2)
    households = component_text(_tile("power", "households_off", {"outage": outage}, "zh"))
    assert "约 1,234 户" in households and "按 3 个停电台区的户数" in households
    assert "2 个台区户数未登记" in households
    pressure = _state(
        "pipe_pressure", above_alarm=0, below_alarm=4, area_alarm_km2=2.345, patches_alarm=2
    )
    area = _tile("water", "burst_area", {"pipe_pressure": pressure}, "en")
    assert "≈ 2.3 km²" in component_text(area) and "2 patches" in component_text(area)
    assert "estimate" in component_text(area) and "os-topic-alarm" in area.className
    calm = _tile("water", "burst_area", {"pipe_pressure": _state("pipe_pressure")}, "en")
    assert "os-topic-zero" in calm.className


def _tile(topic: str, key: str, states: dict, lang: str):
    index = [f.key for f in FIGURES[topic]].index(key)
    return figure_tiles(topic, states, lang=lang)[index]


def test_unknown_devices_say_so_rather_than_blank():
    tiles = figure_tiles("power", {}, lang="zh")
    assert len(tiles) == len(FIGURES["power"])
    assert all("–" in component_text(tile) for tile in tiles)


def test_elderly_figures_never_name_a_place():
    states = {m: _state(m) for m in topic_measurands("elderly")}
    text = component_text(figure_tiles("elderly", states, lang="zh"))
    assert "南京东路" not in text and "黄浦区" not in text


def test_the_topic_row_links_every_scenario_and_marks_the_shown_one():
    row = topic_links("gas", "en")
    hrefs = [link.href for link in row.children]
    assert hrefs == [f"/topic/{code}?lang=en" for code in TOPICS]
    active = [link for link in row.children if "os-topic-active" in link.className]
    assert [link.children for link in active] == ["Gas safety"]


def _times(measurand: str, **changes) -> AlarmTimes:
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    base = AlarmTimes(
        measurand=measurand, live=0, oldest_open=None, restored=0, mean_restore_s=None, at=at
    )
    return replace(base, **changes)


def test_restoration_tiles_say_how_long_the_oldest_outage_lasts_and_the_days_mean():
    at = _times("outage").at
    times = {
        "outage": _times("outage", live=5, oldest_open=at - timedelta(minutes=125), restored=3,
                         mean_restore_s=40 * 60.0),
    }  # fmt: skip
    states = {"outage": _state("outage")}
    texts = [component_text(tile) for tile in figure_tiles("power", states, lang="zh", times=times)]
    longest = next(text for text in texts if text.startswith("停电最久"))
    assert "2 小时 05 分" in longest and "在办告警 5 条" in longest
    mean = next(text for text in texts if text.startswith("平均恢复用时"))
    assert "40 分钟" in mean and "近24小时恢复 3 起" in mean
    # nothing open and nothing restored: said so, in grey; never a blank
    calm = figure_tiles("power", states, lang="en", times={})
    longest_tile, mean_tile = calm[2], calm[3]
    assert component_text(longest_tile).startswith("Longest outage now")
    assert "none" in component_text(longest_tile) and "0 alarms open" in component_text(
        longest_tile
    )
    assert "–" in component_text(mean_tile) and "0 restored in 24 h" in component_text(mean_tile)
    assert "os-topic-zero" in longest_tile.className and "os-topic-zero" in mean_tile.className


def test_a_duration_reads_in_minutes_then_hours():
    assert duration_text(59, "zh") == "0 分钟"
    assert duration_text(38 * 60 + 5, "en") == "38 min"
    assert duration_text(3 * 3600 + 7 * 60, "en") == "3 h 07 min"


def _point(value: float, **changes) -> dict:
    row = {
        "id": 7, "value": value, "decimals": 1, "unit": "cm", "name_zh": "下立交积水",
        "name_en": "Underpass ponding", "street_zh": "南京东路街道", "street_en": "Nanjing Rd",
        "lon": 121.48, "lat": 31.24, "normal_min": 0.0, "normal_max": 5.0, "alarm_min": None,
        "alarm_max": 15.0, "alarm": value > 15.0,
    }  # fmt: skip
    return {**row, **changes}


def test_a_map_point_grows_with_how_far_past_its_line_and_says_which_line():
    points = topic_points([_point(10.0), _point(15.0), _point(45.0), _point(60.0)], lang="zh")
    props = [f["properties"] for f in points["features"]]
    # 0 at the normal line, 1 at the alarm line, at most 3
    assert [p["k"] for p in props] == [0.5, 1.0, 3.0, 3.0]
    assert props[0]["tip"] == "下立交积水 10.0 cm · 警戒线 5.0 cm · 南京东路街道"
    assert props[2]["tip"] == "下立交积水 45.0 cm · 告警线 15.0 cm · 南京东路街道"
    # below a low line (a main's pressure falling), and a type with no alarm line
    low = _point(0.10, unit="MPa", normal_min=0.2, normal_max=0.5, alarm_min=0.15, alarm_max=None,
                 alarm=True)  # fmt: skip
    (feature,) = topic_points([low], lang="en")["features"]
    assert (
        feature["properties"]["k"] == 2.0 and "alarm line 0.1 MPa" in feature["properties"]["tip"]
    )
    (plain,) = topic_points([_point(9.0, alarm_max=None)], lang="en")["features"]
    assert plain["properties"]["k"] == 1.0 and "warning line 5.0 cm" in plain["properties"]["tip"]
