"""Live critical and major incidents as markers drawn above every other layer of a map.

A district of a few pixels at city zoom (Huangpu) still shows its critical incidents: each is a
point in its own Leaflet pane above the areas, labels and device clusters, pulsing (CSS) while
nobody has acknowledged it. Styling is done in the browser (assets/onescreen_markers.js).
"""

from __future__ import annotations

from typing import Any

import dash_leaflet as dl
import pandas as pd
from dash import html
from dash_extensions.javascript import Namespace

from components.area_map import geojson_options
from components.feed import PERSONAL_CATEGORIES
from components.i18n import t
from components.ids import ComponentId
from components.state import href
from components.theme import SEVERITY_COLORS

MARKERS_JS = Namespace("onescreen", "markers")
# above overlays (400), device clusters and labels (markerPane, 600); under tooltips (650)
MARKER_PANE = "os-incidents"
MARKER_PANE_Z = 640
EMPTY: dict[str, Any] = {"type": "FeatureCollection", "features": []}


def marker_features(frame: pd.DataFrame, *, lang: str, wall: bool, masked: bool) -> dict:
    """GeoJSON of the live incidents in `frame` (live_incident_points), critical drawn last
    (on top); walls get no tooltip or link, kiosks no incident about someone at home."""
    if frame.empty:
        return EMPTY
    rows = frame
    if masked:
        # a point would say where the person lives
        rows = rows[~rows["category_code"].isin(PERSONAL_CATEGORIES)]
    en = lang == "en"
    features: list[dict[str, Any]] = []
    for item in rows.to_dict("records"):
        properties: dict[str, Any] = {
            "id": int(item["id"]),
            "severity": item["severity"],
            # pulsing until someone has taken it on
            "pulse": item["status"] == "open",
        }
        if not wall:
            properties["tip"] = item["title_en"] if en else item["title_zh"]
            properties["href"] = href("/incidents", lang=lang, incident=str(item["id"]))
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(float(item["lon"]), 6), round(float(item["lat"]), 6)],
                },
                "properties": properties,
            }
        )
    # Leaflet stacks markers in insertion order within a pane: majors first, criticals over them
    features.sort(key=lambda feature: feature["properties"]["severity"] == "critical")
    return {"type": "FeatureCollection", "features": features}


def marker_layer(layer_id: ComponentId, data: dict | None = None) -> dl.Pane:
    """The markers' layer in its own pane above the map's other layers."""
    return dl.Pane(
        name=MARKER_PANE,
        style={"zIndex": MARKER_PANE_Z},
        children=dl.GeoJSON(
            id=layer_id,
            data=data or EMPTY,
            **geojson_options(
                pointToLayer=MARKERS_JS("incidentMarker"),
                hideout={"pane": MARKER_PANE, "colors": SEVERITY_COLORS},
            ),
        ),
    )


def marker_legend(lang: str) -> list:
    """Legend rows of the markers: a section title, one dot per severity, what pulsing means."""
    rows = [
        html.Div(
            className="os-legend-row",
            children=[
                html.Span(
                    className="os-swatch os-swatch-dot os-swatch-incident",
                    style={"background": SEVERITY_COLORS[severity]},
                ),
                html.Span(t(f"severity.{severity}", lang)),
            ],
        )
        for severity in ("critical", "major")
    ]
    return [
        html.Div(t("markers.legend", lang), className="os-legend-title os-legend-section"),
        *rows,
        html.Div(t("markers.pulse", lang), className="os-legend-note"),
    ]
