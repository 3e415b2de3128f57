"""The replay (回放) bar: pick a past minute of the last day, play on from it at 1×, 10× or
60×, or go back to live. The instant is in the URL (`at=`, so a replay can be shared) and in a
store every live panel of the page reads (panels/place.py); while it is set, the bar and the
page's frame say REPLAY in a colour no live screen uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components import ids
from components.callbacks import CallbackSet
from components.i18n import t
from data.checks import InvalidQuery
from data.clock import CITY_TZ, parse_moment

CALLBACKS = CallbackSet()

SPEEDS = (1, 10, 60)
# the slider reaches back this far (a typed time may go back to the oldest history kept)
SLIDER_MINUTES = 24 * 60
_MARK_EVERY = 180


def replay_at(raw: object, *, now: datetime) -> datetime | None:
    """The instant a page replays (whole seconds), from `?at=` or its store; None is live:
    nothing asked, or an instant not before `now`. Raises InvalidQuery for what is not one."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > 40:
        raise InvalidQuery("a replay time is a date and time")
    moment = parse_moment(raw).replace(microsecond=0)
    if not datetime(2000, 1, 1, tzinfo=CITY_TZ) <= moment:
        raise InvalidQuery("a replay time is a date and time")
    return None if moment >= now else moment


def stamp(moment: datetime | None) -> str | None:
    """An instant as the URL and the store hold it: Beijing time to the second."""
    return moment.astimezone(CITY_TZ).strftime("%Y-%m-%dT%H:%M:%S") if moment else None


def _marks(now: datetime) -> dict[str | float | int, str | Any]:
    """The slider's marks: every three hours back from now, as clock times."""
    return {
        -back: (now - timedelta(minutes=back)).astimezone(CITY_TZ).strftime("%H:%M")
        for back in range(0, SLIDER_MINUTES + 1, _MARK_EVERY)
    }


def replay_bar(
    *, lang: str, at: datetime | None, now: datetime, note: str | None = None
) -> html.Div:
    """The bar above a page's panels, with the stores the panels and the player read."""
    back = 0 if at is None else max(-SLIDER_MINUTES, -round((now - at).total_seconds() / 60))
    shown = at.astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M:%S") if at else ""
    return html.Div(
        id=ids.REPLAY_BAR,
        className=f"os-replay-bar {'os-replaying' if at else ''}".strip(),
        children=[
            dcc.Store(id=ids.REPLAY_AT, data=stamp(at)),
            dcc.Store(id=ids.REPLAY_SPEED, data=0),
            html.Span(
                className="os-replay-state",
                children=[
                    html.Span(t("replay.live", lang), className="os-replay-live"),
                    html.Span(t("replay.badge", lang), className="os-replay-badge"),
                    html.Span(shown, id=ids.REPLAY_TIME, className="os-replay-time"),
                ],
            ),
            html.Div(
                dcc.Slider(
                    id=ids.REPLAY_SLIDER,
                    min=-SLIDER_MINUTES,
                    max=0,
                    step=1,
                    value=back,
                    marks=_marks(now),
                    updatemode="mouseup",
                    included=False,
                ),
                className="os-replay-slider",
                title=t("replay.slider_hint", lang),
            ),
            html.Label(
                dcc.Input(
                    id=ids.REPLAY_INPUT,
                    type="text",
                    value=shown[:16],
                    placeholder="2026-12-04 13:05",
                    debounce=True,
                    maxLength=40,
                    className="os-replay-input",
                ),
                title=t("replay.input_hint", lang),
            ),
            html.Div(
                className="os-replay-speeds",
                children=[
                    html.Button(
                        f"▶ {speed}×",
                        id={"type": ids.REPLAY_PLAY, "speed": speed},
                        className="os-replay-play",
                        title=t("replay.play_hint", lang, speed=speed),
                    )
                    for speed in SPEEDS
                ]
                + [
                    html.Button(
                        "❚❚",
                        id={"type": ids.REPLAY_PLAY, "speed": 0},
                        className="os-replay-play os-replay-pause",
                        title=t("replay.pause", lang),
                    )
                ],
            ),
            html.Button(
                t("replay.back_live", lang), id=ids.REPLAY_LIVE, className="os-replay-go-live"
            ),
            html.Span(note or "", id=ids.REPLAY_NOTE, className="os-replay-note"),
        ],
    )


