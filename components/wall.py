"""Video walls (`/wall`) and touch kiosks (`/kiosk`): unattended displays opened by a token.

A display page is a canvas that scales to fill any screen (assets/onescreen_wall.js), holding
two stacked slots: the view on screen and the next one, loading while hidden. The schedule —
rotation, attention to new critical incidents, the kiosk's touch and idle — runs in the browser;
the server only answers per slot ("what does this view look like now") and per refresh ("which
critical incidents are new"). Every answer re-checks the display token, so revoking one blanks
its screens within seconds, and nothing outside the token's district is ever read.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dash
import dash_leaflet as dl
import pandas as pd
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.area_map import MAP_JS, create_map, legend_children
from components.choropleth import choropleth
from components.feed import feed_children
from components.i18n import name, t
from components.incident_detail import readings_figure
from components.live import asof_output, asof_payload, fresh_config, now, only_changed, read
from components.panels import CHART_DEFER_MS, PANEL_ERRORS, panel, report_failure, skeleton
from components.playlist import DisplayOptions, View, display_options
from components.state import METRICS, pick
from components.theme import message_figure
from components.tiles import skeleton_tiles, tiles_children
from components.timeline import timeline_figure
from components.wall_view import attention_children, mask_personal, ranking_children, wall_figure
from config import PROJECT_ROOT
from data.areas import district_metrics, street_metrics
from data.devices import device_series
from data.displays import DisplayGrant, find_display_grant, get_playlist, touch_display_token
from data.incident_reads import (
    IncidentMarks,
    incident_detail,
    incident_list,
    incident_marks,
    incident_statuses,
    incident_timeline,
    new_critical_incidents,
)
from data.kpis import area_kpis
from data.scope import CITY, Scope, get_web_engine, set_scope
from web.boundaries import boundary_url

log = logging.getLogger(__name__)

MODES = ("wall", "kiosk")
SLOTS = ("a", "b")
FEED_LENGTH = 12
TIMELINE_HOURS = 24
ATTENTION_READINGS_MINUTES = 180


def slot_id(kind: str, slot: str | Any) -> dict:
    """Pattern id of one part of a slot."""
    return {"type": f"wall-{kind}", "slot": slot}


def panel_key(slot: str, part: str) -> str:
    """Freshness key of a slot's panel."""
    return f"wall-{slot}-{part}"


@functools.cache
def app_version() -> str:
    """The build this server process runs; a new one after a restart makes open displays reload."""
    digest = hashlib.sha1(usedforsecurity=False)
    for folder in ("assets", "components", "pages"):
        for path in sorted((PROJECT_ROOT / folder).glob("*.*")):
            if path.suffix in (".py", ".js", ".css"):
                digest.update(path.name.encode())
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


# Access ---------------------------------------------------------------------------------------


def grant_for(token: object) -> DisplayGrant | None:
    """The display grant of `token` (re-read at most every second), None if not a valid one."""
    if not isinstance(token, str) or not 8 <= len(token) <= 200:
        return None
    grant = read(find_display_grant, token=token).value
    if grant is not None:
        # a display reads what its token covers, whoever's browser it runs in; read-only
        set_scope(Scope(districts=grant.district or CITY))
    return grant


def _checked(config: object) -> tuple[DisplayGrant, str, bool]:
    """Grant, language and masking of a display callback; PreventUpdate when not allowed."""
    if not isinstance(config, dict):
        raise PreventUpdate
    grant = grant_for(config.get("token"))
    if grant is None:
        raise PreventUpdate
    lang = "en" if config.get("lang") == "en" else "zh"
    # a kiosk token always gets kiosk data, whatever the page claims to be
    masked = grant.kind == "kiosk" or config.get("mode") == "kiosk"
    return grant, lang, masked


