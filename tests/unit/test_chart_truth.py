"""Charts that state the signal truly (issue 19 item 9), and the ranking's column heads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder

from components.chart_truth import draw_on_off, gauge_scale, value_range, window_note
from components.incident_detail import readings_figure
from components.theme import STATE_COLORS

OPENED = pd.Timestamp("2026-11-25T04:04:36Z")


def _plain(figure: go.Figure) -> dict:
    return json.loads(json.dumps(figure.to_plotly_json(), cls=PlotlyJSONEncoder))


def _series(values: list[float], *, spread: float = 0.0) -> pd.DataFrame:
    times = pd.date_range("2026-11-25T03:30:00Z", periods=len(values), freq="5min")
    return pd.DataFrame(
        {
            "ts": times,
            "value": values,
            "value_min": [v - spread for v in values],
            "value_max": [v + spread for v in values],
            "quality": 0,
        }
    )


def test_an_on_off_sensor_is_drawn_as_steps_labelled_normal_and_alarm():
    figure = go.Figure()
    draw_on_off(figure, [1, 2, 3, 4], [0.0, 0.4, 1.0, 0.0], lang="zh")
    data = _plain(figure)
    trace = data["data"][0]
    assert trace["line"]["shape"] == "hv"
    assert trace["y"] == [0, 0, 1, 0]
    axis = data["layout"]["yaxis"]
    assert axis["tickvals"] == [0, 1] and axis["ticktext"] == ["正常", "报警"]
    assert axis["range"][0] < 0 and axis["range"][1] > 1
    english = go.Figure()
    draw_on_off(english, [1], [1.0], lang="en")
    assert _plain(english)["layout"]["yaxis"]["ticktext"] == ["Normal", "Alarm"]


def test_an_on_off_incident_chart_has_steps_and_no_slope_or_threshold_line():
    series = _series([0.0] * 6 + [1.0] * 6)
    incident = {
        "opened_at": OPENED,
        "threshold": 0.5,
        "trigger_value": 1.0,
        "value_kind": "binary",
    }
    data = _plain(readings_figure(series, incident=incident, lang="zh", unit=""))
    lines = [trace for trace in data["data"] if trace.get("mode") == "lines"]
    assert len(lines) == 1 and lines[0]["line"]["shape"] == "hv"
    # no hatched range band or 0.5 threshold drawn across an on/off signal
    assert not any(trace.get("fill") for trace in data["data"])
    assert all(shape["x0"] == shape["x1"] for shape in data["layout"]["shapes"])
    assert any(a["text"] == "触发 报警" for a in data["layout"]["annotations"])


def test_the_trigger_reading_is_on_the_chart_even_when_the_readings_stay_low():
    """The headline's 42.0 %LEL is marked at its time, and the axis reaches it."""
    series = _series([3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 9.0], spread=1.0)
    incident = {
        "opened_at": OPENED,
        "threshold": 25.0,
        "trigger_value": 42.0,
        "value_kind": "analog",
        "decimals": 1,
        "unit": "%LEL",
    }
    data = _plain(readings_figure(series, incident=incident, lang="zh", unit="%LEL"))
    low, high = data["layout"]["yaxis"]["range"]
    assert low <= 2.0 and high > 42.0
    marker = next(trace for trace in data["data"] if trace.get("mode") == "markers")
    assert marker["y"] == [42.0] and marker["x"][0][:19] == "2026-11-25T12:04:36"
    assert any(a["text"] == "触发 42.0 %LEL" for a in data["layout"]["annotations"])


def test_value_range_holds_every_value_and_ignores_missing_ones():
    assert value_range([None]) is None
    low, high = value_range([1.0, 2.0], [None, 10.0, float("nan")])
    assert low < 1.0 and high > 10.0
    roomy = value_range([0.0, 10.0], headroom=0.25)
    assert roomy is not None and roomy[1] >= 13.0 and roomy[0] < 0.0
    flat = value_range([5.0])
    assert flat is not None and flat[0] < 5.0 < flat[1]


