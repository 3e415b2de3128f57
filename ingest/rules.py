"""Incident rules: which rule applies to a device type, and the per-device state machine that
turns a stream of readings into open / escalate / resolve decisions. Pure; the store is in
data/rules_store.py and the loop in ingest/rules_engine.py."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import replace

from data.rule_types import US, Action, Escalate, Open, Reading, Resolve, Rule, State
from data.rules_store import LateEpisode


def advance_device(
    device_id: int,
    *,
    rules: dict[str, Rule],
    states: dict[str, State],
    readings: Iterable[Reading],
) -> tuple[dict[str, State], list[Action]]:
    """Run one device's new readings (in time order) through its threshold rules.

    Higher-level rules go first at each reading, so an alarm takes over a live warning of the
    same side (escalation) and a warning stays quiet while an alarm is live.
    """
    ordered = sorted(
        (rule for rule in rules.values() if rule.kind == "threshold"),
        key=lambda rule: (-(rule.level or 0), rule.code),
    )
    states = dict(states)
    actions: list[Action] = []
    temp_ids = itertools.count(-1, -1)
    for reading in readings:
        for rule in ordered:
            state = states.get(rule.code) or State(last_ts_us=reading.ts_us)
            if reading.ts_us < state.last_ts_us:
                continue  # late reading: the condition was judged on newer data already
            state = replace(state, last_ts_us=reading.ts_us)
            if rule.matches(level=reading.level, side=reading.side):
                breach_since = (
                    reading.ts_us if state.breach_since_us is None else state.breach_since_us
                )
                state = replace(state, clear_since_us=None, breach_since_us=breach_since)
                due = reading.ts_us - breach_since >= rule.duration_s * US
                if state.incident_id is None and not state.suppressed and due:
                    state, action = _raise(
                        device_id, next(temp_ids), rule, state, states, ordered, reading
                    )
                    if action is not None:
                        actions.append(action)
            else:
                state = replace(state, breach_since_us=None, suppressed=False)
                incident_id = state.incident_id
                if incident_id is not None and rule.auto_resolve:
                    since = (
                        state.clear_since_us if state.clear_since_us is not None else reading.ts_us
                    )
                    state = replace(state, clear_since_us=since)
                    if reading.ts_us - since >= rule.clear_s * US:
                        actions.append(
                            Resolve(device_id, incident_id, rule, reading.ts_us, reading.value)
                        )
                        state = replace(state, incident_id=None, clear_since_us=None)
            states[rule.code] = state
    return states, actions


def late_episodes(
    device_id: int, *, rules: dict[str, Rule], readings: list[Reading], arrived_us: int
) -> list[LateEpisode]:
    """The conditions late readings (one device's, in time order) show, judged among themselves
    from a quiet state: each began and ended in the past, so none is live."""
    _, actions = advance_device(device_id, rules=rules, states={}, readings=readings)
    opened: dict[int, Open] = {}
    steps: dict[int, list[Escalate]] = {}
    episodes: list[LateEpisode] = []
    for action in actions:
        if isinstance(action, Open):
            opened[action.temp_id], steps[action.temp_id] = action, []
        elif isinstance(action, Escalate):
            steps.setdefault(action.incident_id, []).append(action)
        elif (first := opened.pop(action.incident_id, None)) is not None:
            episodes.append(
                LateEpisode(first, tuple(steps[first.temp_id]), action.at_us, True, arrived_us)
            )
    end_us = readings[-1].ts_us if readings else 0
    for first in opened.values():
        episodes.append(LateEpisode(first, tuple(steps[first.temp_id]), end_us, False, arrived_us))
    return episodes


def _raise(
    device_id: int,
    temp_id: int,
    rule: Rule,
    state: State,
    states: dict[str, State],
    ordered: list[Rule],
    reading: Reading,
) -> tuple[State, Action | None]:
    same_side = [
        other
        for other in ordered
        if other.code != rule.code and other.side == rule.side and other.level is not None
    ]
    for other in same_side:
        other_state = states.get(other.code)
        if other_state is None or other_state.incident_id is None:
            continue
        if (other.level or 0) > (rule.level or 0):
            return state, None  # covered by the live, more severe incident
        # take over the lower rule's incident rather than open a second one for this device
        states[other.code] = replace(other_state, incident_id=None, clear_since_us=None)
        action = Escalate(
            device_id,
            other_state.incident_id,
            other.code,
            rule,
            reading.ts_us,
            reading.value,
            reading.side,
        )
        return replace(state, incident_id=other_state.incident_id), action
    opened = Open(device_id, rule, reading.ts_us, reading.value, reading.side, temp_id)
    return replace(state, incident_id=temp_id), opened


def offline_limit_s(rule: Rule, *, interval_s: int) -> float:
    """Silence after which a device of this interval is offline under `rule`."""
    return max((rule.offline_factor or 3) * interval_s, rule.offline_min_s or 0)