def _view(raw: object, grant: DisplayGrant) -> View:
    """A view from the browser, checked against the allow-lists and the token's district."""
    if not isinstance(raw, dict):
        raise PreventUpdate
    district, street, category = raw.get("district"), raw.get("street"), raw.get("category")
    if not all(value is None or isinstance(value, str) for value in (district, street, category)):
        raise PreventUpdate
    if district is not None and district not in reference.districts():
        raise PreventUpdate
    if street is not None and (district is None or street not in reference.streets(district)):
        raise PreventUpdate
    if category is not None and category not in reference.categories():
        raise PreventUpdate
    if grant.district is not None and district != grant.district:
        raise PreventUpdate
    return View(district=district, street=street, category=category)


def _focus(raw: object) -> dict | None:
    focus = raw.get("focus") if isinstance(raw, dict) else None
    if not isinstance(focus, dict):
        return None
    try:
        incident, lon, lat = int(focus["id"]), float(focus["lon"]), float(focus["lat"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    # a marker only where Shanghai is: anything else is not an incident of ours
    if not (120.0 <= lon <= 123.0 and 30.0 <= lat <= 32.5) or incident <= 0:
        return None
    severity = focus.get("severity")
    return {
        "id": incident,
        "lon": lon,
        "lat": lat,
        "severity": severity if severity in ("critical", "major", "minor") else "critical",
    }


# What a view looks like ---------------------------------------------------------------------


def view_title(view: View, lang: str, *, focus: bool = False) -> str:
    """The header line of a view."""
    if focus:
        return t("wall.attention", lang)
    if view.district is None:
        place = t("wall.city_view", lang)
        short = t("crumb.city", lang)
    else:
        district = name(reference.districts()[view.district], lang)
        place = t("wall.district_view", lang, name=district)
        short = district
        if view.street is not None:
            short = f"{district} · {name(reference.streets(view.district)[view.street][:2], lang)}"
            place = short
    if view.category is not None:
        category = name(reference.categories()[view.category], lang)
        return t("wall.focus_view", lang, name=short, category=category)
    return place


@dataclass
class SlotContent:
    """Everything a slot shows for one view."""

    url: str
    hideout: dict
    labels: dict
    focus: dict
    legend: list
    viewport: dict
    tiles: list
    ranking: list
    ranking_title: str
    feed: Any
    title: str
    asof: dict


def _bounds(view: View, *, context: float = 1.0) -> list[list[float]] | None:
    """Where the map looks for `view`; `context` > 1 widens a street's box to show neighbours."""
    if view.district is None:
        return reference.bounds(None).get("city")
    if view.street is None:
        return reference.bounds(None).get(view.district)
    box = reference.bounds(view.district).get(view.street)
    if box is None:
        return None
    (south, west), (north, east) = box
    grow_lat, grow_lon = (north - south) * (context - 1) / 2, (east - west) * (context - 1) / 2
    return [[south - grow_lat, west - grow_lon], [north + grow_lat, east + grow_lon]]


def slot_content(
    view: View, *, focus: dict | None, metric: str, lang: str, masked: bool
) -> SlotContent:
    """Map colours, tiles, ranking and feed of `view` (reads through the shared cache)."""
    if view.district is None:
        areas = read(district_metrics, category=view.category)
        url = boundary_url(level="districts")
        with_labels = True
    else:
        areas = read(street_metrics, district=view.district, category=view.category)
        url = boundary_url(level="streets", district=view.district)
        with_labels = False
    result = choropleth(
        areas.value,
        metric=metric,
        lang=lang,
        drill=False,
        selected=view.street,
        with_labels=with_labels,
    )
    # no hover on a wall, and a kiosk shows nothing that needs one
    hideout = {**result.hideout, "tips": {}}
    kpis = read(area_kpis, district=view.district, street=view.street, category=view.category)
    clock = now()
    end = clock.value
    incidents = read(
        incident_list,
        start=end - timedelta(hours=TIMELINE_HOURS),
        end=end + timedelta(minutes=1),
        district=view.district,
        category=view.category,
        limit=FEED_LENGTH,
    )
    frame = incidents.value
    categories = reference.categories()
    if masked:
        frame = mask_personal(frame, categories=categories)
    focus_layer = {
        "type": "FeatureCollection",
        "features": (
            [
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [focus["lon"], focus["lat"]]},
                    "properties": {"id": focus["id"], "severity": focus["severity"]},
                }
            ]
            if focus
            else []
        ),
    }
    bounds = _bounds(view, context=3.0 if focus else 1.0)
    return SlotContent(
        url=url,
        hideout=hideout,
        labels=result.labels,
        focus=focus_layer,
        legend=legend_children(t(f"metric.{metric}", lang), result.legend),
        viewport=(
            {"bounds": bounds, "transition": "fitBounds", "options": {"padding": [24, 24]}}
            if bounds
            else {}
        ),
        tiles=tiles_children(kpis.value, lang),
        ranking=ranking_children(areas.value, metric=metric, lang=lang),
        ranking_title=t(
            "wall.ranking_city" if view.district is None else "wall.ranking_district", lang
        ),
        feed=feed_children(frame, lang=lang, categories=categories, link=False),
        title=view_title(view, lang, focus=focus is not None),
        asof={
            "map": asof_payload(areas),
            "tiles": asof_payload(kpis),
            "feed": asof_payload(clock, incidents),
        },
    )