def test_gauge_zones_appear_only_where_the_type_has_limits():
    # PM2.5: no lower limit, and nothing can be below 0: green from the start, red only above
    pm = gauge_scale(
        value_kind="analog", normal_min=0, normal_max=75, alarm_min=None, alarm_max=150
    )
    assert [zone for zone, _, _ in pm.zones] == ["normal", "warning", "alarm"]
    assert pm.low == 0 and pm.background().startswith(
        f"linear-gradient(90deg, {STATE_COLORS['normal']} 0.0%"
    )
    # river level: below its normal band is a warning (no alarm limit there), above it an alarm
    river = gauge_scale(
        value_kind="analog", normal_min=1.5, normal_max=4.2, alarm_min=None, alarm_max=4.8
    )
    assert [zone for zone, _, _ in river.zones] == ["warning", "normal", "warning", "alarm"]
    # gas pressure: both limits, red both sides
    both = gauge_scale(
        value_kind="analog", normal_min=150, normal_max=380, alarm_min=100, alarm_max=420
    )
    assert both.zones[0][0] == "alarm" and both.zones[-1][0] == "alarm"
    assert both.position(100) < both.position(150) < both.position(380) < both.position(420)
    # on/off: two halves, the reading in the middle of its half
    binary = gauge_scale(
        value_kind="binary", normal_min=0, normal_max=0, alarm_min=None, alarm_max=0.5
    )
    assert [zone for zone, _, _ in binary.zones] == ["normal", "alarm"]
    assert binary.position(0) == 0.25 and binary.position(1) == 0.75


def test_a_window_says_how_much_its_data_covers():
    end = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    start = end - timedelta(hours=24)
    began = end - timedelta(hours=5)
    assert window_note(began, start=start, end=end, lang="zh") == "近5.0小时（数据起于 15:00）"
    assert window_note(began, start=start, end=end, lang="en") == "Last 5.0 h (data from 15:00)"
    # data from (about) the start: the window's own label is true
    assert window_note(start + timedelta(minutes=30), start=start, end=end, lang="zh") is None
    assert window_note(None, start=start, end=end, lang="zh") is None


def test_the_ranking_heads_name_their_columns_in_both_languages():
    from components.ranking import ranking_head

    head = ranking_head(metric="online_rate", lang="zh", level="street")
    texts = [span.children for span in head.children]
    assert texts == ["街道/镇", "设备数", "在线率 %"]
    assert head.children[-1].title == "设备在线率"
    wall = ranking_head(metric="open_incidents", lang="en", level="district", wall=True)
    assert [span.children for span in wall.children] == ["#", "District", "Open"]
    assert wall.children[-1].title == "Open incidents"


def _device(**changes):
    from dataclasses import replace

    from data.devices import DeviceDetail

    base = DeviceDetail(
        id=1, code="D1", type_id=1, type_code="gas.kitchen_gas.model_a", type_name_zh="厨房燃气",
        type_name_en="Kitchen gas", category_code="gas", unit="", value_kind="binary",
        interval_s=60, normal_min=0, normal_max=0, alarm_min=None, alarm_max=0.5, decimals=0,
        district_adcode="310115", district_name_zh="浦东新区", district_name_en="Pudong",
        street_code="s", street_name_zh="街", street_name_en="St", status="active",
        state="alarm", installed_on="2026-01-01", lon=121.5, lat=31.2,
        last_ts=None, last_value=1.0, last_level=2,
    )  # fmt: skip
    return replace(base, **changes)


def test_a_gas_detector_page_shows_steps_a_two_zone_gauge_and_an_honest_window():
    from components.device_view import gauge, series_figure

    series = _series([0.0] * 6 + [1.0] * 6)
    end = series["ts"].iloc[-1] + pd.Timedelta(minutes=5)
    start = end - pd.Timedelta(hours=24)
    figure = series_figure(
        series, _device(), "zh", start_s=start.timestamp(), end_s=end.timestamp()
    )
    data = _plain(figure)
    assert [trace["line"]["shape"] for trace in data["data"]] == ["hv"]
    assert data["layout"]["yaxis"]["ticktext"] == ["正常", "报警"]
    # an hour of data in a 24 h window says so
    assert any(a["text"].startswith("近1.0小时（数据起于") for a in data["layout"]["annotations"])
    bar = gauge(_device(), "zh").children[0]
    assert bar.to_plotly_json()["props"]["data-zones"] == "normal,alarm"
    # an analog type without a lower limit: no alarm zone on the left
    pm = gauge(
        _device(value_kind="analog", normal_max=75, alarm_max=150, last_value=30.0), "en"
    ).children
    assert pm[0].to_plotly_json()["props"]["data-zones"] == "normal,warning,alarm"
    assert pm[1].children[0].children == "No lower alarm limit"
