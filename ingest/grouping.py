"""One event, not a storm of alarms: which incidents of a scenario belong together (pure; the
rules pass reads the candidates and writes the plan, data/event_store.py).

A street is *busy* for a scenario when more of its devices raised the scenario's incidents
within the gap of each other than its background explains (devices, not incidents: one faulty
sensor's warning, alarm, 预警 and silence are one fault): at least `street_min`, and more than a
Poisson count at the scenario's usual per-street rate reaches once in a thousand (the usual
rate: the mean of the quieter 70 % of streets over the lookback, so a storm does not raise its
own bar). One alarm is a fault; a handful in one street within minutes is a pattern; how many
make a pattern grows with the city's background (a street with a few hundred sensors sees a
fault an hour anyway).

An incident joins an active event of its scenario when its street is busy (counting the
event's recent members there) and is one of the event's streets or neighbours one, no more
than the gap after the event's last member: so an event grows while the pattern lasts and
stops taking members when only scattered faults remain. The rest form new events: busy runs in
the same or neighbouring streets overlapping in time, holding `min_members` devices together.
Scattered faults, however many, stay single lines."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from data import event_store
from data.event_types import Candidate, Group, GroupingPlan, GroupingWrites, Topic

US = 1_000_000
# how far back a pass looks for incidents to group and to learn each scenario's background
LOOKBACK_US = 3 * 3600 * US
# a street is busy when its count would be this unlikely at the scenario's usual rate (234
# streets, five scenarios, two half-hours an hour: about one chance pattern a day)
SURPRISE = 1e-4
# the quieter share of streets whose mean is the usual rate
QUIET_SHARE = 0.7
MAX_THRESHOLD = 50

# each scenario's active devices by street
Fleet = Mapping[tuple[str, str], int]
# each street's incidents of a scenario as (opened µs, device), oldest first
Times = dict[tuple[str, str], list[tuple[int, int]]]


@dataclass
class _Run:
    """A busy street's incidents close together in time: one node of the forming graph."""

    category: str
    street: str
    start_us: int
    end_us: int
    members: list[int]
    devices: set[int]


def busy_threshold(counts: list[int], *, street_min: int, gap_us: int, lookback_us: int) -> int:
    """How many devices within the gap make a street busy when every street has as many
    devices, given each street's count over the lookback (streets without any as zeros)."""
    faulty = dict(enumerate(counts))
    fleet = dict.fromkeys(faulty, 1)
    found = street_thresholds(
        faulty, fleet, street_min=street_min, gap_us=gap_us, lookback_us=lookback_us
    )
    return max(found.values(), default=max(street_min, 1))


def street_thresholds(
    faulty: Mapping[Any, int],
    fleet: Mapping[Any, int],
    *,
    street_min: int,
    gap_us: int,
    lookback_us: int,
) -> dict[Any, int]:
    """Each street's busy threshold for a scenario: `faulty` devices over the lookback and the
    `fleet` of devices, by street. The background is a rate per device (the quieter 70 % of
    streets by that rate, so a storm does not raise its own bar); a street of many sensors
    sees more faults by chance and needs more to be busy."""
    streets = set(fleet) | set(faulty)
    sizes = {street: max(fleet.get(street, 1), 1) for street in streets}
    ranked = sorted(streets, key=lambda street: faulty.get(street, 0) / sizes[street])
    quiet = ranked[: max(1, int(QUIET_SHARE * len(ranked)))]
    devices = sum(sizes[street] for street in quiet)
    per_device = sum(faulty.get(street, 0) for street in quiet) / max(devices, 1)
    scale = per_device * gap_us / lookback_us
    return {street: _threshold(scale * sizes[street], street_min) for street in streets}


def _threshold(rate: float, street_min: int) -> int:
    """The least count ≥ `street_min` that a Poisson count of mean `rate` reaches with at most
    SURPRISE chance."""
    term = math.exp(-rate)  # P(X = 0)
    below = term  # P(X ≤ k - 1) for the k tried next
    for k in range(1, MAX_THRESHOLD):
        if k >= street_min and 1.0 - below <= SURPRISE:
            return k
        term *= rate / k
        below += term
    return MAX_THRESHOLD


