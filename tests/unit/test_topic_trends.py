"""A scenario's own 24 h chart: what it follows (as data), and its rows built from the hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from components.theme import ACCENT
from components.topic_trends import BEYOND, STATS, TRENDS, trend_figure, trend_rows
from components.topics import TOPICS
from data.vitals import MeasurandHours
from tests.unit.conftest import measurands_by_category

START = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
HOURS = tuple(START + timedelta(hours=h) for h in range(4))


def _hours(measurand: str, *, highs, lows=None, alarmed=None, alarm_max=None, alarm_min=None):
    none = (None,) * len(HOURS)
    return MeasurandHours(
        measurand=measurand, unit="mm/h", decimals=1, hours=HOURS, means=none,
        highs=tuple(highs), lows=tuple(lows or none), alarmed=tuple(alarmed or none),
        alarm_max=alarm_max, alarm_min=alarm_min,
    )  # fmt: skip


def test_every_trend_follows_its_scenarios_own_measurands():
    by_category = measurands_by_category()
    assert set(TRENDS) == set(TOPICS)
    for topic, trends in TRENDS.items():
        assert 1 <= len(trends) <= 3, topic
        assert {trend.stat for trend in trends} <= set(STATS)
        assert all(set(trend.measurands) & by_category[topic] for trend in trends), topic
    # people at home: counts of devices in alarm, never a reading of one of them
    assert {trend.stat for trend in TRENDS["elderly"]} == {"alarmed"}


def test_a_row_of_two_measurands_takes_the_higher_each_hour_and_their_shared_line():
    found = [
        _hours("rain_gauge", highs=[1.0, None, 30.0, 2.0], alarm_max=16.0),
        _hours("rainfall", highs=[3.0, 4.0, None, 1.0], alarm_max=16.0),
    ]
    rain = trend_rows("flood", found)[0]
    assert rain.trend.key == "rain" and rain.values == (3.0, 4.0, 30.0, 2.0)
    assert rain.line == 16.0 and rain.unit == "mm/h"
    # lines that differ are not drawn: neither is the line of every device
    found[1] = _hours("rainfall", highs=[3.0, 4.0, None, 1.0], alarm_max=20.0)
    assert trend_rows("flood", found)[0].line is None


def test_rows_without_readings_are_left_out_and_counts_have_no_line():
    rows = trend_rows("flood", [_hours("river_level", highs=[1, 2, 3, 4], alarmed=[0, 0.5, 2, 0])])
    assert [row.trend.key for row in rows] == ["river"]
    assert rows[0].values == (0, 0.5, 2, 0) and rows[0].line is None and rows[0].unit == ""


def test_hours_past_the_line_are_orange_and_the_line_is_drawn():
    found = [_hours("ponding", highs=[2.0, 15.0, 15.5, None], alarm_max=15.0)]
    figure = trend_figure("flood", found, lang="zh")
    (trace,) = figure.data
    # strictly beyond, as the readings' alarm level counts them; an hour without readings is a gap
    assert list(trace.marker.color) == [ACCENT, ACCENT, BEYOND, ACCENT]
    assert list(trace.y) == [2.0, 15.0, 15.5, None]
    assert [shape.y0 for shape in figure.layout.shapes] == [15.0]
    texts = [note.text for note in figure.layout.annotations]
    assert "积水深度 · 逐时最高" in texts and "告警线 15 mm/h" in texts
    # the axis holds the line even when every hour is below it
    calm = trend_figure("flood", [_hours("ponding", highs=[1, 2, 1, 2], alarm_max=15.0)], lang="en")
    assert calm.layout.yaxis.range[1] > 15.0
    assert "Ponding depth · hourly highest" in [n.text for n in calm.layout.annotations]


def test_counts_are_bars_orange_while_any_device_is_in_alarm():
    found = [_hours("outage", highs=[1, 1, 1, 1], alarmed=[0, 0.25, 3.0, 0])]
    (bars,) = trend_figure("power", found, lang="zh").data
    assert bars.type == "bar" and list(bars.marker.color) == [ACCENT, BEYOND, BEYOND, ACCENT]
    # the hour is drawn at its middle: the bar stands for the whole hour
    assert bars.x[0].minute == 30


def test_a_scenario_without_readings_says_so():
    figure = trend_figure("weather", [], lang="zh")
    assert not figure.data and figure.layout.annotations[0].text == "近24小时无此专题读数"
