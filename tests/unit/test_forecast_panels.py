"""预警 on the live panels' pure builders: tiles, feed countdown, map style data, timeline ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from components.choropleth import choropleth
from components.countdown import countdown, format_limit, minutes_until
from components.feed import feed_children
from components.theme import STATE_COLORS
from components.tiles import tiles_children
from components.timeline import timeline_figure
from tests.unit.conftest import component_text
from tests.unit.test_dashboard_builders import _tile_key, area, kpis

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # noon in Shanghai


def test_minutes_until_counts_down_and_is_due_at_zero():
    assert minutes_until(NOW + timedelta(minutes=23, seconds=10), NOW) == 23
    assert minutes_until(NOW + timedelta(seconds=20), NOW) == 1
    assert minutes_until(NOW - timedelta(minutes=2), NOW) == 0
    assert minutes_until(None, NOW) is None
    assert minutes_until(pd.NaT, NOW) is None
    assert minutes_until(pd.Timestamp(NOW + timedelta(minutes=5)), NOW) == 5


def test_countdown_sentences_in_both_languages_and_sides():
    assert countdown(23, "zh", limit=15.0, unit="cm", side=1) == "预计 23 分钟后超过报警值 15 cm"
    assert countdown(23, "en", limit=15.0, unit="cm", side=1) == (
        "in 23 min: above alarm limit 15 cm"
    )
    assert "低于报警值 0.25 MPa" in countdown(5, "zh", limit=0.25, unit="MPa", side=-1)
    assert "now: above" in countdown(0, "en", limit=15.0, unit="cm", side=1)
    assert format_limit(None, "cm") == "cm"


def test_forecast_and_health_tiles_count_down_from_the_render_time():
    figures = kpis(forecasts_open=3, forecast_next=NOW + timedelta(minutes=12), health_open=7)
    tiles = {_tile_key(t): t for t in tiles_children(figures, "zh", now=NOW, scope={})}
    forecasts = component_text(tiles["forecasts"])
    assert "3" in forecasts and "最早 12 分钟后" in forecasts
    assert "os-tile-forecast" in tiles["forecasts"].className
    # a minute later the same figures read one minute less: nothing stored as text
    later = tiles_children(figures, "en", now=NOW + timedelta(minutes=1), scope={})
    english = {_tile_key(t): component_text(t) for t in later}
    assert "earliest in 11 min" in english["forecasts"]
    assert "7" in english["health"] and "Device health" in english["health"]
    links = [t.children[3] for t in tiles_children(figures, "en", now=NOW, scope={})]
    hrefs = [getattr(link, "href", "") for link in links]
    assert "/incidents?lang=en&kind=health" in hrefs
    assert "/incidents?lang=en&kind=forecast" in hrefs


def test_tiles_without_forecasts_say_none_and_walls_get_no_links():
    tiles = tiles_children(kpis(), "en", now=NOW, scope=None)
    text = {_tile_key(t): component_text(t) for t in tiles}
    assert "none in force" in text["forecasts"]
    assert not any(hasattr(t.children[3], "href") for t in tiles)


def _feed_frame(**changes) -> pd.DataFrame:
    row = dict(
        id=41,
        opened_at=pd.Timestamp(NOW - timedelta(minutes=5)),
        severity="critical",
        status="open",
        category_code="flood",
        rule_code="forecast_high",
        title_zh="预计 30 分钟后超过报警值 15 cm",
        title_en="Forecast: above alarm limit 15 cm in 30 min",
        district_zh="浦东新区",
        district_en="Pudong",
        street_zh="川沙新镇",
        street_en="Chuansha",
        kind="forecast",
        expected_at=pd.Timestamp(NOW + timedelta(minutes=23)),
        foreseen_by=None,
        lead_s=None,
    )
    row.update(changes)
    return pd.DataFrame([row])


def test_a_live_forecast_in_the_feed_counts_down_from_expected_at():
    frame = _feed_frame()
    limits = {41: (15.0, "cm", 1)}
    rows = feed_children(frame, lang="zh", categories={}, now=NOW, limits=limits)
    text = component_text(rows[0])
    assert "预计 23 分钟后超过报警值 15 cm" in text and "预警" in text
    # the stored title said 30 min: the row is recomputed, not read back
    assert "30 分钟" not in text
    assert "os-feed-kind-forecast" in rows[0].className
    later = feed_children(
        frame, lang="en", categories={}, now=NOW + timedelta(minutes=10), limits=limits
    )
    assert "in 13 min: above alarm limit 15 cm" in component_text(later[0])


def test_a_resolved_forecast_keeps_its_title_and_a_foreseen_alarm_shows_its_lead():
    resolved = _feed_frame(status="resolved")
    assert "30 min" in component_text(feed_children(resolved, lang="en", categories={}, now=NOW)[0])
    alarm = _feed_frame(
        kind="alarm", title_en="Ponding above 15 cm", foreseen_by=40.0, lead_s=1260.0
    )
    text = component_text(feed_children(alarm, lang="en", categories={}, now=NOW)[0])
    assert "foreseen 21 min ahead" in text and "Ponding above 15 cm" in text
    zh = component_text(feed_children(alarm, lang="zh", categories={}, now=NOW)[0])
    assert "提前 21 分钟预警" in zh


def test_old_feed_frames_without_kind_still_render():
    frame = _feed_frame().drop(columns=["kind", "expected_at", "foreseen_by", "lead_s"])
    assert "Forecast: above" in component_text(feed_children(frame, lang="en", categories={})[0])


def test_map_outlines_areas_with_forecast_and_no_alarm():
    areas = [
        area("310115", open_forecasts=2, open_incidents=0),
        area("310104", open_forecasts=1, open_incidents=3),
        area("310101"),
    ]
    result = choropleth(areas, metric="open_incidents", lang="zh", drill=True)
    assert result.hideout["forecast"] == {"310115": 1}
    assert result.hideout["forecastColor"] == STATE_COLORS["forecast"]
    assert "预警 2" in result.hideout["tips"]["310115"]
    labels = {f["properties"]["code"]: f["properties"] for f in result.labels["features"]}
    assert labels["310115"]["forecast"] == "预警 2" and labels["310104"]["forecast"] == "预警 1"
    assert labels["310101"]["forecast"] == ""


def test_timeline_runs_on_into_the_expected_breaches():
    start = NOW - timedelta(hours=24)
    ahead = pd.DataFrame(
        {"expected_at": [NOW + timedelta(minutes=m) for m in (20, 25, 100)], "id": [1, 2, 3]}
    )
    figure = timeline_figure(
        pd.DataFrame(columns=["bucket", "severity", "category", "incidents"]),
        stack="severity",
        lang="en",
        start=start,
        end=NOW,
        categories={},
        ahead=ahead,
        ahead_end=NOW + timedelta(hours=3),
    )
    bars = [trace for trace in figure["data"] if trace["name"] == "Expected breaches"]
    assert len(bars) == 1
    assert sorted(bars[0]["y"]) == [1, 2]
    assert all(pd.Timestamp(x) > pd.Timestamp(NOW) for x in bars[0]["x"])
    layout = figure["layout"]
    assert pd.Timestamp(layout["xaxis"]["range"][1]) == pd.Timestamp(NOW + timedelta(hours=3))
    assert any(a["text"] == "now" for a in layout["annotations"])
    # the past alone: no axis beyond now and no expected bars
    past = timeline_figure(
        pd.DataFrame(columns=["bucket", "severity", "category", "incidents"]),
        stack="severity",
        lang="en",
        start=start,
        end=NOW,
        categories={},
    )
    assert not [trace for trace in past["data"] if trace["name"] == "Expected breaches"]
