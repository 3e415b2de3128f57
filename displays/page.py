"""A display page (`/wall`, `/kiosk`): a canvas that scales to fill any screen, holding the
view on screen and the next one loading while hidden, the attention card and kiosk controls.

The schedule — rotation, attention to new critical incidents, the kiosk's touch and idle — runs
in the browser (assets/onescreen_wall.js); the server answers per slot and per refresh.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from dash import Input, Output, dcc, html

from components import ids, reference
from components.callbacks import CallbackSet
from components.i18n import name, t
from components.panels import CHART_DEFER_MS, fresh_config
from components.topics import TOPICS
from data.clock import CITY_TZ
from data.displays import DisplayGrant, get_playlist, touch_display_token
from data.errors import READ_ERRORS, report_failure
from data.incident_reads import incident_marks
from displays.access import app_version, grant_for
from displays.alerts import KIOSK_FORECASTS
from displays.playlist import DisplayOptions, display_options
from displays.slots import SLOTS, slot_content, slot_layout, slot_look, view_title
from web.services import web_engine

# registered on each app by create_app()
CALLBACKS = CallbackSet()

log = logging.getLogger(__name__)


def _message_page(mode: str, lang: str, message: str, *, retry: bool = False) -> html.Div:
    """What a display shows instead of data: no token, a bad one, or no database yet."""
    return html.Div(
        className=f"os-wall os-wall-{mode} os-wall-message-page os-lang-{lang}",
        children=[
            dcc.Store(id=ids.PAGE_META, data={"title": t("app.title", lang), "lang": lang}),
            html.Div(
                className="os-wall-message",
                children=[
                    html.Div(t("app.title", lang), className="os-wall-message-brand"),
                    html.P(message, role="alert"),
                ],
            ),
            # a display that cannot read its data yet tries again by itself
            dcc.Interval(id="wall-retry", interval=15_000, disabled=not retry),
        ],
    )


CALLBACKS.clientside(
    """
    function (n) {
        if (n && window.onescreen && window.onescreen.wall) {
            window.onescreen.wall.safeReload("retry");
        }
        return window.dash_clientside.no_update;
    }
    """,
    Output("wall-retry", "id"),
    Input("wall-retry", "n_intervals"),
    prevent_initial_call=True,
)


def create_display(*, mode: str, token: object, lang: str, params: dict[str, Any]) -> html.Div:
    """A wall or kiosk page for `token`, or a plain message when it may not show anything."""
    try:
        grant = grant_for(token)
    except READ_ERRORS as exc:
        report_failure(log, f"{mode}: cannot check the display token", exc)
        return _message_page(mode, lang, t("wall.starting", lang), retry=True)
    if token in (None, ""):
        return _message_page(mode, lang, t("wall.need_token", lang, kind=mode))
    if grant is None:
        return _message_page(mode, lang, t("wall.bad_token", lang))
    if mode == "wall" and grant.kind != "wall":
        return _message_page(mode, lang, t("wall.wrong_kind", lang))
    try:
        options = _options(grant, params)
        marks = incident_marks(web_engine())
        touch_display_token(web_engine(), token=str(token))
    except READ_ERRORS as exc:
        report_failure(log, f"{mode}: cannot prepare the display", exc)
        return _message_page(mode, lang, t("wall.starting", lang), retry=True)
    masked = grant.kind == "kiosk" or mode == "kiosk"
    first = options.views[0]
    slots = _first_slots(mode, options, lang=lang, masked=masked)
    config = _config(mode, options, token=str(token), lang=lang)
    notes = (
        html.Div(t("wall.notes", lang, items=", ".join(options.notes)), className="os-wall-notes")
        if options.notes
        else None
    )
    header = _header(lang, config["titles"].get(first.key, ""), replay=options.replay is not None)
    attention = _attention_card(lang)
    controls = _kiosk_controls(lang) if mode == "kiosk" else None
    return html.Div(
        id=ids.WALL_ROOT,
        className=f"os-wall os-wall-{mode} os-lang-{lang} os-wall-phase-rotate",
        children=[
            dcc.Store(id=ids.LANG, data=lang),
            dcc.Store(
                id=ids.PAGE_META,
                data={
                    "title": f"{t('app.title', lang)} · {config['titles'].get(first.key, '')}",
                    "lang": lang,
                },
            ),
            fresh_config(lang),
            dcc.Store(id=ids.WALL_CONFIG, data=config),
            dcc.Store(id=ids.WALL_MARKS, data={"settled": str(marks.settled)}),
            dcc.Store(id=ids.WALL_ALERTS),
            dcc.Store(id=ids.WALL_WATCH, data=[]),
            dcc.Store(id=ids.WALL_ATTENTION),
            # plotly.js is megabytes of script: the charts mount once the maps have started
            dcc.Interval(id=ids.WALL_CHARTS_DEFER, interval=CHART_DEFER_MS, max_intervals=1),
            html.Div(
                id=ids.WALL_CANVAS,
                className="os-wall-canvas",
                children=[
                    header,
                    html.Div(className="os-wall-stage", children=[*slots, attention]),
                    controls,
                    notes,
                    html.Div(t("kiosk.touch", lang), className="os-kiosk-attract", role="status")
                    if mode == "kiosk"
                    else None,
                    # a kiosk's public 预警 strip (displays/alerts.py fills it; a wall has the
                    # attention card and the tiles instead)
                    html.Div(id=KIOSK_FORECASTS, className="os-kiosk-fx", role="status"),
                    html.Div(
                        t("wall.revoked", lang), className="os-wall-revoked-note", role="alert"
                    ),
                    # shown by the schedule while the data has stopped (assets/onescreen_wall.js)
                    html.Div(id=ids.WALL_STALE, className="os-wall-stale-banner", role="alert"),
                ],
            ),
        ],
    )


def _first_slots(
    mode: str, options: DisplayOptions, *, lang: str, masked: bool
) -> list[html.Section]:
    """Both slots with their first views, read for the layout itself (never an empty panel)."""
    at = options.replay.instant(datetime.now(CITY_TZ)) if options.replay else None
    first, second = (
        replace(view, at=at) for view in (options.views[0], options.views[1 % len(options.views)])
    )
    slots = []
    for slot, view in zip(SLOTS, (first, second), strict=True):
        look = slot_look(slot, lang=lang, metric=options.metric, masked=masked)
        try:
            content = slot_content(view, focus=None, look=look)
        except READ_ERRORS as exc:
            report_failure(log, f"{mode}: first view unavailable", exc)
            content = None
        slots.append(
            slot_layout(slot, view, content=content, look=look, mode=mode, active=slot == "a")
        )
    return slots


def _config(mode: str, options: DisplayOptions, *, token: str, lang: str) -> dict:
    """What the browser's schedule runs on: views, timings, labels, the build."""
    return {
        "mode": mode,
        "lang": lang,
        "token": token,
        "views": [view.as_dict() for view in options.views],
        "titles": {view.key: view_title(view, lang) for view in options.views},
        "interval_s": options.interval_s,
        "attention_s": options.attention_s,
        "idle_s": options.idle_s,
        "metric": options.metric,
        # categories that are scenarios (专题): a kiosk's button for one opens its scenario view
        "topics": list(TOPICS),
        "sound": options.sound,
        "reload_hours": options.reload_hours,
        # 回放: the window it loops over (the header's clock shows the instant)
        "replay": options.replay.as_config() if options.replay else None,
        "version": app_version(),
        "labels": {
            "attention": t("wall.attention", lang),
            "resume": t("wall.resume", lang),
            "stale": t("wall.stale", lang, m="{m}", s="{s}"),
            "stale_s": t("wall.stale_s", lang, s="{s}"),
        },
    }