def timeline_for(view: View, *, lang: str) -> tuple[Any, dict]:
    """The incidents-per-hour figure of `view` and its as-of."""
    clock = now()
    end = clock.value
    start = end - timedelta(hours=TIMELINE_HOURS)
    frame = read(
        incident_timeline,
        start=start,
        end=end,
        district=view.district,
        street=view.street,
        category=view.category,
    )
    figure = timeline_figure(
        frame.value,
        stack="severity",
        lang=lang,
        start=start,
        end=end,
        categories=reference.categories(),
    )
    return wall_figure(figure), asof_payload(clock, frame)


# Layout -------------------------------------------------------------------------------------


def _slot(
    slot: str,
    view: View,
    *,
    content: SlotContent | None,
    lang: str,
    mode: str,
    metric: str,
    active: bool,
) -> html.Section:
    empty = {"type": "FeatureCollection", "features": []}
    interactive = mode == "kiosk"
    map_options = {
        "dragging": interactive,
        "touchZoom": interactive,
        "scrollWheelZoom": interactive,
        "doubleClickZoom": interactive,
        "boxZoom": False,
        "keyboard": False,
        "zoomControl": interactive,
        "tapTolerance": 20,
    }
    map_view = create_map(
        map_id=slot_id("map", slot),
        legend_id=slot_id("legend", slot),
        legend=content.legend if content else [],
        bounds=(content.viewport.get("bounds") if content else None),
        map_options=map_options,
        layers=[
            dl.GeoJSON(
                id=slot_id("areas", slot),
                url=content.url if content else boundary_url(level="districts"),
                style=MAP_JS("areaStyle"),
                onEachFeature=MAP_JS("areaTooltip"),
                hideout=content.hideout if content else {},
                **({"hoverStyle": MAP_JS("areaHover")} if interactive else {}),
            ),
            dl.GeoJSON(
                id=slot_id("labels", slot),
                data=content.labels if content else empty,
                pointToLayer=MAP_JS("label"),
                interactive=False,
            ),
            dl.GeoJSON(
                id=slot_id("focus", slot),
                data=content.focus if content else empty,
                pointToLayer=MAP_JS("focusMarker"),
                interactive=False,
            ),
        ],
    )
    sent = None
    if content is not None:
        _, sent = only_changed({"areas": content.hideout, "labels": content.labels}, None)
        sent = {**sent, "view": view.key}
    ready = {"key": view.key, "title": content.title} if content else None

    def fresh(part: str) -> str:
        return panel_key(slot, part)

    def asof(part: str) -> dict | None:
        return content.asof["map" if part == "ranking" else part] if content else None

    return html.Section(
        id=slot_id("slot", slot),
        className=f"os-wall-slot{' os-wall-slot-active' if active else ''}",
        children=html.Div(
            id=f"wall-slot-{slot}",
            className="os-wall-grid",
            children=[
                dcc.Store(id=slot_id("view", slot), data=view.as_dict()),
                dcc.Store(id=slot_id("ready", slot), data=ready),
                dcc.Store(id=slot_id("sent", slot), data=sent),
                panel(
                    f"{t('filter.metric', lang)} · {t(f'metric.{metric}', lang)}",
                    map_view,
                    class_name="os-panel-map os-wall-area-map",
                    fresh=fresh("map"),
                    asof=asof("map"),
                ),
                panel(
                    t("panel.tiles", lang),
                    html.Div(
                        id=slot_id("tiles", slot),
                        className="os-tiles",
                        children=content.tiles if content else skeleton_tiles(),
                    ),
                    class_name="os-panel-tiles os-wall-area-tiles",
                    fresh=fresh("tiles"),
                    asof=asof("tiles"),
                ),
                panel(
                    html.Span(
                        content.ranking_title if content else "",
                        id=slot_id("ranking-title", slot),
                    ),
                    html.Div(
                        id=slot_id("ranking", slot),
                        className="os-wall-ranking",
                        children=content.ranking if content else [skeleton("os-skel-line")],
                    ),
                    class_name="os-wall-area-ranking",
                    fresh=fresh("ranking"),
                    asof=asof("ranking"),
                ),
                panel(
                    t("panel.timeline", lang),
                    html.Div(
                        id=slot_id("timeline-box", slot),
                        className="os-chart-slot",
                        children=skeleton(),
                    ),
                    class_name="os-panel-timeline os-wall-area-timeline",
                    fresh=fresh("timeline"),
                ),
                panel(
                    t("panel.feed", lang),
                    html.Div(
                        id=slot_id("feed", slot),
                        className="os-feed os-wall-feed",
                        children=content.feed if content else [skeleton("os-skel-line")],
                    ),
                    class_name="os-panel-feed os-wall-area-feed",
                    fresh=fresh("feed"),
                    asof=asof("feed"),
                ),
            ],
        ),
    )


