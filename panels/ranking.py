"""The ranking panel: the view's areas sorted by the metric, worst first."""

from __future__ import annotations

from typing import Any

from dash import html

from components.i18n import t
from components.panels import panel, skeleton
from components.ranking import ranking_head, ranking_rows, wall_ranking
from panels.areas import area_reads
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import asof_payload


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """Rows of the view's areas (the same read as the map's colours, so no second query)."""
    areas = area_reads(view)
    if look.wall:
        rows = wall_ranking(areas.value, metric=look.metric, lang=look.lang)
    else:
        rows = ranking_rows(areas.value, metric=look.metric, lang=look.lang, selected=view.street)
    level = "district" if view.district is None else "street"
    head = ranking_head(metric=look.metric, lang=look.lang, level=level, wall=look.wall)
    rows = [head, *rows]
    title = "wall.ranking_city" if view.district is None else "wall.ranking_district"
    return Rendered(values={"ranking": rows, "ranking-title": t(title, look.lang)}, reads=(areas,))


def create(
    look: Look,
    initial: Rendered | None = None,
    *,
    title: Any = None,
    extra: Any = None,
    class_name: str = "",
) -> html.Section:
    """The ranking's frame (the page gives its title and clear button)."""
    return panel(
        title
        if title is not None
        else html.Span(
            initial.values["ranking-title"] if initial else "", id=look.id_of("ranking-title")
        ),
        html.Div(
            id=look.id_of("ranking"),
            className="os-wall-ranking" if look.wall else "os-ranking",
            children=initial.values["ranking"] if initial else [skeleton("os-skel-line")],
        ),
        extra=extra,
        class_name=class_name,
        fresh=look.fresh_of("ranking"),
        asof=asof_payload(*initial.reads) if initial else None,
    )


RANKING = LivePanel(
    kind="ranking",
    parts=(Part("ranking", "children"),),
    render=render,
    fallback=lambda look: {},
    create=create,
    controls=("metric",),
    badges=("ranking",),
    in_layout=True,
)
