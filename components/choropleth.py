"""Pure builders for choropleth maps: colours, legend, tooltips and labels per area code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from components.i18n import t
from components.theme import HEAT_RAMP, NO_DATA, STATE_COLORS
from data.areas import AreaMetric

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


@dataclass(frozen=True)
class Scale:
    """Fixed classes of one metric: each break is the lowest value of the next class."""

    key: str
    breaks: tuple[float, ...]
    # where less is worse (online rate) the ramp runs the other way
    higher_is_worse: bool = True
    # values are classed as shown: rounded to the decimals their labels use
    decimals: int = 0
    unit: str = ""


# The classes of every map metric, the same on every screen, level and refresh (README "Map
# colours mean the same thing everywhere"). Six classes for the six steps of HEAT_RAMP.
SCALES = {
    "open_incidents": Scale("open_incidents", (1, 5, 10, 20, 50)),
    "incidents_per_100km2": Scale("incidents_per_100km2", (1, 5, 10, 25, 50), decimals=1),
    "online_rate": Scale(
        "online_rate", (80, 90, 95, 98, 99), higher_is_worse=False, decimals=1, unit="%"
    ),
    "readings_last_hour": Scale("readings_last_hour", (100, 250, 500, 1000, 2500)),
    # devices in warning or alarm in one H3 cell of a district page
    "cell_alerts": Scale("cell_alerts", (1, 2, 3, 5, 10)),
}


def scale_for(metric: str) -> Scale:
    """The fixed classes of `metric` (ValueError for an unknown one)."""
    try:
        return SCALES[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}") from None


def class_colors(scale: Scale) -> tuple[str, ...]:
    """One colour per class of `scale`, lowest value first, spread over the whole ramp."""
    ramp = HEAT_RAMP if scale.higher_is_worse else tuple(reversed(HEAT_RAMP))
    count = len(scale.breaks) + 1
    return tuple(ramp[round(i * (len(ramp) - 1) / max(count - 1, 1))] for i in range(count))


def class_index(value: float, scale: Scale) -> int:
    """Which class of `scale` holds `value` (as its label rounds it), 0 the lowest."""
    shown = round(value, scale.decimals)
    return sum(1 for limit in scale.breaks if shown >= limit)


def color_for(value: float | None, scale: Scale) -> str:
    """The class colour of `value` (NO_DATA for None)."""
    if value is None:
        return NO_DATA
    return class_colors(scale)[class_index(value, scale)]


def _bound(value: float, scale: Scale) -> str:
    """A class bound as a legend writes it: thousands separated, no trailing ".0"."""
    decimals = 0 if value == int(value) else scale.decimals
    return f"{value:,.{decimals}f}"


def class_labels(scale: Scale) -> list[str]:
    """The value range of each class, lowest first, never overlapping ("0", "1 – 4", "≥ 50")."""
    step = 10**-scale.decimals
    # counts start at 0; a fractional figure's first class is everything below its break
    lows: list[float | None] = [None if scale.decimals else 0, *scale.breaks]
    highs: list[float | None] = [*scale.breaks, None]
    labels = []
    for low, high in zip(lows, highs, strict=True):
        if high is None:
            text = f"≥ {_bound(low or 0, scale)}"
        elif low is None:
            text = f"< {_bound(high, scale)}"
        else:
            top = round(high - step, scale.decimals)
            text = (
                _bound(low, scale) if top == low else f"{_bound(low, scale)} – {_bound(top, scale)}"
            )
        labels.append(text + scale.unit)
    return labels


def legend_entries(scale: Scale, lang: str) -> list[LegendEntry]:
    """Legend rows of `scale` from low to high values, plus the no-data row."""
    rows = [
        LegendEntry(color=color, label=label)
        for color, label in zip(class_colors(scale), class_labels(scale), strict=True)
    ]
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
    scale = scale_for(metric)
    values = {area.code: metric_value(area, metric) for area in areas}
    hideout = {
        "colors": {code: color_for(v, scale) for code, v in values.items()},
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
    return Choropleth(hideout=hideout, legend=legend_entries(scale, lang), labels=labels)


def cell_heat(cells, *, metric: str, lang: str) -> tuple[dict, list[LegendEntry], str]:
    """H3 cell colours of a cell_metrics frame: online rate, or devices in warning/alarm."""
    if metric == "online_rate":
        values = {
            str(row.cell): row.devices_online / row.devices_total * 100
            for row in cells.itertuples()
            if row.devices_total
        }
        title = t("metric.online_rate", lang)
    else:
        values = {
            str(row.cell): float(row.devices_warning + row.devices_alarm)
            for row in cells.itertuples()
        }
        title = t("legend.cell_alerts", lang)
    scale = scale_for("online_rate" if metric == "online_rate" else "cell_alerts")
    hideout = {"colors": {code: color_for(v, scale) for code, v in values.items()}}
    return hideout, legend_entries(scale, lang), title
