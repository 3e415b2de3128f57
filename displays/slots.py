"""A display's slots: the view on screen and the next one, loading while hidden.

Each slot shows the live panels (map colours, tiles, ranking, feed, timeline) of its view, made
by the same panel definitions as the pages; what is the wall's own here is the map's framing
(where it looks, the focus marker) and the readiness the rotation waits for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dash
import dash_leaflet as dl
from dash import MATCH, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.area_map import MAP_JS, create_map
from components.callbacks import CallbackSet
from components.core_inset import INSET_JS, core_inset, sync_inset
from components.i18n import name, t
from components.incident_markers import marker_layer
from components.panels import panel
from components.resources import playbook_progress
from components.state import METRICS, pick
from components.unit_layer import moving_layer
from data.errors import READ_ERRORS, report_failure
from data.playbooks import progress
from displays.access import checked, focus_of, replayed, view_of
from panels import AREAS, FEED, MARKERS, RANKING, TILES, TIMELINE
from panels.areas import EMPTY
from panels.base import Look, Rendered, View
from panels.freshness import asof_output
from panels.reads import asof_payload, only_changed, read
from panels.topic import TOPIC_FIGURES
from panels.units import UNITS
from web.boundaries import boundary_url
from web.context import context_url

# registered on each app by create_app()
CALLBACKS = CallbackSet()

log = logging.getLogger(__name__)

SLOTS = ("a", "b")
FEED_LENGTH = 12
# the parts of a slot that answer together: the rotation shows a view once all of them are in
SLOT_PANELS = (AREAS, TILES, RANKING, FEED, MARKERS, UNITS)


def slot_id(kind: str, slot: str | Any) -> dict[str, Any]:
    """Pattern id of one part of a slot."""
    return {"type": f"wall-{kind}", "slot": slot}


def panel_key(slot: str, part: str) -> str:
    """Freshness key of a slot's panel."""
    return f"wall-{slot}-{part}"


def slot_look(slot: str, *, lang: str, metric: str, masked: bool) -> Look:
    """How a slot shows its panels: for a room (no hover, static charts), masked on kiosks."""
    return Look(
        lang=lang,
        id_of=lambda part: slot_id(part, slot),
        fresh_of=lambda badge: panel_key(slot, badge),
        metric=metric,
        wall=True,
        masked=masked,
        feed_length=FEED_LENGTH,
    )


def topic_tiles(view: View, look: Look) -> Rendered:
    """A scenario view's tiles: its warning level, then its own figures, in the tiles' place."""
    figures = TOPIC_FIGURES.render(view, look, {})
    done = read(progress, district=view.district)
    running = done.value.get(view.category or "")
    strip = html.Div(
        [
            # the strip's parts, flat: a list inside children reaches React as raw objects
            *_as_list(figures.values["warning"]),
            # a room is told of a playbook only while one runs (the page says when none does)
            *([playbook_progress(running, lang=look.lang)] if running else []),
        ],
        className="os-warn-strip os-wall-warn-strip",
    )
    return Rendered(
        values={
            "tiles": [strip, *figures.values["figures"]],
            "tiles-title": t(
                "panel.topic_figures_replay" if view.at else "panel.topic_figures", look.lang
            ),
        },
        reads=(*figures.reads, done),
    )


def _as_list(children: Any) -> list[Any]:
    """Children as a flat list."""
    if children is None:
        return []
    return list(children) if isinstance(children, list | tuple) else [children]


def view_title(view: View, lang: str, *, focus: bool = False, kind: str = "alarm") -> str:
    """The header line of a view (while drawing attention: to an alarm, or to a 预警)."""
    if focus:
        return t("fx.wall.attention" if kind == "forecast" else "wall.attention", lang)
    if view.topic and view.category:
        where = (
            t("crumb.city", lang)
            if view.district is None
            else name(reference.districts()[view.district], lang)
        )
        return f"{t(f'topic.{view.category}', lang)} · {where}"
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
    """Everything a slot shows for one view: each panel's answer and the map's framing."""

    panels: dict[str, Rendered]
    url: str
    focus: dict
    viewport: dict
    title: str

    def value(self, part: str) -> Any:
        """The value of one part, from whichever panel answers it."""
        for rendered in self.panels.values():
            if part in rendered.values:
                return rendered.values[part]
        raise KeyError(part)

    def asof(self, kind: str) -> dict:
        """The as-of of one panel's answer."""
        return asof_payload(*self.panels[kind].reads)

    def sent(self, key: object) -> dict:
        """Digests of the map layers as sent for view `key` (areas, labels, incident markers,
        units)."""
        return {
            **self.value("map-sent"),
            **self.value("markers-sent"),
            **self.value("units-sent"),
            "view": key,
        }


