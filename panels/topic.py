"""A scenario's (专题) figure tiles as a live panel: its measurands against their lines now, in
the view's place (the city or a district), within the reader's scope."""

from __future__ import annotations

from typing import Any

from dash import html

from components.i18n import t
from components.panels import panel, unavailable
from components.tiles import skeleton_tiles
from components.topics import FIGURES, figure_tiles, topic_measurands
from data.topic_reads import measurands_now
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import asof_payload, read


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """The figures of the view's scenario (its category)."""
    topic = view.category if view.category in FIGURES else "flood"
    states = read(measurands_now, measurands=topic_measurands(topic), district=view.district)
    return Rendered(
        values={"figures": figure_tiles(topic, states.value, lang=look.lang)},
        reads=(states,),
    )


def create(look: Look, initial: Rendered | None = None, *, class_name: str = "") -> html.Section:
    """The figures' frame, with placeholders until the first figures arrive."""
    return panel(
        t("panel.topic_figures", look.lang),
        html.Div(
            id=look.id_of("figures"),
            className="os-tiles os-topic-tiles",
            children=initial.values["figures"] if initial else skeleton_tiles()[:6],
        ),
        class_name=f"os-panel-topic {class_name}".strip(),
        fresh=look.fresh_of("figures"),
        asof=asof_payload(*initial.reads) if initial else None,
    )


TOPIC_FIGURES = LivePanel(
    kind="topic-figures",
    parts=(Part("figures", "children"),),
    render=render,
    fallback=lambda look: {"figures": [unavailable(t("panel.unavailable", look.lang))]},
    create=create,
    badges=("figures",),
)
