"""A scenario's (专题) own 24 h chart: what each scenario follows hour by hour (as data), and the
pure builder of its small multiples from the hourly rollups (data/vitals.measurand_hours)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.i18n import t
from components.theme import ACCENT, MUTED, STATE_COLORS, base_layout, message_figure
from components.tiles import CITY_TZ
from data.vitals import MeasurandHours

# what a row draws of its measurands' hours: the highest or lowest reading, or how many devices
# read beyond their alarm line in the hour (a count where the readings' extremes would mislead)
STATS = ("high", "low", "alarmed")
BEYOND = STATE_COLORS["warning"]


@dataclass(frozen=True)
class Trend:
    """One row of the chart: its text key (topic.trend.<key>), its measurands, what it draws."""

    key: str
    measurands: tuple[str, ...]
    stat: str


TRENDS: dict[str, tuple[Trend, ...]] = {
    "flood": (
        Trend("rain", ("rain_gauge", "rainfall"), "high"),
        Trend("ponding", ("ponding",), "high"),
        Trend("river", ("river_level",), "alarmed"),
    ),
    "power": (
        Trend("outages", ("outage",), "alarmed"),
        Trend("load", ("transformer_load",), "high"),
        Trend("cable", ("cable_temp",), "high"),
    ),
    "water": (
        Trend("pressure", ("pipe_pressure",), "low"),
        Trend("pressure_alarmed", ("pipe_pressure",), "alarmed"),
        Trend("leak", ("leak_noise",), "alarmed"),
    ),
    "gas": (
        Trend("methane", ("methane_manhole",), "high"),
        Trend("kitchen", ("kitchen_gas",), "alarmed"),
        Trend("gas_pressure", ("gas_pressure",), "alarmed"),
    ),
    "elderly": (
        Trend("sos", ("sos_button",), "alarmed"),
        Trend("falls", ("fall_radar",), "alarmed"),
        Trend("inactive", ("door_inactivity",), "alarmed"),
    ),
    "weather": (
        Trend("temperature", ("temperature",), "high"),
        Trend("wind", ("wind_speed",), "high"),
        Trend("visibility", ("visibility",), "low"),
    ),
}


def trend_measurands(topic: str) -> tuple[str, ...]:
    """Every measurand the scenario's chart reads, each once."""
    return tuple(dict.fromkeys(m for trend in TRENDS[topic] for m in trend.measurands))


def trend_query(topic: str) -> dict[str, tuple[str, ...]]:
    """What the scenario's chart asks data/vitals.measurand_hours (one shared read for all)."""
    return {"measurands": trend_measurands(topic), "counted": counted_measurands(topic)}


def counted_measurands(topic: str) -> tuple[str, ...]:
    """The measurands whose devices in alarm the scenario's chart counts."""
    return tuple(
        dict.fromkeys(
            m for trend in TRENDS[topic] if trend.stat == "alarmed" for m in trend.measurands
        )
    )


@dataclass(frozen=True)
class Row:
    """One drawn row: its trend, hours, values, unit, decimals and alarm line (if one)."""

    trend: Trend
    hours: tuple[datetime, ...]
    values: tuple[float | None, ...]
    unit: str
    decimals: int
    line: float | None


def _combine(values: Sequence[float | None], stat: str) -> float | None:
    """One hour of several measurands: the highest, the lowest, or the devices summed."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if stat == "high" else min(present) if stat == "low" else sum(present)


def trend_rows(topic: str, found: Sequence[MeasurandHours]) -> list[Row]:
    """The rows of the scenario's chart that have readings, in its order."""
    by_measurand = {m.measurand: m for m in found}
    rows = []
    for trend in TRENDS[topic]:
        own = [by_measurand[m] for m in trend.measurands if m in by_measurand]
        if not own:
            continue
        column = {"high": "highs", "low": "lows", "alarmed": "alarmed"}[trend.stat]
        series = [getattr(m, column) for m in own]
        values = tuple(_combine(hour, trend.stat) for hour in zip(*series, strict=True))
        lines = {m.alarm_max if trend.stat == "high" else m.alarm_min for m in own}
        # a line only where every measurand's types agree on it (one line, honestly drawn)
        line = lines.pop() if len(lines) == 1 and trend.stat != "alarmed" else None
        unit = "" if trend.stat == "alarmed" else own[0].unit
        decimals = 1 if trend.stat == "alarmed" else own[0].decimals
        rows.append(Row(trend, own[0].hours, values, unit, decimals, line))
    return rows


