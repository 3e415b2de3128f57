"""District `/district/<adcode>`: streets/towns, device clusters and H3 heat; scoped tiles."""

from __future__ import annotations

import logging
from datetime import timedelta

import dash
import dash_leaflet as dl
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.area_map import (
    MAP_JS,
    create_map,
    geojson_options,
    legend_children,
    state_colors,
    state_legend,
)
from components.choropleth import cell_heat, choropleth, format_value, metric_value
from components.feed import create_feed, feed_children
from components.filters import chosen_category, filter_bar
from components.i18n import name, t
from components.live import asof_output, asof_payload, now, only_changed, read
from components.notfound import not_found_page
from components.panels import (
    PANEL_ERRORS,
    chart,
    deferred_chart_box,
    guard,
    panel,
    report_failure,
    skeleton,
    unavailable,
)
from components.shell import create_page, crumb_links
from components.state import LAYERS, METRICS, href, language, pick
from components.theme import message_figure
from components.tiles import create_tiles, tiles_children
from components.timeline import timeline_figure
from data.areas import cell_metrics, street_metrics
from data.cache import Cached
from data.incident_reads import incident_handling_timeline, incident_list, incident_timeline
from data.kpis import area_kpis
from web.boundaries import boundary_url
from web.device_layer import devices_url
from web.session import current_principal

log = logging.getLogger(__name__)


def _title(adcode: str | None = None, **_other: str) -> str:
    names = reference.districts().get(adcode or "") if adcode else None
    return f"{names[0]} · 一屏观全城" if names else "行政区 · 一屏观全城"


dash.register_page(__name__, path_template="/district/<adcode>", title=_title, name="district")

TIMELINE_HOURS = 24
# the streets layer then fits the map to the district (zoomToBounds)
INITIAL_ZOOM = 10


def _centre(areas: list) -> tuple[float, float]:
    """A first map centre for the district (its streets' label points), before the fit."""
    if not areas:
        return (31.2, 121.45)
    return (
        sum(a.label_lat for a in areas) / len(areas),
        sum(a.label_lon for a in areas) / len(areas),
    )


def _street(district: str, value: object) -> str | None:
    """A street code from the browser, only if it belongs to this district."""
    return value if isinstance(value, str) and value in reference.streets(district) else None


def map_state(
    district: str,
    metric: str,
    category: str | None,
    street: str | None,
    layer: str,
    lang: str,
    read_areas: Cached | None = None,
) -> tuple[dict, dict, list, list, dict]:
    """Street hideout, cell hideout, legend, ranking and as-of of one district."""
    if read_areas is None:
        read_areas = read(street_metrics, district=district, category=category)
    areas = read_areas.value
    reads = [read_areas]
    result = choropleth(
        areas, metric=metric, lang=lang, drill=False, selected=street, with_labels=False
    )
    streets_hideout = dict(result.hideout)
    legend = []
    if layer == "grid":
        cells = read(cell_metrics, district=district, category=category)
        reads.append(cells)
        cells_hideout, cell_legend, cell_title = cell_heat(cells.value, metric=metric, lang=lang)
        streets_hideout.update(fillOpacity=0.0, colors={})
        legend += legend_children(cell_title, cell_legend)
    else:
        cells_hideout = {"colors": {}}
        legend += legend_children(
            t(f"metric.{metric}", lang),
            result.legend,
            t("legend.approximate", lang) if any(a.approximate for a in areas) else None,
        )
    legend += [
        html.Div(t("legend.devices", lang), className="os-legend-title os-legend-section"),
        *state_legend(lang),
    ]
    ranking = ranking_rows(areas, metric=metric, lang=lang, selected=street)
    return streets_hideout, cells_hideout, legend, ranking, asof_payload(*reads)


