"""Setting a scenario's warning level by hand: a level (or back to the rules), for how long and
why. Shown only to people who may act; the database decides whether the level is theirs to set
(the city's needs the whole city), and the change is logged and audited."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.callbacks import CallbackSet
from components.filters import Option, dropdown
from components.i18n import t
from components.state import language
from components.topics import TOPICS
from components.warnings import ROMAN, level_badge
from data.scope import CITY
from data.warnings import ACTIONS, HOURS, MAX_REASON_CHARS, set_warning
from panels.incident_actions import action_message, attempt
from panels.reads import shared_cache
from web.session import current_principal

# registered on each app by create_app()
CALLBACKS = CallbackSet()

LEVEL = "warn-level"
HOURS_ID = "warn-hours"
REASON = "warn-reason"
SET = "warn-set"
MESSAGE = "warn-message"
TOPIC_ID = "warn-topic"


def _choices(lang: str) -> list[Option]:
    """The levels an operator may hold, most severe first, then none and back to the rules."""
    levels = [
        {
            "label": t("warn.level", lang, roman=ROMAN[n], colour=t(f"warn.colour{n}", lang)),
            "value": f"level-{n}",
        }
        for n in (1, 2, 3, 4)
    ]
    return [
        *levels,
        {"label": t("warn.none", lang), "value": "level-0"},
        {"label": t("warn.auto", lang), "value": "auto"},
    ]


def warning_form(topic: str, lang: str, *, district: str | None = None) -> html.Div | None:
    """The form of the city's level of `topic`, or of `district`'s, for people who may act
    there (None for the rest: the database decides again when they submit)."""
    principal = current_principal()
    if principal is None or not principal.can_act or topic not in TOPICS:
        return None
    if not principal.allows(district or CITY):
        return None
    return html.Div(
        className="os-warn-form",
        children=[
            dcc.Store(id=TOPIC_ID, data={"topic": topic, "district": district or ""}),
            html.Span(t("warn.title", lang), className="os-legend-title"),
            html.Div(
                dropdown(LEVEL, _choices(lang), "level-4", lang=lang), className="os-warn-pick"
            ),
            html.Div(
                dropdown(
                    HOURS_ID,
                    [{"label": t("warn.hours", lang, n=h), "value": str(h)} for h in HOURS],
                    "6",
                    lang=lang,
                ),
                className="os-warn-hours",
            ),
            dcc.Input(
                id=REASON,
                className="os-action-comment",
                maxLength=MAX_REASON_CHARS,
                placeholder=t("warn.reason", lang),
                value="",
            ),
            html.Button(t("warn.set", lang), id=SET, className="os-action", n_clicks=0),
            html.Span(id=MESSAGE, role="status", className="os-action-message"),
        ],
    )


def _where(value: object) -> tuple[str, str]:
    """The scenario and district ('' for the city) the browser sent; set_warning refuses
    anything else, so a forged one is only passed on as text."""
    if not isinstance(value, dict):
        return "", ""
    topic, district = value.get("topic"), value.get("district")
    return (
        topic if isinstance(topic, str) else "",
        district if isinstance(district, str) else "",
    )


def _hours(value: object) -> int | None:
    """The hours the browser sent, as a number if it is one."""
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 4 else None


@CALLBACKS.callback(
    Output(MESSAGE, "children"),
    Output(REASON, "value"),
    Input(SET, "n_clicks"),
    State(LEVEL, "value"),
    State(HOURS_ID, "value"),
    State(REASON, "value"),
    State(TOPIC_ID, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def set_level(clicks, level, hours, reason, where, lang):
    """Set the level of the page's scenario in its place (the city, or its district) as the
    signed-in person; say what happened."""
    lang = language(lang)
    if not clicks:
        raise PreventUpdate
    action = level if isinstance(level, str) and level in ACTIONS else ""
    topic, district = _where(where)
    done, refusal = attempt(
        lang,
        set_warning,
        action=action,
        note=reason,
        assignee=None,
        topic=topic,
        district=district,
        hours=_hours(hours),
    )
    if refusal is not None:
        return refusal, reason
    # a level shows on every page of its place and the city's (the city is at its worst
    # district's): every scope's answers are read afresh
    shared_cache().invalidate(CITY, *reference.districts())
    badge = level_badge((done or {}).get("level"), lang)
    return action_message(t("warn.done", lang, level=badge.children), ok=True), ""
