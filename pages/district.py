"""District `/district/<adcode>`: streets/towns, device clusters and H3 heat; scoped tiles."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

import dash
import dash_leaflet as dl
from dash import (
    ALL,
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    ctx,
    dcc,
    html,
)
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.area_map import MAP_JS, create_map, geojson_options, state_colors
from components.filters import chosen_category, filter_bar
from components.i18n import name, t
from components.notfound import not_found_page
from components.panels import panel, unavailable
from components.replay import page_replay, replay_at, stamp
from components.shell import create_page, crumb_links
from components.state import LAYERS, METRICS, href, language, pick
from components.theme import STATE_RANK
from data.checks import InvalidQuery
from data.clock import CITY_TZ
from data.errors import READ_ERRORS, report_failure
from panels import AREAS, FEED, MARKERS, RANKING, TILES, TIMELINE, WARNINGS
from panels.base import Rendered, View
from panels.markers import sent_store
from panels.place import PagePlace, place, shared_callback
from panels.reads import asof_payload
from panels.units import UNITS
from panels.units import sent_store as units_sent_store
from web.boundaries import boundary_url
from web.context import context_url
from web.device_layer import devices_url
from web.session import current_principal

log = logging.getLogger(__name__)


def _title(adcode: str | None = None, **_other: str) -> str:
    names = reference.districts().get(adcode or "") if adcode else None
    return f"{names[0]} · 一屏观全城" if names else "行政区 · 一屏观全城"


# the streets layer then fits the map to the district (zoomToBounds)
INITIAL_ZOOM = 10


def preload_urls(
    adcode: str | None = None, category: str | None = None, at: str | None = None, **_other: str
) -> list[str]:
    """What the map fetches first — its streets, device clusters and surroundings — for the
    page's document to announce (web.preload); none for a replay or a district not the
    viewer's."""
    principal = current_principal()
    if at or adcode not in reference.districts():
        return []
    if principal is None or not principal.allows(adcode):
        return []
    return [
        boundary_url(level="streets", district=adcode),
        devices_url(
            district=adcode, category=chosen_category(category), zoom=INITIAL_ZOOM, at=None
        ),
        context_url(district=adcode),
    ]


dash.register_page(
    __name__,
    path_template="/district/<adcode>",
    title=_title,
    name="district",
    preload=preload_urls,
)


def _district(state: object) -> str:
    district = state.get("district") if isinstance(state, dict) else None
    if district not in reference.districts():
        raise PreventUpdate
    principal = current_principal()
    if principal is None or not principal.allows(district):
        # a forged district: the database would show nothing of it anyway
        raise PreventUpdate
    return district


def _street(district: str, value: object) -> str | None:
    """A street code from the browser, only if it belongs to this district."""
    return value if isinstance(value, str) and value in reference.streets(district) else None


def district_view(values: dict[str, Any]) -> View:
    """The page's view: its district (checked against the viewer), street and category."""
    district = _district(values.get("page"))
    return View(
        district=district,
        street=_street(district, values.get("street")),
        category=chosen_category(values.get("category")),
    )


DISTRICT = PagePlace(
    name="district",
    level="district",
    controls=("category", "street", "metric", "layer", "at"),
    view=district_view,
    scope_state=(("page", State(ids.DISTRICT_STATE, "data")),),
    units=True,
)
# the ranking sorts the very areas the map colours: one answer for both
place(DISTRICT, AREAS, RANKING)
place(DISTRICT, TILES, WARNINGS)
place(DISTRICT, TIMELINE)
place(DISTRICT, FEED)
# the district's incidents on its map: one answer for every view of the district (the feed
# follows the category and street)
place(DISTRICT, MARKERS)
# the district's crews, vehicles and facilities (of the chosen category) on its map (issue 21)
place(DISTRICT, UNITS)


def _centre(areas: list) -> tuple[float, float]:
    """A first map centre for the district (its streets' label points), before the fit."""
    if not areas:
        return (31.2, 121.45)
    return (
        sum(a.label_lat for a in areas) / len(areas),
        sum(a.label_lon for a in areas) / len(areas),
    )