def _message_page(mode: str, lang: str, message: str, *, retry: bool = False) -> html.Div:
    """What a display shows instead of data: no token, a bad one, or no database yet."""
    return html.Div(
        className=f"os-wall os-wall-{mode} os-wall-message-page os-lang-{lang}",
        children=[
            dcc.Store(id=ids.PAGE_META, data={"title": t("app.title", lang), "lang": lang}),
            html.Div(
                className="os-wall-message",
                children=[
                    html.Div(t("app.title", lang), className="os-wall-message-brand"),
                    html.P(message, role="alert"),
                ],
            ),
            # a display that cannot read its data yet tries again by itself
            dcc.Interval(id="wall-retry", interval=15_000, disabled=not retry),
        ],
    )


clientside_callback(
    """
    function (n) {
        if (n && window.onescreen && window.onescreen.wall) {
            window.onescreen.wall.safeReload("retry");
        }
        return window.dash_clientside.no_update;
    }
    """,
    Output("wall-retry", "id"),
    Input("wall-retry", "n_intervals"),
    prevent_initial_call=True,
)


def create_display(*, mode: str, token: object, lang: str, params: dict[str, Any]) -> html.Div:
    """A wall or kiosk page for `token`, or a plain message when it may not show anything."""
    try:
        grant = grant_for(token)
    except PANEL_ERRORS as exc:
        report_failure(log, f"{mode}: cannot check the display token", exc)
        return _message_page(mode, lang, t("wall.starting", lang), retry=True)
    if token in (None, ""):
        return _message_page(mode, lang, t("wall.need_token", lang, kind=mode))
    if grant is None:
        return _message_page(mode, lang, t("wall.bad_token", lang))
    if mode == "wall" and grant.kind != "wall":
        return _message_page(mode, lang, t("wall.wrong_kind", lang))
    try:
        options = _options(grant, params)
        marks = incident_marks(get_web_engine())
        touch_display_token(get_web_engine(), token=str(token))
    except PANEL_ERRORS as exc:
        report_failure(log, f"{mode}: cannot prepare the display", exc)
        return _message_page(mode, lang, t("wall.starting", lang), retry=True)
    masked = grant.kind == "kiosk" or mode == "kiosk"
    first = options.views[0]
    second = options.views[1 % len(options.views)]
    slots = []
    for slot, view in zip(SLOTS, (first, second), strict=True):
        try:
            content = slot_content(
                view, focus=None, metric=options.metric, lang=lang, masked=masked
            )
        except PANEL_ERRORS as exc:
            report_failure(log, f"{mode}: first view unavailable", exc)
            content = None
        slots.append(
            _slot(
                slot,
                view,
                content=content,
                lang=lang,
                mode=mode,
                metric=options.metric,
                active=slot == "a",
            )
        )
    config = {
        "mode": mode,
        "lang": lang,
        "token": str(token),
        "views": [view.as_dict() for view in options.views],
        "titles": {view.key: view_title(view, lang) for view in options.views},
        "interval_s": options.interval_s,
        "attention_s": options.attention_s,
        "idle_s": options.idle_s,
        "metric": options.metric,
        "sound": options.sound,
        "reload_hours": options.reload_hours,
        "version": app_version(),
        "labels": {"attention": t("wall.attention", lang), "resume": t("wall.resume", lang)},
    }
    notes = (
        html.Div(t("wall.notes", lang, items=", ".join(options.notes)), className="os-wall-notes")
        if options.notes
        else None
    )
    header = html.Header(
        className="os-wall-head",
        children=[
            html.Div(
                className="os-wall-brand",
                children=[
                    html.Span(t("app.title", lang), className="os-wall-brand-name"),
                    html.Span(t("wall.subtitle", lang), className="os-wall-brand-sub"),
                ],
            ),
            html.Div(
                className="os-wall-title-box",
                children=[
                    html.H1(
                        config["titles"].get(first.key, ""),
                        id=ids.WALL_TITLE,
                        className="os-wall-title",
                    ),
                    html.Div(id=ids.WALL_PROGRESS, className="os-wall-progress"),
                ],
            ),
            html.Div(
                className="os-wall-head-side",
                children=[
                    html.Span(t("wall.read_only", lang), className="os-wall-readonly"),
                    html.Div(id=ids.CLOCK, className="os-clock os-wall-clock"),
                ],
            ),
        ],
    )
    attention = html.Aside(
        id=ids.WALL_ATTENTION_CARD,
        className="os-wall-alert",
        role="alert",
        children=[
            html.Div(id=ids.WALL_ATTENTION_BODY, className="os-wall-alert-body"),
            html.Div(t("wall.readings", lang), className="os-wall-alert-section"),
            html.Div(
                id=ids.WALL_ATTENTION_CHART_BOX, className="os-chart-slot os-wall-alert-chart"
            ),
            html.Div(
                className="os-wall-alert-foot",
                children=[
                    html.Span(id=ids.WALL_COUNTDOWN, className="os-wall-countdown"),
                    html.Span(id=ids.WALL_QUEUE, className="os-wall-queue"),
                ],
            ),
        ],
    )
    controls = _kiosk_controls(lang) if mode == "kiosk" else None
    return html.Div(
        id=ids.WALL_ROOT,
        className=f"os-wall os-wall-{mode} os-lang-{lang} os-wall-phase-rotate",
        children=[
            dcc.Store(id=ids.LANG, data=lang),
            dcc.Store(
                id=ids.PAGE_META,
                data={
                    "title": f"{t('app.title', lang)} · {config['titles'].get(first.key, '')}",
                    "lang": lang,
                },
            ),
            fresh_config(lang),
            dcc.Store(id=ids.WALL_CONFIG, data=config),
            dcc.Store(id=ids.WALL_MARKS, data={"incident": marks.incident, "event": marks.event}),
            dcc.Store(id=ids.WALL_ALERTS),
            dcc.Store(id=ids.WALL_WATCH, data=[]),
            dcc.Store(id=ids.WALL_ATTENTION),
            # plotly.js is megabytes of script: the charts mount once the maps have started
            dcc.Interval(id=ids.WALL_CHARTS_DEFER, interval=CHART_DEFER_MS, max_intervals=1),
            html.Div(
                id=ids.WALL_CANVAS,
                className="os-wall-canvas",
                children=[
                    header,
                    html.Div(className="os-wall-stage", children=[*slots, attention]),
                    controls,
                    notes,
                    html.Div(t("kiosk.touch", lang), className="os-kiosk-attract", role="status")
                    if mode == "kiosk"
                    else None,
                    html.Div(
                        t("wall.revoked", lang), className="os-wall-revoked-note", role="alert"
                    ),
                ],
            ),
        ],
    )


