"""One event, not a storm of alarms: which incidents of a scenario belong together (pure; the
rules pass reads the candidates and writes the plan, data/event_store.py).

An incident joins an active event of its scenario when it is in one of the event's streets, or
in a neighbouring street that is itself busy, and no more than the scenario's gap after the
event's last member. The rest form new events: a street is busy when it has `street_min` of the
scenario's incidents within the gap of each other (one alarm is a fault, two a pattern); busy
streets that neighbour each other and overlap in time are one event when they hold
`min_members` together. Scattered faults, however many, stay single lines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from data import event_store
from data.event_types import Candidate, Group, GroupingPlan, GroupingWrites, Topic


@dataclass
class _Run:
    """A busy street's incidents close together in time: one node of the forming graph."""

    category: str
    street: str
    start_us: int
    end_us: int
    members: list[int]


def plan(
    candidates: Iterable[Candidate],
    groups: Iterable[Group],
    *,
    topics: Mapping[str, Topic],
    neighbours: Mapping[str, frozenset[str]],
) -> GroupingPlan:
    """The plan for this pass: attach, then form new events from what is left."""
    result = GroupingPlan()
    pending = sorted(
        (c for c in candidates if _groupable(topics.get(c.category))),
        key=lambda c: (c.opened_us, c.id),
    )
    busy = _busy_members(pending, topics)
    active: dict[str, list[Group]] = defaultdict(list)
    for group in sorted(groups, key=lambda g: (g.opened_us, g.id)):
        # the plan grows footprints as members join: its own copies, not the caller's
        active[group.category].append(replace(group, streets=set(group.streets)))
    left: list[Candidate] = []
    for candidate in pending:
        joined = _join(candidate, active[candidate.category], topics, neighbours, busy, result)
        if joined is None:
            left.append(candidate)
            continue
        result.attach[candidate.id] = joined.id
        joined.streets.add(candidate.street)
        joined.last_us = max(joined.last_us, candidate.opened_us)
    result.new = _form(left, topics=topics, neighbours=neighbours)
    return result


def _groupable(topic: Topic | None) -> bool:
    return topic is not None and topic.min_members is not None


def _join(
    candidate: Candidate,
    groups: list[Group],
    topics: Mapping[str, Topic],
    neighbours: Mapping[str, frozenset[str]],
    busy: set[int],
    result: GroupingPlan,
) -> Group | None:
    """The event `candidate` joins (the oldest it touches, the others merged into it)."""
    gap = topics[candidate.category].gap_us
    reach = neighbours.get(candidate.street, frozenset()) if candidate.id in busy else frozenset()
    touching = [
        group
        for group in groups
        if group.id not in result.merge
        and group.opened_us - gap <= candidate.opened_us <= group.last_us + gap
        and (candidate.street in group.streets or not reach.isdisjoint(group.streets))
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
    return keep


def _runs(pending: list[Candidate], topics: Mapping[str, Topic]) -> list[_Run]:
    """Each street's incidents of a scenario cut into runs where no two neighbours in time are
    more than the gap apart (candidates come oldest first)."""
    runs: dict[tuple[str, str], list[_Run]] = defaultdict(list)
    for candidate in pending:
        gap = topics[candidate.category].gap_us
        street_runs = runs[(candidate.category, candidate.street)]
        if street_runs and candidate.opened_us - street_runs[-1].end_us <= gap:
            street_runs[-1].end_us = candidate.opened_us
            street_runs[-1].members.append(candidate.id)
        else:
            street_runs.append(
                _Run(
                    candidate.category,
                    candidate.street,
                    candidate.opened_us,
                    candidate.opened_us,
                    [candidate.id],
                )
            )
    return [run for street_runs in runs.values() for run in street_runs]


def _busy_runs(pending: list[Candidate], topics: Mapping[str, Topic]) -> list[_Run]:
    """The runs long enough to count as a pattern in their street."""
    return [
        run for run in _runs(pending, topics) if len(run.members) >= topics[run.category].street_min
    ]


def _busy_members(pending: list[Candidate], topics: Mapping[str, Topic]) -> set[int]:
    """The candidates in a busy run: they may reach into a neighbouring street's event."""
    return {member for run in _busy_runs(pending, topics) for member in run.members}


def _form(
    left: list[Candidate],
    *,
    topics: Mapping[str, Topic],
    neighbours: Mapping[str, frozenset[str]],
) -> list[tuple[str, list[int]]]:
    """New events: connected busy runs (same scenario, same or neighbouring street, within the
    gap of each other in time) holding the scenario's minimum of members together."""
    runs = _busy_runs(left, topics)
    components: dict[int, list[_Run]] = defaultdict(list)
    for index, root in enumerate(_components(runs, topics=topics, neighbours=neighbours)):
        components[root].append(runs[index])
    formed = []
    for members in components.values():
        ids = sorted(member for run in members for member in run.members)
        if len(ids) >= (topics[members[0].category].min_members or 0):
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
    lookback: timedelta,
    neighbours: dict[str, frozenset[str]] | None = None,
) -> GroupingWrites:
    """One grouping pass: plan over the recent ungrouped incidents, write it, close quiet
    events."""
    topics = event_store.load_topics(conn)
    candidates = event_store.grouping_candidates(conn, since=now - lookback)
    writes = GroupingWrites()
    if candidates:
        grouping = plan(
            candidates,
            event_store.active_groups(conn),
            topics=topics,
            neighbours=event_store.load_neighbours(conn) if neighbours is None else neighbours,
        )
        if not grouping.empty:
            writes = event_store.apply_plan(conn, grouping, now=now)
    closed = event_store.close_quiet_groups(conn, now=now)
    return GroupingWrites(
        grouped=writes.grouped, opened=writes.opened, merged=writes.merged, closed=closed
    )
