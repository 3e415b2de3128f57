"""Filter bars shared by the overview and district pages (metric, category, stacking, layer)."""

from __future__ import annotations

import logging

from dash import dcc, html

from components import ids, reference
from components.i18n import name, t
from components.panels import PANEL_ERRORS
from components.state import LAYERS, METRICS, STACKS

log = logging.getLogger(__name__)


def lookup(loader) -> dict:
    """A reference allow-list, or {} while the store cannot be read (the page still renders)."""
    try:
        return loader()
    except PANEL_ERRORS:
        log.exception("reference data unavailable")
        return {}


def dropdown_options(found: dict[str, tuple], lang: str, all_key: str) -> list[dict]:
    """An "all" option and one per code, labelled in `lang`."""
    return [{"label": t(all_key, lang), "value": ""}] + [
        {"label": name(names[:2], lang), "value": code} for code, names in found.items()
    ]


def category_options(lang: str) -> list[dict]:
    """The category filter's options (empty if the store cannot be read right now)."""
    return dropdown_options(lookup(reference.categories), lang, "filter.all_categories")


def filter_bar(
    lang: str,
    *,
    metric: str,
    category: str | None,
    stack: str | None = None,
    layer: str | None = None,
):
    """Metric, category (and timeline stacking) selectors."""
    controls = [
        html.Div(
            id="control-metric",
            className="os-control",
            children=[
                html.Label(t("filter.metric", lang)),
                dcc.RadioItems(
                    id=ids.METRIC,
                    options=[{"label": t(f"metric.{m}", lang), "value": m} for m in METRICS],
                    value=metric,
                    className="os-segmented",
                    inline=True,
                ),
            ],
        ),
        html.Div(
            id="control-category",
            className="os-control os-control-category",
            children=[
                html.Label(t("filter.category", lang)),
                dcc.Dropdown(
                    id=ids.CATEGORY,
                    options=category_options(lang),
                    value=category or "",
                    clearable=False,
                    searchable=False,
                    className="os-dropdown",
                ),
            ],
        ),
    ]
    if stack is not None:
        controls.append(
            html.Div(
                className="os-control",
                children=[
                    html.Label(t("filter.stack", lang)),
                    dcc.RadioItems(
                        id=ids.STACK,
                        options=[{"label": t(f"stack.{s}", lang), "value": s} for s in STACKS],
                        value=stack,
                        className="os-segmented",
                        inline=True,
                    ),
                ],
            )
        )
    if layer is not None:
        controls.append(
            html.Div(
                className="os-control",
                children=[
                    html.Label(t("filter.layer", lang)),
                    dcc.RadioItems(
                        id=ids.LAYER,
                        options=[{"label": t(f"layer.{v}", lang), "value": v} for v in LAYERS],
                        value=layer,
                        className="os-segmented",
                        inline=True,
                    ),
                ],
            )
        )
    return html.Div(className="os-filters", children=controls)