def _kiosk_controls(lang: str) -> html.Nav:
    """Big touch targets: whole city, back, and one button per category."""
    categories = reference.categories()
    buttons = [
        html.Button(
            t("kiosk.city", lang),
            id={"type": "wall-goto", "target": "city"},
            className="os-kiosk-btn os-kiosk-btn-main",
        ),
        html.Button(
            t("kiosk.up", lang),
            id={"type": "wall-goto", "target": "up"},
            className="os-kiosk-btn os-kiosk-btn-main",
        ),
        html.Button(
            t("kiosk.all", lang),
            id={"type": "wall-goto", "target": "all"},
            className="os-kiosk-btn",
        ),
        *[
            html.Button(
                name(names, lang),
                id={"type": "wall-goto", "target": code},
                className="os-kiosk-btn",
            )
            for code, names in categories.items()
        ],
    ]
    return html.Nav(className="os-kiosk-controls", children=buttons)


def _options(grant: DisplayGrant, params: dict[str, Any]) -> DisplayOptions:
    chosen = params.get("playlist") or grant.playlist
    saved = None
    if isinstance(chosen, str) and chosen:
        playlist = get_playlist(get_web_engine(), name=chosen[:64])
        if playlist is not None:
            saved = {
                "views": playlist.views,
                "interval_s": playlist.interval_s,
                "attention_s": playlist.attention_s,
                "metric": playlist.metric,
                "sound": playlist.sound,
                "reload_hours": playlist.reload_hours,
            }
    options = display_options(
        {key: value for key, value in params.items() if isinstance(value, str)},
        saved=saved,
        districts=reference.districts(),
        categories=reference.categories(),
        streets=reference.street_districts(),
        scope_district=grant.district,
    )
    if chosen and saved is None:
        options.notes.append(f"playlist={str(chosen)[:40]}")
    return options


