"""Scenario views `/topic/<code>` (专题): flood and typhoon, power, water, gas, elderly care and
weather — the scenario's figures, its map, its 24 h of incidents and 预警, and its feed."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.i18n import name, t
from components.notfound import not_found_page
from components.replay import page_replay, stamp
from components.shell import create_page
from components.state import href, language
from components.topics import PERSONAL_TOPICS, TOPICS, topic_links
from panels import AREAS, FEED, MARKERS, TIMELINE
from panels.base import View
from panels.city_map import city_map_panel, first_map
from panels.markers import sent_store
from panels.place import PagePlace, place
from panels.topic import TOPIC_FIGURES, TOPIC_TREND, points_layer
from panels.units import RESOURCES, UNITS
from panels.units import sent_store as units_sent_store
from panels.warning_actions import warning_form
from web.session import current_principal

TOPIC_STATE = "topic-state"


def _title(code: str | None = None, **_other: str) -> str:
    known = code in TOPICS
    return f"{t(f'topic.{code}', 'zh')} · 一屏观全城" if known else "专题 · 一屏观全城"


dash.register_page(__name__, path_template="/topic/<code>", title=_title, name="topic")


def _topic(values: dict[str, Any]) -> str | None:
    """The page's scenario, if it is one."""
    state = values.get("page")
    topic = state.get("topic") if isinstance(state, dict) else None
    return topic if topic in TOPICS else None


def _district(state: object) -> str | None:
    """The page's district (None: the city), only if it is one the viewer may see."""
    district = state.get("district") if isinstance(state, dict) else None
    if district is None:
        return None
    principal = current_principal()
    if district not in reference.districts() or principal is None or not principal.allows(district):
        # a forged district: the database would show nothing of it anyway
        raise PreventUpdate
    return str(district)


def topic_view(values: dict[str, Any]) -> View:
    """The page's view: its scenario, as the category every panel follows, in its place."""
    topic = _topic(values)
    if topic is None:
        raise PreventUpdate
    return View(category=topic, district=_district(values.get("page")))


def _placement(name: str, level: str) -> PagePlace:
    """The scenario view's panels, placed on the city's map or on a district's streets."""
    placement = PagePlace(
        name=name,
        level=level,
        controls=("at",),
        view=topic_view,
        scope_state=(("page", State(TOPIC_STATE, "data")),),
        masked=lambda values: _topic(values) in PERSONAL_TOPICS,
        # a scenario's district map draws its devices beyond their lines, not the clusters
        devices=False,
        units=True,
    )
    place(placement, AREAS)
    place(placement, TOPIC_FIGURES)
    place(placement, UNITS, RESOURCES)
    # the scenario's chart arrives with the timeline: one deferred request for both charts
    place(placement, TIMELINE, TOPIC_TREND)
    # the feed and the markers both read the live incidents: one request for both
    place(placement, FEED, MARKERS)
    return placement


TOPIC = _placement("topic", "city")
TOPIC_DISTRICT = _placement("topic-district", "district")


def layout(
    code: str | None = None,
    lang: str | None = None,
    district: str | None = None,
    at: str | None = None,
    **_other: str,
) -> html.Div:
    """The scenario `code` in the URL's language, of the city or of `district` (at `at=` when
    replaying: read only, so without the form that sets a level)."""
    lang = language(lang)
    moment, replay = page_replay(at, lang=lang)
    if code not in TOPICS or (district is not None and district not in reference.districts()):
        return not_found_page(lang, t("topic.not_found", lang))
    principal = current_principal()
    if district is not None and not (principal and principal.allows(district)):
        return not_found_page(lang, t("auth.forbidden", lang))
    placement = TOPIC if district is None else TOPIC_DISTRICT
    values: dict[str, Any] = {
        "lang": lang,
        "page": {"topic": code, "district": district},
        "at": stamp(moment),
    }
    first = first_map(placement, values)
    look = placement.look(values)
    where = (
        t("topic.whole_city", lang)
        if district is None
        else name(reference.districts()[district], lang)
    )
    body = [
        dcc.Store(id=TOPIC_STATE, data={"topic": code, "district": district}),
        dcc.Store(id=placement.id_of("map-sent"), data=first.values["map-sent"] if first else None),
        sent_store(look),
        units_sent_store(look),
        replay,
        html.Div(
            className="os-topic-bar",
            children=[
                html.Div(
                    className="os-topic-left",
                    children=[
                        topic_links(code, lang, district=district),
                        _up_link(code, lang, district),
                    ],
                ),
                None if moment else warning_form(code, lang, district=district),
            ],
        ),
        html.Div(
            className="os-grid os-grid-topic",
            children=[
                city_map_panel(
                    placement,
                    lang,
                    first,
                    title=t("topic.map", lang, topic=t(f"topic.{code}", lang), place=where),
                    layers=(points_layer(look, None), *UNITS.create(look)),
                    district=district,
                ),
                html.Div(
                    className="os-side os-side-topic",
                    children=[
                        TOPIC_FIGURES.create(look),
                        RESOURCES.create(look),
                        TOPIC_TREND.create(look),
                        TIMELINE.create(look),
                        FEED.create(look),
                    ],
                ),
            ],
        ),
    ]
    return create_page(
        lang=lang,
        title=f"{t(f'topic.{code}', lang)} · {t('app.title', lang)}"
        if district is None
        else f"{t(f'topic.{code}', lang)} · {where} · {t('app.title', lang)}",
        active="topics",
        body=body,
        class_name=f"os-page-topic os-topic-{code}",
    )


def _up_link(code: str, lang: str, district: str | None) -> dcc.Link | None:
    """On a district's scenario view, the way back to the city's."""
    if district is None:
        return None
    return dcc.Link(
        t("topic.to_city", lang),
        href=href(f"/topic/{code}", lang=lang),
        className="os-topic-link os-topic-up",
    )


@callback(
    Output(ids.URL, "href", allow_duplicate=True),
    Input(TOPIC.id_of("areas"), "clickData"),
    State(TOPIC_STATE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def drill_down(feature: dict | None, state: dict | None, lang: str):
    """Clicking a district opens the scenario in that district."""
    code = (feature or {}).get("properties", {}).get("code") if isinstance(feature, dict) else None
    topic = state.get("topic") if isinstance(state, dict) else None
    if not isinstance(code, str) or code not in reference.districts() or topic not in TOPICS:
        raise PreventUpdate
    return href(f"/topic/{topic}", lang=language(lang), district=code)
