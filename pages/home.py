"""City overview `/` (一屏观全域): district map, status tiles, incident timeline and feed."""

from __future__ import annotations

import logging
from datetime import timedelta

import dash
import dash_leaflet as dl
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.area_map import MAP_JS, create_map, geojson_options, legend_children
from components.choropleth import choropleth
from components.feed import create_feed, feed_children
from components.filters import chosen_category, filter_bar
from components.i18n import name, t
from components.live import asof_output, asof_payload, now, only_changed, read
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
from components.shell import create_page
from components.state import METRICS, STACKS, href, language, pick
from components.theme import message_figure
from components.tiles import CITY_TZ, create_tiles, tiles_children
from components.timeline import timeline_figure
from data.areas import district_metrics
from data.incident_reads import incident_handling_timeline, incident_list, incident_timeline
from data.kpis import city_kpis
from web.boundaries import boundary_url
from web.session import current_principal

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/", title="一屏观全城 · OneScreen", name="overview")

TIMELINE_HOURS = 24
FEED_LENGTH = 30


def _districts_home(districts: tuple[str, ...], lang: str) -> html.Div:
    """The start page of someone who works in some districts only: a way into each."""
    names = reference.districts()
    cards = [
        dcc.Link(
            name(names[code], lang) if code in names else code,
            href=href(f"/district/{code}", lang=lang),
            className="os-district-card",
        )
        for code in districts
    ]
    return create_page(
        lang=lang,
        title=f"{t('nav.overview', lang)} · {t('app.title', lang)}",
        active="overview",
        body=[html.Div(cards, className="os-district-cards")],
    )


def layout(
    lang: str | None = None,
    metric: str | None = None,
    category: str | None = None,
    stack: str | None = None,
    **_other: str,
) -> html.Div:
    """The overview in the URL's language, metric and category."""
    lang = language(lang)
    principal = current_principal()
    if principal is not None and not principal.sees_city:
        return _districts_home(principal.districts, lang)
    chosen_metric = pick(metric, METRICS, METRICS[0]).value
    chosen_stack = pick(stack, STACKS, STACKS[0]).value
    try:
        known = reference.categories()
    except PANEL_ERRORS:
        known = {}
    selected_category = pick(category, list(known), None).value
    hideout, labels, legend, map_asof = initial_map_state(chosen_metric, selected_category, lang)
    map_panel = panel(
        t("panel.map", lang),
        create_map(
            map_id=ids.OVERVIEW_MAP,
            legend_id=ids.OVERVIEW_LEGEND,
            legend=legend,
            layers=[
                dl.GeoJSON(
                    id=ids.OVERVIEW_AREAS,
                    url=boundary_url(level="districts"),
                    **geojson_options(
                        style=MAP_JS("areaStyle"),
                        hoverStyle=MAP_JS("areaHover"),
                        onEachFeature=MAP_JS("areaTooltip"),
                        hideout=hideout,
                    ),
                ),
                dl.GeoJSON(
                    id=ids.OVERVIEW_LABELS,
                    data=labels,
                    **geojson_options(pointToLayer=MAP_JS("label"), interactive=False),
                ),
            ],
        ),
        class_name="os-panel-map",
        extra=html.Span(id=ids.OVERVIEW_STATUS, className="os-panel-note"),
        fresh=ids.OVERVIEW_MAP,
        asof=map_asof,
    )
    # digests of the map layers' initial hideout and labels, so a refresh sends only changes
    _, sent = only_changed({"areas": hideout, "labels": labels}, None)
    body = [
        dcc.Store(id=ids.OVERVIEW_MAP_SENT, data=sent),
        filter_bar(lang, metric=chosen_metric, category=selected_category, stack=chosen_stack),
        html.Div(
            className="os-grid os-grid-overview",
            children=[
                map_panel,
                html.Div(
                    className="os-side",
                    children=[
                        panel(
                            t("panel.tiles", lang),
                            create_tiles(ids.OVERVIEW_TILES),
                            class_name="os-panel-tiles",
                            fresh=ids.OVERVIEW_TILES,
                        ),
                        panel(
                            t("panel.timeline", lang),
                            deferred_chart_box(
                                "overview-timeline-box", "overview-defer", skeleton()
                            ),
                            class_name="os-panel-timeline",
                            fresh=ids.OVERVIEW_TIMELINE,
                        ),
                        create_feed(ids.OVERVIEW_FEED, lang),
                    ],
                ),
            ],
        ),
    ]
    return create_page(
        lang=lang,
        title=f"{t('app.title', lang)} · {t('nav.overview', lang)}",
        active="overview",
        body=body,
        class_name="os-page-overview",
    )


@callback(
    Output(ids.OVERVIEW_AREAS, "hideout"),
    Output(ids.OVERVIEW_LABELS, "data"),
    Output(ids.OVERVIEW_LEGEND, "children"),
    asof_output(ids.OVERVIEW_MAP),
    Output(ids.OVERVIEW_MAP_SENT, "data"),
    Input(ids.METRIC, "value"),
    Input(ids.CATEGORY, "value"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.OVERVIEW_MAP_SENT, "data"),
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
    )
)
def update_map(metric: str, category: str, _tick: int, sent: dict | None, lang: str):
    """Colour the districts by the chosen metric and category."""
    lang = language(lang)
    metric = pick(metric, METRICS, METRICS[0]).value
    hideout, labels, legend, asof = map_state(metric, chosen_category(category), lang)
    (hideout, labels), digests = only_changed({"areas": hideout, "labels": labels}, sent)
    return hideout, labels, legend, asof, digests


