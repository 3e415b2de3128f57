"""The incident rules' state machine and rule selection, on hand-made reading streams."""

from __future__ import annotations

from data.rule_types import US, Escalate, Open, Reading, Resolve, Rule, State, rules_for_type
from ingest.rules import advance_device, offline_limit_s

ALARM = Rule(
    code="alarm_high",
    kind="threshold",
    severity="major",
    level=2,
    side=1,
    duration_s=60,
    clear_s=120,
    value_kind="analog",
)
WARNING = Rule(
    code="warning_high",
    kind="threshold",
    severity="minor",
    level=1,
    side=1,
    duration_s=300,
    clear_s=300,
    value_kind="analog",
)
RULES = {"alarm_high": ALARM, "warning_high": WARNING}
T0 = 1_800_000_000 * US


def _at(seconds: float, level: int, side: int = 1, value: float = 1.0) -> Reading:
    return Reading(T0 + int(seconds * US), value, level, side)


def _run(readings, states=None, rules=None):
    return advance_device(
        7, rules=rules or {"alarm_high": ALARM}, states=states or {}, readings=readings
    )


def test_a_short_breach_raises_nothing_a_long_one_raises_once():
    states, actions = _run([_at(0, 2), _at(30, 2), _at(50, 0)])
    assert actions == []
    assert states["alarm_high"].idle
    states, actions = _run([_at(0, 2), _at(30, 2), _at(60, 2, value=9.5), _at(90, 2), _at(120, 2)])
    assert len(actions) == 1
    opened = actions[0]
    assert isinstance(opened, Open) and opened.at_us == T0 + 60 * US and opened.value == 9.5
    assert states["alarm_high"].incident_id == opened.temp_id


def test_an_open_incident_is_not_raised_again_and_resolves_after_the_clear_time():
    live = {"alarm_high": State(last_ts_us=T0, breach_since_us=T0, incident_id=42)}
    states, actions = _run([_at(10, 2), _at(20, 0), _at(100, 0)], states=live)
    assert actions == []  # clear for 80 s of the 120 s needed
    assert states["alarm_high"].clear_since_us == T0 + 20 * US
    states, actions = _run([_at(150, 0)], states=states)
    assert actions == [Resolve(7, 42, ALARM, T0 + 150 * US, 1.0)]
    assert states["alarm_high"].idle


def test_a_relapse_during_the_clear_time_keeps_the_incident():
    live = {"alarm_high": State(last_ts_us=T0, breach_since_us=T0, incident_id=42)}
    states, actions = _run([_at(10, 0), _at(100, 2), _at(200, 0), _at(300, 0)], states=live)
    assert actions == []
    assert states["alarm_high"].incident_id == 42


def test_no_auto_resolve_leaves_the_incident_to_people():
    manual = Rule(**{**ALARM.__dict__, "auto_resolve": False})
    live = {"alarm_high": State(last_ts_us=T0, incident_id=42)}
    states, actions = _run([_at(10, 0), _at(1000, 0)], states=live, rules={"alarm_high": manual})
    assert actions == [] and states["alarm_high"].incident_id == 42


def test_closed_by_a_person_during_the_breach_waits_for_a_clear_before_raising_again():
    suppressed = {"alarm_high": State(last_ts_us=T0, breach_since_us=T0, suppressed=True)}
    states, actions = _run([_at(100, 2), _at(200, 2)], states=suppressed)
    assert actions == []
    states, actions = _run([_at(210, 0), _at(220, 2), _at(280, 2)], states=states)
    assert [type(a) for a in actions] == [Open]


def test_the_wrong_side_does_not_match():
    states, actions = _run([_at(0, 2, side=-1), _at(100, 2, side=-1)])
    assert actions == [] and states["alarm_high"].idle


def test_an_alarm_takes_over_a_live_warning_instead_of_opening_a_second_incident():
    states = {"warning_high": State(last_ts_us=T0, breach_since_us=T0, incident_id=5)}
    states, actions = _run([_at(10, 2), _at(80, 2, value=50)], states=states, rules=RULES)
    assert actions == [Escalate(7, 5, "warning_high", ALARM, T0 + 80 * US, 50, 1)]
    assert states["alarm_high"].incident_id == 5
    assert states["warning_high"].incident_id is None


def test_a_warning_stays_quiet_while_an_alarm_is_live():
    states = {"alarm_high": State(last_ts_us=T0, breach_since_us=T0, incident_id=9)}
    _, actions = _run([_at(k * 60, 2) for k in range(1, 10)], states=states, rules=RULES)
    assert actions == []


def test_late_readings_are_ignored():
    states = {"alarm_high": State(last_ts_us=T0 + 500 * US, breach_since_us=None)}
    states, actions = _run([_at(0, 2), _at(100, 2)], states=states)
    assert actions == [] and states["alarm_high"].last_ts_us == T0 + 500 * US


def test_the_most_specific_enabled_rule_wins():
    generic = Rule(code="alarm_high", kind="threshold", severity="major", level=2, side=1)
    fire = Rule(**{**generic.__dict__, "category_code": "fire", "severity": "critical"})
    off_for_type = Rule(**{**generic.__dict__, "type_id": 12, "enabled": False})
    binary = Rule(
        code="binary_alarm",
        kind="threshold",
        severity="major",
        level=2,
        side=1,
        value_kind="binary",
    )
    rules = [generic, fire, off_for_type, binary]
    assert (
        rules_for_type(rules, type_id=1, category="fire", value_kind="analog")["alarm_high"] == fire
    )
    assert (
        rules_for_type(rules, type_id=2, category="water", value_kind="analog")["alarm_high"]
        == generic
    )
    assert "alarm_high" not in rules_for_type(
        rules, type_id=12, category="fire", value_kind="analog"
    )
    assert "binary_alarm" not in rules_for_type(
        rules, type_id=2, category="water", value_kind="analog"
    )


def test_offline_limit_is_a_multiple_of_the_interval_with_a_floor():
    rule = Rule(
        code="offline", kind="offline", severity="minor", offline_factor=3, offline_min_s=600
    )
    assert offline_limit_s(rule, interval_s=60) == 600
    assert offline_limit_s(rule, interval_s=3600) == 3 * 3600
