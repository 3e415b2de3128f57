"""The incident handling form: comment, assignee, and the actions the incident's status allows.

Shown only to people who may act; whatever the browser sends, the change runs in the session's
scope (row-level security) as the signed-in person, and the server re-checks the transition.
The form is redrawn only when the selected incident or its status changes, so a refresh never
wipes a comment being typed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import ids
from components.callbacks import CallbackSet
from components.filters import dropdown
from components.i18n import t
from components.state import language
from data.errors import READ_ERRORS, report_failure
from data.incident_reads import incident_detail
from data.incidents import (
    MAX_NOTE_CHARS,
    IncidentActionError,
    allowed_actions,
    assignees,
    handle_incident,
)
from data.scope import current_scope, district_tags
from panels.reads import read, read_fresh, shared_cache
from web.services import web_engine
from web.session import client_address, current_principal

# registered on each app by create_app()
CALLBACKS = CallbackSet()

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def create_incident_actions(lang: str) -> html.Div:
    """The (initially empty) handling area under an incident's detail."""
    return html.Div(
        className="os-actions-box",
        children=[
            dcc.Store(id=ids.INCIDENT_ACTIONS_SHOWN),
            dcc.Store(id=ids.INCIDENT_ACTION_DONE, data=0),
            html.Div(id=ids.INCIDENT_ACTIONS),
            html.Div(id=ids.INCIDENT_ACTION_MESSAGE, className="os-action-message", role="status"),
        ],
    )


def _incident_id(value: object) -> int | None:
    return value if type(value) is int and 0 < value < 2**63 else None


def actions_form(incident: dict, *, lang: str, options: list[dict]) -> list:
    """Comment box, assignee picker and one button per allowed action."""
    actions = allowed_actions(incident["status"])
    buttons = [
        html.Button(
            t(f"action.{action}", lang),
            id={"type": ids.INCIDENT_ACTION, "action": action},
            className=f"os-action os-action-{action}",
            n_clicks=0,
        )
        for action in actions
    ]
    return [
        html.Div(t("action.title", lang), className="os-legend-title"),
        dcc.Textarea(
            id=ids.INCIDENT_NOTE,
            className="os-action-comment",
            placeholder=t("action.note_placeholder", lang),
            maxLength=MAX_NOTE_CHARS,
            value="",
        ),
        html.Div(
            className="os-action-row",
            children=[
                html.Div(
                    dropdown(
                        ids.INCIDENT_ASSIGNEE,
                        options,
                        incident.get("assignee"),
                        lang=lang,
                        placeholder="action.choose_assignee",
                        searchable=True,
                    ),
                    className="os-action-assignee",
                    title=t("action.assignee", lang),
                )
                if "assign" in actions
                else dcc.Store(id=ids.INCIDENT_ASSIGNEE),
                *buttons,
            ],
        ),
    ]


@CALLBACKS.callback(
    Output(ids.INCIDENT_ACTIONS, "children"),
    Output(ids.INCIDENT_ACTIONS_SHOWN, "data"),
    Input(ids.INCIDENT_SELECTED, "data"),
    Input(ids.INCIDENT_ACTION_DONE, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.INCIDENT_ACTIONS_SHOWN, "data"),
    State(ids.LANG, "data"),
)
def update_actions(selected, _done, _tick, shown, lang):
    """The form for the selected incident, redrawn only when its status or assignee changed."""
    lang = language(lang)
    principal = current_principal()
    chosen = _incident_id(selected)
    if principal is None or chosen is None:
        return [], None
    if not principal.can_act:
        return html.Div(t("action.read_only", lang), className="os-empty"), "read-only"
    try:
        incident = read_fresh(incident_detail, incident_id=chosen).value
        if incident is None:
            return [], None
        key = f"{chosen}:{incident['status']}:{incident.get('assignee')}"
        if key == shown:
            raise PreventUpdate
        people = read(assignees, district=incident["district_adcode"]).value
    except READ_ERRORS as exc:
        report_failure(log, "incident actions unavailable", exc)
        raise PreventUpdate from None
    options = [
        {
            "label": (p.label_en if lang == "en" else p.label_zh)
            + (f" ({p.key.split(':', 1)[1]})" if p.key.startswith("user:") else ""),
            "value": p.key,
        }
        for p in people
    ]
    return actions_form(incident, lang=lang, options=options), key


