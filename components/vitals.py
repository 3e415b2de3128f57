"""The 城市体征 strip (the city's vital signs): a slim row of value, unit and last-day line."""

from __future__ import annotations

from dash import html

from components.attributes import wildcards
from components.i18n import t
from components.panels import badge, skeleton
from components.tiles import sparkline
from data.vitals import Vitals


def vital_item(key: str, label: str, value: str, unit: str, spark=None, note: str = "") -> html.Div:
    """One vital sign: its label, value with unit, and its line of the last day."""
    return html.Div(
        className=f"os-vital os-vital-{key}",
        title=note or None,
        children=[
            html.Span(label, className="os-vital-label"),
            html.Span(
                [value, *([html.Small(unit, className="os-vital-unit")] if unit else [])],
                className="os-vital-value",
                **wildcards({"data-key": key}),
            ),
            spark if spark is not None else html.Span(),
        ],
    )


def vitals_children(vitals: Vitals, lang: str, *, place: str) -> list[html.Div]:
    """The strip's items in `lang`: the 预警 in force, then each vital sign with readings;
    `place` names the scope in each item's note ("上海市", "浦东新区")."""
    items = [
        vital_item(
            "warnings",
            t("vitals.warnings", lang),
            f"{vitals.warnings:,}",
            "",
        )
    ]
    for sign in vitals.signs:
        latest = sign.latest
        items.append(
            vital_item(
                sign.measurand,
                t(f"vitals.{sign.measurand}", lang),
                t("vitals.none", lang) if latest is None else f"{latest:.{sign.decimals}f}",
                "" if latest is None else sign.unit,
                sparkline(sign.values, lang),
                t("vitals.note", lang, name=place),
            )
        )
    return items


def create_vitals_strip(
    *,
    title: str,
    items_id: str | dict,
    title_id: str | dict,
    fresh: str,
    children=None,
    asof=None,
    class_name: str = "",
) -> html.Section:
    """The strip's frame: its (scope-honest) title, the items, and its freshness badge."""
    return html.Section(
        className=f"os-vitals {class_name}".strip(),
        **wildcards({"aria-label": title}),
        children=[
            html.H2(title, id=title_id, className="os-vitals-title"),
            html.Div(
                id=items_id,
                className="os-vitals-items",
                children=children if children is not None else [skeleton("os-skel-line")],
            ),
            badge(fresh, asof),
        ],
    )
