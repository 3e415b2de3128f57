"""The scenario views' figures as data, and their tiles built from measurands' state."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from components.topics import FIGURES, SHOWS, TOPICS, figure_tiles, topic_links, topic_measurands
from data.topic_reads import MeasurandNow, Place
from tests.unit.conftest import component_text

CATALOGUE = Path(__file__).parents[2] / "data" / "reference" / "device_types.csv"
PLACE = Place("南京东路街道", "Nanjing Road (E)", "黄浦区", "Huangpu")


def _state(measurand: str, **changes) -> MeasurandNow:
    base = MeasurandNow(
        measurand=measurand, unit="cm", decimals=1, binary=False, normal_min=0.0,
        normal_max=5.0, alarm_min=None, alarm_max=15.0, total=100, online=90, above_normal=7,
        above_alarm=3, below_normal=0, below_alarm=0, streets_alarm=2, highest=31.5,
        lowest=0.0, highest_at=PLACE, lowest_at=PLACE,
    )  # fmt: skip
    return replace(base, **changes)


def test_every_figure_reads_its_scenarios_own_measurands():
    with CATALOGUE.open(encoding="utf-8") as handle:
        by_category: dict[str, set[str]] = {}
        for row in csv.DictReader(handle):
            by_category.setdefault(row["category"], set()).add(row["measurand"])
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
