"""Touch kiosk `/kiosk?token=…`: read-only, big targets, personal data masked, attract loop."""

from __future__ import annotations

import dash
from dash import html

from components.state import language
from displays.page import create_display

dash.register_page(__name__, path="/kiosk", title="一屏观全城 · 展示", name="kiosk")


def layout(token: str | None = None, lang: str | None = None, **params: str) -> html.Div:
    """The kiosk for `token`: explore by touch, back to the playlist after `idle` seconds."""
    return create_display(mode="kiosk", token=token, lang=language(lang), params=params)
