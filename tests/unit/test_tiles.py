"""Tiles with a trend: the one change format, sparklines, zeros grey, the 城市体征 strip."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from components.tiles import format_change, sparkline, sparkline_svg, tiles_children
from components.vitals import vitals_children
from data.kpis import TREND_HOURS, Kpis, TileTrends
from data.vitals import Vital, Vitals
from tests.unit.conftest import component_text
from tests.unit.test_dashboard_builders import kpis as sample_kpis

AT = datetime(2026, 11, 24, 4, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "base", "en", "direction"),
    [
        (112, 100, "vs same time yesterday ▲ 12%", "up"),
        (88, 100, "vs same time yesterday ▼ 12%", "down"),
        (0, 100, "vs same time yesterday ▼ 100%", "down"),
        (1000, 100, "vs same time yesterday ▲ 900%", "up"),
        (1001, 100, "vs same time yesterday ▲ >10×", "up"),
        (20, 1, "vs same time yesterday ▲ >10×", "up"),
        (100.2, 100, "vs same time yesterday unchanged", "flat"),
        (5, 0, "vs same time yesterday —", "none"),
        (0, 0, "vs same time yesterday —", "none"),
        (5, None, "vs same time yesterday —", "none"),
        (None, 5, "vs same time yesterday —", "none"),
    ],
)
def test_one_change_format(now, base, en, direction):
    assert format_change(now, base, "en") == (en, direction)


def test_change_format_in_chinese():
    assert format_change(112, 100, "zh") == ("较昨日同时 ▲ 12%", "up")
    assert format_change(3, 0, "zh")[0] == "较昨日同时 —"


def points(svg: str) -> list[list[tuple[float, float]]]:
    """Each polyline of `svg` as its (x, y) points."""
    runs = re.findall(r'points="([^"]*)"', svg)
    return [[tuple(map(float, p.split(","))) for p in run.split()] for run in runs]


def test_sparkline_scales_to_its_range_and_breaks_at_gaps():
    svg = sparkline_svg([1, 3, 2, None, 5, 4], width=100, height=20)
    first, second = points(svg)
    assert len(first) == 3 and len(second) == 2
    ys = [y for _x, y in first + second]
    # the highest value is drawn highest (smallest y), the lowest lowest
    assert min(ys) == second[0][1] and max(ys) == first[0][1]
    xs = [x for x, _y in first + second]
    assert xs == sorted(xs) and xs[0] == 2 and xs[-1] == pytest.approx(98)
    assert 'cx="98.0"' in svg  # the last known point is dotted


def test_sparkline_of_zeros_is_flat_and_grey():
    svg = sparkline_svg([0.0] * 24, width=100, height=20)
    (line,) = points(svg)
    assert len({y for _x, y in line}) == 1 and line[0][1] == 17
    assert "#5d6b80" in svg
    assert "os-spark-zero" in sparkline([0.0] * 24, "zh").className


def test_sparkline_needs_two_points():
    assert sparkline_svg([]) == "" and sparkline_svg([3.0]) == ""
    assert sparkline_svg([None, None]) == ""
    img = sparkline([1.0, 2.0], "en")
    assert unquote(img.src).startswith("data:image/svg+xml;utf8,<svg")


def kpis(**changes) -> Kpis:
    """The builders' sample figures, with no critical open and none resolved today."""
    calm = {"open_by_severity": {"critical": 0, "major": 2, "minor": 3}, "resolved_today": 0}
    return sample_kpis(**{**calm, "at": AT, **changes})


def trends() -> TileTrends:
    hours = tuple(AT - timedelta(hours=h) for h in range(TREND_HOURS - 1, -1, -1))
    ramp = tuple(float(h) for h in range(TREND_HOURS))
    return TileTrends(
        hours=hours,
        series={
            "readings_today": ramp,
            "open_incidents": ramp,
            "resolved_today": (0.0,) * TREND_HOURS,
            "mttr": (None,) * (TREND_HOURS - 1) + (50.0,),
        },
        changes={
            "readings_today": (4000.0, 5000.0),
            "open_incidents": (5.0, 0.0),
            "resolved_today": (0.0, 12.0),
            "mttr": (50.0, 40.0),
        },
        at=AT,
    )


def _by_key(tiles) -> dict:
    return {tile.children[1].to_plotly_json()["props"]["data-key"]: tile for tile in tiles}


def test_tiles_carry_sparklines_and_the_one_change_format():
    tiles = _by_key(tiles_children(kpis(), "en", trends=trends()))
    texts = {key: component_text(tile) for key, tile in tiles.items()}
    assert "vs same time yesterday ▼ 20%" in texts["readings_today"]
    assert "vs same time yesterday —" in texts["open_incidents"]
    assert "vs same time yesterday ▼ 100%" in texts["resolved_today"]
    assert "vs same time yesterday ▲ 25%" in texts["mttr"]
    for key in ("readings_today", "open_incidents", "resolved_today", "mttr"):
        spark = tiles[key].children[4]
        assert spark.to_plotly_json()["props"]["data-points"] == str(TREND_HOURS)
    # no history of the status snapshot: no invented trend on the device tiles
    assert "yesterday" not in texts["devices"] and "yesterday" not in texts["online"]
    # zeros are grey, never the severity's colour
    severities = tiles["open_incidents"].children[2].children
    assert severities[0].className == "os-sev os-sev-critical os-sev-zero"
    assert severities[1].className == "os-sev os-sev-major"
    assert "os-tile-zero" in tiles["resolved_today"].className
    assert "os-tile-zero" not in tiles["readings_today"].className


def test_vitals_strip_items():
    hours = tuple(AT - timedelta(hours=h) for h in range(3, -1, -1))
    vitals = Vitals(
        signs=(
            Vital("temperature", "°C", 1, hours, (10.0, 11.0, 12.25, None)),
            Vital("tide_level", "m", 2, hours, (None, None, None, None)),
        ),
        warnings=3,
        at=AT,
    )
    items = vitals_children(vitals, "zh", place="上海市")
    texts = [component_text(item) for item in items]
    assert texts[0].startswith("生效预警") and "3" in texts[0]
    # the latest hour with readings, at the type's precision, with its unit
    assert "气温 12.2 °C" in texts[1] or "气温 12.3 °C" in texts[1]
    assert "潮位 暂无读数" in texts[2]
    assert "上海市" in items[1].title
    english = [component_text(item) for item in vitals_children(vitals, "en", place="Shanghai")]
    assert english[0].startswith("Warnings in force") and "Tide level" in english[2]


def test_sparkline_dots_an_hour_alone_between_gaps():
    svg = sparkline_svg([None, 4.0, None, None, 2.0, 3.0], width=100, height=20)
    assert len(points(svg)) == 1
    assert svg.count("<circle") == 2  # the lone hour, and the last point
