"""One event, not a storm of alarms: the grouping planner."""

from __future__ import annotations

import random

from data.event_types import Candidate, Group, Topic
from ingest.grouping import busy_threshold, plan, street_thresholds

MIN = 60 * 1_000_000  # a minute in µs
TOPICS = {
    "flood": Topic(code="flood", min_members=3, street_min=2, gap_us=30 * MIN),
    "power": Topic(code="power", min_members=3, street_min=2, gap_us=30 * MIN),
    "elderly": Topic(code="elderly", min_members=None, street_min=2, gap_us=30 * MIN),
}
# a row of streets s0 - s1 - ... - s9, each neighbouring the next
ROW = [f"s{i}" for i in range(10)]
# and the rest of a city: two hundred quiet streets elsewhere
NEIGHBOURS = {
    **{
        street: frozenset(ROW[j] for j in (i - 1, i + 1) if 0 <= j < len(ROW))
        for i, street in enumerate(ROW)
    },
    **{f"q{i}": frozenset() for i in range(200)},
}


def _c(
    id_: int, street: str, minute: float, category: str = "flood", device: int | None = None
) -> Candidate:
    """An incident (of a device of its own unless `device` says)."""
    at = round(minute * MIN)
    return Candidate(id=id_, category=category, street=street, opened_us=at, device=device or id_)


def test_busy_neighbouring_streets_form_one_event_and_lone_faults_stay_single():
    candidates = [
        _c(1, "s1", 0),
        _c(2, "s1", 5),
        _c(3, "s2", 6),
        _c(4, "s2", 9),  # s1 and s2 busy, neighbours, overlapping: one event of four
        _c(5, "s5", 3),  # alone in its street: a fault
        _c(6, "s6", 4),  # alone too, though s5 neighbours it: faults do not chain
    ]
    result = plan(candidates, [], topics=TOPICS, neighbours=NEIGHBOURS)
    assert result.new == [("flood", [1, 2, 3, 4])]
    assert result.attach == {} and result.merge == {}


def test_one_faulty_device_is_one_fault_however_many_incidents_it_raises():
    # its warning, its alarm, its 预警 and its silence, minutes apart, next to another fault
    one = [_c(1, "s1", 0, device=7), _c(2, "s1", 2, device=7), _c(3, "s1", 4, device=7)]
    alone = plan([*one, _c(4, "s2", 3)], [], topics=TOPICS, neighbours=NEIGHBOURS)
    assert alone.new == []
    two = plan(
        [*one, _c(5, "s1", 5, device=8), _c(6, "s2", 3)], [], topics=TOPICS, neighbours=NEIGHBOURS
    )
    assert two.new == []  # two devices in a street, but an event needs three
    three = [*one, _c(5, "s1", 5, device=8), _c(6, "s1", 6, device=9)]
    assert plan(three, [], topics=TOPICS, neighbours=NEIGHBOURS).new == [("flood", [1, 2, 3, 5, 6])]


def test_an_event_needs_its_minimum_and_its_members_within_the_gap():
    pair = [_c(1, "s1", 0), _c(2, "s1", 10)]  # busy, but two members are not an event
    assert plan(pair, [], topics=TOPICS, neighbours=NEIGHBOURS).new == []
    apart = [_c(1, "s1", 0), _c(2, "s1", 40), _c(3, "s1", 80)]  # 40 min apart: no run of two
    assert plan(apart, [], topics=TOPICS, neighbours=NEIGHBOURS).new == []
    late = [_c(1, "s1", 0), _c(2, "s1", 5), _c(3, "s2", 100), _c(4, "s2", 101)]
    formed = plan(late, [], topics=TOPICS, neighbours=NEIGHBOURS).new
    assert formed == []  # two busy streets, but hours apart and two members each


def test_scenarios_are_never_mixed_and_elderly_care_is_never_grouped():
    candidates = [
        _c(1, "s1", 0, "flood"),
        _c(2, "s1", 1, "power"),
        _c(3, "s1", 2, "flood"),
        _c(4, "s1", 3, "power"),
        _c(5, "s1", 4, "flood"),
        *(_c(10 + i, "s3", i, "elderly") for i in range(6)),
    ]
    result = plan(candidates, [], topics=TOPICS, neighbours=NEIGHBOURS)
    assert result.new == [("flood", [1, 3, 5])]


