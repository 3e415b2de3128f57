"""The latest-incidents panel: the view's newest events and incidents of the last 24 h."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
from dash import html

from components import reference
from components.feed import feed_children, mask_personal
from components.i18n import t
from components.panels import panel, skeleton, unavailable
from data.cache import Cached
from data.event_reads import WALL_KINDS, feed_lines
from data.forecast_reads import forecast_limits
from data.incident_reads import INCIDENT_KINDS
from panels.base import LivePanel, Look, Part, Rendered, View
from panels.reads import asof_payload, now, read

FEED_HOURS = 24


def render(view: View, look: Look, _kept: dict[str, Any]) -> Rendered:
    """The newest lines of `view`, an event's incidents as one line (personal ones masked on
    kiosks); on walls the lines holding an open 紧急 alarm pinned first, however many came after
    them."""
    clock = now(view.at)
    end = clock.value + timedelta(minutes=1)
    where = {
        "start": end - timedelta(hours=FEED_HOURS),
        "end": end,
        "district": view.district,
        "street": view.street,
        "category": view.category,
        "limit": look.feed_length,
    }
    # a wall shows what the room acts on: sensors that lie are for the maintenance crews
    kinds = WALL_KINDS if look.wall else INCIDENT_KINDS
    latest = read(feed_lines, **where, pin_critical=look.wall, kinds=kinds, **view.when)
    reads: tuple[Cached[Any], ...] = (clock, latest)
    frame = latest.value
    categories = reference.categories()
    frame = mask_personal(frame, categories=categories) if look.masked else frame
    limits = read(forecast_limits, incident_ids=_live_forecasts(frame))
    feed = feed_children(
        frame,
        lang=look.lang,
        categories=categories,
        link=not look.wall,
        now=clock.value,
        limits=limits.value,
    )
    return Rendered(values={"feed": feed}, reads=(*reads, limits))


def _live_forecasts(frame: pd.DataFrame) -> tuple[int, ...]:
    """The ids of the live 预警 in a feed (their countdowns need the limit they expect)."""
    if frame.empty or "kind" not in frame:
        return ()
    single = frame["line"] == "incident" if "line" in frame else True
    live = frame[single & (frame["kind"] == "forecast") & (frame["status"] != "resolved")]
    return tuple(int(i) for i in live["id"])


def create(look: Look, initial: Rendered | None = None, *, class_name: str = "") -> html.Section:
    """The feed's frame, with placeholder rows until its first answer."""
    return panel(
        t("panel.feed", look.lang),
        html.Div(
            id=look.id_of("feed"),
            className=f"os-feed {'os-wall-feed' if look.wall else ''}".strip(),
            children=(
                initial.values["feed"]
                if initial
                else [skeleton("os-skel-line") for _ in range(1 if look.wall else 6)]
            ),
        ),
        class_name=f"os-panel-feed {class_name}".strip(),
        fresh=look.fresh_of("feed"),
        asof=asof_payload(*initial.reads) if initial else None,
    )


FEED = LivePanel(
    kind="feed",
    parts=(Part("feed", "children"),),
    render=render,
    fallback=lambda look: {"feed": unavailable(t("panel.unavailable", look.lang))},
    create=create,
    badges=("feed",),
)
