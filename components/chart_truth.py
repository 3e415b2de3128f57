"""Charts that state the signal truly (pure helpers): on/off sensors as steps labelled
正常/报警, the reading that opened an incident always on its chart, gauge zones only on a side
that has a limit, and window labels that say how much the data covers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import plotly.graph_objects as go

from components.i18n import t
from components.theme import ACCENT, STATE_COLORS
from components.tiles import CITY_TZ

ON_OFF_RANGE = [-0.25, 1.25]  # room above 报警 and below 正常 for the line's width
TRIGGER_COLOR = "#ffffff"
# a window counts as covered when its data starts no later than this share of it after its start
COVERED_SHARE = 0.05


def is_on_off(value_kind: object) -> bool:
    """Whether a type's readings are 0/1 states (data/reference/device_types.csv: binary)."""
    return value_kind == "binary"


def on_off_text(value: float | None, lang: str) -> str:
    """A 0/1 reading as a word: 报警 for 1, 正常 for 0, – for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return t("chart.alarm" if value >= 0.5 else "chart.normal", lang)


def draw_on_off(figure: go.Figure, times: Iterable, values: Iterable, *, lang: str) -> None:
    """A 0/1 sensor's state held from each reading to the next (steps, never a slope between
    states), on an axis of two ticks, 正常 and 报警."""
    states = [None if v is None or pd.isna(v) else (1 if float(v) >= 0.5 else 0) for v in values]
    words = [on_off_text(s, lang) if s is not None else "–" for s in states]
    figure.add_scatter(
        x=list(times),
        y=states,
        customdata=words,
        mode="lines",
        name=t("col.status", lang),
        line={"color": ACCENT, "width": 2.5, "shape": "hv"},
        hovertemplate="%{customdata}<extra>%{x|%m-%d %H:%M}</extra>",
    )
    figure.update_yaxes(
        tickvals=[0, 1],
        ticktext=[t("chart.normal", lang), t("chart.alarm", lang)],
        range=ON_OFF_RANGE,
        zeroline=False,
    )


def value_range(
    *groups: Iterable[float | None], pad: float = 0.08, headroom: float = 0.0
) -> list[float] | None:
    """An axis range holding every given value with `pad` of the span either side, and
    `headroom` more above (room for a label over the highest point); None without a value."""
    values = [float(v) for group in groups for v in group if v is not None and not pd.isna(v)]
    if not values:
        return None
    low, high = min(values), max(values)
    span = (high - low) or max(abs(high), 1.0)
    return [low - span * pad, high + span * (pad + headroom)]


def mark_point(
    figure: go.Figure,
    *,
    x: datetime,
    y: float,
    marker: dict,
    color: str,
    text: str,
    name: str,
    hover: str,
    rise: int = -30,
) -> None:
    """One moment on a chart: a marker at (x, y) and a callout `text` above it in `color`."""
    figure.add_scatter(x=[x], y=[y], mode="markers", marker=marker, name=name, hovertemplate=hover)
    figure.add_annotation(
        x=x,
        y=y,
        text=text,
        showarrow=True,
        arrowcolor=color,
        ax=0,
        ay=rise,
        font={"color": color, "size": 13},
        bgcolor="rgba(11,18,32,0.85)",
    )


def mark_trigger(figure: go.Figure, *, at: datetime, value: float, text: str) -> None:
    """The reading that opened an incident: a ring at its time and value, labelled."""
    marker = {
        "color": STATE_COLORS["alarm"],
        "size": 12,
        "symbol": "circle",
        "line": {"color": TRIGGER_COLOR, "width": 2},
    }
    mark_point(
        figure,
        x=pd.Timestamp(at).tz_convert(CITY_TZ).to_pydatetime(),
        y=value,
        marker=marker,
        color=TRIGGER_COLOR,
        text=text,
        name=text,
        hover=f"{text}<extra>%{{x|%H:%M:%S}}</extra>",
    )


# The gauge ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaugeScale:
    """A gauge's value range and its zones (state, from, to) in value units, left to right."""

    low: float
    high: float
    zones: tuple[tuple[str, float, float], ...]

    def position(self, value: float) -> float:
        """Where `value` sits on the gauge, 0–1 (clamped)."""
        return min(max((value - self.low) / ((self.high - self.low) or 1.0), 0.0), 1.0)

    def background(self) -> str:
        """The zones as a CSS gradient with hard edges."""
        stops = []
        for state, start, end in self.zones:
            lo, hi = self.position(start) * 100, self.position(end) * 100
            stops.append(f"{STATE_COLORS[state]} {lo:.1f}% {hi:.1f}%")
        return f"linear-gradient(90deg, {', '.join(stops)})"


def gauge_scale(
    *,
    value_kind: str,
    normal_min: float,
    normal_max: float,
    alarm_min: float | None,
    alarm_max: float | None,
) -> GaugeScale:
    """The zones a type's limits define: alarm beyond an alarm limit, warning between it and the
    normal band; a side without an alarm limit has no red, and a side whose normal limit is a
    physical bound (0 below, 100 % above) has no zone beyond it at all."""
    if is_on_off(value_kind):
        return GaugeScale(-0.5, 1.5, (("normal", -0.5, 0.5), ("alarm", 0.5, 1.5)))
    span = (normal_max - normal_min) or 1.0
    edge = span * 0.25
    zones: list[tuple[str, float, float]] = []
    low = normal_min
    if alarm_min is not None:
        low = alarm_min - edge
        zones += [("alarm", low, alarm_min), ("warning", alarm_min, normal_min)]
    elif normal_min != 0:
        low = normal_min - edge
        zones.append(("warning", low, normal_min))
    zones.append(("normal", normal_min, normal_max))
    high = normal_max
    if alarm_max is not None:
        high = alarm_max + edge
        zones += [("warning", normal_max, alarm_max), ("alarm", alarm_max, high)]
    elif normal_max != 100:
        high = normal_max + edge
        zones.append(("warning", normal_max, high))
    return GaugeScale(low, high, tuple(zones))


# Windows --------------------------------------------------------------------------------------


def window_note(
    first: datetime | pd.Timestamp | None, *, start: datetime, end: datetime, lang: str
) -> str | None:
    """What a chart of [start, end] really shows when its data begins later: "近5小时（数据起于
    14:05）"; None when the data covers the window (or there is none)."""
    if first is None or pd.isna(first):
        return None
    began = pd.Timestamp(first)
    began = began.tz_localize("UTC") if began.tzinfo is None else began
    window = end - start
    if began <= pd.Timestamp(start) + window * COVERED_SHARE:
        return None
    covered = max(pd.Timestamp(end) - began, timedelta(0))
    hours = covered / timedelta(hours=1)
    shown = f"{hours:.1f}" if hours < 10 else f"{hours:.0f}"
    return t("chart.window_short", lang, h=shown, t=began.tz_convert(CITY_TZ).strftime("%H:%M"))


def add_window_note(figure: go.Figure, note: str | None) -> None:
    """The window note in the chart's top left corner (above the plot)."""
    if note:
        figure.add_annotation(
            x=0,
            y=1,
            xref="paper",
            yref="paper",
            xanchor="left",
            yanchor="bottom",
            showarrow=False,
            text=note,
            font={"color": STATE_COLORS["warning"], "size": 13},
            name="window-note",
        )
