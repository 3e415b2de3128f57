"""The area map of a page placement (the overview, a scenario view of the city or a district):
area colours from the areas panel, the districts' labels and the 中心城区 inset (or a district's
streets), and the live incident markers on top."""

from __future__ import annotations

import logging
from typing import Any

import dash_leaflet as dl
from dash import html

from components import reference
from components.area_map import MAP_JS, create_map, geojson_options
from components.core_inset import INSET_JS, core_inset
from components.i18n import t
from components.panels import panel, unavailable
from data.errors import READ_ERRORS, report_failure
from panels.areas import AREAS, EMPTY
from panels.base import Rendered
from panels.markers import MARKERS
from panels.place import PagePlace
from panels.reads import asof_payload
from web.boundaries import boundary_url

log = logging.getLogger(__name__)


def first_map(place: PagePlace, values: dict[str, Any]) -> Rendered | None:
    """The map's first colours, in the layout itself.

    dash-leaflet styles a URL-loaded layer with the props it had when the fetch began, so
    colours must be there from the start rather than arrive while the boundaries download.
    """
    try:
        return AREAS.render(place.view_at(values), place.look(values), {})
    except READ_ERRORS as exc:
        report_failure(log, f"{place.name} map unavailable", exc)
        return None


def city_map_panel(
    place: PagePlace,
    lang: str,
    first: Rendered | None,
    *,
    title: str | None = None,
    layers: tuple[Any, ...] = (),
    district: str | None = None,
) -> html.Section:
    """The map of the city's districts (with their labels and the 中心城区 inset) or of one
    district's streets, fitted to it: colours by URL-loaded boundaries, legend, status note."""
    values = first.values if first else {}
    if district is None:
        url = boundary_url(level="districts")
        # the district labels outside the core (the inset names the core's)
        named = dl.GeoJSON(
            id=place.id_of("labels"),
            data=values.get("labels", EMPTY),
            **geojson_options(
                pointToLayer=MAP_JS("label"), filter=INSET_JS("outerOnly"), interactive=False
            ),
        )
    else:
        url = boundary_url(level="streets", district=district)
        # a district placement answers its (empty) H3 layer too: streets name themselves on hover
        named = dl.GeoJSON(id=place.id_of("cells"), interactive=False)
    return panel(
        title or t("panel.map", lang),
        create_map(
            map_id=place.id_of("map"),
            lang=lang,
            legend_id=place.id_of("legend"),
            legend=values.get("legend", [unavailable(t("panel.unavailable", lang))]),
            layers=[
                dl.GeoJSON(
                    id=place.id_of("areas"),
                    url=url,
                    **geojson_options(
                        style=MAP_JS("areaStyle"),
                        hoverStyle=MAP_JS("areaHover"),
                        onEachFeature=MAP_JS("areaTooltip"),
                        hideout=values.get("areas", {}),
                    ),
                ),
                named,
                # the placement's own layers (a scenario's devices beyond their lines)
                *layers,
                # live critical and major incidents, above everything (issue 19)
                MARKERS.create(place.look({"lang": lang})),
            ],
            bounds=None if district is None else reference.bounds(None).get(district),
            inset=None
            if district is not None
            else core_inset(
                id_of=place.id_of,
                hideout=values.get("areas", {}),
                labels=values.get("labels", EMPTY),
                lang=lang,
            ),
        ),
        class_name="os-panel-map",
        extra=html.Span(id=place.id_of("status"), className="os-panel-note"),
        fresh=place.fresh_of("map"),
        asof=asof_payload(*first.reads) if first else None,
    )
