"""Panel frames, freshness badges, loading placeholders and chart boxes (UI factories only)."""

from __future__ import annotations

from typing import Any

from dash import dcc, html
from dash.development.base_component import Component

from components import ids
from components.i18n import t
from web.services import services


def asof_id(panel_key: str) -> dict[str, str]:
    """The id of a panel's as-of store."""
    return {"type": ids.ASOF, "panel": panel_key}


def badge(panel_key: str, initial: dict | None = None) -> html.Span:
    """A panel's freshness badge and its as-of store (`initial` when the layout read the data)."""
    return html.Span(
        className="os-fresh-wrap",
        children=[
            dcc.Store(id=asof_id(panel_key), data=initial),
            html.Span(
                id={"type": ids.FRESH, "panel": panel_key}, className="os-fresh", role="status"
            ),
        ],
    )


def fresh_config(lang: str) -> dcc.Store:
    """Labels and the stale threshold for the clientside badge callback."""
    return dcc.Store(
        id=ids.FRESH_CONFIG,
        data={
            "stale": services().settings.ui_stale_seconds,
            "updated": t("fresh.updated", lang),
            "delayed": t("fresh.delayed", lang),
        },
    )


def skeleton(class_name: str = "os-skel-block") -> html.Div:
    """A shimmering placeholder shown until a panel's first content arrives."""
    return html.Div(className=f"os-skel {class_name}")


def panel(
    title: str | Component,
    body: Any,
    *,
    class_name: str = "",
    extra: Any = None,
    fresh: str | None = None,
    asof: dict | None = None,
) -> html.Section:
    """A titled panel frame; `fresh` names its as-of store and badge (`asof`: initial data)."""
    side = extra if extra is not None else html.Span()
    if fresh is not None:
        side = html.Div(className="os-panel-side", children=[side, badge(fresh, asof)])
    return html.Section(
        className=f"os-panel {class_name}".strip(),
        children=[
            html.Header(
                className="os-panel-head",
                children=[html.H2(title, className="os-panel-title"), side],
            ),
            html.Div(className="os-panel-body", children=body),
        ],
    )


def unavailable(message: str) -> html.Div:
    """What a panel shows when its data cannot be read."""
    return html.Div(message, className="os-unavailable", role="status")


# plotly.js is ~4.8 MB of script: parsing it competes with the map for the main thread, so a
# page's charts mount only after this delay (the map is the primary panel)
CHART_DEFER_MS = 1200


def deferred_chart_box(box_id: str, defer_id: str, placeholder: Any) -> html.Div:
    """A chart container showing `placeholder` until its callback fills it after the defer."""
    return html.Div(
        className="os-chart-box",
        children=[
            dcc.Interval(id=defer_id, interval=CHART_DEFER_MS, max_intervals=1),
            html.Div(id=box_id, className="os-chart-slot", children=placeholder),
        ],
    )


def chart(graph_id: str, figure: Any) -> dcc.Graph:
    """A themed, responsive graph without the mode bar."""
    return dcc.Graph(
        id=graph_id,
        figure=figure,
        config={"displayModeBar": False, "responsive": True},
        className="os-graph",
    )