def _beyond(value: float | None, row: Row) -> bool:
    """Whether an hour's value is past the row's line (any device in alarm, for counts)."""
    if value is None:
        return False
    if row.trend.stat == "alarmed":
        return value > 0
    if row.line is None:
        return False
    # as the readings' own alarm level counts them: strictly beyond the line
    return value > row.line if row.trend.stat == "high" else value < row.line


def _draw_row(figure: go.Figure, row: Row, cell: dict[str, int], *, lang: str) -> None:
    """One row: the hours as a line (counts as bars), hours past the line in orange, the line."""
    label = t(f"topic.trend.{row.trend.key}", lang)
    # each hour drawn at its middle: the bar or point stands for the whole hour
    x = [(h + timedelta(minutes=30)).astimezone(CITY_TZ) for h in row.hours]
    colors = [BEYOND if _beyond(v, row) else ACCENT for v in row.values]
    hover = f"{label} %{{y:.{row.decimals}f}} {row.unit}<extra>%{{x|%H:00}}</extra>"
    if row.trend.stat == "alarmed":
        figure.add_bar(
            x=x,
            y=row.values,
            marker={"color": colors},
            name=label,
            hovertemplate=hover,
            **cell,
        )
    else:
        figure.add_scatter(
            x=x,
            y=row.values,
            mode="lines+markers",
            line={"color": ACCENT, "width": 2},
            marker={"color": colors, "size": 7},
            connectgaps=False,
            name=label,
            hovertemplate=hover,
            **cell,
        )
    if row.line is not None:
        figure.add_hline(
            y=row.line,
            line={"color": BEYOND, "dash": "dash", "width": 1.5},
            **cell,
            annotation_text=t("topic.alarm_line", lang, value=f"{row.line:g}", unit=row.unit),
            annotation_position="bottom left",
            annotation_font={"color": BEYOND, "size": 13},
        )
    values = [v for v in row.values if v is not None] + ([row.line] if row.line else [])
    # a count's axis reaches at least one device (never ticks of a twentieth of one)
    top = max([*values, 1.0] if row.trend.stat == "alarmed" else values, default=1.0)
    # from zero (counts, rain, load…); below it only for what goes below (temperature)
    floor = min(0.0, min(values, default=0.0) * 1.1)
    span = (top - floor) or 1.0
    figure.update_yaxes(
        range=[floor, top + span * 0.15],
        title_text=row.unit or None,
        **cell,
    )


def _title(row: Row, lang: str) -> str:
    """A row's title: what it follows and which of the hour's readings ("最大雨强 · 逐时最高")."""
    return t(f"topic.trend.{row.trend.key}", lang) + " · " + t(f"topic.stat.{row.trend.stat}", lang)


def trend_figure(
    topic: str, found: Sequence[MeasurandHours], *, lang: str, stacked: bool = False
) -> go.Figure:
    """The scenario's last day by the hour: a small chart per thing it follows, side by side
    (`stacked`: one above the other, sharing the time axis, for a narrow tall box)."""
    rows = trend_rows(topic, found)
    if not rows:
        return message_figure(t("topic.trend.none", lang))
    shape = {"rows": len(rows), "cols": 1} if stacked else {"rows": 1, "cols": len(rows)}
    figure = make_subplots(
        **shape,
        shared_xaxes=stacked,
        vertical_spacing=0.16,
        horizontal_spacing=0.07,
        subplot_titles=[_title(row, lang) for row in rows],
    )
    figure.update_layout(base_layout())
    for number, row in enumerate(rows, start=1):
        cell = {"row": number, "col": 1} if stacked else {"row": 1, "col": number}
        _draw_row(figure, row, cell, lang=lang)
    figure.for_each_annotation(
        lambda note: note.update(font={"size": 13, "color": MUTED})
        if note.yref == "paper"
        else None
    )
    figure.update_xaxes(tickformat="%H:%M", type="date", nticks=4)
    figure.update_layout(showlegend=False, bargap=0.2, margin={"l": 52, "r": 12, "t": 22, "b": 28})
    return figure
