"""Filter controls shared by the pages (metric, category, stacking, layer, incident filters)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast

from dash import dcc, html
from dash.development.base_component import Component

from components import ids, reference
from components.i18n import name, t
from components.ids import ComponentId
from components.state import LAYERS, METRICS, STACKS, pick
from data.errors import READ_ERRORS

log = logging.getLogger(__name__)

# one choice of a radio, check or dropdown control, as Dash takes it: {"label": …, "value": …}
# (the dcc stubs type each control's options as its own TypedDict, hence the casts below)
Option = dict[str, str]


def lookup(loader) -> dict:
    """A reference allow-list, or {} while the store cannot be read (the page still renders)."""
    try:
        return loader()
    except READ_ERRORS:
        log.exception("reference data unavailable")
        return {}


def dropdown_options(found: dict[str, tuple], lang: str, all_key: str) -> list[Option]:
    """An "all" option and one per code, labelled in `lang`."""
    return [{"label": t(all_key, lang), "value": ""}] + [
        {"label": name(names[:2], lang), "value": code} for code, names in found.items()
    ]


def category_options(lang: str) -> list[Option]:
    """The category filter's options (empty if the store cannot be read right now)."""
    return dropdown_options(lookup(reference.categories), lang, "filter.all_categories")


def chosen_category(value: object) -> str | None:
    """A category from the browser or URL, checked against the catalogue (None = all)."""
    return pick(value, list(reference.categories()), None).value


def control(
    label: str, component: Component, *, control_id: str | None = None, wide: bool = False
) -> html.Div:
    """A labelled filter control."""
    # no id at all rather than id=None when none is given
    named: dict[str, Any] = {"id": control_id} if control_id else {}
    return html.Div(
        className="os-control os-control-category" if wide else "os-control",
        children=[html.Label(label), component],
        **named,
    )


def labelled_options(values: Iterable[str], lang: str, prefix: str) -> list[Option]:
    """Options whose labels are the `prefix.<value>` texts in `lang`."""
    return [{"label": t(f"{prefix}.{value}", lang), "value": value} for value in values]


def segmented(
    component_id: ComponentId,
    options: Sequence[Option],
    value: str | None,
    *,
    class_name: str = "",
) -> dcc.RadioItems:
    """Radio buttons drawn as one segmented bar."""
    return dcc.RadioItems(
        id=component_id,
        options=cast("Sequence[dcc.RadioItems.Options]", options),
        value=value,
        className=f"os-segmented {class_name}".strip(),
        inline=True,
    )


def checks(component_id: ComponentId, options: Sequence[Option], value: list[str]) -> dcc.Checklist:
    """Check boxes drawn as pills."""
    return dcc.Checklist(
        id=component_id,
        options=cast("Sequence[dcc.Checklist.Options]", options),
        value=value,
        className="os-checks",
        inline=True,
    )


def dropdown(
    component_id: ComponentId,
    options: Sequence[Option],
    value: str | None,
    *,
    lang: str,
    placeholder: str = "filter.choose",
    searchable: bool = False,
) -> dcc.Dropdown:
    """A dark, non-clearable dropdown whose placeholder (an i18n key) speaks the page's language."""
    # without one, Dash shows its own English "Select..." on a Chinese page
    return dcc.Dropdown(
        id=component_id,
        options=cast("Sequence[dcc.Dropdown.Options]", options),
        value=value,
        clearable=False,
        searchable=searchable,
        placeholder=t(placeholder, lang),
        className="os-dropdown",
    )


def filter_bar(
    lang: str,
    *,
    metric: str,
    category: str | None,
    stack: str | None = None,
    layer: str | None = None,
) -> html.Div:
    """Metric, category, and (when given) timeline stacking and map layer selectors."""
    controls = [
        control(
            t("filter.metric", lang),
            segmented(ids.METRIC, labelled_options(METRICS, lang, "metric"), metric),
            control_id="control-metric",
        ),
        control(
            t("filter.category", lang),
            dropdown(ids.CATEGORY, category_options(lang), category or "", lang=lang),
            control_id="control-category",
            wide=True,
        ),
    ]
    if stack is not None:
        controls.append(
            control(
                t("filter.stack", lang),
                segmented(ids.STACK, labelled_options(STACKS, lang, "stack"), stack),
            )
        )
    if layer is not None:
        controls.append(
            control(
                t("filter.layer", lang),
                segmented(ids.LAYER, labelled_options(LAYERS, lang, "layer"), layer),
            )
        )
    return html.Div(className="os-filters", children=controls)
