"""Live critical and major incidents as markers drawn above every other layer of a map.

A district of a few pixels at city zoom (Huangpu) still shows its critical incidents: each is a
point in its own Leaflet pane above the areas, labels and device clusters, blinking while
nobody has acknowledged it; a street's many majors are one numbered bubble until street zoom.
Styling is done in the browser (assets/onescreen_markers.js).
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


# a street's majors from this many on are one numbered bubble until the map is at street zoom
# (assets/onescreen_markers.js): hundreds of overlapping dots say less and cost the page
GROUP_MIN = 3


def _point(item: dict[str, Any]) -> list[float]:
    return [round(float(item["lon"]), 6), round(float(item["lat"]), 6)]


def _feature(coordinates: list[float], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": coordinates},
        "properties": properties,
    }


def _single(item: dict[str, Any], *, lang: str, wall: bool) -> dict[str, Any]:
    """One incident's point feature: walls get no tooltip or link."""
    properties: dict[str, Any] = {
        "id": int(item["id"]),
        "severity": item["severity"],
        # pulsing until someone has taken it on
        "pulse": item["status"] == "open",
    }
    if not wall:
        properties["tip"] = item["title_en"] if lang == "en" else item["title_zh"]
        properties["href"] = href("/incidents", lang=lang, incident=str(item["id"]))
    return _feature(_point(item), properties)


def _group(items: list[dict[str, Any]], *, lang: str, wall: bool) -> dict[str, Any]:
    """A street's major incidents as one feature at their mean point: the count, how many are
    unacknowledged, and each member (point, id, open, title) for street zoom."""
    members = [
        [*_point(item), int(item["id"]), int(item["status"] == "open")]
        + ([] if wall else [item["title_en"] if lang == "en" else item["title_zh"]])
        for item in items
    ]
    unacknowledged = sum(member[3] for member in members)
    properties: dict[str, Any] = {
        "severity": "major",
        "street": str(items[0]["street_code"]),
        "count": len(members),
        "open": unacknowledged,
        "members": members,
    }
    if not wall:
        properties["tip"] = t("markers.group_tip", lang).format(
            count=len(members), open=unacknowledged
        )
        # a member's link is this followed by its id
        properties["link"] = href("/incidents", lang=lang, incident="0")[:-1]
    lon = sum(member[0] for member in members) / len(members)
    lat = sum(member[1] for member in members) / len(members)
    return _feature([round(lon, 6), round(lat, 6)], properties)


def marker_features(frame: pd.DataFrame, *, lang: str, wall: bool, masked: bool) -> dict:
    """GeoJSON of the live incidents in `frame` (live_incident_points): each critical on its
    own, drawn last (on top); a street's majors grouped from GROUP_MIN on; walls get no
    tooltip or link, kiosks no incident about someone at home."""
    if frame.empty:
        return EMPTY
    rows = frame
    if masked:
        # a point would say where the person lives
        rows = rows[~rows["category_code"].isin(PERSONAL_CATEGORIES)]
    streets: dict[str, list[dict[str, Any]]] = {}
    criticals: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = rows.to_dict("records")  # type: ignore[assignment]
    for item in records:
        if item["severity"] == "critical":
            criticals.append(_single(item, lang=lang, wall=wall))
        else:
            streets.setdefault(str(item["street_code"]), []).append(item)
    majors: list[dict[str, Any]] = []
    for items in streets.values():
        if len(items) >= GROUP_MIN:
            majors.append(_group(items, lang=lang, wall=wall))
        else:
            majors += [_single(item, lang=lang, wall=wall) for item in items]
    # Leaflet stacks markers in insertion order within a pane: majors first, criticals over them
    return {"type": "FeatureCollection", "features": majors + criticals}


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
    group = html.Div(
        # not on walls, whose legend shares a column with the inset: an orange bubble's number
        # reads as it is there, and the inset needs the height
        className="os-legend-row os-legend-group",
        children=[
            html.Span("12", className="os-swatch os-swatch-group"),
            html.Span(t("markers.group", lang)),
        ],
    )
    return [
        html.Div(t("markers.legend", lang), className="os-legend-title os-legend-section"),
        *rows,
        group,
        html.Div(t("markers.pulse", lang), className="os-legend-note"),
    ]
