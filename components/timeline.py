"""Incident timeline: stacked bars per hour by severity or category (pure figure builder)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

import pandas as pd
import plotly.io as pio

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


@cache
def default_template() -> dict[str, Any]:
    """The template plotly's own figures carry (their look), made once."""
    return pio.templates[pio.templates.default].to_plotly_json()


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
) -> dict[str, Any]:
    """Stacked bars of incidents opened per bucket in [start, end), every bucket present, and
    lines of those acknowledged and resolved (`handled`: bucket, kind, events); with `ahead_end`
    the axis runs on past now (`end`) to it, with the breaches live 预警 expect (`ahead`:
    expected_at) as hatched bars in the 预警 colour. A plain figure dict: every district view
    renders its own each period, and plotly's objects cost ~20 ms of validation a build."""
    buckets = list(
        pd.date_range(
            start.astimezone(CITY_TZ).replace(minute=0, second=0, microsecond=0),
            end.astimezone(CITY_TZ),
            freq=timedelta(minutes=bucket_minutes),
        )
    )
    layout = {**base_layout(), "template": default_template()}
    data = _opened_bars(frame, buckets, stack=stack, lang=lang, categories=categories)
    data += _handled_lines(handled, buckets, lang)
    layout.update(
        barmode="stack",
        bargap=0.15,
        xaxis={
            **layout["xaxis"],
            "title": {"text": t("axis.time", lang)},
            "tickformat": tickformat,
            "type": "date",
        },
        yaxis={
            **layout["yaxis"],
            "title": {"text": t("axis.incidents", lang)},
            "rangemode": "tozero",
        },
        showlegend=True,
        margin={"l": 56, "r": 12, "t": 30, "b": 44},
    )
    if ahead_end is not None:
        data += _ahead(layout, ahead, lang, now=end, until=ahead_end, replay=replay)
        # the past's first bar is centred on its hour: half an hour of room before it
        first = buckets[0] - timedelta(minutes=bucket_minutes / 2)
        layout["xaxis"]["range"] = [first, pd.Timestamp(ahead_end).tz_convert(CITY_TZ)]
    return {"data": data, "layout": layout}


def _opened_bars(
    frame: pd.DataFrame,
    buckets: list[pd.Timestamp],
    *,
    stack: str,
    lang: str,
    categories: dict[str, tuple[str, str]],
) -> list[dict[str, Any]]:
    """A bar trace per severity (or per category with incidents) of the incidents opened."""
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
    counts: dict[Any, int] = {}
    if not frame.empty:
        summed = (
            frame.assign(bucket=pd.to_datetime(frame["bucket"], utc=True).dt.tz_convert(CITY_TZ))
            .groupby(["bucket", column])["incidents"]
            .sum()
        )
        counts = {key: int(value) for key, value in summed.items()}
    bars = []
    for key, label, color in groups:
        values = [counts.get((bucket, key), 0) for bucket in buckets]
        if stack == "category" and not any(values):
            continue
        bars.append(
            {
                "type": "bar",
                "x": buckets,
                "y": values,
                "name": label,
                "marker": {"color": color, "line": {"width": 0}},
                "hovertemplate": f"{label}: %{{y}}<extra>%{{x|%H:%M}}</extra>",
            }
        )
    return bars


def _handled_lines(
    handled: pd.DataFrame | None, buckets: list[pd.Timestamp], lang: str
) -> list[dict[str, Any]]:
    """Lines of the incidents acknowledged and resolved per bucket."""
    if handled is None or handled.empty:
        return []
    done = handled.assign(
        bucket=pd.to_datetime(handled["bucket"], utc=True).dt.tz_convert(CITY_TZ)
    ).set_index(["bucket", "kind"])["events"]
    events: dict[Any, int] = {key: int(value) for key, value in done.items()}
    lines = []
    for kind, color, dash in (("acknowledged", ACCENT, "dot"), ("resolved", GOOD, "solid")):
        label = t(f"event.{kind}", lang)
        lines.append(
            {
                "type": "scatter",
                "x": buckets,
                "y": [events.get((bucket, kind), 0) for bucket in buckets],
                "name": label,
                "mode": "lines",
                "line": {"color": color, "width": 2, "dash": dash, "shape": "hv"},
                "hovertemplate": f"{label}: %{{y}}<extra>%{{x|%H:%M}}</extra>",
            }
        )
    return lines


def _ahead(
    layout: dict[str, Any],
    ahead: pd.DataFrame | None,
    lang: str,
    *,
    now: datetime,
    until: datetime,
    replay: bool = False,
) -> list[dict[str, Any]]:
    """The hours after now: a shaded band and a "now" line (into `layout`), and the expected
    breaches per quarter hour as hatched bars in the 预警 colour (so the future never reads as
    what happened), returned."""
    color = STATE_COLORS["forecast"]
    slot = timedelta(minutes=AHEAD_SLOT_MINUTES)
    local_now = pd.Timestamp(now).tz_convert(CITY_TZ)
    layout["shapes"] = [
        *layout.get("shapes", []),
        {
            "type": "rect",
            "xref": "x",
            "yref": "y domain",
            "x0": local_now,
            "x1": pd.Timestamp(until).tz_convert(CITY_TZ),
            "y0": 0,
            "y1": 1,
            "line": {"width": 0},
            "fillcolor": color,
            "opacity": 0.07,
            "layer": "below",
        },
        {
            "type": "line",
            "x0": local_now,
            "x1": local_now,
            "y0": 0,
            "y1": 1,
            "yref": "paper",
            "line": {"color": MUTED, "width": 1.5, "dash": "dot"},
        },
    ]
    # inside the plot, right of the line: above it the legend runs to the right edge
    layout["annotations"] = [
        *layout.get("annotations", []),
        {
            "x": local_now,
            "y": 1,
            "yref": "paper",
            "xanchor": "left",
            "yanchor": "top",
            "showarrow": False,
            # a replay's line is the instant it shows, not now
            "text": (
                t("fx.timeline.replay_at", lang, t=local_now.strftime("%H:%M"))
                if replay
                else t("fx.timeline.now", lang)
            ),
            "font": {"color": MUTED, "size": 12},
        },
    ]
    if ahead is None or ahead.empty:
        return []
    expected = pd.to_datetime(ahead["expected_at"], utc=True).dt.tz_convert(CITY_TZ)
    counts = expected.dt.floor(f"{AHEAD_SLOT_MINUTES}min").value_counts().sort_index()
    label = t("fx.timeline.expected", lang)
    return [
        {
            "type": "bar",
            "x": [moment + slot / 2 for moment in counts.index],
            "y": [int(n) for n in counts.to_numpy()],
            "width": slot.total_seconds() * 1000 * 0.8,
            "name": label,
            "marker": {
                "color": "rgba(255, 106, 213, 0.35)",
                "line": {"color": color, "width": 1.5},
                "pattern": {"shape": "/", "fgcolor": color, "size": 6, "solidity": 0.35},
            },
            "hovertemplate": f"{label}: %{{y}}<extra>%{{x|%H:%M}}</extra>",
        }
    ]
