"""Scenario views `/topic/<code>` (专题): flood and typhoon, power, water, gas, elderly care and
weather — the scenario's figures, its map, its 24 h of incidents and 预警, and its feed."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.i18n import t
from components.notfound import not_found_page
from components.shell import create_page
from components.state import href, language
from components.topics import PERSONAL_TOPICS, TOPICS, topic_links
from panels import AREAS, FEED, MARKERS, TIMELINE
from panels.base import View
from panels.city_map import city_map_panel, first_map
from panels.markers import sent_store
from panels.place import PagePlace, place
from panels.topic import TOPIC_FIGURES, TOPIC_TREND, points_layer
from panels.warning_actions import warning_form

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


def topic_view(values: dict[str, Any]) -> View:
    """The page's view: its scenario, as the category every panel follows."""
    topic = _topic(values)
    if topic is None:
        raise PreventUpdate
    return View(category=topic)


TOPIC = PagePlace(
    name="topic",
    level="city",
    controls=(),
    view=topic_view,
    scope_state=(("page", State(TOPIC_STATE, "data")),),
    masked=lambda values: _topic(values) in PERSONAL_TOPICS,
)
place(TOPIC, AREAS)
place(TOPIC, TOPIC_FIGURES)
# the scenario's chart arrives with the timeline: one deferred request for both charts
place(TOPIC, TIMELINE, TOPIC_TREND)
# the feed and the markers both read the live incidents: one request for both
place(TOPIC, FEED, MARKERS)


def layout(code: str | None = None, lang: str | None = None, **_other: str) -> html.Div:
    """The scenario `code` in the URL's language."""
    lang = language(lang)
    if code not in TOPICS:
        return not_found_page(lang, t("topic.not_found", lang))
    values: dict[str, Any] = {"lang": lang, "page": {"topic": code}}
    first = first_map(TOPIC, values)
    look = TOPIC.look(values)
    body = [
        dcc.Store(id=TOPIC_STATE, data={"topic": code}),
        dcc.Store(id=TOPIC.id_of("map-sent"), data=first.values["map-sent"] if first else None),
        sent_store(look),
        html.Div(
            className="os-topic-bar", children=[topic_links(code, lang), warning_form(code, lang)]
        ),
        html.Div(
            className="os-grid os-grid-topic",
            children=[
                city_map_panel(
                    TOPIC,
                    lang,
                    first,
                    title=t("topic.map", lang, topic=t(f"topic.{code}", lang)),
                    layers=(points_layer(look, None),),
                ),
                html.Div(
                    className="os-side os-side-topic",
                    children=[
                        TOPIC_FIGURES.create(look),
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
        title=f"{t(f'topic.{code}', lang)} · {t('app.title', lang)}",
        active="topics",
        body=body,
        class_name=f"os-page-topic os-topic-{code}",
    )


@callback(
    Output(ids.URL, "href", allow_duplicate=True),
    Input(TOPIC.id_of("areas"), "clickData"),
    State(TOPIC_STATE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def drill_down(feature: dict | None, state: dict | None, lang: str):
    """Clicking a district opens its page, on the scenario's category."""
    code = (feature or {}).get("properties", {}).get("code") if isinstance(feature, dict) else None
    topic = state.get("topic") if isinstance(state, dict) else None
    if not isinstance(code, str) or code not in reference.districts() or topic not in TOPICS:
        raise PreventUpdate
    return href(f"/district/{code}", lang=language(lang), category=topic)