def _first(values: dict[str, Any]) -> tuple[Rendered | None, Rendered | None]:
    """The map's colours and the ranking, read for the layout itself (see the overview)."""
    view = DISTRICT.view_at(values)
    look = DISTRICT.look(values)
    try:
        return AREAS.render(view, look, {}), RANKING.render(view, look, {})
    except READ_ERRORS as exc:
        report_failure(log, "district map unavailable", exc)
        return None, None


def _map_layers(
    adcode: str, category: str | None, lang: str, first: dict, *, at: datetime | None = None
) -> list:
    """Cells (H3 heat), streets and device clusters of the district (a replay's: as the
    counters stood at `at`)."""
    device_hideout = {
        "stateColors": state_colors(),
        "stateNames": [t(f"state.{state}", lang) for state in STATE_RANK],
        "deviceLabel": t("hover.device", lang),
    }
    cells = first.get("cells", {"colors": {}})
    return [
        dl.GeoJSON(
            id=ids.DISTRICT_CELLS,
            # the grid's url comes with its colours, only in grid mode (panels/areas.py)
            url=cells.get("url"),
            format="geobuf",
            **geojson_options(
                style=MAP_JS("cellStyle"),
                onEachFeature=MAP_JS("cellBelow"),
                hideout=cells,
                interactive=False,
            ),
        ),
        dl.GeoJSON(
            id=ids.DISTRICT_AREAS,
            url=boundary_url(level="streets", district=adcode),
            **geojson_options(
                style=MAP_JS("areaStyle"),
                hoverStyle=MAP_JS("areaHover"),
                onEachFeature=MAP_JS("areaTooltip"),
                hideout=first.get("areas", {}),
                zoomToBounds=True,
            ),
        ),
        dl.GeoJSON(
            id=ids.DISTRICT_DEVICES,
            url=devices_url(district=adcode, category=category, zoom=INITIAL_ZOOM, at=at),
            **geojson_options(pointToLayer=MAP_JS("deviceMarker"), hideout=device_hideout),
        ),
    ]


def _side(look, ranking: Rendered | None, lang: str) -> html.Div:
    """Tiles, the street ranking beside the feed, and the timeline."""
    return html.Div(
        className="os-side-district",
        children=[
            TILES.create(look),
            html.Div(
                className="os-split",
                children=[
                    RANKING.create(
                        look,
                        ranking,
                        title=t("district.streets_title", lang),
                        extra=html.Button(
                            t("district.clear_street", lang),
                            id="district-clear",
                            className="os-clear-street",
                        ),
                    ),
                    FEED.create(look),
                ],
            ),
            TIMELINE.create(look),
        ],
    )


def _page_unavailable(lang: str) -> html.Div:
    return create_page(
        lang=lang,
        title=t("app.title", lang),
        active="",
        body=[unavailable(t("panel.unavailable", lang))],
    )


