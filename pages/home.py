"""City overview `/` (一屏观全域): 城市体征 strip, district map, status tiles, incident timeline
and feed."""

from __future__ import annotations

import logging

import dash
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.core_inset import sync_inset
from components.filters import chosen_category, filter_bar
from components.i18n import name, t
from components.replay import page_replay, stamp
from components.shell import create_page
from components.state import METRICS, STACKS, href, language, pick
from data.errors import READ_ERRORS
from panels import AREAS, FEED, MARKERS, TILES, TIMELINE, VITALS, WARNINGS
from panels.base import View
from panels.city_map import city_map_panel, first_map
from panels.markers import sent_store
from panels.place import PagePlace, place
from web.session import current_principal

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/", title="一屏观全城 · OneScreen", name="overview")

OVERVIEW = PagePlace(
    name="overview",
    level="city",
    controls=("category", "metric", "stack", "at"),
    view=lambda values: View(category=chosen_category(values.get("category"))),
)
place(OVERVIEW, AREAS)
# one request per refresh for the key figures and the vital signs above them
place(OVERVIEW, TILES, VITALS, WARNINGS)
place(OVERVIEW, TIMELINE)
# the feed and the markers both read the live incidents: one request for both
place(OVERVIEW, FEED, MARKERS)
# the 中心城区 inset takes the city map's colours and labels
sync_inset(
    dash.clientside_callback,
    areas=ids.OVERVIEW_AREAS,
    labels=ids.OVERVIEW_LABELS,
    id_of=OVERVIEW.id_of,
)


def _districts_home(districts: tuple[str, ...], lang: str) -> html.Div:
    """The start page of someone who works in some districts only: a way into each."""
    names = reference.districts()
    cards = [
        dcc.Link(
            name(names[code], lang) if code in names else code,
            href=href(f"/district/{code}", lang=lang),
            className="os-district-card",
        )
        for code in districts
    ]
    return create_page(
        lang=lang,
        title=f"{t('nav.overview', lang)} · {t('app.title', lang)}",
        active="overview",
        body=[html.Div(cards, className="os-district-cards")],
    )


def layout(
    lang: str | None = None,
    metric: str | None = None,
    category: str | None = None,
    stack: str | None = None,
    at: str | None = None,
    **_other: str,
) -> html.Div:
    """The overview in the URL's language, metric and category (at `at=` when replaying)."""
    lang = language(lang)
    moment, replay = page_replay(at, lang=lang)
    principal = current_principal()
    if principal is not None and not principal.sees_city:
        return _districts_home(principal.districts, lang)
    try:
        known = reference.categories()
    except READ_ERRORS:
        known = {}
    values = {
        "lang": lang,
        "metric": pick(metric, METRICS, METRICS[0]).value,
        "stack": pick(stack, STACKS, STACKS[0]).value,
        "category": pick(category, list(known), None).value,
        "at": stamp(moment),
    }
    first = first_map(OVERVIEW, values)
    look = OVERVIEW.look(values)
    body = [
        # digests of the map layers' first hideout and labels, so a refresh sends only changes
        dcc.Store(id=OVERVIEW.id_of("map-sent"), data=first.values["map-sent"] if first else None),
        sent_store(look),
        replay,
        html.Div(
            className="os-bar-row",
            children=[
                filter_bar(
                    lang, metric=look.metric, category=values["category"], stack=values["stack"]
                ),
                # each scenario's warning level, a link to its view
                WARNINGS.create(look),
            ],
        ),
        # 城市体征: a slim row of the city's vital signs above the map and tiles
        VITALS.create(look),
        html.Div(
            className="os-grid os-grid-overview",
            children=[
                city_map_panel(OVERVIEW, lang, first),
                html.Div(
                    className="os-side",
                    children=[TILES.create(look), TIMELINE.create(look), FEED.create(look)],
                ),
            ],
        ),
    ]
    return create_page(
        lang=lang,
        title=f"{t('app.title', lang)} · {t('nav.overview', lang)}",
        active="overview",
        body=body,
        class_name="os-page-overview",
    )


@callback(
    Output(ids.URL, "href", allow_duplicate=True),
    Input(ids.OVERVIEW_AREAS, "clickData"),
    State(ids.METRIC, "value"),
    State(ids.CATEGORY, "value"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def drill_down(feature: dict | None, metric: str, category: str, lang: str):
    """Clicking a district opens its page with the same metric and category."""
    code = (feature or {}).get("properties", {}).get("code") if isinstance(feature, dict) else None
    if not isinstance(code, str) or code not in reference.districts():
        raise PreventUpdate
    return href(
        f"/district/{code}",
        lang=language(lang),
        metric=None if metric == METRICS[0] else pick(metric, METRICS, None).value,
        category=chosen_category(category),
    )
