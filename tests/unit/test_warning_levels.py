"""Warning levels decided without SQL: the most severe holding level, a rise at once and a fall
after the calm, operators' levels ended by time or worse news, the city at its worst district."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from data.warning_types import LevelState, WarningRule, severity
from ingest.warning_levels import CITY, evaluate, reached, settle

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
RULES = [
    WarningRule(1, "flood", 4, "beyond_alarm", 3, "3 处积水", "3 underpasses"),
    WarningRule(2, "flood", 3, "beyond_alarm", 10, "10 处积水", "10 underpasses"),
    WarningRule(3, "flood", 3, "at_least", 3, "3 站大雨", "3 gauges"),
    WarningRule(4, "power", 4, "beyond_alarm", 3, "3 处停电", "3 outages"),
]


def test_the_most_severe_holding_level_and_its_rules_are_why():
    assert reached(RULES[:3], {}) == (None, [])
    assert reached(RULES[:3], {1: 2}) == (None, [])  # one short of the count
    level, why = reached(RULES[:3], {1: 12, 2: 12, 3: 5})
    assert level == 3 and [w["rule"] for w in why] == [2, 3]  # IV holds too, but III is worse
    assert why[0]["count"] == 12 and why[0]["zh"] == "10 处积水"
    assert severity(None) == 0 < severity(4) < severity(3) < severity(1)


def test_a_level_rises_at_once_and_falls_only_after_the_calm():
    state = LevelState("flood", "310115")
    up = settle(state, raw=3, why=[], hold_s=1800, now=NOW)
    assert up.state.computed == 3 and up.changed and up.changed_from is None
    # the rain eases to IV: held while calm is shorter than the hold
    eased = settle(up.state, raw=4, why=[], hold_s=1800, now=NOW + timedelta(minutes=1))
    assert eased.state.computed == 3 and not eased.changed
    assert eased.state.calm_since == NOW + timedelta(minutes=1)
    held = settle(eased.state, raw=4, why=[], hold_s=1800, now=NOW + timedelta(minutes=20))
    assert held.state.computed == 3 and not held.changed
    # a new burst within the hold resets the calm
    again = settle(held.state, raw=3, why=[], hold_s=1800, now=NOW + timedelta(minutes=25))
    assert again.state.computed == 3 and again.state.calm_since is None
    calm = settle(again.state, raw=None, why=[], hold_s=1800, now=NOW + timedelta(minutes=26))
    done = settle(calm.state, raw=None, why=[], hold_s=1800, now=NOW + timedelta(minutes=57))
    assert done.state.computed is None and done.changed and done.changed_from == 3


def test_an_operators_level_holds_until_it_expires_or_the_rules_reach_worse():
    until = NOW + timedelta(hours=2)
    lowered = LevelState("flood", "", computed=3, override=0, override_until=until)
    assert lowered.in_force(NOW) is None
    kept = settle(lowered, raw=3, why=[], hold_s=0, now=NOW)
    assert kept.state.override == 0 and not kept.changed
    # the rules reach worse than the operator's "no warning": the rules' level takes over
    worse = settle(lowered, raw=2, why=[], hold_s=0, now=NOW)
    assert worse.state.override is None and worse.state.in_force(NOW) == 2 and worse.changed
    assert worse.source == "rules"
    raised = LevelState("flood", "", computed=4, override=1, override_until=until)
    # an operator's level I is not ended by rules at IV or III
    assert settle(raised, raw=3, why=[], hold_s=0, now=NOW).state.override == 1
    expired = settle(raised, raw=4, why=[], hold_s=0, now=until + timedelta(seconds=1))
    assert expired.state.override is None and expired.source == "expiry"
    assert expired.changed and expired.changed_from == 1 and expired.state.in_force(NOW) == 4


def test_the_city_is_as_severe_as_its_worst_district():
    counts = {(1, "310115"): 4, (3, "310104"): 3, (4, "310104"): 1}
    updates = evaluate(
        rules=RULES,
        counts=counts,
        states={},
        topics={"flood": 1800, "power": 1800},
        districts=["310104", "310115"],
        now=NOW,
    )
    got = {(u.state.topic, u.state.district): u for u in updates}
    assert got[("flood", "310115")].state.computed == 4
    assert got[("flood", "310104")].state.computed == 3
    city = got[("flood", CITY)]
    assert city.state.computed == 3 and city.why[0]["district"] == "310104"
    assert got[("power", CITY)].state.computed is None  # one outage is short of three
    assert len(updates) == 6
