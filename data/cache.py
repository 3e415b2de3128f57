"""A small thread-safe, single-flight TTL cache for query results shared by every open screen."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from data.scope import partition_tags

_T = TypeVar("_T")


@dataclass(frozen=True)
class Cached(Generic[_T]):
    """A computed value and the (server wall-clock, UTC) instant it was computed."""

    value: _T
    as_of: datetime


# makes a computation runnable on another thread as part of the request that asked for it
Carrier = Callable[[Callable[[], Any]], Callable[[], Any]]


class _Flight:
    """One computation in progress; callers arriving meanwhile wait on it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Cached[Any] | None = None
        self.error: BaseException | None = None


_F = TypeVar("_F", bound=Callable[..., Any])


def fresh_for(seconds: float) -> Callable[[_F], _F]:
    """Declare a query's result fresh for `seconds` however short a cache's own period: for
    what changes slowly by nature (hourly trends), so a refresh every few seconds does not
    recompute it every time."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")

    def mark(fn: _F) -> _F:
        fn.fresh_seconds = seconds  # type: ignore[attr-defined]
        return fn

    return mark


def fresh_seconds(fn: Callable[..., Any], default: float) -> float:
    """How long `fn`'s results stay fresh: what it declared (fresh_for) if longer than
    `default`, the cache's own period."""
    return max(default, float(getattr(fn, "fresh_seconds", 0.0)))


def freeze(value: object) -> Hashable:
    """A hashable stand-in for a keyword argument (lists and dicts from callbacks included)."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, *(freeze(v) for v in value))
    if isinstance(value, set | frozenset):
        return ("set", *sorted((freeze(v) for v in value), key=repr))
    if isinstance(value, dict):
        return ("dict", *sorted((k, freeze(v)) for k, v in value.items()))
    hash(value)  # unhashable arguments fail loudly rather than share a wrong key
    return value


class TtlCache:
    """Results of `fn(**kwargs)` kept `ttl_seconds`; one computation at a time per key.

    Concurrent callers of a missing key wait for the one computation in flight and share its
    result (or its error); errors are never stored; at most `max_entries` results are kept
    (least recently used dropped first). Cached values are shared: callers must not mutate them.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int = 512,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if ttl_seconds <= 0 or max_entries < 1:
            raise ValueError("ttl_seconds must be positive and max_entries at least 1")
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        # keyed by (fn, partition, frozen arguments)
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, Cached[Any]]] = OrderedDict()
        self._flights: dict[tuple[Any, ...], _Flight] = {}

    def get(
        self,
        fn: Callable[..., _T],
        partition: Hashable = None,
        /,
        *,
        carry: Carrier | None = None,
        **kwargs: Any,
    ) -> Cached[_T]:
        """`fn(**kwargs)` computed at most once per TTL, with the instant it was computed;
        results are shared only between callers of the same `partition` (e.g. access scope).
        `carry` is the shared cache's (serving.shared_cache): one process renews nothing behind."""
        del carry
        key = (fn, partition, freeze(kwargs))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() - entry[0] < fresh_seconds(fn, self.ttl_seconds):
                self._entries.move_to_end(key)
                return entry[1]
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            started = self._clock()
            as_of = self._wall_clock()
            result = Cached(value=fn(**kwargs), as_of=as_of)
            with self._lock:
                # the TTL runs from when the computation started: its data is that old
                self._entries[key] = (started, result)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            flight.result = result
            return result
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    @property
    def pressed(self) -> bool:
        """Never: this cache renews nothing in the background (the shared cache's may be)."""
        return False

    def clear(self) -> None:
        """Forget every stored result (flights in progress finish normally)."""
        with self._lock:
            self._entries.clear()

    def forget(self, fn: Callable[..., Any], partition: Hashable = None, /, **kwargs: Any) -> None:
        """Forget the one result `get(fn, partition, **kwargs)` would return."""
        with self._lock:
            self._entries.pop((fn, partition, freeze(kwargs)), None)

    def invalidate(self, *tags: str) -> None:
        """Forget the results of every partition tagged (data.scope.partition_tags) with any of
        `tags`; the others stay."""
        wanted = set(tags)
        with self._lock:
            for key in [key for key in self._entries if wanted & set(partition_tags(key[1]))]:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
