"""A display's alerts: new critical incidents since its marks, the attention card, and the
browser-side schedule that rotates views and takes the screen for an alert."""

from __future__ import annotations

import logging
from datetime import timedelta

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx, dcc
from dash.exceptions import PreventUpdate
from sqlalchemy.engine import Engine

from components import ids, reference
from components.callbacks import CallbackSet
from components.feed import mask_personal
from components.i18n import name, t
from components.incident_detail import readings_figure
from components.theme import message_figure, wall_figure
from components.topic_trends import TRENDS, trend_figure, trend_query
from components.warnings import set_by_text, warning_badges
from data.asof import replay_args
from data.devices import device_series
from data.errors import READ_ERRORS, report_failure
from data.frames import stack
from data.incident_reads import (
    IncidentMarks,
    forecast_summary,
    imminent_forecasts,
    incident_detail,
    incident_marks,
    incident_watch,
    new_critical_incidents,
)
from data.vitals import measurand_hours
from data.warning_reads import warning_levels, warning_rises
from displays.access import app_version, checked, grant_for, replay_instant
from displays.cards import attention_children, kiosk_forecast_children, warning_children
from displays.slots import slot_id
from panels.reads import now, read
from web.services import web_engine

# registered on each app by create_app()
CALLBACKS = CallbackSet()

log = logging.getLogger(__name__)

ATTENTION_READINGS_MINUTES = 180
KIOSK_FORECASTS = "kiosk-forecasts"
# a critical 预警 takes the wall once its breach is expected within this (e.g. an underpass
# forecast to flood within half an hour)
FORECAST_ATTENTION_S = 1800


def _group(value: object) -> int | None:
    """An event id from a frame cell (None when the incident is in no event)."""
    return None if value is None or pd.isna(value) else int(value)  # type: ignore[call-overload]


def _records(frame: pd.DataFrame, *, masked: bool) -> list[dict]:
    """The new critical incidents and imminent critical 预警 as the schedule takes them (none on
    kiosks); the wall queues a 预警 once, however often it is reported."""
    rows = []
    for item in frame.to_dict("records"):
        expected = item.get("expected_at")
        rows.append(
            {
                "kind": "forecast" if item.get("kind") == "forecast" else "alarm",
                "expected": None
                if expected is None or pd.isna(expected)
                else int(pd.Timestamp(expected).timestamp() * 1000),
                "id": int(item["id"]),
                "district": item["district_adcode"],
                "street": item["street_code"] if isinstance(item["street_code"], str) else None,
                "lon": float(item["lon"]),
                "lat": float(item["lat"]),
                "severity": item["severity"],
                "category": item["category_code"],
                "group": _group(item.get("group_id")),
            }
        )
    return [] if masked else rows


def _news(
    engine: Engine, *, after: IncidentMarks | None, district: str | None, masked: bool
) -> tuple[pd.DataFrame, IncidentMarks]:
    """What may take the wall now: critical incidents new since `after`, then the critical 预警
    whose breach is near (none on kiosks); and the marks to ask from next time."""
    if after is None:
        return pd.DataFrame(), incident_marks(engine)
    fresh, marks = new_critical_incidents(engine, after=after, district=district)
    if masked:
        return fresh, marks
    coming = imminent_forecasts(engine, within_s=FORECAST_ATTENTION_S, district=district)
    return stack([fresh, coming]), marks


def _rises(
    engine: Engine, *, after: IncidentMarks | None, marks: IncidentMarks, district: str | None
) -> list[dict]:
    """The rises of the display's warning levels (the city's, or its district's) since the
    last poll, as records the schedule takes like an incident's (ids below zero)."""
    if after is None:
        return []
    rises = warning_rises(engine, after=after.settled, before=marks.settled, district=district)
    return [
        {
            "kind": "warning",
            "id": -int(rise["id"]),
            "district": district,
            "street": None,
            "category": rise["topic_code"],
            "severity": "critical",
            "level": int(rise["to_level"]),
            "from": None if rise["from_level"] is None else int(rise["from_level"]),
            "group": None,
            "expected": None,
        }
        for rise in rises
    ]


