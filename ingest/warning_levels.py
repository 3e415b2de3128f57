"""Warning levels IV → I (revision 0011), decided without SQL: which level each district's rules
reach, held through a lull, the city at its most severe district, operators' levels ended by
time or by worse news."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from data.warning_types import CITY, LevelState, LevelUpdate, WarningRule, severity


def reached(
    rules: Iterable[WarningRule], counts: Mapping[int, int]
) -> tuple[int | None, list[dict[str, object]]]:
    """The most severe level whose rules hold on `counts` (rule id → devices or alarms passing),
    and the holding rules of that level as why."""
    holding = [rule for rule in rules if counts.get(rule.id, 0) >= rule.min_count]
    if not holding:
        return None, []
    level = min(rule.level for rule in holding)
    why = [
        {"rule": r.id, "count": counts[r.id], "zh": r.note_zh, "en": r.note_en}
        for r in holding
        if r.level == level
    ]
    return level, why


def settle(
    state: LevelState, *, raw: int | None, why: list[dict[str, object]], hold_s: int, now: datetime
) -> LevelUpdate:
    """The rules' level after hysteresis: a rise at once, a fall after `hold_s` of calm; an
    operator's level ends when it expires or the rules rise past it."""
    # as of the last evaluation: an operator's level that ran out since is still counted, so
    # its end is a change (logged as an expiry)
    before = state.override or None if state.override is not None else state.computed
    computed, calm_since = state.computed, state.calm_since
    if severity(raw) >= severity(computed):
        computed, calm_since = raw, None
    elif calm_since is None:
        calm_since = now
    elif now - calm_since >= timedelta(seconds=hold_s):
        computed, calm_since = raw, None
    source = "rules"
    override, until = state.override, state.override_until
    if override is not None and (until is None or until <= now):
        override, until, source = None, None, "expiry"
    elif override is not None and severity(computed) > max(
        severity(override), severity(state.computed)
    ):
        # the rules rising past the operator's level is news the operator has not weighed
        override, until = None, None
    new = replace(
        state, computed=computed, calm_since=calm_since, override=override, override_until=until
    )
    after = new.in_force(now)
    return LevelUpdate(new, why, before, after != before, source)


def evaluate(
    *,
    rules: list[WarningRule],
    counts: Mapping[tuple[int, str], int],
    states: Mapping[tuple[str, str], LevelState],
    topics: Mapping[str, int],
    districts: Iterable[str],
    now: datetime,
) -> list[LevelUpdate]:
    """Every scenario's level in every district and the city: `counts` by (rule id, district),
    `topics` each scenario's hold in seconds."""
    updates: list[LevelUpdate] = []
    places = list(districts)
    for topic, hold_s in topics.items():
        own = [rule for rule in rules if rule.topic == topic]
        worst: tuple[int | None, list[dict[str, object]]] = (None, [])
        for district in places:
            level, why = reached(own, {r.id: counts.get((r.id, district), 0) for r in own})
            state = states.get((topic, district)) or LevelState(topic, district)
            update = settle(state, raw=level, why=why, hold_s=hold_s, now=now)
            updates.append(update)
            if severity(update.state.computed) > severity(worst[0]):
                worst = (update.state.computed, [{**w, "district": district} for w in why])
        # the city is as severe as its most severe district, held as that district's is
        city = states.get((topic, CITY)) or LevelState(topic, CITY)
        updates.append(settle(city, raw=worst[0], why=worst[1], hold_s=0, now=now))
    return updates