def layout(
    adcode: str | None = None,
    lang: str | None = None,
    metric: str | None = None,
    category: str | None = None,
    street: str | None = None,
    layer: str | None = None,
    at: str | None = None,
    **_other: str,
):
    """The district page, or a friendly not-found page for an unknown adcode."""
    lang = language(lang)
    moment, replay = page_replay(at, lang=lang)
    try:
        names = reference.districts().get(adcode or "")
    except READ_ERRORS as exc:
        report_failure(log, "district list unavailable", exc)
        return _page_unavailable(lang)
    if names is None:
        return not_found_page(lang, t("notfound.district", lang, code=str(adcode)[:40]))
    principal = current_principal()
    if principal is not None and not principal.allows(adcode):
        return not_found_page(lang, t("auth.forbidden", lang))
    assert adcode is not None
    district_name = name(names, lang)
    values: dict[str, Any] = {
        "lang": lang,
        # as the page's store holds it: the view is read the same in the layout and callbacks
        "page": {"district": adcode},
        "district": adcode,
        "street": _street(adcode, street),
        "category": chosen_category(category),
        "metric": pick(metric, METRICS, METRICS[0]).value,
        "layer": pick(layer, LAYERS, LAYERS[0]).value,
        "at": stamp(moment),
    }
    look = DISTRICT.look(values)
    first, ranking = _first(values)
    shown = first.values if first else {}
    areas = first.reads[0].value if first else []
    map_panel = panel(
        t("panel.district_map", lang),
        create_map(
            map_id=ids.DISTRICT_MAP,
            center=_centre(areas),
            zoom=INITIAL_ZOOM,
            legend_id=ids.DISTRICT_LEGEND,
            legend=shown.get("legend", [unavailable(t("panel.unavailable", lang))]),
            # live critical and major incidents above the streets and devices (issue 19)
            layers=[
                *_map_layers(adcode, values["category"], lang, shown, at=moment),
                *UNITS.create(look),
                MARKERS.create(look),
            ],
            lang=lang,
            context=context_url(district=adcode),
        ),
        class_name="os-panel-map",
        extra=html.Span(id="district-scope", className="os-scope"),
        fresh=DISTRICT.fresh_of("map"),
        asof=asof_payload(*first.reads) if first else None,
    )
    body = [
        dcc.Store(id=ids.DISTRICT_STATE, data={"district": adcode}),
        # "" for no street, not None: a Store mounted without data reports its data changed
        # (dcc.Store tells its empty memory from null), which re-ran every panel callback of
        # the page while its map loaded
        dcc.Store(id=ids.STREET, data=values["street"] or ""),
        # the ranking row last clicked (set in the browser: re-rendered rows post nothing)
        dcc.Store(id=ids.DISTRICT_RANK_PICK),
        # digests of the map layers' hideouts, so a refresh sends only changes
        dcc.Store(id=ids.DISTRICT_MAP_SENT, data=shown.get("map-sent")),
        sent_store(look),
        units_sent_store(look),
        replay,
        html.Div(
            className="os-bar-row",
            children=[
                filter_bar(lang, metric=look.metric, category=values["category"], layer=look.layer),
                # the district's level of each scenario
                WARNINGS.create(look),
            ],
        ),
        html.Div(
            className="os-grid os-grid-district",
            children=[map_panel, _side(look, ranking, lang)],
        ),
    ]
    crumbs: list[tuple[str, str | None]] = [
        (t("crumb.city", lang), _city_href(lang, look.metric, values["category"]))
    ]
    crumbs.append((district_name, None))
    return create_page(
        lang=lang,
        title=f"{t('district.title', lang, name=district_name)} · {t('app.title', lang)}",
        active="",
        body=body,
        crumbs=html.Div(
            id=ids.DISTRICT_CRUMBS, children=crumb_links(lang, crumbs), className="os-crumbs-inner"
        ),
        class_name="os-page-district",
    )


def _city_href(lang: str, metric: object, category: object) -> str:
    """The overview with the same metric (when not the default) and category."""
    chosen = pick(metric, METRICS, None).value
    return href(
        "/",
        lang=lang,
        metric=None if chosen == METRICS[0] else chosen,
        category=chosen_category(category),
    )


@shared_callback(
    Output(ids.DISTRICT_DEVICES, "url"),
    Input(ids.DISTRICT_MAP, "zoom"),
    Input(ids.DISTRICT_MAP, "bounds"),
    Input(ids.CATEGORY, "value"),
    Input(ids.REFRESH, "n_intervals"),
    Input(ids.REPLAY_AT, "data"),
    State(ids.DISTRICT_DEVICES, "url"),
    State(ids.DISTRICT_STATE, "data"),
    prevent_initial_call=True,
)
def update_devices(zoom, bounds, category, _tick, at, current, state):
    """Point the device layer at the clusters of this view (unchanged URL = no refetch); while
    the page replays the past, at the counters as they stood then."""
    try:
        moment = replay_at(at, now=datetime.now(CITY_TZ))
    except InvalidQuery:
        raise PreventUpdate from None
    url = devices_url(
        district=_district(state),
        category=chosen_category(category),
        zoom=zoom,
        bounds=bounds if _valid_bounds(bounds) else None,
        at=moment,
    )
    if url == current:
        raise PreventUpdate
    return url


def _valid_bounds(bounds: object) -> bool:
    """Whether `bounds` is Leaflet's [[south, west], [north, east]] in numbers."""
    try:
        # anything may arrive from the browser: a shape that does not unpack is invalid
        (south, west), (north, east) = cast(Any, bounds)
        return all(isinstance(v, int | float) for v in (south, west, north, east))
    except (TypeError, ValueError):
        return False


