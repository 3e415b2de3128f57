"""Units (crews, vehicles, facilities) on a map: parked ones clustered at city zoom, busy and
moving ones drawn one by one with the line to their job (styled in the browser by
assets/onescreen_units.js). Walls and kiosks get no names or tooltips: no crew is named in
public."""

from __future__ import annotations

from typing import Any

import dash_leaflet as dl
from dash import html
from dash_extensions.javascript import Namespace

from components.area_map import geojson_options
from components.feed import PERSONAL_CATEGORIES
from components.i18n import t
from components.tiles import CITY_TZ

UNITS_JS = Namespace("onescreen", "units")
EMPTY: dict[str, Any] = {"type": "FeatureCollection", "features": []}
BUSY = ("dispatched", "en_route", "on_site")
STATUS_COLORS = {
    "available": "#3ddc97",
    "dispatched": "#9be7ff",
    "en_route": "#29b6f6",
    "on_site": "#b388ff",
    "off_duty": "#78909c",
}
# one character a unit is recognised by on the map, whatever the language (a legend says it)
GLYPHS = {
    "street_team": "格",
    "flood_crew": "汛",
    "pump_truck": "泵",
    "power_crew": "电",
    "generator_truck": "发",
    "water_crew": "水",
    "gas_crew": "气",
    "repair_van": "修",
    "fire_liaison": "消",
    "pump_station": "站",
    "depot": "库",
    "shelter": "避",
}
_HIDEOUT = {"colors": STATUS_COLORS}
# parked units cluster until this zoom (a district fills the screen at about 12)
CLUSTER_MAX_ZOOM = 13


def _point(row: dict[str, Any], *, lang: str, wall: bool) -> dict[str, Any]:
    """One unit as a point: kind glyph, status, class; a name and link off walls."""
    properties: dict[str, Any] = {
        "g": GLYPHS.get(row["kind_code"], "•"),
        "s": row["status"],
        "f": row["unit_class"] == "facility",
    }
    if not wall:
        name = row["name_en"] if lang == "en" else row["name_zh"]
        status = t("unit.status." + row["status"], lang)
        eta = row.get("eta_at") if row["status"] in ("dispatched", "en_route") else None
        arrival = f" · ETA {eta.astimezone(CITY_TZ):%H:%M}" if eta is not None else ""
        properties["tip"] = f"{name} · {status}{arrival}"
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        "properties": properties,
    }


def _route(row: dict[str, Any]) -> dict[str, Any]:
    """The straight line from a busy unit to its job (the map does not know the roads)."""
    return {
        "type": "Feature",
        "geometry": {
            "type": "LineString",
            "coordinates": [
                [row["lon"], row["lat"]],
                [round(row["target_lon"], 5), round(row["target_lat"], 5)],
            ],
        },
        "properties": {"s": row["status"], "route": True},
    }


def unit_features(
    rows: list[dict[str, Any]], *, lang: str, wall: bool, masked: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parked units, moving and busy units with their routes) as two FeatureCollections;
    `masked` (kiosks) leaves out the units on a job about a person at home (elderly care):
    where such a unit goes or stands is where that person lives."""
    parked, moving = [], []
    for row in rows:
        if masked and not row["parked"] and row.get("job_category") in PERSONAL_CATEGORIES:
            continue
        feature = _point(row, lang=lang, wall=wall)
        if row["parked"]:
            parked.append(feature)
            continue
        if row["status"] in ("dispatched", "en_route") and row["target_lon"] is not None:
            moving.append(_route(row))
        moving.append(feature)
    return (
        {"type": "FeatureCollection", "features": parked},
        {"type": "FeatureCollection", "features": moving},
    )


def moving_layer(layer_id: Any, data: dict[str, Any] | None = None) -> dl.GeoJSON:
    """Busy and moving units, one by one, with dashed lines to their jobs."""
    return dl.GeoJSON(
        id=layer_id,
        data=data or EMPTY,
        **geojson_options(
            pointToLayer=UNITS_JS("point"), style=UNITS_JS("route"), hideout=_HIDEOUT
        ),
    )


def unit_layers(
    id_of: Any, *, parked: dict[str, Any] | None = None, moving: dict[str, Any] | None = None
) -> list[dl.GeoJSON]:
    """The two map layers (children of a map): parked units clustered, busy ones on top."""
    return [
        dl.GeoJSON(
            id=id_of("units"),
            data=parked or EMPTY,
            cluster=True,
            zoomToBoundsOnClick=True,
            superClusterOptions={"radius": 44, "maxZoom": CLUSTER_MAX_ZOOM},
            **geojson_options(
                pointToLayer=UNITS_JS("point"),
                clusterToLayer=UNITS_JS("cluster"),
                hideout=_HIDEOUT,
            ),
        ),
        moving_layer(id_of("moving"), moving),
    ]


def unit_legend(lang: str) -> list:
    """Legend rows of the units: a section title and one chip per status shown on maps."""
    chips = [
        html.Span(
            className="os-legend-unit",
            children=[
                html.Span(
                    className=f"os-unit os-unit-{status}",
                    children=html.Span(GLYPHS["pump_truck"], style={"background": color}),
                ),
                html.Span(t(f"unit.status.{status}", lang)),
            ],
        )
        for status, color in STATUS_COLORS.items()
        if status in ("available", "en_route", "on_site")
    ]
    return [
        html.Div(t("units.legend_title", lang), className="os-legend-title os-legend-section"),
        # each unit's tooltip names it and its kind: the chips need no longer note
        html.Div(chips, className="os-legend-row os-legend-units"),
    ]
