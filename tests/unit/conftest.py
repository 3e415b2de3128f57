"""Helpers the unit tests share."""

from __future__ import annotations

import csv
from pathlib import Path

CATALOGUE = Path(__file__).parents[2] / "data" / "reference" / "device_types.csv"


def component_text(component) -> str:
    """All the text of a Dash component tree, its parts joined by spaces."""
    if isinstance(component, str):
        return component
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        return " ".join(component_text(c) for c in children)
    return "" if children is None else component_text(children)


def measurands_by_category() -> dict[str, set[str]]:
    """The device catalogue's measurands of each category."""
    with CATALOGUE.open(encoding="utf-8") as handle:
        by_category: dict[str, set[str]] = {}
        for row in csv.DictReader(handle):
            by_category.setdefault(row["category"], set()).add(row["measurand"])
    return by_category
