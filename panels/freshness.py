"""Freshness: each live panel's as-of output, and the one browser-side callback that turns a
panel's badge amber when its data is older than `ui_stale_seconds` — in the browser, so badges
go amber even when the server stops answering."""

from __future__ import annotations

from dash import ALL, Input, Output, State

from components import ids
from components.callbacks import CallbackSet
from components.panels import asof_id

# registered on each app by create_app()
CALLBACKS = CallbackSet()


def asof_output(panel_key: str) -> Output:
    """The callback output carrying a panel's as-of."""
    return Output(asof_id(panel_key), "data")


# One callback on the browser clock for every badge of the page. It notes when each as-of
# arrived (receipt minus server-side age, immune to clock skew), so with no new data — server
# gone, database down, callbacks failing — the age grows and the badge turns amber; new data
# turns it back. A panel that never got data is dated from when the page first showed it.
CALLBACKS.clientside(
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
