"""Map colours mean the same thing everywhere: fixed classes per metric on one blue ramp, red
kept for 紧急 (issue 19, items 1 and 2)."""

from __future__ import annotations

import colorsys
import re
from pathlib import Path

import pandas as pd
import pytest

from components.choropleth import (
    SCALES,
    cell_heat,
    choropleth,
    class_colors,
    class_index,
    class_labels,
    color_for,
    legend_entries,
    scale_for,
)
from components.device_view import kind_badge
from components.feed import feed_children
from components.incident_detail import _facts
from components.state import METRICS
from components.theme import (
    CATEGORY_PALETTE,
    HEAT_RAMP,
    KIND_COLORS,
    NO_DATA,
    SEVERITY_COLORS,
    STATE_COLORS,
)
from components.tiles import tiles_children
from tests.unit.test_dashboard_builders import _tile_key, area, kpis

# every figure a map could meet: counts, densities, rates in 0.05 steps, huge and fractional
VALUES = sorted(
    {i / 20 for i in range(0, 2001)}
    | {float(n) for n in (*range(0, 300), 499, 500, 999, 1000, 2499, 2500, 10**4, 10**6)}
    | {0.001, 0.049, 0.95, 4.95, 4.951, 9.99, 98.949, 98.95, 98.96, 99.94, 99.95}
)


def hue_saturation(color: str) -> tuple[float, float]:
    """Hue in degrees and saturation (HLS) of a #rrggbb colour."""
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, _light, saturation = colorsys.rgb_to_hls(r, g, b)
    return hue * 360, saturation


def assert_blue_or_no_data(color: str) -> None:
    """A metric colour: a saturated blue (hue 190–230°), or the grey of no data."""
    if color == NO_DATA:
        return
    hue, saturation = hue_saturation(color)
    # red < 15° or > 330°, orange ~30°, yellow ~55°, green 80–170°: all outside this band
    assert 190 <= hue <= 230 and saturation > 0.4, (color, hue, saturation)
    assert color not in SEVERITY_COLORS.values() and color != STATE_COLORS["normal"]


def test_no_metric_is_painted_red_orange_yellow_or_green():
    for key, scale in SCALES.items():
        colours = {color_for(value, scale) for value in VALUES} | {color_for(None, scale)}
        for colour in colours:
            assert_blue_or_no_data(colour)
        # every class is reached, and the loudest is the ramp's loud end
        assert colours - {NO_DATA} == set(HEAT_RAMP), key
    # through the builders, for every metric the pages offer, at every level of figures
    areas = [
        area(
            f"a{n}",
            open_incidents=n * 7,
            open_critical=0,
            area_km2=0.5 + n * 40,
            devices_total=n * 50,
            devices_online=n * 47,
            readings_last_hour=n * 300,
        )
        for n in range(0, 16)
    ]
    for metric in METRICS:
        for colour in (
            choropleth(areas, metric=metric, lang="zh", drill=True).hideout["colors"].values()
        ):
            assert_blue_or_no_data(colour)
    cells = pd.DataFrame(
        {
            "cell": [f"c{n}" for n in range(12)],
            "devices_total": [n % 4 for n in range(12)],
            "devices_online": [max(n % 4 - 1, 0) for n in range(12)],
            "devices_warning": list(range(12)),
            "devices_alarm": [n % 3 for n in range(12)],
        }
    )
    for metric in ("online_rate", "open_incidents"):
        hideout, legend, _title = cell_heat(cells, metric=metric, lang="en")
        for colour in [*hideout["colors"].values(), *(row.color for row in legend)]:
            assert_blue_or_no_data(colour)


def test_no_data_is_neutral_and_red_belongs_to_critical_alone():
    _hue, saturation = hue_saturation(NO_DATA)
    assert saturation < 0.2 and NO_DATA not in HEAT_RAMP
    assert SEVERITY_COLORS["critical"] not in CATEGORY_PALETTE


