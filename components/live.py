"""Live panels: shared cached reads, each panel's data age ("as of") and its freshness badge.

Callbacks read through one single-flight cache keyed by access scope — shared by every web
worker through Redis when one is configured, otherwise per process — so many open screens cost
about one query per key per period. Each panel's callback also writes the as-of of its data to a
store ({"type": "os-asof", "panel": key}); one clientside callback on the 1 s clock compares it
with the browser clock and turns the badge amber when the data is older than `ui_stale_seconds`.
Because that runs in the browser, badges go amber even when the server stops answering.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import dash
from dash import ALL, Input, Output, State, clientside_callback, dcc, html
from plotly.utils import PlotlyJSONEncoder

from components import ids
from components.i18n import t
from config import get_settings
from data.cache import Cached, TtlCache
from data.clock import database_now
from data.scope import current_scope, get_read_engine
from serving.shared_cache import SharedCache, create_shared_cache

_T = TypeVar("_T")
CITY_TZ = ZoneInfo("Asia/Shanghai")

# well under the refresh tick: a reading ingested shows within one tick plus this
CACHE_TTL_SECONDS = 1.0
CACHE_MAX_ENTRIES = 512


@functools.cache
def shared_cache() -> TtlCache | SharedCache:
    """The cache every panel callback reads through: shared by all web workers through Redis
    when ONESCREEN_REDIS_URL is set, otherwise this process's own."""
    settings = get_settings()
    period = settings.cache_seconds or settings.ui_refresh_seconds
    shared = create_shared_cache(
        period_seconds=period,
        # a result no writer has outdated may serve a while longer, but never long enough to
        # turn a freshness badge amber
        quiet_seconds=max(0.0, min(3 * period, settings.ui_stale_seconds / 2 - period)),
        namespace="results",
        max_local_entries=CACHE_MAX_ENTRIES,
    )
    if shared is not None:
        return shared
    return TtlCache(
        ttl_seconds=min(CACHE_TTL_SECONDS, settings.ui_refresh_seconds / 2),
        max_entries=CACHE_MAX_ENTRIES,
    )


def read(query: Callable[..., _T], /, **kwargs: Any) -> Cached[_T]:
    """`query(read engine, **kwargs)` through the shared cache, with the instant it was read;
    runs in, and is shared only within, the caller's access scope."""
    scope = current_scope()
    # reads depend on the districts and on whether the caller may act, not on who it is
    partition = (scope.districts, bool(scope.actor))
    return shared_cache().get(query, partition, engine=get_read_engine(), **kwargs)


def now() -> Cached[datetime]:
    """The database clock, shared like any other read (so windows built on it share keys too)."""
    return read(database_now)


def asof_payload(*results: Cached, at: datetime | None = None) -> dict[str, Any]:
    """What a panel's as-of store holds: the oldest of `results`, and its age on the server.

    The browser dates the data by when it received it minus `age`, so a client clock that
    differs from the server's does not make fresh data look delayed.
    """
    oldest = min(result.as_of for result in results)
    moment = at or datetime.now(UTC)
    return {
        "at": int(oldest.timestamp() * 1000),
        "age": round(max((moment - oldest).total_seconds(), 0.0), 3),
        "clock": oldest.astimezone(CITY_TZ).strftime("%H:%M:%S"),
    }


def only_changed(values: dict[str, Any], sent: object) -> tuple[list[Any], dict[str, str]]:
    """`values` in order, no_update where `sent` holds the same digest; and the new digests."""
    # dash-leaflet redraws every feature of a layer whose hideout or data is set again (hover
    # and tooltips reset), so a refresh that changed nothing must leave the layer alone; it also
    # annotates the features it holds, hence digests of what was sent rather than comparisons
    previous = sent if isinstance(sent, dict) else {}
    digests: dict[str, str] = {}
    out: list[Any] = []
    for key, value in values.items():
        text = json.dumps(value, cls=PlotlyJSONEncoder, sort_keys=True)
        digests[key] = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        out.append(dash.no_update if previous.get(key) == digests[key] else value)
    return out, digests


