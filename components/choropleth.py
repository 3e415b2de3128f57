"""Pure builders for choropleth maps: colours, legend, tooltips and labels per area code."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from components.i18n import t
from components.theme import HEAT_RAMP, STATE_COLORS
from data.areas import AreaMetric

NO_DATA = "#1a2740"
INTEGRAL_METRICS = ("open_incidents", "readings_last_hour")
# the seven districts of the 中心城区: too small at city zoom, labelled in the map's inset
# (components/core_inset.py) rather than on the city map
CORE_DISTRICTS = ("310101", "310104", "310105", "310106", "310107", "310109", "310110")


@dataclass(frozen=True)
class LegendEntry:
    """One legend row: a colour and the value range it stands for."""

    color: str
    label: str


def metric_value(area: AreaMetric, metric: str) -> float | None:
    """The figure of `area` that `metric` names (None when it has no devices to rate)."""
    if metric == "open_incidents":
        return float(area.open_incidents)
    if metric == "incidents_per_100km2":
        return area.incidents_per_100km2
    if metric == "online_rate":
        return None if area.online_rate is None else area.online_rate * 100
    if metric == "readings_last_hour":
        return float(area.readings_last_hour) if area.devices_total else None
    raise ValueError(f"unknown metric {metric!r}")


def format_value(value: float | None, metric: str) -> str:
    """A metric value as shown on labels and legends."""
    if value is None:
        return "–"
    if metric == "online_rate":
        return f"{value:.1f}%"
    if metric == "incidents_per_100km2":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _nice_breaks(values: Sequence[float], classes: int, *, integral: bool = False) -> list[float]:
    """Up to `classes`-1 rounded, strictly increasing inner break points across the values."""
    low, high = min(values), max(values)
    if high <= low:
        return []
    step = (high - low) / classes
    magnitude = 10 ** math.floor(math.log10(step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step)
    if integral:
        # counts: whole-number classes, so a legend never reads "2 – 2"
        step = max(1, math.ceil(step))
    first = math.floor(low / step) * step + step
    breaks: list[float] = []
    value = first
    # `<=`: with counts 0 and 1 the break at 1 separates them
    while value <= high and len(breaks) < classes - 1:
        breaks.append(round(value, 6))
        value += step
    return breaks


def classify(
    values: Sequence[float], *, higher_is_worse: bool = True, integral: bool = False
) -> tuple[list[float], list[str]]:
    """Class breaks and one colour per class (len(colors) == len(breaks) + 1)."""
    breaks = _nice_breaks(values, len(HEAT_RAMP), integral=integral) if values else []
    ramp = HEAT_RAMP if higher_is_worse else tuple(reversed(HEAT_RAMP))
    if not breaks:
        # every area has the same value: mildest colour for zero, a middle one otherwise
        return [], [ramp[0] if not values or max(values) == 0 else ramp[len(ramp) // 2]]
    # spread the classes we have over the whole ramp so few classes still contrast
    picks = [round(i * (len(ramp) - 1) / len(breaks)) for i in range(len(breaks) + 1)]
    return breaks, [ramp[i] for i in picks]


def color_for(value: float | None, breaks: Sequence[float], colors: Sequence[str]) -> str:
    """The class colour of `value` (NO_DATA for None)."""
    if value is None:
        return NO_DATA
    for limit, color in zip(breaks, colors, strict=False):
        if value < limit:
            return color
    return colors[len(breaks)]


def legend_entries(
    breaks: Sequence[float],
    colors: Sequence[str],
    metric: str,
    lang: str,
    *,
    single: float | None = None,
) -> list[LegendEntry]:
    """Legend rows from low to high, plus a no-data row (`single`: the value when all agree)."""
    edges = [None, *breaks, None]
    rows = []
    for index, color in enumerate(colors):
        low, high = edges[index], edges[index + 1]
        if low is None and high is None:
            label = "–" if single is None else format_value(single, metric)
        elif low is None:
            label = f"< {format_value(high, metric)}"
        elif high is None:
            label = f"≥ {format_value(low, metric)}"
        else:
            label = f"{format_value(low, metric)} – {format_value(high, metric)}"
        rows.append(LegendEntry(color=color, label=label))
    rows.append(LegendEntry(color=NO_DATA, label=t("legend.no_data", lang)))
    return rows


def tooltip_html(area: AreaMetric, metric: str, lang: str, *, drill: bool) -> str:
    """The hover card of one area: name and its figures (escaped HTML)."""
    area_name = area.name_en if lang == "en" else area.name_zh
    rate = "–" if area.online_rate is None else f"{area.online_rate:.1%}"
    lines = [
        f"<b>{escape(area_name)}</b>",
        f"{escape(t(f'metric.{metric}', lang))}: "
        f"<b>{format_value(metric_value(area, metric), metric)}</b>",
        escape(t("hover.devices", lang, n=f"{area.devices_total:,}"))
        + " · "
        + escape(t("hover.online", lang, rate=rate)),
        escape(t("hover.open", lang, n=area.open_incidents, c=area.open_critical)),
        escape(t("hover.readings", lang, n=f"{area.readings_last_hour:,}")),
    ]
    if area.open_forecasts:
        text = escape(t("fx.hover.forecast", lang, n=area.open_forecasts))
        lines.append(f"<span class='os-tip-forecast'>{text}</span>")
    if area.open_health:
        lines.append(escape(t("fx.hover.health", lang, n=area.open_health)))
    if area.approximate:
        lines.append(f"<i>{escape(t('hover.approximate', lang))}</i>")
    if drill:
        lines.append(f"<span class='os-tip-hint'>{escape(t('hover.click', lang))}</span>")
    return "<br>".join(lines)


@dataclass(frozen=True)
class Choropleth:
    """Everything a choropleth layer and its legend need, keyed by area code."""

    hideout: dict
    legend: list[LegendEntry]
    labels: dict


def choropleth(
    areas: Sequence[AreaMetric],
    *,
    metric: str,
    lang: str,
    drill: bool,
    selected: str | None = None,
    with_labels: bool = True,
) -> Choropleth:
    """Colours, tooltips, legend and label points of `areas` for `metric` in `lang`."""
    values = {area.code: metric_value(area, metric) for area in areas}
    present = [v for v in values.values() if v is not None]
    breaks, colors = classify(
        present, higher_is_worse=metric != "online_rate", integral=metric in INTEGRAL_METRICS
    )
    hideout = {
        "colors": {code: color_for(v, breaks, colors) for code, v in values.items()},
        "tips": {area.code: tooltip_html(area, metric, lang, drill=drill) for area in areas},
        "selected": selected,
        "noData": NO_DATA,
        # areas with a live 预警 and no alarm: outlined in the 预警 colour by the browser
        "forecast": {area.code: 1 for area in areas if area.forecast_only},
        "forecastColor": STATE_COLORS["forecast"],
    }
    labels = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [area.label_lon, area.label_lat]},
                "properties": {
                    "code": area.code,
                    "name": area.name_en if lang == "en" else area.name_zh,
                    "value": format_value(values[area.code], metric),
                    # labelled in the inset of the 中心城区, not on the city map
                    "core": area.code in CORE_DISTRICTS,
                    # live 预警 of the area, shown as a pill under its name
                    "forecast": t("fx.label.forecast", lang, n=area.open_forecasts)
                    if area.open_forecasts
                    else "",
                },
            }
            for area in areas
        ]
        if with_labels
        else [],
    }
    single = present[0] if present and not breaks else None
    return Choropleth(
        hideout=hideout,
        legend=legend_entries(breaks, colors, metric, lang, single=single),
        labels=labels,
    )


def cell_heat(cells, *, metric: str, lang: str) -> tuple[dict, list[LegendEntry], str]:
    """H3 cell colours of a cell_metrics frame: online rate, or devices in warning/alarm."""
    if metric == "online_rate":
        values = {
            str(row.cell): row.devices_online / row.devices_total * 100
            for row in cells.itertuples()
            if row.devices_total
        }
        title = t("metric.online_rate", lang)
        heat_metric = "online_rate"
    else:
        values = {
            str(row.cell): float(row.devices_warning + row.devices_alarm)
            for row in cells.itertuples()
        }
        title = t("legend.cell_alerts", lang)
        heat_metric = "open_incidents"
    breaks, colors = classify(
        list(values.values()),
        higher_is_worse=metric != "online_rate",
        integral=heat_metric != "online_rate",
    )
    hideout = {"colors": {code: color_for(v, breaks, colors) for code, v in values.items()}}
    single = next(iter(values.values())) if values and not breaks else None
    return hideout, legend_entries(breaks, colors, heat_metric, lang, single=single), title
