"""The review's pure builders: durations, headline figures from a known Review, the CSV, and the
standalone HTML the PDF is printed from."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import pytest
from dash import dcc, html

from components.review import (
    CSV_COLUMNS,
    duration,
    incidents_csv,
    level_rows,
    loan_rows,
    review_kpis,
    review_sections,
)
from components.static_html import document, to_html
from data.checks import InvalidQuery
from data.clock import parse_moment
from data.review import Review

START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
END = START + timedelta(hours=6)


def _review() -> Review:
    at = pd.Timestamp(START)
    handling = pd.DataFrame(
        {
            "key": ["310115", "310106"],
            "incidents": [3, 2],
            "critical": [1, 1],
            "acknowledged": [2, 1],
            "mtta_s": [750.0, 120.0],
            "p50_ack_s": [750.0, 120.0],
            "resolved": [1, 1],
            "mttr_s": [3600.0, 3600.0],
            "p50_resolve_s": [3600.0, 3600.0],
        }
    )
    units = pd.DataFrame(
        {
            "dispatched_at": [at + pd.Timedelta(minutes=12), at + pd.Timedelta(minutes=55)],
            "arrived_at": [at + pd.Timedelta(minutes=30), pd.NaT],
            "unit": ["PD-PUMP-01", "JA-CREW-02"],
            "incident_id": [1, 4],
            "severity": ["critical", "critical"],
        }
    )
    return Review(
        start=START,
        end=END,
        district=None,
        street=None,
        bucket=timedelta(minutes=10),
        mix=pd.DataFrame({"category_code": ["flood"], "severity": ["critical"], "n": [2]}),
        timeline=pd.DataFrame({"at": [at], "severity": ["critical"], "n": [2]}),
        by_district=handling,
        by_team=handling.assign(key=["浦东防汛队", ""]),
        early={"forecasts": 1, "alarms": 5, "foreseen": 1, "p50_lead_s": 300, "max_lead_s": 300},
        levels=pd.DataFrame({"at": [at + pd.Timedelta(minutes=8)], "topic_code": ["flood"],
                             "district_adcode": ["310115"], "from_level": [None],
                             "to_level": [4], "source": ["operator"], "actor": ["值班长"],
                             "reason": ["演练"]}),
        units=units,
        tasks=pd.DataFrame({"created_at": [at], "district_adcode": ["310115"],
                            "text_zh": ["预置泵车"], "text_en": ["Pre-position pumps"],
                            "status": ["done"], "done_at": [at + pd.Timedelta(minutes=50)]}),
        log=pd.DataFrame(columns=["at", "kind", "actor", "note", "incident_id", "title_zh",
                                  "title_en"]),
        loans=pd.DataFrame({"at": [at + pd.Timedelta(minutes=20), at + pd.Timedelta(minutes=90)],
                            "unit": ["PT-310110-012"] * 2, "kind_code": ["pump_truck"] * 2,
                            "lent_to": ["310115", None], "from_lent_to": [None, "310115"],
                            "actor": ["值班长", "值班长"]}),
    )  # fmt: skip


def test_durations_read_as_minutes_or_hours():
    assert duration(None, "zh") == "–" and duration(float("nan"), "en") == "–"
    assert duration(750, "zh") == "12 分" and duration(3660, "en") == "1 h 1 min"


def test_the_headline_figures_weigh_each_district_by_its_incidents():
    figures = dict(review_kpis(_review(), "en"))
    assert figures["Incidents"] == "5" and figures["Critical"] == "2"
    # (750 × 2 + 120 × 1) / 3 s = 9 min; both resolved in an hour
    assert figures["Mean time to acknowledge"] == "9 min"
    assert figures["Mean time to resolve"] == "1 h 0 min"
    assert figures["Alarms foreseen"] == "1 / 5" and figures["Lead time (median)"] == "5 min"
    assert figures["Units sent"] == "2" and figures["Time to arrive (median)"] == "18 min"
    assert figures["Playbook tasks done"] == "1 / 1"


def test_the_csv_has_every_column_and_beijing_times():
    opened = pd.Timestamp(START)
    rows = pd.DataFrame(
        [
            {
                "id": 7, "kind": "alarm", "severity": "critical", "category_code": "flood",
                "district_adcode": "310115", "street_code": "310115001", "team": "",
                "title_zh": "积水, \"超限\"", "title_en": "Ponding", "opened_at": opened,
                "acknowledged_at": opened + pd.Timedelta(minutes=5), "resolved_at": pd.NaT,
                "lead_s": None, "foreseen_by": None, "units_sent": 1,
            }
        ]
    )  # fmt: skip
    text = incidents_csv(rows)
    assert text.startswith("\ufeff")
    parsed = list(csv.DictReader(io.StringIO(text[1:])))
    assert tuple(parsed[0]) == CSV_COLUMNS
    assert parsed[0]["title_zh"] == '积水, "超限"'  # quoted, not split
    assert parsed[0]["opened_at"] == "2026-12-03 20:00:00+0800"
    assert parsed[0]["ack_s"] == "300.0" and parsed[0]["resolve_s"] == ""
    assert incidents_csv(rows.iloc[0:0]).splitlines()[0] == "\ufeff" + ",".join(CSV_COLUMNS)


def test_the_static_document_keeps_text_escaped_and_draws_graphs_without_a_server():
    body = html.Div(
        className="x",
        children=[
            html.H2("<script>alert(1)</script>"),
            dcc.Store(id="s", data=1),
            dcc.Graph(figure=go.Figure(go.Bar(x=[1], y=[2]))),
        ],
    )
    text = to_html(body)
    assert text.startswith('<div class="x"><h2>&lt;script&gt;') and "<script>alert" not in text
    assert "Plotly.newPlot" in text and 'id="s"' not in text
    page = document(body, title="复盘", lang="zh", stylesheets=("onescreen_review.css",))
    assert page.count("@media print") == 1 and "<title>复盘</title>" in page


def test_every_section_of_a_review_renders():
    sections = review_sections(
        _review(), "zh", districts={"310115": ("浦东新区", "Pudong")}, categories={}, log_limit=10
    )
    text = to_html(sections)
    assert "浦东新区" in text and "浦东防汛队" in text and "（未指派）" in text
    assert "预置泵车" in text and "未到场" in text and "窗口内无记录" in text
    assert "值班长" in text and "– → IV" in text  # the level change, in its table


def test_moments_are_beijing_time_unless_they_say():
    assert parse_moment("2026-12-03 20:00") == START
    assert parse_moment("2026-12-03T12:00Z") == START
    with pytest.raises(InvalidQuery):
        parse_moment("yesterday")


def test_a_level_change_says_who_made_it():
    rv = _review()
    levels = pd.concat([rv.levels, rv.levels.assign(source="rules", actor="system:rules")])
    rows = level_rows(
        replace(rv, levels=levels), "zh", {"flood": ("防汛防台", "Flood")}, lambda code: code
    )
    assert [row[4] for row in rows] == ["值班长", "自动判定"]
    assert rows[0][2] == "防汛防台" and rows[0][3] == "– → IV"


def test_a_loan_of_the_reserve_says_where_it_went_and_whence_it_came_back():
    places = {"310115": "浦东新区"}
    rows = loan_rows(_review(), "zh", lambda code: places.get(code, code))
    assert [row[1:] for row in rows] == [
        ["PT-310110-012", "借调至浦东新区", "值班长"],
        ["PT-310110-012", "自浦东新区收回", "值班长"],
    ]
    assert rows[0][0] < rows[1][0]  # the window's order
    text = to_html(
        review_sections(_review(), "en", districts={"310115": ("浦东新区", "Pudong")},
                        categories={}, log_limit=10)
    )  # fmt: skip
    assert "Loans of the city&#x27;s reserve" in text or "Loans of the city's reserve" in text
    assert "lent to Pudong" in text and "taken back from Pudong" in text
