"""Dash component trees as a standalone HTML document (the review's PDF is printed from it by
headless Chromium, with no server running): html.* elements as their tags, graphs as plotly's own
static embedding, everything else (stores, intervals) left out."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import plotly.io as pio
from dash import dcc
from dash.development.base_component import Component
from plotly.offline import get_plotlyjs

ASSETS = Path(__file__).resolve().parents[1] / "assets"
_ATTRIBUTES = {"className": "class", "id": "id", "title": "title", "role": "role"}


def _attributes(props: dict[str, Any]) -> str:
    pairs = [(html_name, props.get(prop)) for prop, html_name in _ATTRIBUTES.items()]
    return "".join(f' {key}="{escape(str(value))}"' for key, value in pairs if value)


def to_html(node: Any) -> str:
    """`node` (a component, text, or a list of them) as HTML text."""
    if node is None or isinstance(node, bool):
        return ""
    if isinstance(node, str | int | float):
        return escape(str(node))
    if isinstance(node, list | tuple):
        return "".join(to_html(child) for child in node)
    if isinstance(node, dcc.Graph):
        figure = pio.to_html(
            node.to_plotly_json()["props"]["figure"],
            full_html=False,
            include_plotlyjs=False,
            default_height="300px",
            config={"staticPlot": True},
        )
        return f'<div class="os-review-chart-static">{figure}</div>'
    if isinstance(node, Component) and node._namespace == "dash_html_components":
        tag = node._type.lower()
        props = node.to_plotly_json()["props"]
        return f"<{tag}{_attributes(props)}>{to_html(props.get('children'))}</{tag}>"
    return ""


def document(body: Any, *, title: str, lang: str, stylesheets: tuple[str, ...]) -> str:
    """A whole page: `body` under the app's own stylesheets, with plotly.js inlined (no network)."""
    css = "\n".join((ASSETS / name).read_text(encoding="utf-8") for name in stylesheets)
    return (
        f'<!DOCTYPE html><html lang="{"en" if lang == "en" else "zh-CN"}"><head>'
        f'<meta charset="utf-8"><title>{escape(title)}</title><style>{css}</style>'
        f"<script>{get_plotlyjs()}</script></head>"
        f'<body class="os-static">{to_html(body)}</body></html>'
    )