@CALLBACKS.callback(
    Output(ids.INCIDENT_ACTION_MESSAGE, "children"),
    Output(ids.INCIDENT_ACTION_DONE, "data"),
    Output(ids.INCIDENT_NOTE, "value"),
    Input({"type": ids.INCIDENT_ACTION, "action": ALL}, "n_clicks"),
    State(ids.INCIDENT_SELECTED, "data"),
    State(ids.INCIDENT_NOTE, "value"),
    State(ids.INCIDENT_ASSIGNEE, "value"),
    State(ids.INCIDENT_ACTION_DONE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def act(clicks, selected, note, assignee, done, lang):
    """Apply the clicked action as the signed-in person; say what happened."""
    lang = language(lang)
    action = clicked_action(clicks)
    chosen = _incident_id(selected)
    if chosen is None:
        raise PreventUpdate
    _, refusal = attempt(
        lang, handle_incident, action=action, note=note, assignee=assignee, incident_id=chosen
    )
    if refusal is not None:
        return refusal, dash.no_update, dash.no_update
    outdate_district(chosen)
    counter = done + 1 if isinstance(done, int) else 1
    done_text = t("action.done", lang, action=t(f"action.{action}", lang))
    return action_message(done_text, ok=True), counter, ""


def outdate_district(incident_id: int) -> None:
    """Make every next read of the incident's district and of the city see the change; the
    other districts' shared results stay (an unknown district outdates everything)."""
    try:
        incident = read(incident_detail, incident_id=incident_id).value
    except READ_ERRORS as exc:
        report_failure(log, "incident district unknown, every result outdated", exc)
        incident = None
    district = incident.get("district_adcode") if incident is not None else None
    if not isinstance(district, str):
        shared_cache().clear()
        return
    shared_cache().invalidate(*district_tags(district))


def clicked_action(clicks: list) -> str:
    """The action of the form's button that was clicked (PreventUpdate when none was)."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(isinstance(c, int) and c > 0 for c in clicks):
        raise PreventUpdate
    action = trigger.get("action")
    if not isinstance(action, str):
        raise PreventUpdate
    return action


def attempt(
    lang: str,
    handler: Callable[..., _T],
    *,
    action: str,
    note: object,
    assignee: object,
    **target: Any,
) -> tuple[_T | None, html.Span | None]:
    """Apply `action` with `handler` (to `target`) as the signed-in person, if they may act:
    its result, or the message saying why not (nothing of a failure's insides is shown)."""
    principal = current_principal()
    if principal is None:
        raise PreventUpdate
    if not principal.can_act or current_scope().actor != principal.username:
        return None, action_message(t("action.read_only", lang), ok=False)
    try:
        return handler(
            web_engine(),
            action=action,
            actor=principal.username,
            note=note if isinstance(note, str) else "",
            assignee=assignee if isinstance(assignee, str) else None,
            address=client_address(),
            **target,
        ), None
    except IncidentActionError as exc:
        return None, action_message(str(exc), ok=False)
    except READ_ERRORS as exc:
        report_failure(log, "incident action failed", exc)
        return None, action_message(t("panel.unavailable", lang), ok=False)


def action_message(text: str, *, ok: bool) -> html.Span:
    """What an action's form says after a click."""
    return html.Span(text, className="os-action-ok" if ok else "os-action-error")


def act_as_principal(
    clicks: object,
    done: object,
    lang: str,
    *,
    work: Callable[[str], str],
    refused: tuple[type[Exception], ...],
    failure: str,
) -> tuple[html.Span, Any]:
    """The frame every unit or task button shares: a real click by someone signed in who may
    act, `work(their name)` done, and what to tell them (a refusal as it is said, an outage as
    unavailable); the done counter moves only when it worked."""
    if not isinstance(clicks, list) or not any(isinstance(c, int) and c > 0 for c in clicks):
        raise PreventUpdate
    principal = current_principal()
    if principal is None:
        raise PreventUpdate
    if not principal.can_act:
        return action_message(t("action.read_only", lang), ok=False), dash.no_update
    try:
        text = work(principal.username)
    except refused as exc:
        return action_message(str(exc), ok=False), dash.no_update
    except READ_ERRORS as exc:
        report_failure(log, failure, exc)
        return action_message(t("panel.unavailable", lang), ok=False), dash.no_update
    return action_message(text, ok=True), (done + 1 if isinstance(done, int) else 1)