# Callbacks ----------------------------------------------------------------------------------


def _graph(graph_id: str | dict, figure: Any, class_name: str = "os-graph") -> dcc.Graph:
    """A static chart (nobody points at a wall)."""
    return dcc.Graph(
        id=graph_id,
        figure=figure,
        config={"displayModeBar": False, "responsive": True, "staticPlot": True},
        className=class_name,
    )


def _register_slot(slot: str) -> None:
    """The two server callbacks of one slot (registered once per slot, at import)."""

    @callback(
        Output(slot_id("areas", slot), "url"),
        Output(slot_id("areas", slot), "hideout"),
        Output(slot_id("labels", slot), "data"),
        Output(slot_id("focus", slot), "data"),
        Output(slot_id("legend", slot), "children"),
        Output(slot_id("map", slot), "viewport"),
        Output(slot_id("tiles", slot), "children"),
        Output(slot_id("ranking", slot), "children"),
        Output(slot_id("ranking-title", slot), "children"),
        Output(slot_id("feed", slot), "children"),
        asof_output(panel_key(slot, "map")),
        asof_output(panel_key(slot, "tiles")),
        asof_output(panel_key(slot, "ranking")),
        asof_output(panel_key(slot, "feed")),
        Output(slot_id("ready", slot), "data"),
        Output(slot_id("sent", slot), "data"),
        Input(slot_id("view", slot), "data"),
        Input(ids.REFRESH, "n_intervals"),
        State(slot_id("sent", slot), "data"),
        State(ids.WALL_CONFIG, "data"),
        prevent_initial_call=True,
    )
    def update_slot(raw_view, _tick, sent, config):
        """The slot's map, tiles, ranking and feed for its view, now."""
        grant, lang, masked = _checked(config)
        view = _view(raw_view, grant)
        focus = _focus(raw_view)
        key = raw_view.get("key") if isinstance(raw_view, dict) else None
        changed = (
            ctx.triggered_id != ids.REFRESH
            or not isinstance(sent, dict)
            or (sent.get("view") != key)
        )
        try:
            content = slot_content(
                view,
                focus=focus,
                metric=pick(config.get("metric"), METRICS, METRICS[0]).value or METRICS[0],
                lang=lang,
                masked=masked,
            )
        except PANEL_ERRORS as exc:
            # an outage keeps what is shown (badges go amber); a new view waits to be ready
            report_failure(log, f"wall slot {slot} failed", exc)
            raise PreventUpdate from None
        previous = None if changed else sent
        (hideout, labels), digests = only_changed(
            {"areas": content.hideout, "labels": content.labels}, previous
        )
        keep = dash.no_update
        return (
            content.url if changed else keep,
            content.hideout if changed else hideout,
            content.labels if changed else labels,
            content.focus if changed else keep,
            content.legend,
            content.viewport if changed else keep,
            content.tiles,
            content.ranking,
            content.ranking_title,
            content.feed,
            content.asof["map"],
            content.asof["tiles"],
            content.asof["map"],
            content.asof["feed"],
            {"key": key, "title": content.title},
            {**digests, "view": key},
        )

    @callback(
        Output(slot_id("timeline-box", slot), "children"),
        asof_output(panel_key(slot, "timeline")),
        Input(slot_id("view", slot), "data"),
        Input(ids.REFRESH, "n_intervals"),
        Input(ids.WALL_CHARTS_DEFER, "n_intervals"),
        State(ids.WALL_CONFIG, "data"),
        prevent_initial_call=True,
    )
    def update_timeline(raw_view, _tick, _deferred, config):
        """The slot's incidents per hour, last 24 h (the same graph each time: React updates
        its figure in place)."""
        grant, lang, _ = _checked(config)
        view = _view(raw_view, grant)
        try:
            figure, asof = timeline_for(view, lang=lang)
            return _graph(slot_id("timeline", slot), figure), asof
        except PANEL_ERRORS as exc:
            report_failure(log, f"wall timeline {slot} failed", exc)
            raise PreventUpdate from None


