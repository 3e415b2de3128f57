"""A scenario's (专题) figure tiles as a live panel: its measurands against their lines now, in
the view's place (the city or a district), within the reader's scope."""

from __future__ import annotations

from typing import Any

import dash_leaflet as dl
from dash import html

from components import reference
from components.area_map import MAP_JS, geojson_options
from components.i18n import t
from components.panels import chart, panel, skeleton, unavailable
from components.theme import message_figure
from components.tiles import skeleton_tiles
from components.topic_trends import trend_figure, trend_query
from components.topics import (
    FIGURES,
    PERSONAL_TOPICS,
    figure_tiles,
    timed_measurands,
    topic_measurands,
    topic_points,
)
from components.warnings import warning_strip
from data.cache import Cached
from data.topic_reads import alarm_times, beyond_lines, measurands_now
from data.vitals import measurand_hours
from data.warning_reads import WarningNow, warning_levels
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import asof_payload, read


def _topic_of(view: View) -> str:
    """The view's scenario (its category; flood for a view forged without one)."""
    return view.category if view.category in FIGURES else "flood"


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """The figures of the view's scenario (its category) and its warning level here."""
    topic = _topic_of(view)
    states = read(
        measurands_now, measurands=topic_measurands(topic), district=view.district, **view.when
    )
    # every scenario's levels in one shared read (the displays' headers read the same)
    levels = read(warning_levels, **view.when)
    reads: list[Cached[Any]] = [states, levels]
    timed = timed_measurands(topic)
    times = (
        read(alarm_times, measurands=timed, district=view.district, at=view.at) if timed else None
    )
    # people at home are never a place on a map
    points = (
        None
        if topic in PERSONAL_TOPICS
        else read(
            beyond_lines, measurands=topic_measurands(topic), district=view.district, **view.when
        )
    )
    reads += [r for r in (times, points) if r is not None]
    return Rendered(
        values={
            "figures": figure_tiles(
                topic, states.value, lang=look.lang, times=times.value if times else None
            ),
            "warning": _warning(levels.value, topic=topic, district=view.district, lang=look.lang),
            "points": topic_points(points.value if points else [], lang=look.lang),
        },
        reads=tuple(reads),
    )


def points_layer(look: Look, initial: Rendered | None) -> dl.GeoJSON:
    """The map layer of the scenario's devices beyond their lines (a child of the map)."""
    return dl.GeoJSON(
        id=look.id_of("points"),
        data=initial.values["points"] if initial else None,
        **geojson_options(pointToLayer=MAP_JS("topicPoint")),
    )


def _warning(levels: list[WarningNow], *, topic: str, district: str | None, lang: str) -> list:
    """The strip of the place's level; for the city, with its districts at a level."""
    here = next((w for w in levels if w.district == (district or "") and w.topic == topic), None)
    names = reference.districts()
    at_level = sorted(
        (w.level, w.district)
        for w in levels
        if w.topic == topic and w.district and w.level and not district
    )
    named = [(names.get(code, (code, code))[lang == "en"], level) for level, code in at_level]
    return warning_strip(here, named, lang=lang)


def create(look: Look, initial: Rendered | None = None, *, class_name: str = "") -> html.Section:
    """The figures' frame, with placeholders until the first figures arrive."""
    return panel(
        t("panel.topic_figures_replay" if look.replay else "panel.topic_figures", look.lang),
        [
            html.Div(
                id=look.id_of("warning"),
                className="os-warn-strip",
                role="status",
                children=initial.values["warning"] if initial else None,
            ),
            html.Div(
                id=look.id_of("figures"),
                className="os-tiles os-topic-tiles",
                children=initial.values["figures"] if initial else skeleton_tiles()[:6],
            ),
        ],
        class_name=f"os-panel-topic {class_name}".strip(),
        fresh=look.fresh_of("figures"),
        asof=asof_payload(*initial.reads) if initial else None,
    )


TOPIC_FIGURES = LivePanel(
    kind="topic-figures",
    parts=(Part("figures", "children"), Part("warning", "children"), Part("points", "data")),
    render=render,
    fallback=lambda look: {
        "figures": [unavailable(t("panel.unavailable", look.lang))],
        "warning": None,
        "points": None,
    },
    create=create,
    badges=("figures",),
)


def render_trend(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """The scenario's last day hour by hour in the view's place, from the hourly rollups."""
    topic = _topic_of(view)
    hours = read(measurand_hours, **trend_query(topic), district=view.district, at=view.at)
    figure = trend_figure(topic, hours.value, lang=look.lang)
    return Rendered(values={"trend-box": chart(look.id_of("trend"), figure)}, reads=(hours,))


def create_trend(
    look: Look, initial: Rendered | None = None, *, class_name: str = ""
) -> html.Section:
    """The chart's frame: it arrives with the timeline's answer (placed with it: one request,
    one deferral), after the map has started drawing."""
    del initial
    return panel(
        t("panel.topic_trend", look.lang),
        html.Div(id=look.id_of("trend-box"), className="os-chart-slot", children=skeleton()),
        class_name=f"os-panel-topic-trend {class_name}".strip(),
        fresh=look.fresh_of("trend"),
    )


TOPIC_TREND = LivePanel(
    kind="topic-trend",
    parts=(Part("trend-box", "children"),),
    render=render_trend,
    fallback=lambda look: {
        "trend-box": chart(look.id_of("trend"), message_figure(t("panel.unavailable", look.lang)))
    },
    create=create_trend,
    badges=("trend",),
    in_layout=True,
    deferred=True,
)