def plan(
    candidates: Iterable[Candidate],
    groups: Iterable[Group],
    *,
    topics: Mapping[str, Topic],
    neighbours: Mapping[str, frozenset[str]],
    fleet: Fleet | None = None,
    lookback_us: int = LOOKBACK_US,
) -> GroupingPlan:
    """The plan for this pass: attach, then form new events from what is left (`fleet`: each
    scenario's devices by street; unknown: every street alike)."""
    result = GroupingPlan()
    pending = sorted(
        (c for c in candidates if _groupable(topics.get(c.category))),
        key=lambda c: (c.opened_us, c.id),
    )
    thresholds = _thresholds(pending, topics, neighbours, fleet, lookback_us)
    times: Times = defaultdict(list)
    for candidate in pending:
        times[(candidate.category, candidate.street)].append(
            (candidate.opened_us, candidate.device)
        )
    active: dict[str, list[Group]] = defaultdict(list)
    for group in sorted(groups, key=lambda g: (g.opened_us, g.id)):
        # the plan grows footprints as members join: its own copies, not the caller's
        active[group.category].append(
            replace(
                group,
                streets=set(group.streets),
                recent={street: sorted(seen) for street, seen in group.recent.items()},
            )
        )
    left: list[Candidate] = []
    for candidate in pending:
        need = thresholds[(candidate.category, candidate.street)]
        joined = _join(
            candidate, active[candidate.category], topics, neighbours, need, times, result
        )
        if joined is None:
            left.append(candidate)
            continue
        result.attach[candidate.id] = joined.id
        joined.streets.add(candidate.street)
        joined.last_us = max(joined.last_us, candidate.opened_us)
    result.new = _form(left, topics=topics, neighbours=neighbours, thresholds=thresholds)
    return result


def _groupable(topic: Topic | None) -> bool:
    return topic is not None and topic.min_members is not None


def _thresholds(
    pending: list[Candidate],
    topics: Mapping[str, Topic],
    neighbours: Mapping[str, frozenset[str]],
    fleet: Fleet | None,
    lookback_us: int,
) -> dict[tuple[str, str], int]:
    """Each scenario's busy threshold in each street, from the devices that raised its
    incidents over the lookback and (when known) its devices there."""
    faulty: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for candidate in pending:
        faulty[candidate.category][candidate.street].add(candidate.device)
    thresholds: dict[tuple[str, str], int] = {}
    for category, by_street in faulty.items():
        sizes = {street: n for (cat, street), n in (fleet or {}).items() if cat == category}
        if not sizes:  # devices unknown: every street of the city alike
            sizes = dict.fromkeys(set(neighbours) | set(by_street), 1)
        found = street_thresholds(
            {street: len(devices) for street, devices in by_street.items()},
            sizes,
            street_min=topics[category].street_min,
            gap_us=topics[category].gap_us,
            lookback_us=lookback_us,
        )
        thresholds.update({(category, street): k for street, k in found.items()})
    return thresholds


def _devices_near(times: list[tuple[int, int]], at: int, gap: int) -> set[int]:
    """The devices of sorted (opened µs, device) `times` within `gap` of `at`."""
    low = bisect_left(times, (at - gap, -(2**63)))
    high = bisect_right(times, (at + gap, 2**63))
    return {device for _, device in times[low:high]}


def _join(
    candidate: Candidate,
    groups: list[Group],
    topics: Mapping[str, Topic],
    neighbours: Mapping[str, frozenset[str]],
    need: int,
    times: Times,
    result: GroupingPlan,
) -> Group | None:
    """The event `candidate` joins (the oldest it touches, the others merged into it)."""
    gap = topics[candidate.category].gap_us
    at, street = candidate.opened_us, candidate.street
    near = neighbours.get(street, frozenset())
    own = _devices_near(times.get((candidate.category, street), []), at, gap)
    touching = [
        group
        for group in groups
        if group.id not in result.merge
        and group.opened_us - gap <= at <= group.last_us + gap
        and (street in group.streets or not near.isdisjoint(group.streets))
        and len(own | _devices_near(group.recent.get(street, []), at, gap)) >= need
    ]
    if not touching:
        return None
    keep, *absorbed = touching
    for group in absorbed:
        result.merge[group.id] = keep.id
        keep.streets |= group.streets
        keep.opened_us = min(keep.opened_us, group.opened_us)
        keep.last_us = max(keep.last_us, group.last_us)
        for incident, target in result.attach.items():
            if target == group.id:
                result.attach[incident] = keep.id
    keep.recent.setdefault(street, []).append((at, candidate.device))
    keep.recent[street].sort()
    return keep