for _slot_name in SLOTS:
    _register_slot(_slot_name)


def _records(frame: pd.DataFrame, *, masked: bool) -> list[dict]:
    rows = []
    for item in frame.itertuples():
        rows.append(
            {
                "id": int(item.id),
                "district": item.district_adcode,
                "street": item.street_code if isinstance(item.street_code, str) else None,
                "lon": float(item.lon),
                "lat": float(item.lat),
                "severity": item.severity,
                "category": item.category_code,
            }
        )
    return [] if masked else rows


@callback(
    Output(ids.WALL_ALERTS, "data"),
    Output(ids.WALL_MARKS, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.WALL_MARKS, "data"),
    State(ids.WALL_WATCH, "data"),
    State(ids.WALL_CONFIG, "data"),
)
def poll_alerts(tick, marks, watch, config):
    """New critical incidents since the marks, the status of those the wall is showing, and
    whether the token still holds."""
    version = app_version()
    if not isinstance(config, dict):
        raise PreventUpdate
    try:
        grant = grant_for(config.get("token"))
    except PANEL_ERRORS as exc:
        report_failure(log, "wall alerts: token check failed", exc)
        raise PreventUpdate from None
    if grant is None:
        return {"revoked": True, "tick": tick, "version": version}, dash.no_update
    masked = grant.kind == "kiosk" or config.get("mode") == "kiosk"
    try:
        after = IncidentMarks(int(marks["incident"]), int(marks["event"]))
    except (KeyError, TypeError, ValueError):
        after = None
    watched = (
        [i for i in watch if type(i) is int and 0 < i < 2**63][:20]
        if isinstance(watch, list)
        else []
    )
    try:
        engine = get_web_engine()
        if after is None:
            fresh, new_marks = pd.DataFrame(), incident_marks(engine)
        else:
            fresh, new_marks = new_critical_incidents(engine, after=after, district=grant.district)
        # kiosks never show alerts, so they learn nothing of incidents' statuses either
        statuses = {} if masked else incident_statuses(engine, incident_ids=watched)
    except PANEL_ERRORS as exc:
        report_failure(log, "wall alerts failed", exc)
        raise PreventUpdate from None
    return (
        {
            "new": _records(fresh, masked=masked),
            "statuses": {str(k): v for k, v in statuses.items()},
            "tick": tick,
            "version": version,
        },
        {"incident": new_marks.incident, "event": new_marks.event},
    )