def _marks(data: object) -> IncidentMarks | None:
    """The marks a wall sent back, or None when they are missing, forged or from before
    revision 0010 (the wall then starts from now)."""
    try:
        settled = int(data["settled"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return IncidentMarks(settled) if 0 <= settled < 2**63 else None


@CALLBACKS.callback(
    Output(ids.WALL_ALERTS, "data"),
    Output(ids.WALL_MARKS, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.WALL_MARKS, "data"),
    State(ids.WALL_WATCH, "data"),
    State(ids.WALL_CONFIG, "data"),
)
def poll_alerts(tick, marks, watch, config):
    """New critical incidents since the marks, the status of those the wall is showing, and
    whether the token still holds."""
    version = app_version()
    if not isinstance(config, dict):
        raise PreventUpdate
    try:
        grant = grant_for(config.get("token"))
    except READ_ERRORS as exc:
        report_failure(log, "wall alerts: token check failed", exc)
        raise PreventUpdate from None
    if grant is None:
        return {"revoked": True, "tick": tick, "version": version}, dash.no_update
    if replay_instant(config) is not None:
        # a display replaying the past is not told what happens now
        return {"new": [], "statuses": {}, "groups": {}, "tick": tick, "version": version}, (
            dash.no_update
        )
    masked = grant.kind == "kiosk" or config.get("mode") == "kiosk"
    after = _marks(marks)
    watched = (
        [i for i in watch if type(i) is int and 0 < i < 2**63][:20]
        if isinstance(watch, list)
        else []
    )
    try:
        engine = web_engine()
        fresh, new_marks = _news(engine, after=after, district=grant.district, masked=masked)
        # a kiosk shows levels in its public strip, never as an alert
        rises = (
            [] if masked else _rises(engine, after=after, marks=new_marks, district=grant.district)
        )
        # kiosks never show alerts, so they learn nothing of incidents' statuses either
        states = {} if masked else incident_watch(engine, incident_ids=watched)
    except READ_ERRORS as exc:
        report_failure(log, "wall alerts failed", exc)
        raise PreventUpdate from None
    return (
        {
            "new": _records(fresh, masked=masked) + rises,
            "statuses": {str(k): state for k, (state, _) in states.items()},
            # the events they joined since: one event takes the wall once
            "groups": {str(k): group for k, (_, group) in states.items() if group is not None},
            "tick": tick,
            "version": version,
        },
        {"settled": str(new_marks.settled)},
    )


@CALLBACKS.callback(
    Output(ids.WALL_ATTENTION_BODY, "children"),
    Output(ids.WALL_ATTENTION_CHART_BOX, "children"),
    Output(ids.WALL_QUEUE, "children"),
    Input(ids.WALL_ATTENTION, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.WALL_CONFIG, "data"),
    prevent_initial_call=True,
)
def update_attention(attention, _tick, config):
    """The attention card: the incident, its latest readings, how many more are waiting."""
    grant, lang, masked = checked(config)
    if masked or not isinstance(attention, dict) or not isinstance(attention.get("incident"), dict):
        if ctx.triggered_id == ids.REFRESH:
            raise PreventUpdate
        # the chart stays mounted (hidden with the card): mounting plotly anew for every alert
        # would leave its detached nodes behind over weeks
        return [], dash.no_update, ""
    if attention["incident"].get("kind") == "warning":
        return _warning_card(attention, grant_district=grant.district, lang=lang)
    try:
        incident_id = int(attention["incident"]["id"])
    except (KeyError, TypeError, ValueError):
        raise PreventUpdate from None
    try:
        engine = web_engine()
        incident = incident_detail(engine, incident_id=incident_id)
        if incident is None or (
            grant.district is not None and incident["district_adcode"] != grant.district
        ):
            raise PreventUpdate
        clock = now().value
        figure = message_figure(t("device.no_reading", lang))
        if incident.get("device_id"):
            series = device_series(
                engine,
                device_id=int(incident["device_id"]),
                start=clock - timedelta(minutes=ATTENTION_READINGS_MINUTES),
                end=clock + timedelta(minutes=1),
                bucket_seconds=60,
            )
            figure = readings_figure(
                series, incident=incident, lang=lang, unit=incident.get("unit")
            )
        body = attention_children(
            incident, lang=lang, categories=reference.categories(), at=pd.Timestamp(clock)
        )
    except READ_ERRORS as exc:
        report_failure(log, "wall attention card failed", exc)
        raise PreventUpdate from None
    return body, _attention_graph(figure), _queue_note(attention, lang)


def _queue_note(attention: dict, lang: str) -> str:
    """How many more are waiting, and how many were left out."""
    try:
        queued = int(attention.get("queued") or 0)
        overflow = int(attention.get("overflow") or 0)
    except (TypeError, ValueError):
        queued = overflow = 0
    notes = []
    if queued:
        notes.append(t("wall.more_one" if queued == 1 else "wall.more", lang, n=queued))
    if overflow:
        notes.append(t("wall.overflow", lang, n=overflow))
    return " · ".join(notes)


def _warning_card(attention: dict, *, grant_district: str | None, lang: str) -> tuple:
    """The attention card of a level's rise: the level in force now, where, and why."""
    rise = attention["incident"]
    topic = rise.get("category")
    place = grant_district or ""
    if topic not in TRENDS:
        raise PreventUpdate
    try:
        levels = read(warning_levels).value
        # the scenario's last day, as its page draws it (one shared read): what led up to it
        hours = read(measurand_hours, **trend_query(topic), district=place or None)
    except READ_ERRORS as exc:
        report_failure(log, "wall warning card failed", exc)
        raise PreventUpdate from None
    here = next((w for w in levels if w.district == place and w.topic == topic), None)
    if here is not None and here.level != rise.get("level"):
        here = None  # the shared levels are older than the rise: tell the rise as it was logged
    why = [str(item.get(lang) or item.get("zh") or "") for item in (here.why if here else [])]
    if here is not None and here.override is not None:
        # an operator's level: who set it, until when and why, rather than the rules'
        why = [set_by_text(here, lang)]
    where = name(reference.districts()[place], lang) if place else t("crumb.city", lang)
    body = warning_children(
        rise,
        lang=lang,
        place=where,
        why=why,
        since=pd.Timestamp(here.since) if here and here.since else None,
    )
    figure = trend_figure(topic, hours.value, lang=lang, stacked=True)
    return body, _attention_graph(figure), _queue_note(attention, lang)


def _attention_graph(figure: go.Figure) -> dcc.Graph:
    """The card's chart, static and at the wall's type size."""
    return dcc.Graph(
        id=ids.WALL_ATTENTION_CHART,
        figure=wall_figure(figure),
        config={"displayModeBar": False, "responsive": True, "staticPlot": True},
        className="os-graph os-wall-alert-graph",
    )


WALL_BADGES = 4


@CALLBACKS.callback(
    Output(ids.WALL_WARNINGS, "children"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.WALL_CONFIG, "data"),
)
def update_wall_warnings(_tick, config):
    """The header's warning levels: the city's, or the display's district's (public: kiosks
    show them too)."""
    grant, lang, _masked = checked(config)
    try:
        levels = read(warning_levels, **replay_args(replay_instant(config))).value
    except READ_ERRORS as exc:
        report_failure(log, "display warning levels failed", exc)
        raise PreventUpdate from None
    place = grant.district or ""
    # a wall's header holds four badges in two rows (short names): the worst, then how many more
    raised = {w.topic: w.level for w in levels if w.district == place}
    return warning_badges(raised, lang=lang, most=WALL_BADGES, short=True)


@CALLBACKS.callback(
    Output(KIOSK_FORECASTS, "children"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.WALL_CONFIG, "data"),
)
def update_kiosk_forecasts(_tick, config):
    """A kiosk's public 预警 strip: counts per area and when, personal categories masked."""
    grant, lang, masked = checked(config)
    if not masked:
        raise PreventUpdate  # walls: the attention card and the tiles show 预警
    if replay_instant(config) is not None:
        return []  # the live 预警 are not the replayed instant's
    try:
        summary = forecast_summary(web_engine(), district=grant.district)
        clock = now().value
    except READ_ERRORS as exc:
        report_failure(log, "kiosk early warnings failed", exc)
        raise PreventUpdate from None
    categories = reference.categories()
    public = mask_personal(summary, categories=categories)
    return kiosk_forecast_children(public, lang=lang, categories=categories, at=pd.Timestamp(clock))


CALLBACKS.clientside(
    """
    function () {
        return window.onescreen.wall.tick.apply(null, arguments);
    }
    """,
    Output(slot_id("view", ALL), "data"),
    Output(slot_id("slot", ALL), "className"),
    Output(ids.WALL_TITLE, "children"),
    Output(ids.WALL_PROGRESS, "children"),
    Output(ids.WALL_ATTENTION, "data"),
    Output(ids.WALL_WATCH, "data"),
    Output(ids.WALL_ROOT, "className"),
    Output(ids.WALL_COUNTDOWN, "children"),
    Output(ids.WALL_STALE, "children"),
    Input(ids.CLOCK_TICK, "n_intervals"),
    Input(ids.WALL_ALERTS, "data"),
    Input(slot_id("areas", ALL), "clickData"),
    Input({"type": "wall-goto", "target": ALL}, "n_clicks"),
    # a State: the slots report ready in answer to the views this callback sets
    State(slot_id("ready", ALL), "data"),
    State(ids.WALL_CONFIG, "data"),
)

# the canvas fits the screen before anything is drawn, and again on every resize
CALLBACKS.clientside(
    """
    function (config) {
        if (window.onescreen && window.onescreen.wall) { window.onescreen.wall.fitCanvas(); }
        return window.dash_clientside.no_update;
    }
    """,
    Output(ids.WALL_CONFIG, "id"),
    Input(ids.WALL_CONFIG, "data"),
)
