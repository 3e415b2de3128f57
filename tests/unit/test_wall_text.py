"""Walls read from the back of the room: open 紧急 pinned first, no small text in figures."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from components.theme import WALL_TEXT_PX, base_layout, message_figure, wall_figure
from data.event_reads import order_lines


def _incidents(*rows: tuple[int, str, str, str]) -> pd.DataFrame:
    """Incidents newest first: (id, severity, status, kind)."""
    return pd.DataFrame(
        [
            {"id": i, "severity": severity, "status": status, "kind": kind}
            for i, severity, status, kind in rows
        ]
    )


def test_open_critical_alarms_come_first_newest_first_then_the_rest_in_order():
    frame = _incidents(
        (9, "minor", "open", "alarm"),
        (8, "critical", "resolved", "alarm"),
        (7, "critical", "open", "alarm"),
        (6, "major", "open", "alarm"),
        (5, "critical", "acknowledged", "alarm"),
        (4, "critical", "open", "forecast"),
        (3, "critical", "open", "alarm"),
    )
    assert list(order_lines(frame, pin_critical=True, limit=10)["id"]) == [7, 5, 3, 9, 8, 6, 4]


def test_a_critical_from_the_pinned_read_is_kept_once_and_within_the_limit():
    pinned = _incidents((3, "critical", "open", "alarm"))
    latest = _incidents(
        (9, "minor", "open", "alarm"),
        (8, "major", "open", "alarm"),
        (3, "critical", "open", "alarm"),
    )
    out = order_lines(pd.concat([pinned, latest]), pin_critical=True, limit=2)
    assert list(out["id"]) == [3, 9]
    assert order_lines(latest.iloc[:0], pin_critical=True, limit=5).empty


def test_frames_without_a_kind_column_are_alarms():
    frame = _incidents((2, "minor", "open", "alarm"), (1, "critical", "open", "alarm"))
    assert list(order_lines(frame.drop(columns="kind"), pin_critical=True, limit=5)["id"]) == [1, 2]


def test_an_event_with_an_open_critical_is_pinned_as_one_line_and_lines_order_by_activity():
    lines = pd.DataFrame(
        [
            # an event whose members include open criticals, last active at 10:05
            {
                "line": "event",
                "id": 3,
                "severity": "critical",
                "status": "open",
                "kind": "alarm",
                "criticals_open": 40,
                "last_at": "2026-12-03 10:05",
            },
            # an incident of the same id is another line
            {
                "line": "incident",
                "id": 3,
                "severity": "minor",
                "status": "open",
                "kind": "alarm",
                "criticals_open": 0,
                "last_at": "2026-12-03 10:20",
            },
            {
                "line": "event",
                "id": 4,
                "severity": "major",
                "status": "open",
                "kind": "alarm",
                "criticals_open": 0,
                "last_at": "2026-12-03 10:30",
            },
        ]
    )
    pinned = order_lines(lines, pin_critical=True, limit=10)
    assert list(zip(pinned["line"], pinned["id"], strict=True)) == [
        ("event", 3),
        ("event", 4),
        ("incident", 3),
    ]
    plain = order_lines(lines, pin_critical=False, limit=2)
    assert list(zip(plain["line"], plain["id"], strict=True)) == [("event", 4), ("incident", 3)]


def _sizes(figure: go.Figure) -> list[float]:
    """Every text size of a figure's layout (an unset one inherits the layout's font)."""
    layout = figure.layout
    sizes = [layout.legend.font.size]
    for axis in (layout.xaxis, layout.yaxis):
        sizes += [axis.tickfont.size, axis.title.font.size]
    sizes += [note.font.size for note in layout.annotations]
    return [size or layout.font.size for size in sizes] + [layout.font.size]


def test_wall_figures_have_no_text_under_the_room_size():
    figure = go.Figure(layout=base_layout())
    figure.add_bar(x=[1, 2], y=[3, 4], name="a")
    figure.add_annotation(text="now", font={"size": 11}, x=1, y=1)
    assert min(_sizes(figure)) < WALL_TEXT_PX  # the dashboard's figures are smaller
    assert min(_sizes(wall_figure(figure))) >= WALL_TEXT_PX
    assert min(_sizes(wall_figure(message_figure("no data")))) >= WALL_TEXT_PX
