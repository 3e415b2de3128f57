"""Pure dashboard builders: URL state, labels, choropleth classes, tiles, timeline."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from components import i18n
from components.choropleth import choropleth, format_value, metric_value
from components.state import METRICS, href, language, pick, pick_many, query_string
from components.tiles import tiles_children
from components.timeline import timeline_figure
from data.areas import AreaMetric
from data.kpis import Kpis
from tests.unit.conftest import component_text


def area(code: str, **figures) -> AreaMetric:
    values = dict(
        code=code,
        name_zh=f"区{code}",
        name_en=f"District {code}",
        area_km2=50.0,
        approximate=False,
        devices_total=100,
        devices_online=90,
        devices_warning=3,
        devices_alarm=1,
        open_incidents=4,
        open_critical=1,
        open_major=1,
        open_minor=2,
        readings_last_hour=500,
        label_lon=121.4,
        label_lat=31.2,
    )
    values.update(figures)
    return AreaMetric(**values)


def test_pick_accepts_only_allowed_values():
    assert pick("online_rate", METRICS, METRICS[0]).value == "online_rate"
    rejected = pick("<script>", METRICS, METRICS[0])
    assert rejected.value == METRICS[0] and rejected.rejected
    assert not pick("", METRICS, METRICS[0]).rejected
    assert pick(["x"], METRICS, None).value is None


def test_pick_many_keeps_allow_list_order_and_falls_back_to_all():
    assert pick_many("minor,critical", ("critical", "major", "minor")) == ("critical", "minor")
    assert pick_many("bogus", ("a", "b")) == ("a", "b")
    assert pick_many(None, ("a", "b")) == ("a", "b")


def test_links_keep_the_language_and_drop_empty_values():
    assert href("/district/310115", lang="zh", metric=None) == "/district/310115"
    assert href("/", lang="en", category="gas") == "/?lang=en&category=gas"
    assert query_string(severity=("critical", "major")) == "?severity=critical%2Cmajor"
    assert language("fr") == "zh" and language("en") == "en"


def test_every_label_exists_in_both_languages_with_the_same_placeholders():
    fields = string.Formatter()
    for key in i18n.label_keys():
        zh, en = i18n.t(key, "zh"), i18n.t(key, "en")
        assert zh and en, key
        # the switch names the other language in that language
        assert re.search(r"[\u4e00-\u9fff]", en) is None or key.startswith("nav.language"), key
        names_zh = {f[1] for f in fields.parse(zh) if f[1]}
        names_en = {f[1] for f in fields.parse(en) if f[1]}
        assert names_zh == names_en, key


def test_metric_values_and_formats():
    a = area("310101", open_incidents=6, area_km2=20.0)
    assert metric_value(a, "open_incidents") == 6
    assert metric_value(a, "incidents_per_100km2") == pytest.approx(30.0)
    assert metric_value(a, "online_rate") == pytest.approx(90.0)
    assert metric_value(area("x", devices_total=0, devices_online=0), "online_rate") is None
    assert format_value(91.234, "online_rate") == "91.2%"
    assert format_value(12345, "readings_last_hour") == "12,345"


def test_choropleth_escapes_names_and_marks_selection():
    areas = [area("310101", name_zh="<b>黄浦</b>"), area("310115", open_incidents=40)]
    result = choropleth(areas, metric="open_incidents", lang="zh", drill=True, selected="310115")
    assert "&lt;b&gt;黄浦&lt;/b&gt;" in result.hideout["tips"]["310101"]
    assert result.hideout["selected"] == "310115"
    assert result.hideout["colors"]["310101"] != result.hideout["colors"]["310115"]
    assert len(result.labels["features"]) == 2
    english = choropleth(areas, metric="online_rate", lang="en", drill=False)
    assert "Device online rate" in english.hideout["tips"]["310115"]


def kpis(**changes) -> Kpis:
    values = dict(
        devices_total=1000,
        devices_online=950,
        devices_warning=5,
        devices_alarm=2,
        readings_today=5000,
        readings_yesterday=20000,
        open_by_severity={"critical": 1, "major": 2, "minor": 3},
        opened_today=10,
        opened_yesterday=40,
        resolved_today=8,
        resolved_yesterday=30,
        mean_minutes_to_resolve=50.0,
        mean_minutes_to_resolve_yesterday=100.0,
        status_as_of=None,
        at=datetime(2026, 11, 24, 4, 0, tzinfo=UTC),  # noon in Shanghai
    )
    values.update(changes)
    return Kpis(**values)


def _tile_key(tile) -> str:
    return tile.children[1].to_plotly_json()["props"]["data-key"]


def test_tiles_without_trends_show_no_change_line():
    tiles = {_tile_key(tile): component_text(tile) for tile in tiles_children(kpis(), "en")}
    assert "1,000" in tiles["devices"] and "95.0%" in tiles["online"]
    assert "6" in tiles["open_incidents"] and "Critical 1" in tiles["open_incidents"]
    assert not any("yesterday" in text for text in tiles.values())


def test_timeline_has_every_hour_and_translated_axes():
    end = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    start = end - timedelta(hours=24)
    frame = pd.DataFrame(
        {
            "bucket": [end - timedelta(hours=2)],
            "severity": ["critical"],
            "category": ["gas"],
            "incidents": [3],
        }
    )
    figure = timeline_figure(
        frame,
        stack="severity",
        lang="en",
        start=start,
        end=end,
        categories={"gas": ("燃气", "Gas")},
    )
    assert len(figure["data"]) == 3 and len(figure["data"][0]["x"]) >= 24
    assert sum(sum(trace["y"]) for trace in figure["data"]) == 3
    assert figure["layout"]["xaxis"]["title"]["text"] == "Time"
    by_category = timeline_figure(
        frame,
        stack="category",
        lang="zh",
        start=start,
        end=end,
        categories={"gas": ("燃气", "Gas")},
    )
    assert [trace["name"] for trace in by_category["data"]] == ["燃气"]


def test_timeline_draws_acknowledged_and_resolved_lines_from_the_history():
    end = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
    start = end - timedelta(hours=24)
    opened = pd.DataFrame(columns=["bucket", "severity", "category", "incidents"])
    hour = pd.Timestamp(end - timedelta(hours=3)).tz_convert("Asia/Shanghai").floor("h")
    handled = pd.DataFrame(
        {
            "bucket": [hour, hour, hour + pd.Timedelta(hours=1)],
            "kind": ["acknowledged", "resolved", "resolved"],
            "events": [4, 1, 2],
        }
    )
    figure = timeline_figure(
        opened,
        stack="severity",
        lang="en",
        start=start,
        end=end,
        categories={},
        handled=handled,
    )
    lines = {trace["name"]: trace for trace in figure["data"] if trace["type"] == "scatter"}
    assert set(lines) == {"Acknowledged", "Resolved"}
    assert sum(lines["Acknowledged"]["y"]) == 4 and sum(lines["Resolved"]["y"]) == 3
    assert max(lines["Resolved"]["y"]) == 2


def test_the_opening_line_sits_among_the_readings_in_city_time():
    """The incident's opening is drawn where its readings are (not eight hours off)."""
    import json

    import pandas as pd
    from plotly.utils import PlotlyJSONEncoder

    from components.incident_detail import readings_figure

    opened = pd.Timestamp("2026-11-25T04:04:36Z")
    times = pd.date_range("2026-11-25T03:30:00Z", periods=60, freq="1min")
    series = pd.DataFrame(
        {"ts": times, "value": 1.0, "value_min": 0.5, "value_max": 1.5, "quality": 0}
    )
    figure = readings_figure(
        series, incident={"threshold": 25.0, "opened_at": opened}, lang="zh", unit="%LEL"
    )
    data = json.loads(json.dumps(figure.to_plotly_json(), cls=PlotlyJSONEncoder))
    line = next(shape for shape in data["layout"]["shapes"] if shape["x0"] == shape["x1"])
    xs = data["data"][1]["x"]
    # plotly.js reads both as wall-clock times: compare them as such
    assert xs[0][:16] == "2026-11-25T11:30" and str(line["x0"])[:19] == "2026-11-25T12:04:36"


@pytest.mark.parametrize(
    ("lang", "placeholder", "expected"),
    [
        ("zh", "filter.choose", "请选择…"),
        ("en", "filter.choose", "Choose…"),
        ("zh", "action.choose_assignee", "选择处置人…"),
        ("en", "action.choose_assignee", "Choose who handles it…"),
    ],
)
def test_every_dropdown_speaks_the_page_language(lang, placeholder, expected):
    from components.filters import dropdown

    made = dropdown("some-dropdown", [], None, lang=lang, placeholder=placeholder)
    assert made.placeholder == expected
    # the factory's default, in the page's language, never Dash's English "Select..."
    assert dropdown("other", [], None, lang=lang).placeholder == i18n.t("filter.choose", lang)
