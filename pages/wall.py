"""Video wall `/wall?token=…`: no chrome, fits any screen, rotates a playlist, alerts."""

from __future__ import annotations

import dash
from dash import html

from components.state import language
from displays.page import create_display

dash.register_page(__name__, path="/wall", title="一屏观全城 · 大屏", name="wall")


def layout(token: str | None = None, lang: str | None = None, **params: str) -> html.Div:
    """The wall for `token`; playlist and timing from the URL or the token's saved playlist."""
    return create_display(mode="wall", token=token, lang=language(lang), params=params)