def ranking_rows(areas, *, metric: str, lang: str, selected: str | None) -> list:
    """Streets sorted by the metric (worst first), each a button that scopes the page to it."""
    values = [(area, metric_value(area, metric)) for area in areas]
    worst_first = metric != "online_rate"
    values.sort(
        key=lambda pair: (pair[1] is None, -(pair[1] or 0) if worst_first else (pair[1] or 0))
    )
    top = max((v for _, v in values if v is not None), default=0) or 1
    rows = []
    for area, value in values:
        label = area.name_en if lang == "en" else area.name_zh
        rows.append(
            html.Button(
                id={"type": "os-rank", "code": area.code},
                className=f"os-rank-row {'os-rank-selected' if area.code == selected else ''}",
                n_clicks=0,
                children=[
                    html.Div(
                        [
                            html.Span(label),
                            html.Span(" ≈", className="os-rank-approx") if area.approximate else "",
                            html.Div(
                                className="os-rank-bar",
                                style={"width": f"{(value or 0) / top * 100:.0f}%"},
                            ),
                        ]
                    ),
                    html.Span(f"{area.devices_total:,}", className="os-rank-value"),
                    html.Span(format_value(value, metric), className="os-rank-value"),
                ],
            )
        )
    return rows


def layout(
    adcode: str | None = None,
    lang: str | None = None,
    metric: str | None = None,
    category: str | None = None,
    street: str | None = None,
    layer: str | None = None,
    **_other: str,
):
    """The district page, or a friendly not-found page for an unknown adcode."""
    lang = language(lang)
    try:
        names = reference.districts().get(adcode or "")
    except PANEL_ERRORS as exc:
        report_failure(log, "district list unavailable", exc)
        return create_page(
            lang=lang,
            title=t("app.title", lang),
            active="",
            body=[unavailable(t("panel.unavailable", lang))],
        )
    if names is None:
        return not_found_page(lang, t("notfound.district", lang, code=str(adcode)[:40]))
    principal = current_principal()
    if principal is not None and not principal.allows(adcode):
        return not_found_page(lang, t("auth.forbidden", lang))
    district_name = name(names, lang)
    chosen_metric = pick(metric, METRICS, METRICS[0]).value
    chosen_layer = pick(layer, LAYERS, LAYERS[0]).value
    selected_category = chosen_category(category)
    chosen_street = _street(adcode, street)
    areas: list = []
    map_asof = None
    try:
        read_areas = read(street_metrics, district=adcode, category=selected_category)
        areas = read_areas.value
        streets_hideout, cells_hideout, legend, ranking, map_asof = map_state(
            adcode, chosen_metric, selected_category, chosen_street, chosen_layer, lang, read_areas
        )
    except PANEL_ERRORS as exc:
        report_failure(log, "district map unavailable", exc)
        streets_hideout, cells_hideout = {}, {"colors": {}}
        legend, ranking = [unavailable(t("panel.unavailable", lang))], []
    center = _centre(areas)
    device_hideout = {"stateColors": state_colors(), "deviceLabel": t("hover.device", lang)}
    layers = [
        dl.GeoJSON(
            id=ids.DISTRICT_CELLS,
            url=boundary_url(level="grid", district=adcode, fmt="pbf"),
            format="geobuf",
            **geojson_options(style=MAP_JS("cellStyle"), hideout=cells_hideout, interactive=False),
        ),
        dl.GeoJSON(
            id=ids.DISTRICT_AREAS,
            url=boundary_url(level="streets", district=adcode),
            **geojson_options(
                style=MAP_JS("areaStyle"),
                hoverStyle=MAP_JS("areaHover"),
                onEachFeature=MAP_JS("areaTooltip"),
                hideout=streets_hideout,
                zoomToBounds=True,
            ),
        ),
        dl.GeoJSON(
            id=ids.DISTRICT_DEVICES,
            url=devices_url(district=adcode, category=selected_category, zoom=INITIAL_ZOOM),
            **geojson_options(pointToLayer=MAP_JS("deviceMarker"), hideout=device_hideout),
        ),
    ]
    body = [
        dcc.Store(id=ids.DISTRICT_STATE, data={"district": adcode}),
        dcc.Store(id=ids.STREET, data=chosen_street),
        # the ranking row last clicked (set in the browser: re-rendered rows post nothing)
        dcc.Store(id=ids.DISTRICT_RANK_PICK),
        # digests of the map layers' hideouts, so a refresh sends only changes
        dcc.Store(
            id=ids.DISTRICT_MAP_SENT,
            data=only_changed({"streets": streets_hideout, "cells": cells_hideout}, None)[1],
        ),
        filter_bar(lang, metric=chosen_metric, category=selected_category, layer=chosen_layer),
        html.Div(
            className="os-grid os-grid-district",
            children=[
                panel(
                    t("panel.district_map", lang),
                    create_map(
                        map_id=ids.DISTRICT_MAP,
                        center=center,
                        zoom=INITIAL_ZOOM,
                        legend_id=ids.DISTRICT_LEGEND,
                        legend=legend,
                        layers=layers,
                    ),
                    class_name="os-panel-map",
                    extra=html.Span(id="district-scope", className="os-scope"),
                    fresh=ids.DISTRICT_MAP,
                    asof=map_asof,
                ),
                html.Div(
                    className="os-side-district",
                    children=[
                        panel(
                            t("panel.tiles", lang),
                            create_tiles(ids.DISTRICT_TILES),
                            class_name="os-panel-tiles",
                            fresh=ids.DISTRICT_TILES,
                        ),
                        html.Div(
                            className="os-split",
                            children=[
                                panel(
                                    t("district.streets_title", lang),
                                    html.Div(
                                        id=ids.DISTRICT_RANKING,
                                        className="os-ranking",
                                        children=ranking,
                                    ),
                                    extra=html.Button(
                                        t("district.clear_street", lang),
                                        id="district-clear",
                                        className="os-clear-street",
                                    ),
                                    fresh=ids.DISTRICT_RANKING,
                                    asof=map_asof,
                                ),
                                create_feed(ids.DISTRICT_FEED, lang),
                            ],
                        ),
                        panel(
                            t("panel.timeline", lang),
                            deferred_chart_box(
                                "district-timeline-box", "district-defer", skeleton()
                            ),
                            fresh=ids.DISTRICT_TIMELINE,
                        ),
                    ],
                ),
            ],
        ),
    ]
    crumbs = [
        (
            t("crumb.city", lang),
            href(
                "/",
                lang=lang,
                metric=_non_default_metric(chosen_metric),
                category=selected_category,
            ),
        ),
        (district_name, None),
    ]
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