def asof_id(panel_key: str) -> dict[str, str]:
    """The id of a panel's as-of store."""
    return {"type": ids.ASOF, "panel": panel_key}


def asof_output(panel_key: str) -> Output:
    """The callback output carrying a panel's as-of."""
    return Output(asof_id(panel_key), "data")


def badge(panel_key: str, initial: dict | None = None) -> html.Span:
    """A panel's freshness badge and its as-of store (`initial` when the layout read the data)."""
    return html.Span(
        className="os-fresh-wrap",
        children=[
            dcc.Store(id=asof_id(panel_key), data=initial),
            html.Span(
                id={"type": ids.FRESH, "panel": panel_key}, className="os-fresh", role="status"
            ),
        ],
    )


def fresh_config(lang: str) -> dcc.Store:
    """Labels and the stale threshold for the clientside badge callback."""
    return dcc.Store(
        id=ids.FRESH_CONFIG,
        data={
            "stale": get_settings().ui_stale_seconds,
            "updated": t("fresh.updated", lang),
            "delayed": t("fresh.delayed", lang),
        },
    )


# One callback on the browser clock for every badge of the page. It notes when each as-of
# arrived (receipt minus server-side age, immune to clock skew), so with no new data — server
# gone, database down, callbacks failing — the age grows and the badge turns amber; new data
# turns it back. A panel that never got data is dated from when the page first showed it.
clientside_callback(
    """
    function (tick, payloads, panelIds, badgeIds, config) {
        const cfg = config || {};
        const staleMs = (cfg.stale || 15) * 1000;
        const now = Date.now();
        const seen = window.onescreenFresh = window.onescreenFresh || {};
        const present = {};
        let anyStale = false;
        const byPanel = {};
        panelIds.forEach(function (id, i) { byPanel[id.panel] = payloads[i]; });
        const texts = [], classes = [];
        badgeIds.forEach(function (id) {
            const key = id.panel;
            const p = byPanel[key];
            const stamp = p ? p.at + "|" + p.age : null;
            let m = seen[key];
            if (!m || m.stamp !== stamp) {
                m = seen[key] = {
                    stamp: stamp,
                    since: p ? now - p.age * 1000 : (m ? m.since : now),
                    clock: p ? p.clock : null,
                };
            }
            present[key] = true;
            const stale = now - m.since > staleMs;
            anyStale = anyStale || stale;
            // the label around the time is its own span, so narrow headers can drop it
            const label = (cfg.updated || "{t}").split("{t}");
            const span = function (cls, text) {
                return {namespace: "dash_html_components", type: "Span",
                        props: {className: cls, children: text}};
            };
            const parts = [];
            if (m.clock) {
                if (label[0]) { parts.push(span("os-fresh-label", label[0])); }
                parts.push(m.clock);
                if (label[1]) { parts.push(span("os-fresh-label", label[1])); }
            }
            if (stale) { parts.push((parts.length ? " · " : "") + (cfg.delayed || "")); }
            texts.push(parts);
            classes.push(stale ? "os-fresh os-fresh-stale" : "os-fresh");
        });
        // a panel met again after leaving its page starts afresh
        Object.keys(seen).forEach(function (key) { if (!present[key]) { delete seen[key]; } });
        // the full text as a tooltip too: narrow headers may cut the badge short
        return [texts, classes, texts, anyStale ? "os-clock os-clock-stale" : "os-clock"];
    }
    """,
    Output({"type": ids.FRESH, "panel": ALL}, "children"),
    Output({"type": ids.FRESH, "panel": ALL}, "className"),
    Output({"type": ids.FRESH, "panel": ALL}, "title"),
    Output(ids.CLOCK, "className"),
    Input(ids.CLOCK_TICK, "n_intervals"),
    State({"type": ids.ASOF, "panel": ALL}, "data"),
    State({"type": ids.ASOF, "panel": ALL}, "id"),
    State({"type": ids.FRESH, "panel": ALL}, "id"),
    State(ids.FRESH_CONFIG, "data"),
)