def test_new_incidents_join_an_active_event_in_its_streets_or_a_busy_neighbour():
    def event() -> Group:
        recent = {"s1": [(0, 91), (5 * MIN, 92)], "s2": [(10 * MIN, 93), (20 * MIN, 94)]}
        return Group(70, "flood", {"s1", "s2"}, opened_us=0, last_us=20 * MIN, recent=recent)

    candidates = [
        _c(1, "s2", 25),  # in its streets, where it is still busy: joins
        _c(2, "s3", 26),
        _c(3, "s3", 27),  # s3 neighbours it and is busy: both join
        _c(4, "s8", 28),  # far away: stays
        _c(5, "s1", 90),  # in its streets but an hour after its last member: stays
    ]
    result = plan(candidates, [event()], topics=TOPICS, neighbours=NEIGHBOURS)
    assert result.attach == {1: 70, 2: 70, 3: 70}
    assert result.new == []
    lone = plan([_c(6, "s3", 26)], [event()], topics=TOPICS, neighbours=NEIGHBOURS)
    assert lone.attach == {}  # a single fault next door does not join
    # nor one in its own street once the pattern there has faded: an event does not live on
    # by the faults that come anyway
    faded = plan([_c(7, "s1", 45)], [event()], topics=TOPICS, neighbours=NEIGHBOURS)
    assert faded.attach == {}


def test_an_incident_touching_two_events_merges_the_younger_into_the_older():
    old = Group(1, "flood", {"s1"}, opened_us=0, last_us=10 * MIN, recent={"s1": [(8 * MIN, 81)]})
    young = Group(
        2, "flood", {"s3"}, opened_us=5 * MIN, last_us=12 * MIN, recent={"s3": [(12 * MIN, 82)]}
    )
    candidates = [_c(10, "s3", 13), _c(11, "s2", 14), _c(12, "s2", 15)]
    result = plan(candidates, [young, old], topics=TOPICS, neighbours=NEIGHBOURS)
    assert result.merge == {2: 1}
    assert result.attach == {10: 1, 11: 1, 12: 1}  # 10 joined the young one, now merged


def test_how_many_make_a_busy_street_grows_with_the_scenarios_background():
    gap, hours = 30 * MIN, 180 * MIN
    quiet = [0] * 200 + [1] * 30  # a fault now and then
    assert busy_threshold(quiet, street_min=2, gap_us=gap, lookback_us=hours) == 2
    noisy = [3] * 120 + [6] * 100  # every street sees faults every hour
    assert busy_threshold(noisy, street_min=2, gap_us=gap, lookback_us=hours) >= 5
    # a storm in a quarter of the streets does not raise the bar it has to clear
    stormy = [0] * 160 + [1] * 10 + [300] * 60
    assert busy_threshold(stormy, street_min=2, gap_us=gap, lookback_us=hours) == 2


def test_a_street_of_many_sensors_needs_more_to_be_busy():
    gap, hours = 30 * MIN, 180 * MIN
    faulty = {"big": 30, "small": 3, **{f"q{i}": 1 for i in range(100)}}
    fleet = {"big": 1000, "small": 100, **{f"q{i}": 100 for i in range(100)}}
    found = street_thresholds(faulty, fleet, street_min=2, gap_us=gap, lookback_us=hours)
    assert found["small"] == found["q0"] < found["big"]


def test_a_storm_of_two_thousand_alarms_is_a_few_events_and_scattered_faults_stay_single():
    rng = random.Random(7)
    storm = [
        _c(i, rng.choice(ROW[:6]), rng.uniform(0, 60)) for i in range(2000)
    ]  # six neighbouring streets, an hour of flood alarms
    faults = [
        _c(10_000 + i, f"far{i}", rng.uniform(0, 60), rng.choice(["flood", "power"]))
        for i in range(50)
    ]
    result = plan(storm + faults, [], topics=TOPICS, neighbours=NEIGHBOURS)
    grouped = {member for _, ids in result.new for member in ids}
    assert len(result.new) <= 5
    assert grouped == {c.id for c in storm}
    assert not grouped & {c.id for c in faults}
