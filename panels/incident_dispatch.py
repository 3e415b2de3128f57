"""The dispatch panel of an incident's detail (调度): units already sent, with their status and
estimated arrival; the fastest suitable available units, each with a send button; and the sent
and suggested units with their routes on the incidents map.

Everything runs in the session's scope: row-level security decides which units a person sees
and may send (a district's own and the city's lent to it); whatever the browser sends, the
server re-checks that the unit is still available (of two dispatchers, one wins).
"""

from __future__ import annotations

import logging
from typing import Any

from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import ids
from components.callbacks import CallbackSet
from components.i18n import t
from components.resources import minutes, sent_row, suggestion_row
from components.state import language
from components.unit_layer import EMPTY, unit_features
from data.dispatch import dispatch_unit, event_lead, move_unit, suggest_units, units_on_job
from data.errors import READ_ERRORS, report_failure
from data.resources import ResourceError
from panels.incident_actions import act_as_principal, outdate_district
from panels.reads import now, read_fresh
from web.services import web_engine
from web.session import client_address, current_principal

# registered on each app by create_app()
CALLBACKS = CallbackSet()

log = logging.getLogger(__name__)

DISPATCH = "incidents-dispatch"
DISPATCH_DONE = "incidents-dispatch-done"
DISPATCH_MESSAGE = "incidents-dispatch-message"
DISPATCH_ACTION = "os-dispatch-action"  # pattern id type: {"type", "action", "unit"}
EVENT_DISPATCH = "incidents-event-dispatch"
EVENT_DISPATCH_MESSAGE = "incidents-event-dispatch-message"
# pattern id type: {"type", "unit", "incident"} — a unit for an event's lead member
EVENT_SEND = "os-event-send"
INCIDENT_UNITS = "incidents-units"
SUGGESTIONS = 5


def create_incident_dispatch(lang: str) -> html.Div:
    """The (initially empty) dispatch area under an incident's handling form."""
    return html.Div(
        className="os-dispatch",
        children=[
            dcc.Store(id=DISPATCH_DONE, data=0),
            html.Div(id=DISPATCH),
            html.Div(id=DISPATCH_MESSAGE, className="os-action-message", role="status"),
        ],
    )


def create_event_dispatch() -> html.Div:
    """The (initially empty) line of an event's bar with the units to send to it."""
    return html.Div(
        className="os-dispatch os-event-dispatch",
        children=[
            html.Div(id=EVENT_DISPATCH),
            html.Div(id=EVENT_DISPATCH_MESSAGE, className="os-action-message", role="status"),
        ],
    )


def _button(action: str, unit: int, lang: str) -> html.Button:
    label = {"send": "dispatch.send", "arrive": "dispatch.arrive", "release": "dispatch.release"}
    return html.Button(
        t(label[action], lang),
        id={"type": DISPATCH_ACTION, "action": action, "unit": unit},
        className=f"os-action os-dispatch-{action}",
        n_clicks=0,
    )


def _incident_id(value: object) -> int | None:
    return value if type(value) is int and 0 < value < 2**63 else None


@CALLBACKS.callback(
    Output(DISPATCH, "children"),
    Output(INCIDENT_UNITS, "data"),
    Input(ids.INCIDENT_SELECTED, "data"),
    Input(DISPATCH_DONE, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.LANG, "data"),
)
def update_dispatch(selected, _done, _tick, lang):
    """The selected incident's sent units and suggestions, and both on the map."""
    lang = language(lang)
    principal = current_principal()
    chosen = _incident_id(selected)
    if principal is None or chosen is None:
        return [], EMPTY
    try:
        sent = read_fresh(units_on_job, incident_id=chosen).value
        offers = read_fresh(suggest_units, incident_id=chosen, k=SUGGESTIONS).value
        clock = now().value
    except READ_ERRORS as exc:
        report_failure(log, "dispatch panel unavailable", exc)
        raise PreventUpdate from None
    acting = principal.can_act
    rows: list[Any] = [html.Div(t("panel.dispatch", lang), className="os-legend-title")]
    if sent:
        rows.append(html.Div(t("dispatch.sent", lang), className="os-dispatch-meta"))
        rows += [
            sent_row(
                unit,
                lang=lang,
                now=clock,
                buttons=[
                    _button(a, int(unit["id"]), lang)
                    for a in (
                        ("arrive", "release") if unit["status"] != "on_site" else ("release",)
                    )
                ]
                if acting
                else [],
            )
            for unit in sent
        ]
    rows.append(html.Div(t("dispatch.suggested", lang), className="os-dispatch-meta"))
    rows += [
        suggestion_row(
            s, lang=lang, button=_button("send", s.resource_id, lang) if acting else None
        )
        for s in offers
    ] or [html.Div(t("dispatch.none_available", lang), className="os-empty")]
    rows.append(html.Div(t("dispatch.estimate", lang), className="os-dispatch-note"))
    return rows, _map_layer(sent, offers, lang=lang)