# a slot's panels sent only when they changed since the last answer for the same view
PANEL_PARTS = ("legend", "tiles", "tiles-title", "ranking", "ranking-title", "feed")


def _focus_layer(focus: dict | None) -> dict:
    """The marker of the incident a slot is drawing attention to."""
    if not focus:
        return EMPTY
    point = {"type": "Point", "coordinates": [focus["lon"], focus["lat"]]}
    properties = {
        "id": focus["id"],
        "severity": focus["severity"],
        "kind": focus.get("kind", "alarm"),
    }
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": point, "properties": properties}],
    }


def slot_content(view: View, *, focus: dict | None, look: Look, sent: object = None) -> SlotContent:
    """The slot's panels for `view` (reads through the shared cache); map layers unchanged since
    `sent` come back as no_update."""
    kept = {"map-sent": sent, "markers-sent": sent, "units-sent": sent}
    answers = {panel.kind: panel.render(view, look, kept) for panel in SLOT_PANELS}
    if view.topic:
        answers[TILES.kind] = topic_tiles(view, look)
    bounds = _bounds(view, context=3.0 if focus else 1.0)
    return SlotContent(
        panels=answers,
        url=(
            boundary_url(level="districts")
            if view.district is None
            else boundary_url(level="streets", district=view.district)
        ),
        focus=_focus_layer(focus),
        viewport=(
            {"bounds": bounds, "transition": "fitBounds", "options": {"padding": [24, 24]}}
            if bounds
            else {}
        ),
        title=view_title(
            view, look.lang, focus=focus is not None, kind=(focus or {}).get("kind", "alarm")
        ),
    )


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


def _slot_map(slot: str, content: SlotContent | None, *, interactive: bool, lang: str) -> Any:
    """The slot's map: areas by URL-loaded boundaries, labels and the focus marker."""
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
    return create_map(
        map_id=slot_id("map", slot),
        lang=lang,
        # the whole city's context, detailed enough for a street-level attention view
        context=context_url(detail=True),
        legend_id=slot_id("legend", slot),
        legend=content.value("legend") if content else [],
        bounds=(content.viewport.get("bounds") if content else None),
        map_options=map_options,
        layers=[
            dl.GeoJSON(
                id=slot_id("areas", slot),
                url=content.url if content else boundary_url(level="districts"),
                style=MAP_JS("areaStyle"),
                onEachFeature=MAP_JS("areaTooltip"),
                hideout=content.value("areas") if content else {},
                **({"hoverStyle": MAP_JS("areaHover")} if interactive else {}),
            ),
            dl.GeoJSON(
                id=slot_id("labels", slot),
                data=content.value("labels") if content else EMPTY,
                pointToLayer=MAP_JS("label"),
                filter=INSET_JS("outerOnly"),
                interactive=False,
            ),
            dl.GeoJSON(
                id=slot_id("focus", slot),
                data=content.focus if content else EMPTY,
                pointToLayer=MAP_JS("focusMarker"),
                interactive=False,
            ),
            # units out on jobs, with the line to where they are going (issue 21)
            moving_layer(slot_id("moving", slot), content.value("moving") if content else None),
            # live critical and major incidents above everything (issue 19)
            marker_layer(slot_id("markers", slot), content.value("markers") if content else None),
        ],
        inset=core_inset(
            id_of=lambda part: slot_id(part, slot),
            hideout=content.value("areas") if content else {},
            labels=content.value("labels") if content else EMPTY,
            lang=lang,
        ),
    )


