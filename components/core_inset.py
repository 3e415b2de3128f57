"""The inset of the 中心城区 on a city map: the seven central districts, too small at city zoom
to carry a name and a value, drawn again at their own zoom in a corner of the map.

The inset loads the same boundaries (same URL) and is styled by the same hideout as its city
map, which the browser copies over (assets/onescreen_core.js), so their colours always agree.
Its paths carry `os-core-area` instead of `os-area`: pages and tests that count or pick a map's
areas see the city map's only. The city map leaves room for the inset when it fits the city.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash_leaflet as dl
from dash import ClientsideFunction, Input, Output, State, html
from dash_extensions.javascript import Namespace
from sqlalchemy.exc import SQLAlchemyError

from components import reference
from components.area_map import MAP_JS, geojson_options
from components.choropleth import CORE_DISTRICTS
from components.i18n import t
from components.ids import ComponentId
from data.errors import OneScreenError
from web.boundaries import boundary_url

CORE_JS = "onescreen_core"
# the inset's style and the label filters (assets/onescreen_core.js)
INSET_JS = Namespace("onescreen", "core")
# the 中心城区 when the boundaries cannot be read yet (south-west, north-east)
CORE_FALLBACK = [[31.13, 121.33], [31.36, 121.56]]


def core_bounds() -> list[list[float]]:
    """The box around the seven central districts."""
    try:
        known = reference.bounds(None)
    except (SQLAlchemyError, OneScreenError):
        # the page still renders while the store is away; the inset then frames the usual box
        return CORE_FALLBACK
    boxes = [box for code, box in known.items() if code in CORE_DISTRICTS]
    if not boxes:
        return CORE_FALLBACK
    return [
        [min(b[0][0] for b in boxes), min(b[0][1] for b in boxes)],
        [max(b[1][0] for b in boxes), max(b[1][1] for b in boxes)],
    ]


def inset_class(labels: dict | None) -> str:
    """The inset shows while its map labels the city's districts (not a district's streets)."""
    features = (labels or {}).get("features") or []
    shown = any(feature["properties"].get("core") for feature in features)
    return "os-core-inset" + ("" if shown else " os-core-inset-off")


def core_inset(
    *,
    id_of: Callable[[str], ComponentId],
    hideout: dict,
    labels: dict,
    lang: str,
    bounds: list[list[float]] | None = None,
) -> html.Div:
    """The inset of a city map whose parts are named by `id_of` (see `sync_inset`)."""
    fixed = {
        "dragging": False,
        "touchZoom": False,
        "scrollWheelZoom": False,
        "doubleClickZoom": False,
        "boxZoom": False,
        "keyboard": False,
        "zoomControl": False,
        "attributionControl": False,
        # it never reports where it looks (dash-leaflet's report needs a centre it is not given)
        "trackViewport": False,
    }
    return html.Div(
        id=id_of("core"),
        className=inset_class(labels),
        children=[
            html.Div(t("map.core", lang), className="os-core-inset-title"),
            dl.Map(
                id=id_of("core-map"),
                bounds=bounds or core_bounds(),
                # room at the edges for the labels of districts that reach them
                boundsOptions={"padding": [28, 28]},
                zoomSnap=0.125,
                className="os-core-map",
                style={"width": "100%", "height": "100%"},
                children=[
                    dl.GeoJSON(
                        id=id_of("core-areas"),
                        url=boundary_url(level="districts"),
                        **geojson_options(
                            style=INSET_JS("coreStyle"),
                            hideout={**hideout, "core": list(CORE_DISTRICTS)},
                            interactive=False,
                        ),
                    ),
                    dl.GeoJSON(
                        id=id_of("core-labels"),
                        data=labels,
                        **geojson_options(
                            pointToLayer=MAP_JS("label"),
                            filter=INSET_JS("coreOnly"),
                            interactive=False,
                        ),
                    ),
                ],
                **fixed,
            ),
        ],
    )


def sync_inset(
    clientside: Callable[..., Any],
    *,
    areas: ComponentId,
    labels: ComponentId,
    id_of: Callable[[str], ComponentId],
) -> None:
    """Declare (with `clientside`: dash.clientside_callback or a CallbackSet's) the browser
    callbacks that give an inset the colours and labels of its city map's layers."""
    clientside(
        ClientsideFunction(CORE_JS, "hideout"),
        Output(id_of("core-areas"), "hideout"),
        Input(areas, "hideout"),
        State(id_of("core-areas"), "hideout"),
        prevent_initial_call=True,
    )
    clientside(
        ClientsideFunction(CORE_JS, "labels"),
        Output(id_of("core-labels"), "data"),
        Output(id_of("core"), "className"),
        Input(labels, "data"),
        prevent_initial_call=True,
    )
