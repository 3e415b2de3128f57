"""What a live panel is: the view it shows, how it is shown, and its one definition."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from components.state import LAYERS, METRICS, STACKS
from data.asof import replay_args
from data.cache import Cached


@dataclass(frozen=True)
class View:
    """One screenful of the city: all of it, a district or a street, optionally one category
    (or one scenario)."""

    district: str | None = None
    street: str | None = None
    category: str | None = None
    # a scenario view (专题): the scenario's own figures and warning level, not the general tiles
    topic: bool = False
    # 回放: the minute replayed (aware); None is live
    at: datetime | None = None

    @property
    def when(self) -> dict[str, Any]:
        """What a replay-aware read is given: the instant and `replay`, or nothing (live)."""
        return replay_args(self.at)

    @property
    def key(self) -> str:
        """The view written in playlist grammar (also its identity on a display)."""
        place = self.street or self.district or "city"
        if self.topic and self.category:
            return f"{place}:topic:{self.category}"
        return f"{place}:{self.category}" if self.category else place

    def as_dict(self) -> dict[str, Any]:
        """The view as a page's stores hold it."""
        at = self.at.isoformat() if self.at else None
        return {**asdict(self), "at": at, "key": self.key}


@dataclass(frozen=True)
class Look:
    """How a placement shows its panels: language, the viewer's choices, and the surface."""

    lang: str
    # the component id of a part of this placement (an id string on pages, a slot id on walls)
    id_of: Callable[[str], Any]
    # the freshness key of one of its badges ("map", "tiles", …)
    fresh_of: Callable[[str], str]
    metric: str = METRICS[0]
    stack: str = STACKS[0]
    layer: str = LAYERS[0]
    # walls and kiosks: nothing to hover or click, type read from across a room
    wall: bool = False
    # kiosks: incidents about people at home shown as counts only
    masked: bool = False
    feed_length: int = 30
    # a district map with the device clusters (the district page's): their legend too
    devices: bool = True
    # a map with the units layer (panels/units.py): their legend too
    units: bool = False
    # 回放: the placement shows a past instant (titles that say "now" say so instead)
    replay: bool = False


@dataclass(frozen=True)
class Part:
    """One output of a panel: the id suffix of its component and the property it sets; `level`
    limits it to city ("city") or district ("district") placements."""

    name: str
    prop: str
    level: str | None = None

    def shown_at(self, level: str) -> bool:
        """Whether a placement of `level` has this part."""
        return self.level is None or self.level == level


@dataclass(frozen=True)
class Rendered:
    """A panel's answer: each part's value, and the reads it was made of (its as-of)."""

    values: dict[str, Any]
    reads: tuple[Cached, ...]


def _drawn_by_placement(*_args: Any, **_kwargs: Any) -> Any:
    """The frame of a panel that has none of its own: its placements draw it."""
    raise TypeError("this panel's frame is drawn by each placement")


@dataclass(frozen=True)
class LivePanel:
    """One panel kind, written once and placed by pages, walls and kiosks.

    `render(view, look, kept)` reads through the shared cache and builds every part's value
    (`kept`: the values of the `keeps` parts the browser holds); `fallback(look)` is what a
    failed first load shows (a failed refresh keeps the last good content); `shared` says the
    answer depends only on its inputs and the viewer's scope, so one render serves everyone.
    """

    kind: str
    parts: tuple[Part, ...]
    render: Callable[[View, Look, dict[str, Any]], Rendered]
    fallback: Callable[[Look], dict[str, Any]]
    # the page controls it listens to, besides the view's choices in `follows`
    controls: tuple[str, ...] = ()
    # the view's choices its answer depends on: a panel of the district alone follows none, so
    # every view of that district (any category, street) shares one answer
    follows: tuple[str, ...] = ("category", "street")
    keeps: tuple[Part, ...] = ()
    # the freshness badges its as-of feeds
    badges: tuple[str, ...] = ()
    # the panel's frame in a layout, with the first answer when the layout read it (maps have
    # none: each placement draws its own, as they differ by placement)
    create: Callable[..., Any] = _drawn_by_placement
    shared: bool = True
    # whether the layout already holds the first answer (the callback then waits for a change)
    in_layout: bool = False
    # charts mount after the map has started (plotly is megabytes of script)
    deferred: bool = False

    def parts_at(self, level: str) -> tuple[Part, ...]:
        """The parts a placement of `level` has."""
        return tuple(part for part in self.parts if part.shown_at(level))