def _header(lang: str, title: str, *, replay: bool = False) -> html.Header:
    """Brand, the view's title and progress, read-only mark and clock (a replaying display's:
    REPLAY and the instant it shows)."""
    return html.Header(
        className="os-wall-head",
        children=[
            html.Div(
                className="os-wall-brand",
                children=[
                    html.Span(t("app.title", lang), className="os-wall-brand-name"),
                    html.Span(t("wall.subtitle", lang), className="os-wall-brand-sub"),
                ],
            ),
            html.Div(
                className="os-wall-title-box",
                children=[
                    html.H1(
                        title,
                        id=ids.WALL_TITLE,
                        className="os-wall-title",
                    ),
                    html.Div(id=ids.WALL_PROGRESS, className="os-wall-progress"),
                ],
            ),
            html.Div(
                className="os-wall-head-side",
                children=[
                    # each scenario's warning level in force (displays/alerts.py fills it)
                    html.Div(id=ids.WALL_WARNINGS, className="os-wall-warnings", role="status"),
                    html.Span(t("wall.read_only", lang), className="os-wall-readonly"),
                    html.Div(
                        [
                            html.Span(t("replay.badge", lang), className="os-replay-badge"),
                            html.Span(id=ids.WALL_REPLAY_TIME, className="os-replay-time"),
                        ],
                        className="os-wall-replay",
                    )
                    if replay
                    else None,
                    html.Div(id=ids.CLOCK, className="os-clock os-wall-clock"),
                ],
            ),
        ],
    )