def _non_default_metric(metric: str | None) -> str | None:
    return None if metric == METRICS[0] else metric


@callback(
    Output(ids.DISTRICT_AREAS, "hideout"),
    Output(ids.DISTRICT_CELLS, "hideout"),
    Output(ids.DISTRICT_LEGEND, "children"),
    Output(ids.DISTRICT_RANKING, "children"),
    asof_output(ids.DISTRICT_MAP),
    asof_output(ids.DISTRICT_RANKING),
    Output(ids.DISTRICT_MAP_SENT, "data"),
    Input(ids.METRIC, "value"),
    Input(ids.CATEGORY, "value"),
    Input(ids.STREET, "data"),
    Input(ids.LAYER, "value"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.DISTRICT_MAP_SENT, "data"),
    State(ids.DISTRICT_STATE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
@guard(
    lambda lang: (
        dash.no_update,
        dash.no_update,
        [unavailable(t("panel.unavailable", lang))],
        dash.no_update,
        dash.no_update,
        dash.no_update,
        dash.no_update,
    )
)
def update_map(metric, category, street, layer, _tick, sent, state, lang):
    """Colour streets (or H3 cells) by the metric; highlight the chosen street."""
    district = _district(state)
    streets, cells, legend, ranking, asof = map_state(
        district,
        pick(metric, METRICS, METRICS[0]).value,
        chosen_category(category),
        _street(district, street),
        pick(layer, LAYERS, LAYERS[0]).value,
        language(lang),
    )
    (streets, cells), digests = only_changed({"streets": streets, "cells": cells}, sent)
    return streets, cells, legend, ranking, asof, asof, digests


def _district(state: object) -> str:
    district = state.get("district") if isinstance(state, dict) else None
    if district not in reference.districts():
        raise PreventUpdate
    principal = current_principal()
    if principal is None or not principal.allows(district):
        # a forged district: the database would show nothing of it anyway
        raise PreventUpdate
    return district


@callback(
    Output(ids.DISTRICT_DEVICES, "url"),
    Input(ids.DISTRICT_MAP, "zoom"),
    Input(ids.DISTRICT_MAP, "bounds"),
    Input(ids.CATEGORY, "value"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.DISTRICT_DEVICES, "url"),
    State(ids.DISTRICT_STATE, "data"),
    prevent_initial_call=True,
)
def update_devices(zoom, bounds, category, _tick, current, state):
    """Point the device layer at the clusters of this view (unchanged URL = no refetch)."""
    url = devices_url(
        district=_district(state),
        category=chosen_category(category),
        zoom=zoom,
        bounds=bounds if _valid_bounds(bounds) else None,
    )
    if url == current:
        raise PreventUpdate
    return url


def _valid_bounds(bounds: object) -> bool:
    try:
        (south, west), (north, east) = bounds  # type: ignore[misc]
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
def update_crumbs(street, metric, category, state, lang):
    """City › district › street breadcrumbs for the current scope."""
    district = _district(state)
    lang = language(lang)
    street = _street(district, street)
    district_name = name(reference.districts()[district], lang)
    trail = [
        (
            t("crumb.city", lang),
            href(
                "/",
                lang=lang,
                metric=_non_default_metric(metric),
                category=chosen_category(category),
            ),
        )
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
    Output(ids.DISTRICT_TILES, "children"),
    asof_output(ids.DISTRICT_TILES),
    Input(ids.CATEGORY, "value"),
    Input(ids.STREET, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.DISTRICT_STATE, "data"),
    State(ids.LANG, "data"),
)
@guard(lambda lang: ([unavailable(t("panel.unavailable", lang))], dash.no_update))
def update_tiles(category, street, _tick, state, lang):
    """Tiles of the district, or of the chosen street."""
    district = _district(state)
    kpis = read(
        area_kpis,
        district=district,
        street=_street(district, street),
        category=chosen_category(category),
    )
    return tiles_children(kpis.value, language(lang)), asof_payload(kpis)


@callback(
    Output("district-timeline-box", "children"),
    asof_output(ids.DISTRICT_TIMELINE),
    Input(ids.CATEGORY, "value"),
    Input(ids.STREET, "data"),
    Input(ids.REFRESH, "n_intervals"),
    Input("district-defer", "n_intervals"),
    State(ids.DISTRICT_STATE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
@guard(
    lambda lang: (
        chart(ids.DISTRICT_TIMELINE, message_figure(t("panel.unavailable", lang))),
        dash.no_update,
    )
)
def update_timeline(category, street, _tick, _deferred, state, lang):
    """Incidents per hour of the district or street (mounted after the map has drawn)."""
    district = _district(state)
    lang = language(lang)
    clock = now()
    end = clock.value
    start = end - timedelta(hours=TIMELINE_HOURS)
    where = {
        "district": district,
        "street": _street(district, street),
        "category": chosen_category(category),
    }
    frame = read(incident_timeline, start=start, end=end, **where)
    handled = read(incident_handling_timeline, start=start, end=end, **where)
    figure = timeline_figure(
        frame.value,
        stack="severity",
        lang=lang,
        start=start,
        end=end,
        categories=reference.categories(),
        handled=handled.value,
    )
    return chart(ids.DISTRICT_TIMELINE, figure), asof_payload(clock, frame, handled)


@callback(
    Output(ids.DISTRICT_FEED, "children"),
    asof_output(ids.DISTRICT_FEED),
    Input(ids.CATEGORY, "value"),
    Input(ids.STREET, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.DISTRICT_STATE, "data"),
    State(ids.LANG, "data"),
)
@guard(lambda lang: (unavailable(t("panel.unavailable", lang)), dash.no_update))
def update_feed(category, street, _tick, state, lang):
    """Latest incidents of the district or street."""
    district = _district(state)
    lang = language(lang)
    clock = now()
    end = clock.value + timedelta(minutes=1)
    latest = read(
        incident_list,
        start=end - timedelta(hours=TIMELINE_HOURS),
        end=end,
        district=district,
        street=_street(district, street),
        category=chosen_category(category),
        limit=30,
    )
    feed = feed_children(latest.value, lang=lang, categories=reference.categories())
    return feed, asof_payload(clock, latest)


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
