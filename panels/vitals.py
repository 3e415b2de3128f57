"""The 城市体征 strip as a live panel: the vital signs of the view's place, titled for the
reader's scope (a manager sees only his districts, and the title says so)."""

from __future__ import annotations

from typing import Any

from dash import html

from components import reference
from components.i18n import name, t
from components.panels import unavailable
from components.vitals import create_vitals_strip, vitals_children
from data.scope import CITY, current_scope
from data.vitals import city_vitals
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import asof_payload, read


def _title_and_place(view: View, lang: str) -> tuple[str, str]:
    """The strip's title and the place its notes name, honest about the reader's scope."""
    if view.district is not None:
        district = name(reference.districts()[view.district], lang)
        return t("vitals.title_district", lang, name=district), district
    if current_scope().districts != CITY:
        title = t("vitals.title_scoped", lang)
        return title, title
    return t("vitals.title", lang), t("crumb.city", lang)


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """The vital signs of `view`'s place (the city or a district) over the last day."""
    vitals = read(city_vitals, district=view.district, at=view.at)
    title, place = _title_and_place(view, look.lang)
    return Rendered(
        values={
            "vitals": vitals_children(vitals.value, look.lang, place=place),
            "vitals-title": title,
        },
        reads=(vitals,),
    )


def create(look: Look, initial: Rendered | None = None, *, class_name: str = "") -> html.Section:
    """The strip's frame, with a placeholder until the first figures arrive."""
    values = initial.values if initial else {}
    return create_vitals_strip(
        title=values.get("vitals-title", t("vitals.title", look.lang)),
        items_id=look.id_of("vitals"),
        title_id=look.id_of("vitals-title"),
        fresh=look.fresh_of("vitals"),
        children=values.get("vitals"),
        asof=asof_payload(*initial.reads) if initial else None,
        class_name=class_name,
    )


VITALS = LivePanel(
    kind="vitals",
    parts=(Part("vitals", "children"), Part("vitals-title", "children")),
    render=render,
    fallback=lambda look: {
        "vitals": [unavailable(t("panel.unavailable", look.lang))],
        "vitals-title": t("vitals.title", look.lang),
    },
    create=create,
    badges=("vitals",),
)
