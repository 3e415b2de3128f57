"""The friendly not-found page used by the 404 route and by unknown districts and devices."""

from __future__ import annotations

from dash import dcc, html

from components.i18n import t
from components.shell import create_page
from components.state import href


def not_found_page(lang: str, message: str) -> html.Div:
    """A page that says what was not found and links back to the city overview."""
    return create_page(
        lang=lang,
        title=f"{t('notfound.title', lang)} · {t('app.title', lang)}",
        active="",
        body=[
            html.Div(
                className="os-notfound",
                children=[
                    html.H1("404"),
                    html.P(t("notfound.title", lang), className="os-notfound-title"),
                    html.P(message, className="os-notfound-message"),
                    dcc.Link(t("notfound.back", lang), href=href("/", lang=lang)),
                ],
            )
        ],
    )
