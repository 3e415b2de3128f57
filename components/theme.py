"""Colours of the dark big-screen theme, shared by CSS-free builders and plotly figures."""

from __future__ import annotations

import plotly.graph_objects as go

BACKGROUND = "#0b1220"
PANEL = "#111b2e"
GRID = "#1f2d47"
TEXT = "#e6edf7"
MUTED = "#8fa3bf"
ACCENT = "#39c5ff"
GOOD = "#2fd38a"
FONT_FAMILY = '"Noto Sans CJK SC", "Noto Sans SC", "Microsoft YaHei", sans-serif'

# red is 紧急 (critical) and alarm, nothing else: no metric, category or trend is drawn in it
CRITICAL = "#ff4d5e"
SEVERITY_COLORS = {"critical": CRITICAL, "major": "#ffa23a", "minor": "#f5d547"}
STATE_COLORS = {
    "alarm": CRITICAL,
    # 预警: a breach of the alarm limit is forecast (issue 17); distinct from every other state
    "forecast": "#ff6ad5",
    "warning": "#ffa23a",
    "offline": "#7b8aa3",
    "maintenance": "#a77bff",
    "normal": "#2fd38a",
}
# worst first: a cluster shows the worst state among its devices
STATE_RANK = ("alarm", "forecast", "warning", "offline", "maintenance", "normal")

# incident kinds (data: incident.kind): alarms by severity; the early-warning kinds by these
KIND_COLORS = {"forecast": "#ff6ad5", "anomaly": "#c58bff", "health": "#7fd7ff"}

# the one ramp of every map metric, quiet to loud: a single blue hue growing lighter, so no
# count or rate ever borrows the severity colours (red, orange, yellow) or the "fine" green;
# where less is worse (online rate) the classes take it in reverse (components/choropleth.py)
HEAT_RAMP = ("#173a5e", "#1d5588", "#2371b3", "#2f8fd6", "#4fb0f0", "#8fd8ff")
# areas without data: a neutral grey, unlike any class of the ramp
NO_DATA = "#2b2f37"
CATEGORY_PALETTE = (
    "#39c5ff",
    "#2fd38a",
    "#ffa23a",
    "#d8e2f0",
    "#a77bff",
    "#f5d547",
    "#5ee6d0",
    "#ff7ac6",
    "#8fb3ff",
    "#c3e86b",
    "#ffb38a",
    "#b0bccf",
)


def base_layout(*, height: int | None = None) -> dict:
    """Plotly layout for every figure: transparent on the dark panel, big readable type."""
    return {
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT_FAMILY, "color": TEXT, "size": 14},
        "margin": {"l": 48, "r": 12, "t": 8, "b": 36},
        "xaxis": {"gridcolor": GRID, "linecolor": GRID, "zerolinecolor": GRID, "color": MUTED},
        "yaxis": {"gridcolor": GRID, "linecolor": GRID, "zerolinecolor": GRID, "color": MUTED},
        "legend": {
            "orientation": "h",
            "y": 1.02,
            "yanchor": "bottom",
            "x": 0,
            "font": {"size": 13},
        },
        "hoverlabel": {"bgcolor": PANEL, "bordercolor": ACCENT, "font": {"color": TEXT}},
        "autosize": True,
        **({"height": height} if height else {}),
    }


def message_figure(text: str) -> go.Figure:
    """An empty themed figure that says `text` (no data, or data unavailable)."""
    figure = go.Figure(layout=base_layout())
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.add_annotation(
        text=text,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 16, "color": MUTED},
    )
    return figure


# the smallest text on a wall: 2.2 % of a 1080-line screen, read from the back of the room
WALL_TEXT_PX = 24


# the most ticks a wall chart's count axis has
WALL_Y_TICKS = 3


def wall_figure(figure: go.Figure | dict) -> go.Figure:
    """A dashboard figure (or its dict) with type large enough to read from across a room: no
    text under WALL_TEXT_PX (ticks, legend, annotations); the x title goes, the ticks say it is
    time."""
    figure = figure if isinstance(figure, go.Figure) else go.Figure(figure)
    small = WALL_TEXT_PX
    figure.update_layout(
        font={"size": small + 2},
        legend={"font": {"size": small}, "itemwidth": 30},
        margin={"l": 78, "r": 16, "t": 38, "b": 40},
    )
    figure.update_xaxes(tickfont={"size": small}, title_text=None, automargin=True)
    # a few round counts: a portrait wall's chart is ~60 px tall, where plotly's own choice
    # (at least four ticks) stacks the labels on each other
    figure.update_yaxes(
        tickfont={"size": small}, title_font={"size": small}, automargin=True, nticks=WALL_Y_TICKS
    )
    figure.for_each_annotation(lambda note: note.update(font_size=max(note.font.size or 0, small)))
    return figure
