"""The area-colour panel: districts (city) or streets and H3 cells (district) by a metric."""

from __future__ import annotations

from typing import Any

from dash import html

from components.area_map import (
    forecast_legend,
    legend_children,
    replay_devices_note,
    state_legend,
)
from components.choropleth import cell_heat, choropleth
from components.i18n import t
from components.incident_markers import marker_legend
from components.panels import unavailable
from components.unit_layer import unit_legend
from data.areas import cell_metrics, district_metrics, street_metrics
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import only_changed, read
from web.boundaries import boundary_url

EMPTY = {"type": "FeatureCollection", "features": []}


def area_reads(view: View):
    """The areas a view colours: every district for the city, else the district's streets."""
    if view.district is None:
        return read(district_metrics, category=view.category, **view.when)
    return read(street_metrics, district=view.district, category=view.category, **view.when)


def _cells(view: View, look: Look, colours: dict) -> tuple[dict, list, tuple]:
    """The H3 heat layer of a district page and its legend (the streets then go transparent)."""
    assert view.district is not None
    cells = read(cell_metrics, district=view.district, category=view.category, **view.when)
    hideout, entries, title = cell_heat(cells.value, metric=look.metric, lang=look.lang)
    # the grid's geometry travels with its colours: the layer loads it only when shown (its
    # ~3,000 cells drawn transparent under the streets cost a streets map ~0.4 s), and its
    # cells never appear before the colours they are drawn with (assets/onescreen_map.js)
    hideout["url"] = boundary_url(level="grid", district=view.district, fmt="pbf")
    colours.update(fillOpacity=0.0, colors={})
    return hideout, legend_children(title, entries), (cells,)


def render(view: View, look: Look, kept: dict[str, Any]) -> Rendered:
    """Colours (and tooltips, labels, legend) of the view's areas; unchanged layers not resent."""
    areas = area_reads(view)
    city = view.district is None
    result = choropleth(
        areas.value,
        metric=look.metric,
        lang=look.lang,
        drill=city and not look.wall,
        selected=view.street,
        with_labels=city,
    )
    # no hover on a wall, and a kiosk shows nothing that needs one
    hideout = {**result.hideout, "tips": {}} if look.wall else dict(result.hideout)
    reads: tuple = (areas,)
    cells: dict = {"colors": {}}
    legend: list = []
    if not city and not look.wall and look.layer == "grid":
        cells, legend, more = _cells(view, look, hideout)
        reads += more
    else:
        approximate = not city and any(area.approximate for area in areas.value)
        note = t("legend.approximate", look.lang) if approximate and not look.wall else None
        legend = legend_children(t(f"metric.{look.metric}", look.lang), result.legend, note)
    legend.append(forecast_legend(look.lang))
    legend += marker_legend(look.lang)
    if look.units and not look.wall:
        legend += unit_legend(look.lang)
    if not city and not look.wall and look.devices:
        # device markers are drawn on district pages only
        section = html.Div(
            t("legend.devices", look.lang), className="os-legend-title os-legend-section"
        )
        # a replay's clusters are the grid cells' counts then, which keep no maintenance or 预警
        states = [*state_legend(look.lang)]
        if view.at is not None:
            states.append(replay_devices_note(look.lang))
        legend += [section, *states]
    # walls draw labels (none for a district's streets), district pages the H3 cells
    layers = (
        {"areas": hideout, "labels": result.labels}
        if city or look.wall
        else {"areas": hideout, "cells": cells}
    )
    changed, digests = only_changed(layers, kept.get("map-sent"))
    values = dict(zip(layers, changed, strict=True))
    values.update(legend=legend, **{"map-sent": digests})
    return Rendered(values=values, reads=reads)


AREAS = LivePanel(
    kind="areas",
    parts=(
        Part("areas", "hideout"),
        Part("labels", "data", level="city"),
        Part("cells", "hideout", level="district"),
        Part("legend", "children"),
    ),
    render=render,
    # the layers keep what they show; the legend says the data cannot be read
    fallback=lambda look: {"legend": [unavailable(t("panel.unavailable", look.lang))]},
    controls=("metric", "layer"),
    keeps=(Part("map-sent", "data"),),
    badges=("map",),
    in_layout=True,
)