def slot_layout(
    slot: str,
    view: View,
    *,
    content: SlotContent | None,
    look: Look,
    mode: str,
    active: bool,
) -> html.Section:
    """One slot of a display, filled with `content` when the page could read it."""
    lang = look.lang
    sent = ready = None
    if content is not None:
        sent = content.sent(view.key)
        ready = {"key": view.key, "title": content.title}
    answers = content.panels if content else {}
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
                    f"{t('filter.metric', lang)} · {t(f'metric.{look.metric}', lang)}",
                    _slot_map(slot, content, interactive=mode == "kiosk", lang=lang),
                    class_name="os-panel-map os-wall-area-map",
                    fresh=panel_key(slot, "map"),
                    asof=content.asof("areas") if content else None,
                ),
                TILES.create(look, answers.get("tiles"), class_name="os-wall-area-tiles"),
                RANKING.create(look, answers.get("ranking"), class_name="os-wall-area-ranking"),
                TIMELINE.create(look, class_name="os-wall-area-timeline"),
                FEED.create(look, answers.get("feed"), class_name="os-wall-area-feed"),
            ],
        ),
    )


def _slot_answer(slot: str, raw_view: object, sent: object, config: object) -> tuple:
    """The slot's outputs for its view, now; a refresh resends only what changed."""
    grant, lang, masked = checked(config)
    view = replayed(view_of(raw_view, grant), config)
    key = raw_view.get("key") if isinstance(raw_view, dict) else None
    changed = (
        ctx.triggered_id != ids.REFRESH or not isinstance(sent, dict) or sent.get("view") != key
    )
    chosen = config.get("metric") if isinstance(config, dict) else None
    metric = pick(chosen, METRICS, METRICS[0]).value or METRICS[0]
    look = slot_look(slot, lang=lang, metric=metric, masked=masked)
    try:
        content = slot_content(
            view, focus=focus_of(raw_view), look=look, sent=None if changed else sent
        )
    except READ_ERRORS as exc:
        # an outage keeps what is shown (badges go amber); a new view waits to be ready
        report_failure(log, f"wall slot {slot} failed", exc)
        raise PreventUpdate from None
    keep = dash.no_update
    # the panels too go only when they changed: the legend rarely, the feed when an incident
    # moves; resending them all made a wall's browser rebuild them on every refresh
    (legend, tiles, tiles_title, ranking, ranking_title, feed), digests = only_changed(
        {part: content.value(part) for part in PANEL_PARTS}, None if changed else sent
    )
    return (
        content.url if changed else keep,
        content.value("areas"),
        content.value("labels"),
        content.focus if changed else keep,
        content.value("markers"),
        content.value("moving"),
        legend,
        content.viewport if changed else keep,
        tiles,
        tiles_title,
        ranking,
        ranking_title,
        feed,
        content.asof("areas"),
        content.asof("tiles"),
        content.asof("ranking"),
        content.asof("feed"),
        {"key": key, "title": content.title},
        content.sent(key) | digests,
    )


def _register_slot(slot: str) -> None:
    """The two server callbacks of one slot (registered once per slot, at import)."""
    CALLBACKS.callback(
        Output(slot_id("areas", slot), "url"),
        Output(slot_id("areas", slot), "hideout"),
        Output(slot_id("labels", slot), "data"),
        Output(slot_id("focus", slot), "data"),
        Output(slot_id("markers", slot), "data"),
        Output(slot_id("moving", slot), "data"),
        Output(slot_id("legend", slot), "children"),
        Output(slot_id("map", slot), "viewport"),
        Output(slot_id("tiles", slot), "children"),
        Output(slot_id("tiles-title", slot), "children"),
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
    )(lambda raw_view, _tick, sent, config: _slot_answer(slot, raw_view, sent, config))

    @CALLBACKS.callback(
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
        grant, lang, _ = checked(config)
        look = slot_look(slot, lang=lang, metric=METRICS[0], masked=False)
        try:
            rendered = TIMELINE.render(replayed(view_of(raw_view, grant), config), look, {})
        except READ_ERRORS as exc:
            report_failure(log, f"wall timeline {slot} failed", exc)
            raise PreventUpdate from None
        return rendered.values["timeline-box"], asof_payload(*rendered.reads)


for _slot_name in SLOTS:
    _register_slot(_slot_name)
# each slot's 中心城区 inset takes its city map's colours and labels
sync_inset(
    CALLBACKS.clientside,
    areas=slot_id("areas", MATCH),
    labels=slot_id("labels", MATCH),
    id_of=lambda part: slot_id(part, MATCH),
)
