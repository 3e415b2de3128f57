"""The status tiles panel: KPIs of the view, their last day and their change against the same
time yesterday, and the status snapshot's time."""

from __future__ import annotations

from typing import Any

from dash import html

from components.i18n import t
from components.panels import panel, unavailable
from components.tiles import CITY_TZ, skeleton_tiles, tiles_children
from data.kpis import area_kpis, tile_trends
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import asof_payload, now, read


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """The tiles of `view`, and when its status snapshot was taken (the 预警 countdown from
    the database clock at render time)."""
    scope_of_view = {"district": view.district, "street": view.street, "category": view.category}
    kpis = read(area_kpis, **scope_of_view, **view.when)
    trends = read(tile_trends, **scope_of_view, at=view.at)
    clock = now(view.at)
    moment = (kpis.value.status_as_of or kpis.value.at).astimezone(CITY_TZ).strftime("%H:%M")
    # walls open nothing; pages link the 预警 and device-health tiles to their incidents
    scope = None if look.wall else {"district": view.district, "category": view.category}
    return Rendered(
        values={
            "tiles": tiles_children(
                kpis.value, look.lang, now=clock.value, scope=scope, trends=trends.value
            ),
            "status": t("status.as_of", look.lang, t=moment),
            "tiles-title": t("panel.tiles", look.lang),
        },
        # the trends are fresh for a minute by design (data.kpis.TREND_FRESH_S): the badge
        # dates the live figures
        reads=(kpis, clock),
    )


def create(look: Look, initial: Rendered | None = None, *, class_name: str = "") -> html.Section:
    """The tiles' frame, with placeholders until the first figures arrive (a wall's slot titles
    them by its view: a scenario's figures are not the city's)."""
    title = initial.values.get("tiles-title") if initial else None
    return panel(
        html.Span(title or t("panel.tiles", look.lang), id=look.id_of("tiles-title"))
        if look.wall
        else t("panel.tiles", look.lang),
        html.Div(
            id=look.id_of("tiles"),
            className="os-tiles",
            children=initial.values["tiles"] if initial else skeleton_tiles(),
        ),
        class_name=f"os-panel-tiles {class_name}".strip(),
        fresh=look.fresh_of("tiles"),
        asof=asof_payload(*initial.reads) if initial else None,
    )


TILES = LivePanel(
    kind="tiles",
    parts=(Part("tiles", "children"), Part("status", "children", level="city")),
    render=render,
    fallback=lambda look: {"tiles": [unavailable(t("panel.unavailable", look.lang))], "status": ""},
    create=create,
    badges=("tiles",),
)