@callback(
    Output(ids.WALL_ATTENTION_BODY, "children"),
    Output(ids.WALL_ATTENTION_CHART_BOX, "children"),
    Output(ids.WALL_QUEUE, "children"),
    Input(ids.WALL_ATTENTION, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.WALL_CONFIG, "data"),
    prevent_initial_call=True,
)
def update_attention(attention, _tick, config):
    """The attention card: the incident, its latest readings, how many more are waiting."""
    grant, lang, masked = _checked(config)
    if masked or not isinstance(attention, dict) or not isinstance(attention.get("incident"), dict):
        if ctx.triggered_id == ids.REFRESH:
            raise PreventUpdate
        # the chart stays mounted (hidden with the card): mounting plotly anew for every alert
        # would leave its detached nodes behind over weeks
        return [], dash.no_update, ""
    try:
        incident_id = int(attention["incident"]["id"])
    except (KeyError, TypeError, ValueError):
        raise PreventUpdate from None
    try:
        engine = get_web_engine()
        incident = incident_detail(engine, incident_id=incident_id)
        if incident is None or (
            grant.district is not None and incident["district_adcode"] != grant.district
        ):
            raise PreventUpdate
        clock = now().value
        figure = message_figure(t("device.no_reading", lang))
        if incident.get("device_id"):
            series = device_series(
                engine,
                device_id=int(incident["device_id"]),
                start=clock - timedelta(minutes=ATTENTION_READINGS_MINUTES),
                end=clock + timedelta(minutes=1),
                bucket_seconds=60,
            )
            figure = readings_figure(
                series, incident=incident, lang=lang, unit=incident.get("unit")
            )
        body = attention_children(
            incident, lang=lang, categories=reference.categories(), at=pd.Timestamp(clock)
        )
    except PANEL_ERRORS as exc:
        report_failure(log, "wall attention card failed", exc)
        raise PreventUpdate from None
    queued = int(attention.get("queued") or 0)
    overflow = int(attention.get("overflow") or 0)
    notes = []
    if queued:
        notes.append(t("wall.more", lang, n=queued))
    if overflow:
        notes.append(t("wall.overflow", lang, n=overflow))
    chart_ = _graph(ids.WALL_ATTENTION_CHART, wall_figure(figure), "os-graph os-wall-alert-graph")
    return body, chart_, " · ".join(notes)


clientside_callback(
    """
    function () {
        return window.onescreen.wall.tick.apply(null, arguments);
    }
    """,
    Output(slot_id("view", ALL), "data"),
    Output(slot_id("slot", ALL), "className"),
    Output(ids.WALL_TITLE, "children"),
    Output(ids.WALL_PROGRESS, "children"),
    Output(ids.WALL_ATTENTION, "data"),
    Output(ids.WALL_WATCH, "data"),
    Output(ids.WALL_ROOT, "className"),
    Output(ids.WALL_COUNTDOWN, "children"),
    Input(ids.CLOCK_TICK, "n_intervals"),
    Input(ids.WALL_ALERTS, "data"),
    Input(slot_id("areas", ALL), "clickData"),
    Input({"type": "wall-goto", "target": ALL}, "n_clicks"),
    # a State: the slots report ready in answer to the views this callback sets
    State(slot_id("ready", ALL), "data"),
    State(ids.WALL_CONFIG, "data"),
)

# the canvas fits the screen before anything is drawn, and again on every resize
clientside_callback(
    """
    function (config) {
        if (window.onescreen && window.onescreen.wall) { window.onescreen.wall.fitCanvas(); }
        return window.dash_clientside.no_update;
    }
    """,
    Output(ids.WALL_CONFIG, "id"),
    Input(ids.WALL_CONFIG, "data"),
)