def _attention_card(lang: str) -> html.Aside:
    """The card a new critical incident takes the screen with (hidden until then)."""
    return html.Aside(
        id=ids.WALL_ATTENTION_CARD,
        className="os-wall-alert",
        role="alert",
        children=[
            html.Div(id=ids.WALL_ATTENTION_BODY, className="os-wall-alert-body"),
            html.Div(t("wall.readings", lang), className="os-wall-alert-section"),
            html.Div(
                id=ids.WALL_ATTENTION_CHART_BOX, className="os-chart-slot os-wall-alert-chart"
            ),
            html.Div(
                className="os-wall-alert-foot",
                children=[
                    html.Span(id=ids.WALL_COUNTDOWN, className="os-wall-countdown"),
                    html.Span(id=ids.WALL_QUEUE, className="os-wall-queue"),
                ],
            ),
        ],
    )


def _kiosk_controls(lang: str) -> html.Nav:
    """Big touch targets: whole city, back, and one button per category."""
    categories = reference.categories()
    buttons = [
        html.Button(
            t("kiosk.city", lang),
            id={"type": "wall-goto", "target": "city"},
            className="os-kiosk-btn os-kiosk-btn-main",
        ),
        html.Button(
            t("kiosk.up", lang),
            id={"type": "wall-goto", "target": "up"},
            className="os-kiosk-btn os-kiosk-btn-main",
        ),
        html.Button(
            t("kiosk.all", lang),
            id={"type": "wall-goto", "target": "all"},
            className="os-kiosk-btn",
        ),
        *[
            html.Button(
                name(names, lang),
                id={"type": "wall-goto", "target": code},
                className="os-kiosk-btn",
            )
            for code, names in categories.items()
        ],
    ]
    return html.Nav(className="os-kiosk-controls", children=buttons)


def _options(grant: DisplayGrant, params: dict[str, Any]) -> DisplayOptions:
    chosen = params.get("playlist") or grant.playlist
    saved = None
    if isinstance(chosen, str) and chosen:
        playlist = get_playlist(web_engine(), name=chosen[:64])
        if playlist is not None:
            saved = {
                "views": playlist.views,
                "interval_s": playlist.interval_s,
                "attention_s": playlist.attention_s,
                "metric": playlist.metric,
                "sound": playlist.sound,
                "reload_hours": playlist.reload_hours,
            }
    options = display_options(
        {key: value for key, value in params.items() if isinstance(value, str)},
        saved=saved,
        districts=reference.districts(),
        categories=reference.categories(),
        streets=reference.street_districts(),
        scope_district=grant.district,
    )
    if chosen and saved is None:
        options.notes.append(f"playlist={str(chosen)[:40]}")
    return options