def _map_layer(sent: list[dict[str, Any]], offers: list[Any], *, lang: str) -> dict[str, Any]:
    """Sent units with their routes, and the suggested ones, as one layer's features."""
    rows = [
        {**unit, "unit_class": "vehicle", "parked": False, "target_lon": unit["target_lon"]}
        for unit in sent
    ] + [
        {
            "id": s.resource_id,
            "name_zh": s.name_zh,
            "name_en": s.name_en,
            "kind_code": s.kind_code,
            "unit_class": "vehicle",
            "status": "available",
            "lon": round(s.lon, 5),
            "lat": round(s.lat, 5),
            "parked": False,
            "target_lon": None,
            "target_lat": None,
        }
        for s in offers
    ]
    return unit_features(rows, lang=lang, wall=False)[1]


@CALLBACKS.callback(
    Output(DISPATCH_MESSAGE, "children"),
    Output(DISPATCH_DONE, "data"),
    Input({"type": DISPATCH_ACTION, "action": ALL, "unit": ALL}, "n_clicks"),
    State(ids.INCIDENT_SELECTED, "data"),
    State(DISPATCH_DONE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def act(clicks, selected, done, lang):
    """Send, mark arrived or release the clicked unit as the signed-in person."""
    lang = language(lang)
    trigger = ctx.triggered_id
    chosen = _incident_id(selected)
    if not isinstance(trigger, dict) or chosen is None:
        raise PreventUpdate

    def work(actor: str) -> str:
        text = _apply(
            trigger.get("action"), trigger.get("unit"), incident_id=chosen, actor=actor, lang=lang
        )
        # the incident's district and the city show the unit's new state at their next refresh
        outdate_district(chosen)
        return text

    return act_as_principal(
        clicks, done, lang, work=work, refused=(ResourceError,), failure="dispatch action failed"
    )


def _apply(action: object, unit: object, *, incident_id: int, actor: str, lang: str) -> str:
    """Carry out one dispatch action; what to tell the person."""
    if type(unit) is not int:
        raise ResourceError("no such unit")
    if action == "send":
        sent = dispatch_unit(
            web_engine(),
            resource_id=unit,
            incident_id=incident_id,
            actor=actor,
            address=client_address(),
        )
        return t("dispatch.done", lang, unit=sent["code"], eta=minutes(sent["eta_s"]))
    if action not in ("arrive", "release"):
        raise ResourceError("unknown unit action")
    status = move_unit(
        web_engine(), resource_id=unit, action=str(action), actor=actor, address=client_address()
    )
    return t("dispatch.moved", lang, unit=f"#{unit}", status=t(f"unit.status.{status}", lang))


@CALLBACKS.callback(
    Output(EVENT_DISPATCH, "children"),
    Input(ids.INCIDENT_EVENT, "data"),
    Input(DISPATCH_DONE, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.LANG, "data"),
)
def update_event_dispatch(event, _done, _tick, lang):
    """For an event: its lead member (open critical first, oldest first) and the fastest
    suitable units to send there."""
    lang = language(lang)
    principal = current_principal()
    chosen = _incident_id(event)
    if principal is None or chosen is None:
        return []
    try:
        lead = read_fresh(event_lead, event_id=chosen).value
        offers = read_fresh(suggest_units, incident_id=lead, k=3).value if lead else []
    except READ_ERRORS as exc:
        report_failure(log, "event dispatch unavailable", exc)
        raise PreventUpdate from None
    if lead is None:
        return []
    rows: list[Any] = [
        html.Div(t("dispatch.event_lead", lang, id=lead), className="os-dispatch-meta")
    ]
    rows += [
        suggestion_row(
            s,
            lang=lang,
            button=html.Button(
                t("dispatch.send", lang),
                id={"type": EVENT_SEND, "unit": s.resource_id, "incident": lead},
                className="os-action os-dispatch-send",
                n_clicks=0,
            )
            if principal.can_act
            else None,
        )
        for s in offers
    ] or [html.Div(t("dispatch.none_available", lang), className="os-empty")]
    return rows


@CALLBACKS.callback(
    Output(EVENT_DISPATCH_MESSAGE, "children"),
    Output(DISPATCH_DONE, "data", allow_duplicate=True),
    Input({"type": EVENT_SEND, "unit": ALL, "incident": ALL}, "n_clicks"),
    State(DISPATCH_DONE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def send_for_event(clicks, done, lang):
    """Send the clicked unit to the event's lead member as the signed-in person."""
    lang = language(lang)
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict):
        raise PreventUpdate

    def work(actor: str) -> str:
        incident = _incident_id(trigger.get("incident"))
        if incident is None:
            raise ResourceError("no such open incident or task")
        text = _apply("send", trigger.get("unit"), incident_id=incident, actor=actor, lang=lang)
        outdate_district(incident)
        return text

    return act_as_principal(
        clicks, done, lang, work=work, refused=(ResourceError,), failure="event dispatch failed"
    )
