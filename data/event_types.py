"""The shapes of events' grouping (revision 0009): scenarios' parameters, candidates, active
events and a plan (ingest/grouping.py makes plans; data/event_store.py reads and writes them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Topic:
    """A scenario's grouping parameters (min_members None: never grouped)."""

    code: str
    min_members: int | None
    street_min: int
    gap_us: int


@dataclass(frozen=True)
class Candidate:
    """An ungrouped incident of a grouped scenario."""

    id: int
    category: str
    street: str
    opened_us: int
    device: int  # its device (an incident without one: minus its id, a device of its own)


@dataclass
class Group:
    """An active event as the plan sees it (its footprint grows as members join)."""

    id: int
    category: str
    streets: set[str]
    opened_us: int
    last_us: int
    # its members opened within the lookback, by street: an event keeps taking members in a
    # street while its pattern lasts there
    recent: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # (opened µs, device)


@dataclass
class GroupingPlan:
    """What to write: members joining events, new events, events merged into older ones."""

    attach: dict[int, int] = field(default_factory=dict)  # incident id -> event id
    new: list[tuple[str, list[int]]] = field(default_factory=list)  # (category, member ids)
    merge: dict[int, int] = field(default_factory=dict)  # absorbed event id -> kept event id

    @property
    def empty(self) -> bool:
        """Whether the plan changes nothing."""
        return not (self.attach or self.new or self.merge)


@dataclass(frozen=True)
class GroupingWrites:
    """What applying a plan and closing quiet events changed."""

    grouped: int = 0
    opened: int = 0
    merged: int = 0
    closed: int = 0
    seconds: float = 0.0  # what the pass took (the rules' cost line shows it)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.grouped or self.opened or self.merged or self.closed)
