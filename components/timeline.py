"""Incident timeline: stacked bars per hour by severity or category (pure figure builder)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import plotly.graph_objects as go

from components.i18n import name, t
from components.theme import ACCENT, CATEGORY_PALETTE, GOOD, SEVERITY_COLORS, base_layout
from components.tiles import CITY_TZ


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
) -> go.Figure:
    """Stacked bars of incidents opened per bucket in [start, end), every bucket present, and
    lines of those acknowledged and resolved (`handled`: bucket, kind, events)."""
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
    figure.update_layout(
        barmode="stack",
        bargap=0.15,
        xaxis={"title": {"text": t("axis.time", lang)}, "tickformat": "%H:%M", "type": "date"},
        yaxis={"title": {"text": t("axis.incidents", lang)}, "rangemode": "tozero"},
        showlegend=True,
        margin={"l": 56, "r": 12, "t": 30, "b": 44},
    )
    return figure
