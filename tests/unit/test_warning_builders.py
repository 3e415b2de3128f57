"""The warning level's badge, strip and links: words with the colour, why or who, calm ones
last."""

from __future__ import annotations

from datetime import UTC, datetime

from dash import html

from components.warnings import level_badge, warning_badges, warning_links, warning_strip
from data.warning_reads import WarningNow
from tests.unit.conftest import component_text

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _text(children: list) -> str:
    return " ".join(component_text(html.Div(children)).split())


def _now(level, **extra) -> WarningNow:
    fields = {
        "topic": "flood",
        "district": "",
        "level": level,
        "computed": level,
        "override": None,
        "override_by": None,
        "override_reason": None,
        "override_until": None,
        "why": [],
        "calm_since": None,
        "since": NOW,
    }
    return WarningNow(**{**fields, **extra})


def test_a_badge_says_its_level_in_words_as_well_as_colour():
    assert level_badge(3, "zh").children == "III 级 黄色预警"
    assert level_badge(1, "en").children == "Level I · red"
    assert level_badge(3, "zh").className == "os-level os-level-3"
    assert level_badge(None, "zh").children == "无预警"
    assert level_badge(7, "zh").children == "无预警"  # nothing else is a level
    assert level_badge(2, "zh", short=True).children == "II"


def test_the_strip_says_why_or_who_set_it():
    because = _now(4, why=[{"zh": "3 处下立交积水超 15 cm", "en": "3 underpasses"}])
    text = _text(warning_strip(because, [("浦东新区", 4)], lang="zh"))
    assert (
        "IV 级 蓝色预警" in text and "依据：3 处下立交积水超 15 cm" in text and "浦东新区" in text
    )
    held = _now(2, override=2, override_by="duty", override_reason="台风", override_until=NOW)
    text = _text(warning_strip(held, [], lang="en"))
    assert "Set by duty until 16:00" in text and "台风" in text
    assert "Not yet evaluated" in _text(warning_strip(None, [], lang="en"))


def test_links_put_the_scenarios_at_a_level_first_and_badges_only_those():
    links = warning_links({"gas": 3, "flood": 1}, lang="zh")
    assert [link.href for link in links][:2] == ["/topic/flood", "/topic/gas"]
    assert len(links) == 6 and "os-warn-calm" in links[-1].className
    badges = warning_badges({"gas": 3, "flood": None}, lang="en")
    assert _text(badges) == "Gas safety III"
    assert _text(warning_badges({}, lang="zh")) == "各专题无预警"


def test_a_walls_badges_are_the_worst_few_then_how_many_more():
    levels = {"flood": 2, "power": 4, "water": 1, "gas": 3, "elderly": 4, "weather": 3}
    badges = warning_badges(levels, lang="zh", most=4, short=True)
    assert len(badges) == 4
    assert [_text([b]) for b in badges[:3]] == ["供水 I", "防汛 II", "燃气 III"]
    more = badges[-1]
    assert _text([more]) == "另 3 项" and "os-warn-more" in more.className
    # the ones not shown, on hover
    assert more.title.count("\n") == 2 and "电力保障" in more.title
    # as many as fit: all shown, no "more"
    few = warning_badges({"flood": 2, "gas": 3}, lang="en", most=4, short=True)
    assert [_text([b]) for b in few] == ["Flood II", "Gas III"]
