"""Page placements: each live panel's refresh callback on a page, made from its definition.

A page says which controls it has and how its view is read; `place` registers one callback per
group of panels (panels that read the same data answer together) with the outputs, inputs,
failure guard and sharing their definitions declare. The answers of shared groups are rendered
once per period for everyone who would get the same one (web.shared_answers), and the list of
those comes from here rather than from repeated id strings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import dash
from dash import Input, Output, State, ctx
from dash.exceptions import PreventUpdate

from components import ids
from components.panels import asof_id
from components.replay import replay_at
from components.state import LAYERS, METRICS, STACKS, language, pick
from data.checks import InvalidQuery
from data.clock import CITY_TZ
from data.errors import READ_ERRORS, report_failure
from panels.base import LivePanel, Look, View
from panels.reads import asof_payload

log = logging.getLogger(__name__)

# the first output ("id.property") of every callback whose answer is shared across viewers
SHARED_OUTPUTS: set[str] = set()

# the page controls a panel may listen to, and where their values live
CONTROLS = {
    "category": Input(ids.CATEGORY, "value"),
    "street": Input(ids.STREET, "data"),
    "metric": Input(ids.METRIC, "value"),
    "stack": Input(ids.STACK, "value"),
    "layer": Input(ids.LAYER, "value"),
    # 回放: the instant replayed (pages with the replay bar)
    "at": Input(ids.REPLAY_AT, "data"),
}


@dataclass(frozen=True)
class PagePlace:
    """A page that shows live panels: its id prefix, level, controls and how its view is read
    from the callback's values (raising PreventUpdate for a view the viewer may not see)."""

    name: str
    level: str
    controls: tuple[str, ...]
    view: Callable[[dict[str, Any]], View]
    # what else the view is read from (the district page's own store)
    scope_state: tuple[tuple[str, State], ...] = ()
    # whether the view shows incidents about people at home as counts only (as kiosks do)
    masked: Callable[[dict[str, Any]], bool] = lambda _values: False
    # whether its district map draws the device clusters (the district page's) and so their legend
    devices: bool = True
    # whether its map draws the units (scenario and district pages) and so their legend
    units: bool = False

    def view_at(self, values: dict[str, Any]) -> View:
        """The page's view at the instant it replays (`values["at"]`), or live; a forged or
        unreadable instant is refused (PreventUpdate)."""
        view = self.view(values)
        if "at" not in self.controls:
            return view
        try:
            at = replay_at(values.get("at"), now=datetime.now(CITY_TZ))
        except InvalidQuery:
            raise PreventUpdate from None
        return replace(view, at=at)

    def id_of(self, part: str) -> str:
        """The id of one of the page's panel parts."""
        return f"{self.name}-{part}"

    def fresh_of(self, badge: str) -> str:
        """The key of one of the page's freshness badges."""
        return f"{self.name}-{badge}"

    def look(self, values: dict[str, Any]) -> Look:
        """How the page shows its panels, from the callback's values."""
        return Look(
            lang=language(values.get("lang")),
            id_of=self.id_of,
            fresh_of=self.fresh_of,
            metric=pick(values.get("metric"), METRICS, METRICS[0]).value or METRICS[0],
            stack=pick(values.get("stack"), STACKS, STACKS[0]).value or STACKS[0],
            layer=pick(values.get("layer"), LAYERS, LAYERS[0]).value or LAYERS[0],
            masked=self.masked(values),
            devices=self.devices,
            units=self.units,
            replay=bool(values.get("at")),
        )


def _key(name: str) -> str:
    """A part's name as a callback argument (Dash wants Python names)."""
    return name.replace("-", "_")


def shared_callback(*args: Any, **kwargs: Any) -> Callable:
    """`dash.callback` whose answer is shared by every viewer of the same scope and inputs."""
    outputs = kwargs["output"] if "output" in kwargs else args[0]
    first = next(iter(outputs.values())) if isinstance(outputs, dict) else outputs
    SHARED_OUTPUTS.add(f"{first.component_id}.{first.component_property}")
    return dash.callback(*args, **kwargs)


def _outputs(place: PagePlace, panels: tuple[LivePanel, ...]) -> dict[str, Output]:
    outputs: dict[str, Output] = {}
    for panel in panels:
        for part in panel.parts_at(place.level):
            outputs[_key(part.name)] = Output(place.id_of(part.name), part.prop)
    for panel in panels:
        for badge in panel.badges:
            outputs[f"asof_{_key(badge)}"] = Output(asof_id(place.fresh_of(badge)), "data")
    for panel in panels:
        for part in panel.keeps:
            outputs[_key(part.name)] = Output(place.id_of(part.name), part.prop)
    return outputs


def _inputs(place: PagePlace, panels: tuple[LivePanel, ...]) -> dict[str, Input]:
    wanted = {"at"} | {choice for panel in panels for choice in panel.follows}
    wanted |= {control for panel in panels for control in panel.controls}
    inputs = {name: CONTROLS[name] for name in place.controls if name in wanted}
    inputs["tick"] = Input(ids.REFRESH, "n_intervals")
    if any(panel.deferred for panel in panels):
        inputs["deferred"] = Input(place.id_of("defer"), "n_intervals")
    return inputs


def _state(place: PagePlace, panels: tuple[LivePanel, ...]) -> dict[str, State]:
    state = {
        _key(part.name): State(place.id_of(part.name), part.prop)
        for panel in panels
        for part in panel.keeps
    }
    state.update(place.scope_state)
    state["lang"] = State(ids.LANG, "data")
    return state


def answer(place: PagePlace, panels: tuple[LivePanel, ...], values: dict[str, Any]) -> dict:
    """Every output of the group for the page's view, now (no failure guard)."""
    view = place.view_at(values)
    look = place.look(values)
    result: dict[str, Any] = {}
    for panel in panels:
        kept = {part.name: values.get(_key(part.name)) for part in panel.keeps}
        rendered = panel.render(view, look, kept)
        for part in (*panel.parts_at(place.level), *panel.keeps):
            result[_key(part.name)] = rendered.values[part.name]
        for badge in panel.badges:
            result[f"asof_{_key(badge)}"] = asof_payload(*rendered.reads)
    return result


def place(page: PagePlace, *panels: LivePanel) -> None:
    """Register the refresh callback of `panels` (answering together) on `page`."""
    outputs = _outputs(page, panels)
    kinds = "+".join(panel.kind for panel in panels)

    def refresh(**values: Any) -> dict:
        try:
            return answer(page, panels, values)
        except PreventUpdate:
            raise
        except READ_ERRORS as exc:
            # an outage is an operational state, not a bug: one line per failed read
            report_failure(log, f"{page.name} panel {kinds} failed", exc)
            if ctx.triggered_id == ids.REFRESH:
                raise PreventUpdate from None  # a failed refresh keeps the last good content
            fallback: dict[str, Any] = dict.fromkeys(outputs, dash.no_update)
            look = page.look(values)
            for panel in panels:
                fallback.update(
                    (_key(k), v) for k, v in panel.fallback(look).items() if _key(k) in outputs
                )
            return fallback

    register = shared_callback if all(panel.shared for panel in panels) else dash.callback
    register(
        output=outputs,
        inputs=_inputs(page, panels),
        state=_state(page, panels),
        prevent_initial_call=any(panel.in_layout for panel in panels),
    )(refresh)
