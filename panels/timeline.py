"""The 24 h timeline panel: incidents opened per hour, and those acknowledged and resolved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dash import dcc, html

from components import reference
from components.i18n import t
from components.panels import chart, deferred_chart_box, panel, skeleton
from components.theme import message_figure, wall_figure
from components.timeline import timeline_figure
from data.cache import Cached
from data.forecast_reads import expected_breaches
from data.incident_reads import incident_handling_timeline, incident_timeline
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import now, read

TIMELINE_HOURS = 24
# the hours after now the timeline runs on into, with the breaches live 预警 expect
AHEAD_HOURS = 3


def graph(look: Look, figure: Any) -> dcc.Graph:
    """The timeline's graph: themed on pages, static on walls (nobody points at a wall)."""
    if not look.wall:
        return chart(look.id_of("timeline"), figure)
    return dcc.Graph(
        id=look.id_of("timeline"),
        figure=wall_figure(figure),
        config={"displayModeBar": False, "responsive": True, "staticPlot": True},
        className="os-graph",
    )


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """Incidents per hour of `view` over the last 24 h, stacked as the viewer chose, and the
    breaches its live 预警 expect in the next hours."""
    clock = now(view.at)
    end = clock.value
    start = end - timedelta(hours=TIMELINE_HOURS)
    ahead_end = end + timedelta(hours=AHEAD_HOURS)
    where = {"district": view.district, "street": view.street, "category": view.category}
    frame = read(incident_timeline, start=start, end=end, **where)
    ahead = read(expected_breaches, start=end, end=ahead_end, **where, **view.when)
    reads: list[Cached[Any]] = [clock, frame, ahead]
    handled = None
    # a wall shows what arrives; the handling lines are for those who handle it
    if not look.wall:
        handled_read = read(incident_handling_timeline, start=start, end=end, **where)
        handled = handled_read.value
        reads.append(handled_read)
    figure = timeline_figure(
        frame.value,
        stack=look.stack,
        lang=look.lang,
        start=start,
        end=end,
        categories=reference.categories(),
        handled=handled,
        ahead=ahead.value,
        ahead_end=ahead_end,
        replay=view.at is not None,
    )
    return Rendered(values={"timeline-box": graph(look, figure)}, reads=tuple(reads))


def create(look: Look, initial: Rendered | None = None, *, class_name: str = "") -> html.Section:
    """The timeline's frame; on pages the chart mounts after the map has started drawing."""
    del initial  # the chart always arrives after the layout (plotly is megabytes of script)
    if look.wall:
        body = html.Div(
            id=look.id_of("timeline-box"), className="os-chart-slot", children=skeleton()
        )
    else:
        body = deferred_chart_box(look.id_of("timeline-box"), look.id_of("defer"), skeleton())
    return panel(
        t("panel.timeline", look.lang),
        body,
        class_name=f"os-panel-timeline {class_name}".strip(),
        fresh=look.fresh_of("timeline"),
    )


TIMELINE = LivePanel(
    kind="timeline",
    parts=(Part("timeline-box", "children"),),
    render=render,
    fallback=lambda look: {
        "timeline-box": chart(
            look.id_of("timeline"), message_figure(t("panel.unavailable", look.lang))
        )
    },
    create=create,
    controls=("stack",),
    badges=("timeline",),
    in_layout=True,
    deferred=True,
)