@CALLBACKS.callback(
    Output(ids.REPLAY_AT, "data"),
    Output(ids.REPLAY_NOTE, "children"),
    Output(ids.REPLAY_SPEED, "data", allow_duplicate=True),
    Input(ids.REPLAY_SLIDER, "value"),
    Input(ids.REPLAY_INPUT, "value"),
    Input(ids.REPLAY_LIVE, "n_clicks"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def choose(back: object, typed: object, _live: object, lang: object):
    """The instant the slider, the typed time or the live button asks for (paused there)."""
    lang = lang if lang in ("zh", "en") else "zh"
    now = datetime.now(CITY_TZ).replace(microsecond=0)
    if ctx.triggered_id == ids.REPLAY_LIVE:
        return None, "", 0
    try:
        if ctx.triggered_id == ids.REPLAY_SLIDER:
            if not isinstance(back, int) or not -SLIDER_MINUTES <= back <= 0:
                raise InvalidQuery("out of reach")
            at = None if back == 0 else now + timedelta(minutes=back)
        elif ctx.triggered_id == ids.REPLAY_INPUT:
            at = replay_at(typed, now=now)
        else:
            raise PreventUpdate
    except InvalidQuery:
        return no_update, t("replay.bad_time", lang), no_update
    return stamp(at), "", 0


# the player: each refresh tick moves the instant on by speed × the time since the last tick,
# back to live when it catches up with now; the bar and the page frame follow the instant
CALLBACKS.clientside(
    """
    function (clicks, ids) {
        const trig = window.dash_clientside.callback_context.triggered;
        if (!trig.length || !trig[0].value) { return window.dash_clientside.no_update; }
        const id = JSON.parse(trig[0].prop_id.split(".")[0]);
        window.onescreenReplayTick = performance.now();
        return id.speed;
    }
    """,
    Output(ids.REPLAY_SPEED, "data"),
    Input({"type": ids.REPLAY_PLAY, "speed": ALL}, "n_clicks"),
    State({"type": ids.REPLAY_PLAY, "speed": ALL}, "id"),
    prevent_initial_call=True,
)
CALLBACKS.clientside(
    """
    function (tick, speed, at) {
        const nu = window.dash_clientside.no_update;
        const last = window.onescreenReplayTick || performance.now();
        window.onescreenReplayTick = performance.now();
        if (!speed || !at) { return nu; }
        const elapsed = (performance.now() - last) / 1000;
        const then = new Date(at + "+08:00").getTime() + speed * elapsed * 1000;
        if (then >= Date.now()) { return null; }
        const local = new Date(then + 8 * 3600 * 1000).toISOString();
        return local.slice(0, 19);
    }
    """,
    Output(ids.REPLAY_AT, "data", allow_duplicate=True),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.REPLAY_SPEED, "data"),
    State(ids.REPLAY_AT, "data"),
    prevent_initial_call=True,
)
CALLBACKS.clientside(
    """
    function (at, speed) {
        const shown = at ? at.replace("T", " ") : "";
        const playing = at && speed ? " os-replay-playing" : "";
        return [at ? "os-replay-bar os-replaying" + playing : "os-replay-bar", shown];
    }
    """,
    Output(ids.REPLAY_BAR, "className"),
    Output(ids.REPLAY_TIME, "children"),
    Input(ids.REPLAY_AT, "data"),
    Input(ids.REPLAY_SPEED, "data"),
)


def page_replay(raw: object, *, lang: str) -> tuple[datetime | None, html.Div]:
    """The instant a page's URL asks to replay (None: live, or a time it could not read, which
    the bar then says) and the bar to put above its panels."""
    now = datetime.now(CITY_TZ).replace(microsecond=0)
    try:
        at = replay_at(raw, now=now)
    except InvalidQuery:
        return None, replay_bar(lang=lang, at=None, now=now, note=t("replay.bad_time", lang))
    return at, replay_bar(lang=lang, at=at, now=now)


# a wall's replay loop: at least a few minutes, at most a week of the past
LOOP_SPAN = (timedelta(minutes=5), timedelta(days=7))


@dataclass(frozen=True)
class ReplayLoop:
    """A wall or kiosk playing a window of the past over and over at `speed`× (an exhibition's
    attract loop: last night's storm); every screen on it shows the same instant at once."""

    start: datetime
    end: datetime
    speed: int

    def instant(self, now: datetime) -> datetime:
        """The instant of the window shown at wall-clock `now` (whole seconds)."""
        span = (self.end - self.start).total_seconds()
        offset = (now.timestamp() * self.speed) % span
        return (self.start + timedelta(seconds=offset)).replace(microsecond=0)

    def as_config(self) -> dict[str, Any]:
        """The loop as a display's config store holds it (its schedule draws the clock)."""
        return {"from": stamp(self.start), "to": stamp(self.end), "speed": self.speed}


def replay_loop(window: object, speed: object, *, now: datetime) -> ReplayLoop | None:
    """The loop `replay=FROM/TO` and `speed=` ask for (None: none asked); InvalidQuery for a
    window that is not one, not yet over, too short or too long, or another speed."""
    if window is None or window == "":
        return None
    if not isinstance(window, str) or window.count("/") != 1:
        raise InvalidQuery("replay is FROM/TO, two times")
    start, end = (replay_at(part, now=now) for part in window.split("/"))
    if start is None or end is None:
        raise InvalidQuery("a replayed window is over")
    chosen = SPEEDS[-1] if speed in (None, "") else _speed(speed)
    if not LOOP_SPAN[0] <= end - start <= LOOP_SPAN[1]:
        raise InvalidQuery("a replayed window is 5 minutes to 7 days")
    return ReplayLoop(start=start, end=end, speed=chosen)


def _speed(raw: object) -> int:
    """One of SPEEDS, or InvalidQuery."""
    text = str(raw)[:8]
    if not text.isdigit() or int(text) not in SPEEDS:
        raise InvalidQuery(f"speed is one of {', '.join(map(str, SPEEDS))}")
    return int(text)


# a replaying display's header: the instant its loop shows, from the wall clock (every screen on
# the same loop shows the same instant)
CALLBACKS.clientside(
    """
    function (tick, config) {
        const loop = config && config.replay;
        if (!loop) { return window.dash_clientside.no_update; }
        const start = new Date(loop.from + "+08:00").getTime();
        const span = new Date(loop.to + "+08:00").getTime() - start;
        const at = new Date(start + ((Date.now() * loop.speed) % span) + 8 * 3600 * 1000);
        // month, day and minute: the window says the year, the seconds race at 60×
        return at.toISOString().slice(5, 16).replace("T", " ") + " · " + loop.speed + "×";
    }
    """,
    Output(ids.WALL_REPLAY_TIME, "children"),
    Input(ids.CLOCK_TICK, "n_intervals"),
    State(ids.WALL_CONFIG, "data"),
)
