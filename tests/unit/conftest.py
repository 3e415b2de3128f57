"""Helpers the unit tests share."""

from __future__ import annotations


def component_text(component) -> str:
    """All the text of a Dash component tree, its parts joined by spaces."""
    if isinstance(component, str):
        return component
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        return " ".join(component_text(c) for c in children)
    return "" if children is None else component_text(children)
