"""Incident timeline: stacked bars per hour by severity or category (pure figure builder)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import plotly.graph_objects as go

from components.i18n import name, t
from components.theme import (
    ACCENT,
    CATEGORY_PALETTE,
    GOOD,
    MUTED,
    SEVERITY_COLORS,
    STATE_COLORS,
    base_layout,
)
from components.tiles import CITY_TZ

# expected breaches are counted per quarter hour (a 预警 horizon is 30–60 min: hours are too coarse)
AHEAD_SLOT_MINUTES = 15


def timeline_figure(
    frame: pd.DataFrame,
    *,
    stack: str,
    lang: str,
    start: datetime,
    end: datetime,
    categories: dict[str, tuple[str, str]],
    bucket_minutes: int = 60,
    handled: pd.DataFrame | None = None,
    ahead: pd.DataFrame | None = None,
    ahead_end: datetime | None = None,
    tickformat: str = "%H:%M",
    replay: bool = False,
) -> go.Figure:
    """Stacked bars of incidents opened per bucket in [start, end), every bucket present, and
    lines of those acknowledged and resolved (`handled`: bucket, kind, events); with `ahead_end`
    the axis runs on past now (`end`) to it, with the breaches live 预警 expect (`ahead`:
    expected_at) as hatched bars in the 预警 colour."""
    buckets = pd.date_range(
        start.astimezone(CITY_TZ).replace(minute=0, second=0, microsecond=0),
        end.astimezone(CITY_TZ),
        freq=timedelta(minutes=bucket_minutes),
    )
    figure = go.Figure(layout=base_layout())
    if stack == "severity":
        groups = [
            (key, t(f"severity.{key}", lang), SEVERITY_COLORS[key])
            for key in ("minor", "major", "critical")
        ]
        column = "severity"
    else:
        groups = [
            (code, name(names, lang), CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)])
            for i, (code, names) in enumerate(categories.items())
        ]
        column = "category"
    counts = (
        frame.assign(bucket=pd.to_datetime(frame["bucket"], utc=True).dt.tz_convert(CITY_TZ))
        .groupby(["bucket", column])["incidents"]
        .sum()
        if not frame.empty
        else pd.Series(dtype="int64")
    )
    for key, label, color in groups:
        values = (
            [int(counts.get((bucket, key), 0)) for bucket in buckets]
            if len(counts)
            else [0 for _ in buckets]
        )
        if stack == "category" and not any(values):
            continue
        figure.add_bar(
            x=list(buckets),
            y=values,
            name=label,
            marker={"color": color, "line": {"width": 0}},
            hovertemplate=f"{label}: %{{y}}<extra>%{{x|%H:%M}}</extra>",
        )
    _handled_lines(figure, handled, buckets, lang)
    if ahead_end is not None:
        _ahead(figure, ahead, lang, now=end, until=ahead_end, replay=replay)
        # the past's first bar is centred on its hour: half an hour of room before it
        first = buckets[0] - timedelta(minutes=bucket_minutes / 2)
        figure.update_xaxes(range=[first, pd.Timestamp(ahead_end).tz_convert(CITY_TZ)])
    figure.update_layout(
        barmode="stack",
        bargap=0.15,
        xaxis={"title": {"text": t("axis.time", lang)}, "tickformat": tickformat, "type": "date"},
        yaxis={"title": {"text": t("axis.incidents", lang)}, "rangemode": "tozero"},
        showlegend=True,
        margin={"l": 56, "r": 12, "t": 30, "b": 44},
    )
    return figure


def _handled_lines(
    figure: go.Figure, handled: pd.DataFrame | None, buckets: pd.DatetimeIndex, lang: str
) -> None:
    """Lines of the incidents acknowledged and resolved per bucket."""
    if handled is not None and not handled.empty:
        done = handled.assign(
            bucket=pd.to_datetime(handled["bucket"], utc=True).dt.tz_convert(CITY_TZ)
        ).set_index(["bucket", "kind"])["events"]
        for kind, color, dash in (("acknowledged", ACCENT, "dot"), ("resolved", GOOD, "solid")):
            label = t(f"event.{kind}", lang)
            figure.add_scatter(
                x=list(buckets),
                y=[int(done.get((bucket, kind), 0)) for bucket in buckets],
                name=label,
                mode="lines",
                line={"color": color, "width": 2, "dash": dash, "shape": "hv"},
                hovertemplate=f"{label}: %{{y}}<extra>%{{x|%H:%M}}</extra>",
            )


def _ahead(
    figure: go.Figure,
    ahead: pd.DataFrame | None,
    lang: str,
    *,
    now: datetime,
    until: datetime,
    replay: bool = False,
) -> None:
    """The hours after now: a shaded band, a "now" line, and the expected breaches per quarter
    hour as hatched bars in the 预警 colour (so the future never reads as what happened)."""
    color = STATE_COLORS["forecast"]
    slot = timedelta(minutes=AHEAD_SLOT_MINUTES)
    local_now = pd.Timestamp(now).tz_convert(CITY_TZ)
    figure.add_vrect(
        x0=local_now,
        x1=pd.Timestamp(until).tz_convert(CITY_TZ),
        line_width=0,
        fillcolor=color,
        opacity=0.07,
        layer="below",
    )
    figure.add_shape(
        type="line",
        x0=local_now,
        x1=local_now,
        y0=0,
        y1=1,
        yref="paper",
        line={"color": MUTED, "width": 1.5, "dash": "dot"},
    )
    # inside the plot, right of the line: above it the legend runs to the right edge
    figure.add_annotation(
        x=local_now,
        y=1,
        yref="paper",
        xanchor="left",
        yanchor="top",
        showarrow=False,
        # a replay's line is the instant it shows, not now
        text=(
            t("fx.timeline.replay_at", lang, t=local_now.strftime("%H:%M"))
            if replay
            else t("fx.timeline.now", lang)
        ),
        font={"color": MUTED, "size": 12},
    )
    if ahead is None or ahead.empty:
        return
    expected = pd.to_datetime(ahead["expected_at"], utc=True).dt.tz_convert(CITY_TZ)
    counts = expected.dt.floor(f"{AHEAD_SLOT_MINUTES}min").value_counts().sort_index()
    label = t("fx.timeline.expected", lang)
    figure.add_bar(
        x=[moment + slot / 2 for moment in counts.index],
        y=[int(n) for n in counts.to_numpy()],
        width=slot.total_seconds() * 1000 * 0.8,
        name=label,
        marker={
            "color": "rgba(255, 106, 213, 0.35)",
            "line": {"color": color, "width": 1.5},
            "pattern": {"shape": "/", "fgcolor": color, "size": 6, "solidity": 0.35},
        },
        hovertemplate=f"{label}: %{{y}}<extra>%{{x|%H:%M}}</extra>",
    )
