"""Live reads: every panel's data through one single-flight cache keyed by access scope.

Shared by every web worker through Redis when one is configured, otherwise per process, so many
open screens cost about one query per key per period. Each result carries the instant it was
read; `asof_payload` turns that into what a panel's freshness badge needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import dash
from plotly.utils import PlotlyJSONEncoder

from data.cache import Cached, TtlCache
from data.clock import database_now
from data.scope import current_scope
from serving.shared_cache import SharedCache
from web.services import read_engine, services

_T = TypeVar("_T")
CITY_TZ = ZoneInfo("Asia/Shanghai")


def shared_cache() -> TtlCache | SharedCache:
    """The panel-results cache of the app serving this request."""
    return services().results


def read(query: Callable[..., _T], /, **kwargs: Any) -> Cached[_T]:
    """`query(read engine, **kwargs)` through the shared cache, with the instant it was read;
    runs in, and is shared only within, the caller's access scope."""
    return shared_cache().get(query, current_scope().partition, engine=read_engine(), **kwargs)


def read_fresh(query: Callable[..., _T], /, **kwargs: Any) -> Cached[_T]:
    """`query(read engine, **kwargs)` straight from the store, in the caller's scope: for what
    its reader may just have changed (one incident's detail after their own action)."""
    return Cached(query(engine=read_engine(), **kwargs), datetime.now(UTC))


def now(at: datetime | None = None) -> Cached[datetime]:
    """The database clock, shared like any other read (so windows built on it share keys too);
    a replay's minute when `at` is given."""
    if at is not None:
        return Cached(at, datetime.now(UTC))
    return read(database_now)


def asof_payload(*results: Cached, at: datetime | None = None) -> dict[str, Any]:
    """What a panel's as-of store holds: the oldest of `results`, and its age on the server.

    The browser dates the data by when it received it minus `age`, so a client clock that
    differs from the server's does not make fresh data look delayed.
    """
    oldest = min(result.as_of for result in results)
    moment = at or datetime.now(UTC)
    return {
        "at": int(oldest.timestamp() * 1000),
        "age": round(max((moment - oldest).total_seconds(), 0.0), 3),
        "clock": oldest.astimezone(CITY_TZ).strftime("%H:%M:%S"),
    }


def only_changed(values: dict[str, Any], sent: object) -> tuple[list[Any], dict[str, str]]:
    """`values` in order, no_update where `sent` holds the same digest; and the new digests."""
    # dash-leaflet redraws every feature of a layer whose hideout or data is set again (hover
    # and tooltips reset), so a refresh that changed nothing must leave the layer alone; it also
    # annotates the features it holds, hence digests of what was sent rather than comparisons
    previous = sent if isinstance(sent, dict) else {}
    digests: dict[str, str] = {}
    out: list[Any] = []
    for key, value in values.items():
        text = json.dumps(value, cls=PlotlyJSONEncoder, sort_keys=True)
        digests[key] = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        out.append(dash.no_update if previous.get(key) == digests[key] else value)
    return out, digests
