"""The scenarios' warning levels as a live strip: each 专题's level in the view's place (the city
or a district), each a link to its scenario view."""

from __future__ import annotations

from typing import Any

from dash import html

from components.warnings import warning_links
from data.warning_reads import warning_levels
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import read


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """Every scenario's level where the view is."""
    levels = read(warning_levels, **view.when)
    place = view.district or ""
    here = {w.topic: w.level for w in levels.value if w.district == place}
    return Rendered(
        # each opens the scenario view of the same place
        values={"warnings": warning_links(here, lang=look.lang, district=view.district)},
        reads=(levels,),
    )


def create(look: Look, initial: Rendered | None = None, *, class_name: str = "") -> html.Nav:
    """The strip's frame (filled by the first answer)."""
    return html.Nav(
        id=look.id_of("warnings"),
        className=f"os-warn-links {class_name}".strip(),
        children=initial.values["warnings"] if initial else None,
    )


WARNINGS = LivePanel(
    kind="warnings",
    parts=(Part("warnings", "children"),),
    render=render,
    fallback=lambda look: {"warnings": None},
    create=create,
)