def _busy_runs(
    pending: list[Candidate],
    topics: Mapping[str, Topic],
    thresholds: Mapping[tuple[str, str], int],
) -> list[_Run]:
    """Each street's incidents of a scenario cut into runs where no two neighbours in time are
    more than the gap apart (candidates come oldest first); the runs long enough to be busy."""
    runs: dict[tuple[str, str], list[_Run]] = defaultdict(list)
    for candidate in pending:
        gap = topics[candidate.category].gap_us
        street_runs = runs[(candidate.category, candidate.street)]
        if street_runs and candidate.opened_us - street_runs[-1].end_us <= gap:
            street_runs[-1].end_us = candidate.opened_us
            street_runs[-1].members.append(candidate.id)
            street_runs[-1].devices.add(candidate.device)
        else:
            street_runs.append(
                _Run(
                    candidate.category,
                    candidate.street,
                    candidate.opened_us,
                    candidate.opened_us,
                    [candidate.id],
                    {candidate.device},
                )
            )
    return [
        run
        for street_runs in runs.values()
        for run in street_runs
        if len(run.devices) >= thresholds[(run.category, run.street)]
    ]


def _form(
    left: list[Candidate],
    *,
    topics: Mapping[str, Topic],
    neighbours: Mapping[str, frozenset[str]],
    thresholds: Mapping[tuple[str, str], int],
) -> list[tuple[str, list[int]]]:
    """New events: connected busy runs (same scenario, same or neighbouring street, within the
    gap of each other in time) holding the scenario's minimum of members together."""
    runs = _busy_runs(left, topics, thresholds)
    components: dict[int, list[_Run]] = defaultdict(list)
    for index, root in enumerate(_components(runs, topics=topics, neighbours=neighbours)):
        components[root].append(runs[index])
    formed = []
    for members in components.values():
        ids = sorted(member for run in members for member in run.members)
        devices = {device for run in members for device in run.devices}
        if len(devices) >= (topics[members[0].category].min_members or 0):
            formed.append((members[0].category, ids))
    return sorted(formed, key=lambda item: item[1][0])


def _components(
    runs: list[_Run], *, topics: Mapping[str, Topic], neighbours: Mapping[str, frozenset[str]]
) -> list[int]:
    """Each run's component (union-find over runs of one scenario in the same or neighbouring
    streets within the gap of each other)."""
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_street: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, run in enumerate(runs):
        by_street[(run.category, run.street)].append(index)
    for index, run in enumerate(runs):
        gap = topics[run.category].gap_us
        for street in (run.street, *neighbours.get(run.street, ())):
            for other in by_street.get((run.category, street), ()):
                near = runs[other]
                if near.start_us <= run.end_us + gap and run.start_us <= near.end_us + gap:
                    parent[root(other)] = root(index)
    return [root(index) for index in range(len(runs))]


def group_pass(
    conn: sa.Connection,
    *,
    now: datetime,
    lookback: timedelta = timedelta(microseconds=LOOKBACK_US),
    neighbours: dict[str, frozenset[str]] | None = None,
    fleet: Fleet | None = None,
) -> GroupingWrites:
    """One grouping pass: plan over the recent ungrouped incidents, write it, close quiet
    events."""
    topics = event_store.load_topics(conn)
    candidates = event_store.grouping_candidates(conn, since=now - lookback)
    writes = GroupingWrites()
    if candidates:
        grouping = plan(
            candidates,
            event_store.active_groups(conn, since=now - lookback),
            topics=topics,
            neighbours=event_store.load_neighbours(conn) if neighbours is None else neighbours,
            fleet=event_store.load_fleet(conn) if fleet is None else fleet,
            lookback_us=round(lookback.total_seconds() * US),
        )
        if not grouping.empty:
            writes = event_store.apply_plan(conn, grouping, now=now)
    closed = event_store.close_quiet_groups(conn, now=now)
    return GroupingWrites(
        grouped=writes.grouped, opened=writes.opened, merged=writes.merged, closed=closed
    )