def test_scale_for_knows_every_metric_and_refuses_others():
    assert {*METRICS, "cell_alerts"} == set(SCALES)
    for metric in METRICS:
        assert scale_for(metric).key == metric
    with pytest.raises(ValueError, match="unknown metric"):
        scale_for("readings_per_parsec")


@pytest.mark.parametrize("key", list(SCALES))
def test_each_break_starts_the_next_class(key):
    scale = SCALES[key]
    colours = class_colors(scale)
    assert len(colours) == len(scale.breaks) + 1 == len(set(colours))
    step = 10**-scale.decimals
    for index, limit in enumerate(scale.breaks):
        assert class_index(limit, scale) == index + 1
        assert class_index(limit - step, scale) == index
        assert color_for(limit, scale) == colours[index + 1]
        assert color_for(limit - step, scale) == colours[index]


def test_more_is_louder_except_where_less_is_worse():
    incidents = scale_for("open_incidents")
    assert color_for(0, incidents) == HEAT_RAMP[0] and color_for(500, incidents) == HEAT_RAMP[-1]
    rate = scale_for("online_rate")
    assert color_for(100.0, rate) == HEAT_RAMP[0]  # all online: the quietest blue
    assert color_for(12.5, rate) == HEAT_RAMP[-1]  # most offline: the loudest
    # classed as shown: 98.96 % reads "99.0%", so it is in the "≥ 99%" class
    assert color_for(98.96, rate) == color_for(99.0, rate) != color_for(98.94, rate)


def _contains(label: str, value: float, unit: str) -> bool:
    """Whether a legend label's range holds `value` (as the label's precision shows it)."""
    text = label.removesuffix(unit).replace(",", "")
    if text.startswith("≥ "):
        return value >= float(text[2:])
    if text.startswith("< "):
        return value < float(text[2:])
    low, _, high = text.partition(" – ")
    return float(low) <= value <= float(high or low)


@pytest.mark.parametrize("key", list(SCALES))
def test_legend_classes_never_overlap_and_agree_with_the_colours(key):
    scale = SCALES[key]
    labels = class_labels(scale)
    assert len(labels) == len(set(labels)) == len(scale.breaks) + 1
    assert all(re.fullmatch(r"(≥ |< )?[\d,.]+( – [\d,.]+)?%?", label) for label in labels)
    for value in VALUES:
        shown = round(value, scale.decimals)
        holding = [i for i, label in enumerate(labels) if _contains(label, shown, scale.unit)]
        # exactly one class holds each shown value, and it is the class the map paints
        assert holding == [class_index(value, scale)], (key, value, labels)


def test_legend_rows_are_the_classes_then_no_data():
    rows = legend_entries(scale_for("open_incidents"), "en")
    classes = ["0", "1 – 4", "5 – 9", "10 – 19", "20 – 49", "≥ 50"]
    assert [row.label for row in rows] == [*classes, "No devices"]
    assert [row.color for row in rows] == [*HEAT_RAMP, NO_DATA]
    rate = legend_entries(scale_for("online_rate"), "zh")
    assert rate[0].label == "< 80%" and rate[0].color == HEAT_RAMP[-1]
    assert rate[-2].label == "≥ 99%" and rate[-1].label == "无设备"


def test_classes_do_not_change_with_the_data():
    """A refresh with other figures keeps the legend, and an area's colour is its own value's."""
    quiet = [area("310101", open_incidents=0), area("310115", open_incidents=3)]
    loud = [area("310101", open_incidents=90), area("310115", open_incidents=3)]
    for metric in METRICS:
        first = choropleth(quiet, metric=metric, lang="zh", drill=True)
        again = choropleth(loud, metric=metric, lang="zh", drill=True)
        assert first.legend == again.legend == legend_entries(scale_for(metric), "zh")
        assert first.hideout["colors"]["310115"] == again.hideout["colors"]["310115"]
    colours = choropleth(loud, metric="open_incidents", lang="zh", drill=True).hideout["colors"]
    assert colours == {"310101": HEAT_RAMP[-1], "310115": HEAT_RAMP[1]}