# Every refresh re-renders the ranking, which resets each row's n_clicks and so fires anything
# listening to them: deciding in the browser whether a row was really clicked keeps those
# re-renders from posting a callback per screen per refresh.
clientside_callback(
    """
    function (_clicks) {
        const triggered = window.dash_clientside.callback_context.triggered || [];
        const clicked = triggered.find(function (entry) { return entry.value; });
        if (!clicked) { return window.dash_clientside.no_update; }
        const id = JSON.parse(clicked.prop_id.slice(0, clicked.prop_id.lastIndexOf(".")));
        return {code: id.code, at: Date.now()};
    }
    """,
    Output(ids.DISTRICT_RANK_PICK, "data"),
    Input({"type": "os-rank", "code": ALL}, "n_clicks"),
    prevent_initial_call=True,
)


# the grid's url follows its hideout (its colours), in the browser: fetched once they are there
clientside_callback(
    ClientsideFunction(namespace="onescreen_map", function_name="layerUrl"),
    Output(ids.DISTRICT_CELLS, "url"),
    Input(ids.DISTRICT_CELLS, "hideout"),
    State(ids.DISTRICT_CELLS, "url"),
    prevent_initial_call=True,
)


@callback(
    Output(ids.STREET, "data"),
    Input(ids.DISTRICT_AREAS, "clickData"),
    Input(ids.DISTRICT_RANK_PICK, "data"),
    Input("district-clear", "n_clicks"),
    State(ids.STREET, "data"),
    State(ids.DISTRICT_STATE, "data"),
    prevent_initial_call=True,
)
def choose_street(feature, rank_pick, _clear, current, state):
    """Clicking a street (map or ranking) scopes the page to it; clicking it again un-scopes."""
    district = _district(state)
    trigger = ctx.triggered_id
    if trigger == "district-clear":
        return None
    if trigger == ids.DISTRICT_RANK_PICK:
        code = rank_pick.get("code") if isinstance(rank_pick, dict) else None
    else:
        code = (
            (feature or {}).get("properties", {}).get("code") if isinstance(feature, dict) else None
        )
    code = _street(district, code)
    if code is None:
        raise PreventUpdate
    return None if code == current else code


@callback(
    Output(ids.DISTRICT_CRUMBS, "children"),
    Output("district-scope", "children"),
    Input(ids.STREET, "data"),
    State(ids.METRIC, "value"),
    State(ids.CATEGORY, "value"),
    State(ids.DISTRICT_STATE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def update_crumbs(
    raw_street: object, metric: object, category: object, state: object, raw_lang: object
) -> tuple[list, str]:
    """City › district › street breadcrumbs for the current scope."""
    district = _district(state)
    lang = language(raw_lang)
    street = _street(district, raw_street)
    district_name = name(reference.districts()[district], lang)
    trail: list[tuple[str, str | None]] = [
        (t("crumb.city", lang), _city_href(lang, metric, category))
    ]
    if street is None:
        trail.append((district_name, None))
        return crumb_links(lang, trail), ""
    street_names = reference.streets(district)[street]
    trail += [
        (district_name, href(f"/district/{district}", lang=lang)),
        (street_names[1] if lang == "en" else street_names[0], None),
    ]
    return crumb_links(lang, trail), ""


@callback(
    Output(ids.URL, "href", allow_duplicate=True),
    Output(ids.DISTRICT_MAP, "viewport"),
    Input(ids.DISTRICT_DEVICES, "clickData"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def open_device(feature, lang):
    """Clicking a cluster zooms into it; clicking a device opens its page."""
    properties = (feature or {}).get("properties", {}) if isinstance(feature, dict) else {}
    if properties.get("cluster"):
        try:
            lon, lat = feature["geometry"]["coordinates"]
            zoom_to = int(properties.get("zoom_to", 12))
        except (KeyError, TypeError, ValueError):
            raise PreventUpdate from None
        return dash.no_update, {
            "center": [float(lat), float(lon)],
            "zoom": min(max(zoom_to, 9), 18),
            "transition": "flyTo",
        }
    device_id = properties.get("id")
    if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id <= 0:
        raise PreventUpdate
    return href(f"/device/{device_id}", lang=language(lang)), dash.no_update
