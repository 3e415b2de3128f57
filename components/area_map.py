"""Leaflet maps: vector-only on a dark background by default; geometry by URL, style by hideout."""

from __future__ import annotations

import dash_leaflet as dl
from dash import html
from dash_extensions.javascript import Namespace

from components.choropleth import LegendEntry
from components.i18n import t
from components.ids import ComponentId
from components.theme import SEVERITY_COLORS, STATE_COLORS, STATE_RANK
from web.context import context_url
from web.services import services

MAP_JS = Namespace("onescreen", "map")
CONTEXT_JS = Namespace("onescreen", "context")
CITY_CENTER = (31.2, 121.45)
# Shanghai with its islands, with room to pan a little
CITY_BOUNDS = [[30.65, 120.85], [31.9, 122.15]]


def _tile_layers() -> list:
    settings = services().settings
    if not settings.map_tile_url:
        return []
    return [dl.TileLayer(url=settings.map_tile_url, attribution=settings.map_tile_attribution)]


def coords_function():
    """How GeoJSON coordinates (WGS-84 in the store) become map positions for the tiles' datum."""
    if services().settings.map_tile_datum == "gcj02" and services().settings.map_tile_url:
        return MAP_JS("toGcj02")
    return None


def geojson_options(**options) -> dict:
    """Keyword arguments for dl.GeoJSON that add the datum shift when tiles need it."""
    shift = coords_function()
    return {**options, **({"coordsToLatLng": shift} if shift else {})}


def context_layers(url: str, lang: str) -> list:
    """The faint offline context fetched from `url` once: the sea under the areas; coast, rivers,
    metro and stations over their fills but under every marker and label (panes by z-index; the
    style function puts each path in its pane)."""
    return [
        # empty here: the context layer's sea paths are drawn into it
        dl.Pane(name="os-context-water", style={"zIndex": 350}, children=[]),
        dl.Pane(
            name="os-context",
            # above the area fills (400), below markers (600); never takes a click
            style={"zIndex": 410, "pointerEvents": "none"},
            children=[
                dl.GeoJSON(
                    url=url,
                    pane="os-context",
                    **geojson_options(
                        style=CONTEXT_JS("style"),
                        pointToLayer=CONTEXT_JS("station"),
                        onEachFeature=CONTEXT_JS("label"),
                        hideout={"lang": lang},
                        interactive=False,
                    ),
                )
            ],
        ),
    ]


def create_map(
    *,
    map_id: ComponentId,
    layers: list,
    legend_id: ComponentId,
    legend: list | None = None,
    bounds=None,
    center: tuple[float, float] | None = None,
    zoom: float | None = None,
    class_name: str = "",
    map_options: dict | None = None,
    lang: str = "zh",
    context: str | None = None,
    inset: html.Div | None = None,
) -> html.Div:
    """A dark, vector-only map (plus the optional configured tiles) with a legend overlay, over
    the offline context layer (`context`: its URL; the city's by default), with an optional
    inset (components/core_inset.py)."""
    return html.Div(
        className=f"os-map-wrap {class_name}".strip(),
        children=[
            dl.Map(
                id=map_id,
                children=[
                    *_tile_layers(),
                    *context_layers(context or context_url(), lang),
                    *layers,
                    dl.ScaleControl(position="bottomright"),
                    # the context's sources always credited (and the tiles', when configured)
                    dl.AttributionControl(
                        prefix=t("context.attribution", lang), position="bottomright"
                    ),
                ],
                # with a centre and zoom the map reports its viewport (zoom, bounds) back
                **(
                    {"center": center, "zoom": zoom, "trackViewport": True}
                    if center is not None and zoom is not None
                    else {"bounds": bounds or CITY_BOUNDS, "trackViewport": False}
                ),
                # wide: a wall's map shows the city beside the 中心城区 inset, over the sea
                maxBounds=[[29.6, 118.6], [32.9, 125.0]],
                minZoom=8,
                maxZoom=18,
                zoomSnap=0.25,
                zoomDelta=0.5,
                attributionControl=False,
                className="os-map",
                style={"width": "100%", "height": "100%"},
                **(map_options or {}),
            ),
            html.Div(id=legend_id, className="os-legend", children=legend or []),
            inset,
        ],
    )


def legend_children(title: str, entries: list[LegendEntry], note: str | None = None) -> list:
    """A legend: title, colour swatches with their ranges, an optional note."""
    return [
        html.Div(title, className="os-legend-title"),
        *[
            html.Div(
                className="os-legend-row",
                children=[
                    html.Span(className="os-swatch", style={"background": entry.color}),
                    html.Span(entry.label),
                ],
            )
            for entry in entries
        ],
        *([html.Div(note, className="os-legend-note")] if note else []),
    ]


def replay_devices_note(lang: str) -> html.Div:
    """What a replayed district map says in place of its device points."""
    return html.Div(t("replay.devices", lang), className="os-legend-note")


def state_legend(lang: str) -> list:
    """Legend rows of device states (cluster colours show the worst state inside)."""
    return [
        html.Div(
            className="os-legend-row",
            children=[
                html.Span(
                    className="os-swatch os-swatch-dot", style={"background": STATE_COLORS[s]}
                ),
                html.Span(t(f"state.{s}", lang)),
            ],
        )
        for s in STATE_RANK
    ]


def forecast_legend(lang: str) -> html.Div:
    """The legend row of the areas outlined for a live 预警 (and no alarm yet)."""
    return html.Div(
        className="os-legend-row os-legend-forecast",
        children=[
            html.Span(
                className="os-swatch os-swatch-outline",
                style={"borderColor": STATE_COLORS["forecast"]},
            ),
            html.Span(t("fx.legend.forecast_area", lang)),
        ],
    )


def state_colors() -> list[str]:
    """Colours by state rank, as the clientside device functions expect."""
    return [STATE_COLORS[state] for state in STATE_RANK]


def severity_legend(lang: str) -> list:
    """Legend rows of incident severities."""
    return [
        html.Div(
            className="os-legend-row",
            children=[
                html.Span(className="os-swatch os-swatch-dot", style={"background": color}),
                html.Span(t(f"severity.{severity}", lang)),
            ],
        )
        for severity, color in SEVERITY_COLORS.items()
    ]