def test_feed_bars_follow_severity_and_status_words_carry_none():
    """A major alarm's bar is the major colour, never the critical one; its status word is plain."""
    severities = ["critical", "major", "minor", "major"]
    frame = _feed_frame(severity=severities, status=["open", "open", "acknowledged", "resolved"])
    rows = feed_children(frame, lang="zh", categories={})
    for row, severity in zip(rows, severities, strict=True):
        classes = row.className.split()
        assert f"os-feed-sev-{severity}" in classes
        assert [c for c in classes if c.startswith("os-feed-sev-")] == [f"os-feed-sev-{severity}"]
        status = row.children[-1]
        assert "os-feed-status" in status.className and "os-sev" not in status.className


def _feed_frame(**columns) -> pd.DataFrame:
    """Alarm rows for the feed; list values make one row per item."""
    size = max((len(v) for v in columns.values() if isinstance(v, list)), default=1)
    base = dict(
        id=list(range(1, size + 1)),
        opened_at=pd.Timestamp("2026-11-24T04:00:00Z"),
        category_code="gas",
        title_zh="燃气泄漏",
        title_en="Gas leak",
        district_zh="黄浦区",
        district_en="Huangpu",
        street_zh="南京东路街道",
        street_en="Nanjing Road East",
        kind="alarm",
    )
    return pd.DataFrame({**base, **columns}, index=range(size))


def test_a_zero_count_is_grey_and_the_alert_frame_needs_a_critical():
    calm = tiles_children(kpis(open_by_severity={"critical": 0, "major": 2, "minor": 0}), "zh")
    tile = next(tile for tile in calm if _tile_key(tile) == "open_incidents")
    spans = {span.className.split()[1]: span.className for span in tile.children[2].children}
    assert "os-sev-zero" in spans["os-sev-critical"] and "os-sev-zero" in spans["os-sev-minor"]
    assert "os-sev-zero" not in spans["os-sev-major"]
    assert "os-tile-alert" not in tile.className
    loud = tiles_children(kpis(open_by_severity={"critical": 1, "major": 0, "minor": 0}), "zh")
    tile = next(tile for tile in loud if _tile_key(tile) == "open_incidents")
    assert "os-tile-alert" in tile.className
    assert "os-sev-zero" not in tile.children[2].children[0].className


@pytest.mark.parametrize("severity", ["critical", "major", "minor"])
def test_an_alarms_kind_tag_takes_its_severity_colour(severity):
    incident = {
        "severity": severity,
        "status": "open",
        "kind": "alarm",
        "category_code": "gas",
        "district_zh": "黄浦区",
        "district_en": "Huangpu",
        "opened_at": pd.Timestamp("2026-11-24T04:00:00Z"),
        "lon": 121.48,
        "lat": 31.23,
    }
    tag = _facts(incident, lang="zh", categories={})[0][1]
    assert tag.style["color"] == SEVERITY_COLORS[severity]
    assert kind_badge("alarm", "en", severity).style["color"] == SEVERITY_COLORS[severity]
    # the early-warning kinds keep their own colours whatever the severity
    assert kind_badge("forecast", "en", severity).style["color"] == KIND_COLORS["forecast"]


def test_the_readme_table_lists_the_classes_the_maps_use():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Map colours mean the same thing everywhere", 1)[1].split("\n#", 1)[
        0
    ]
    rows = dict(re.findall(r"^\| `(\w+)` [^|]*\| ([^|]+) \|$", section, flags=re.MULTILINE))
    assert {key: value.split(" · ") for key, value in rows.items()} == {
        key: class_labels(scale) for key, scale in SCALES.items()
    }