def map_state(metric: str, category: str | None, lang: str) -> tuple[dict, dict, list, dict]:
    """Hideout (colours, tooltips), label points, legend and as-of of the district map."""
    areas = read(district_metrics, category=category)
    result = choropleth(areas.value, metric=metric, lang=lang, drill=True)
    return (
        result.hideout,
        result.labels,
        legend_children(t(f"metric.{metric}", lang), result.legend),
        asof_payload(areas),
    )


def initial_map_state(
    metric: str, category: str | None, lang: str
) -> tuple[dict, dict, list, dict | None]:
    """The map's first colours, in the layout itself.

    dash-leaflet styles a URL-loaded layer with the props it had when the fetch began, so
    colours must be there from the start rather than arrive while the boundaries download.
    """
    try:
        return map_state(metric, category, lang)
    except PANEL_ERRORS as exc:
        report_failure(log, "overview map unavailable", exc)
        empty = {"type": "FeatureCollection", "features": []}
        return {}, empty, [unavailable(t("panel.unavailable", lang))], None


@callback(
    Output(ids.OVERVIEW_TILES, "children"),
    Output(ids.OVERVIEW_STATUS, "children"),
    asof_output(ids.OVERVIEW_TILES),
    Input(ids.CATEGORY, "value"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.LANG, "data"),
)
@guard(lambda lang: ([unavailable(t("panel.unavailable", lang))], "", dash.no_update))
def update_tiles(category: str, _tick: int, lang: str):
    """The city's status tiles for the chosen category."""
    lang = language(lang)
    kpis = read(city_kpis, category=chosen_category(category))
    moment = (kpis.value.status_as_of or kpis.value.at).astimezone(CITY_TZ).strftime("%H:%M")
    return tiles_children(kpis.value, lang), t("status.as_of", lang, t=moment), asof_payload(kpis)


@callback(
    Output("overview-timeline-box", "children"),
    asof_output(ids.OVERVIEW_TIMELINE),
    Input(ids.CATEGORY, "value"),
    Input(ids.STACK, "value"),
    Input(ids.REFRESH, "n_intervals"),
    Input("overview-defer", "n_intervals"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
@guard(
    lambda lang: (
        chart(ids.OVERVIEW_TIMELINE, message_figure(t("panel.unavailable", lang))),
        dash.no_update,
    )
)
def update_timeline(category: str, stack: str, _tick: int, _deferred: int, lang: str):
    """Incidents opened per hour over the last 24 h, stacked by severity or category."""
    lang = language(lang)
    stack = pick(stack, STACKS, STACKS[0]).value
    clock = now()
    end = clock.value
    start = end - timedelta(hours=TIMELINE_HOURS)
    frame = read(incident_timeline, start=start, end=end, category=chosen_category(category))
    handled = read(
        incident_handling_timeline, start=start, end=end, category=chosen_category(category)
    )
    figure = timeline_figure(
        frame.value,
        stack=stack,
        lang=lang,
        start=start,
        end=end,
        categories=reference.categories(),
        handled=handled.value,
    )
    return chart(ids.OVERVIEW_TIMELINE, figure), asof_payload(clock, frame, handled)


@callback(
    Output(ids.OVERVIEW_FEED, "children"),
    asof_output(ids.OVERVIEW_FEED),
    Input(ids.CATEGORY, "value"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.LANG, "data"),
)
@guard(lambda lang: (unavailable(t("panel.unavailable", lang)), dash.no_update))
def update_feed(category: str, _tick: int, lang: str):
    """The latest incidents of the last 24 h."""
    lang = language(lang)
    clock = now()
    end = clock.value
    frame = read(
        incident_list,
        start=end - timedelta(hours=TIMELINE_HOURS),
        end=end + timedelta(minutes=1),
        category=chosen_category(category),
        limit=FEED_LENGTH,
    )
    feed = feed_children(frame.value, lang=lang, categories=reference.categories())
    return feed, asof_payload(clock, frame)


@callback(
    Output(ids.URL, "href", allow_duplicate=True),
    Input(ids.OVERVIEW_AREAS, "clickData"),
    State(ids.METRIC, "value"),
    State(ids.CATEGORY, "value"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def drill_down(feature: dict | None, metric: str, category: str, lang: str):
    """Clicking a district opens its page with the same metric and category."""
    code = (feature or {}).get("properties", {}).get("code") if isinstance(feature, dict) else None
    if not isinstance(code, str) or code not in reference.districts():
        raise PreventUpdate
    return href(
        f"/district/{code}",
        lang=language(lang),
        metric=None if metric == METRICS[0] else pick(metric, METRICS, None).value,
        category=chosen_category(category),
    )
