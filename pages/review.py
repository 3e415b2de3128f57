"""The after-action review `/review?from=…&to=…[&district=…][&street=…]` (复盘评估): what happened
in an area over a window and how it was handled, printable (the browser saves it as PDF) and
downloadable as CSV. The same window always reads the same: see data/review.py."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import dash
from dash import Input, Output, clientside_callback, dcc, html

from components import reference
from components.i18n import name, t
from components.notfound import not_found_page
from components.panels import unavailable
from components.review import review_head, review_sections, review_title
from components.shell import create_page
from components.state import href, language
from data.checks import InvalidQuery
from data.clock import CITY_TZ
from data.errors import READ_ERRORS, report_failure
from data.review import review
from panels.reads import read
from web.review_export import REVIEW_CSV_PATH, OutOfScope, ReviewQuery, review_query
from web.session import current_principal

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/review", title="复盘评估 · 一屏观全城", name="review")

LOG_ROWS = 500
PRINT = "review-print"


def _form(query: ReviewQuery | None, lang: str) -> html.Form:
    """The window and the area, as a plain GET form: the URL is the review, so it can be shared."""
    principal = current_principal()
    fmt = "%Y-%m-%d %H:%M"
    places = [html.Option(t("crumb.city", lang), value="")] + [
        html.Option(name(names, lang), value=code, selected=query is not None
                    and query.district == code)
        for code, names in reference.districts().items()
        if principal is not None and principal.allows(code)
    ]  # fmt: skip
    return html.Form(
        method="GET",
        action="/review",
        className="os-review-form",
        children=[
            html.Label([t("review.from", lang), dcc.Input(
                type="text", placeholder="2026-12-03 20:00", name="from", id="review-from",
                value=query.start.astimezone(CITY_TZ).strftime(fmt) if query else None)]),
            html.Label([t("review.to", lang), dcc.Input(
                type="text", placeholder="2026-12-03 20:00", name="to", id="review-to",
                value=query.end.astimezone(CITY_TZ).strftime(fmt) if query else None)]),
            html.Label([t("review.area", lang), html.Select(
                places, name="district", id="review-district")]),
            html.Label([t("review.street", lang), dcc.Input(
                type="text", name="street", id="review-street", maxLength=9,
                value=query.street if query else None, placeholder="310115001")]),
            dcc.Input(type="hidden", name="lang", value=lang),
            html.Button(t("review.make", lang), type="submit", className="os-button"),
        ],
    )  # fmt: skip


def _tools(query: ReviewQuery, lang: str) -> html.Div:
    """The CSV of the same review, and the browser's print (save as PDF)."""
    args = {
        "from": query.start.astimezone(CITY_TZ).strftime("%Y-%m-%dT%H:%M"),
        "to": query.end.astimezone(CITY_TZ).strftime("%Y-%m-%dT%H:%M"),
        "district": query.district,
        "street": query.street,
    }
    return html.Div(
        className="os-review-tools",
        children=[
            html.A(
                t("review.csv", lang),
                href=href(REVIEW_CSV_PATH, lang=lang, **args),
                download="",
                className="os-button",
            ),
            html.Button(t("review.print", lang), id=PRINT, className="os-button"),
        ],
    )


def layout(lang: str | None = None, **args: str) -> html.Div:
    """The review of the window and area the URL asks for (the last day of the city by
    default)."""
    lang = language(lang)
    try:
        query = review_query(args, now=datetime.now(CITY_TZ))
    except InvalidQuery as exc:
        if isinstance(exc, OutOfScope):
            return not_found_page(lang, t("auth.forbidden", lang))
        body: list[Any] = [
            _form(None, lang),
            html.P(t("review.bad", lang, why=str(exc)), className="os-review-bad"),
        ]
        return create_page(lang=lang, title=t("nav.review", lang), active="review", body=body)
    try:
        rv = read(review, start=query.start, end=query.end, district=query.district,
                  street=query.street, log_limit=LOG_ROWS).value  # fmt: skip
        report = review_sections(
            rv,
            lang,
            districts=reference.districts(),
            categories=reference.categories(),
            log_limit=LOG_ROWS,
        )
    except READ_ERRORS as exc:
        report_failure(log, "review unavailable", exc)
        report = [unavailable(t("panel.unavailable", lang))]
    title = review_title(
        lang,
        district=query.district,
        street=query.street,
        districts=reference.districts(),
        streets=reference.streets(query.street[:6]) if query.street else {},
    )
    body = [
        review_head(title, query.start, query.end, lang, _tools(query, lang)),
        _form(query, lang),
        *report,
    ]
    return create_page(
        lang=lang,
        title=" · ".join((title, t("app.title", lang))),
        active="review",
        body=[html.Div(className="os-review", children=body)],
        class_name="os-page-review",
    )


# the browser's own print: with the print stylesheet, "save as PDF" gives the review's PDF
clientside_callback(
    "function (n) { if (n) { window.print(); } return window.dash_clientside.no_update; }",
    Output(PRINT, "title"),
    Input(PRINT, "n_clicks"),
    prevent_initial_call=True,
)
