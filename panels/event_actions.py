"""The bar over the incident centre when it lists one event's members (`?event=G`): the event's
line, the way back to every line, and the form that acknowledges, assigns or annotates every
member at once.

Shown to everyone who can see the event; the form only to people who may act. Whatever the
browser sends, the change runs in the session's scope (row-level security): a district manager's
"all" is all of their districts' members. The form is redrawn only when the event changes, so a
refresh never wipes a comment being typed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import dash
from dash import ALL, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.callbacks import CallbackSet
from components.feed import event_row
from components.filters import dropdown, lookup
from components.i18n import t
from components.state import href, language
from data.errors import READ_ERRORS, report_failure
from data.event_reads import event_list
from data.events import EVENT_ACTIONS, handle_event
from data.incidents import MAX_NOTE_CHARS, assignees
from data.scope import district_tags
from panels.incident_actions import action_message, attempt, clicked_action
from panels.incident_dispatch import create_event_dispatch
from panels.reads import now, read, read_fresh, shared_cache
from web.session import current_principal

# registered on each app by create_app()
CALLBACKS = CallbackSet()

log = logging.getLogger(__name__)

# an event's members are listed whatever the window: an event lasts hours, not weeks
EVENT_WINDOW = timedelta(days=30)
BAR = "os-event-bar"


def create_event_bar(event_id: int | None, lang: str) -> html.Div:
    """The (initially empty) bar; hidden while the table lists every line."""
    return html.Div(
        id=ids.EVENT_BAR,
        className=BAR if event_id is not None else f"{BAR} os-hidden",
        children=[
            dcc.Store(id=ids.EVENT_FORM_SHOWN),
            dcc.Store(id=ids.EVENT_ACTION_DONE, data=0),
            html.Div(
                id=ids.EVENT_SUMMARY,
                className="os-event-summary",
                children=_back(event_id, lang) if event_id is not None else [],
            ),
            html.Div(id=ids.EVENT_FORM, className="os-event-form"),
            html.Div(id=ids.EVENT_ACTION_MESSAGE, className="os-action-message", role="status"),
            # the units to send to the event's most urgent member (panels/incident_dispatch.py)
            create_event_dispatch(),
        ],
    )


def _event_id(value: object) -> int | None:
    return value if type(value) is int and 0 < value < 2**63 else None


def _back(event_id: int, lang: str) -> list:
    """What says the table lists one event's members, and the way back to every line."""
    return [
        html.Span(t("group.only", lang, id=event_id), className="os-event-only"),
        dcc.Link(t("group.all", lang), href=href("/incidents", lang=lang)),
    ]


def event_form(*, lang: str, options: list[dict]) -> list:
    """Comment, assignee and one button per event action."""
    return [
        dcc.Input(
            id=ids.EVENT_NOTE,
            type="text",
            className="os-event-comment",
            placeholder=t("action.note_placeholder", lang),
            maxLength=MAX_NOTE_CHARS,
            value="",
            debounce=False,
        ),
        html.Div(
            dropdown(
                ids.EVENT_ASSIGNEE,
                options,
                None,
                lang=lang,
                placeholder="action.choose_assignee",
                searchable=True,
            ),
            className="os-action-assignee",
            title=t("action.assignee", lang),
        ),
        *[
            html.Button(
                t(f"group.act.{action}", lang),
                id={"type": ids.EVENT_ACTION, "action": action},
                className=f"os-action os-action-{action}",
                n_clicks=0,
            )
            for action in EVENT_ACTIONS
        ],
    ]


def _assignee_options(districts: list[str], lang: str) -> list[dict]:
    """Who can take any of the event's districts (each once): teams first, then people."""
    seen: dict[str, dict] = {}
    for district in districts:
        for person in read(assignees, district=district).value:
            label = person.label_en if lang == "en" else person.label_zh
            if person.key.startswith("user:"):
                label += f" ({person.key.split(':', 1)[1]})"
            seen.setdefault(person.key, {"label": label, "value": person.key})
    return sorted(seen.values(), key=lambda o: (not o["value"].startswith("team:"), o["value"]))


@CALLBACKS.callback(
    Output(ids.EVENT_BAR, "className"),
    Output(ids.EVENT_SUMMARY, "children"),
    Output(ids.EVENT_FORM, "children"),
    Output(ids.EVENT_FORM_SHOWN, "data"),
    Input(ids.INCIDENT_EVENT, "data"),
    Input(ids.EVENT_ACTION_DONE, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.EVENT_FORM_SHOWN, "data"),
    State(ids.LANG, "data"),
)
def update_event_bar(event, _done, _tick, shown, lang):
    """The event's line as the viewer may see it, and the form (redrawn when the event does)."""
    lang = language(lang)
    group_id = _event_id(event)
    if group_id is None:
        raise PreventUpdate
    try:
        clock = now().value
        found = read_fresh(
            event_list,
            start=clock - EVENT_WINDOW,
            end=clock + timedelta(minutes=1),
            group_id=group_id,
            limit=1,
        ).value
    except READ_ERRORS as exc:
        report_failure(log, "event bar unavailable", exc)
        raise PreventUpdate from None
    if found.empty:
        missing = html.Span(t("group.not_found", lang), className="os-unavailable")
        return BAR, [missing, *_back(group_id, lang)[1:]], [], None
    item = found.iloc[0].to_dict()
    summary = [
        event_row(item, lang=lang, categories=lookup(reference.categories), link=False),
        *_back(group_id, lang),
    ]
    principal = current_principal()
    if principal is None or not principal.can_act:
        return BAR, summary, html.Span(t("action.read_only", lang), className="os-empty"), None
    summary.append(
        html.Span(t("group.act.scope", lang, n=int(item["live"])), className="os-event-scope")
    )
    if shown == group_id:
        return BAR, summary, dash.no_update, dash.no_update
    try:
        options = _assignee_options(list(item["district_codes"]), lang)
    except READ_ERRORS as exc:
        report_failure(log, "event assignees unavailable", exc)
        options = []
    return BAR, summary, event_form(lang=lang, options=options), group_id


@CALLBACKS.callback(
    Output(ids.EVENT_ACTION_MESSAGE, "children"),
    Output(ids.EVENT_ACTION_DONE, "data"),
    Output(ids.EVENT_NOTE, "value"),
    Input({"type": ids.EVENT_ACTION, "action": ALL}, "n_clicks"),
    State(ids.INCIDENT_EVENT, "data"),
    State(ids.EVENT_NOTE, "value"),
    State(ids.EVENT_ASSIGNEE, "value"),
    State(ids.EVENT_ACTION_DONE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def act_on_event(clicks, event, note, assignee, done, lang):
    """Apply the clicked action to every member in reach, as the signed-in person."""
    lang = language(lang)
    action = clicked_action(clicks)
    group_id = _event_id(event)
    if group_id is None:
        raise PreventUpdate
    change, refusal = attempt(
        lang, handle_event, action=action, note=note, assignee=assignee, group_id=group_id
    )
    if refusal is not None or change is None:
        return refusal, dash.no_update, dash.no_update
    for district in change.districts:  # every touched district's shared results, and the city's
        shared_cache().invalidate(*district_tags(district))
    said = t("group.act.done", lang, action=t(f"group.act.{action}", lang), n=change.changed)
    if change.skipped:
        said += " · " + t("group.act.skipped", lang, n=change.skipped)
    counter = done + 1 if isinstance(done, int) else 1
    return action_message(said, ok=True), counter, ""
