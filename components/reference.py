"""Allow-lists from the store (districts, categories, streets), cached for a few minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from data.reference_reads import area_bounds, category_codes, district_codes, street_names
from data.reference_reads import street_districts as load_street_districts
from data.scope import get_web_engine

_T = TypeVar("_T")
_TTL_SECONDS = 300.0
_lock = threading.Lock()
_cache: dict[tuple[str, str | None], tuple[float, object]] = {}


def _cached(key: tuple[str, str | None], load: Callable[[], _T]) -> _T:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < _TTL_SECONDS:
        return hit[1]  # type: ignore[return-value]
    value = load()
    with _lock:
        _cache[key] = (now, value)
    return value


def districts() -> dict[str, tuple[str, str]]:
    """adcode → (name_zh, name_en)."""
    return _cached(("districts", None), lambda: district_codes(get_web_engine()))


def categories() -> dict[str, tuple[str, str]]:
    """category code → (name_zh, name_en), in display order."""
    return _cached(("categories", None), lambda: category_codes(get_web_engine()))


def streets(district: str) -> dict[str, tuple[str, str, bool]]:
    """street code → (name_zh, name_en, approximate) of a known district ({} otherwise)."""
    if district not in districts():
        return {}
    return _cached(("streets", district), lambda: street_names(get_web_engine(), district=district))


def street_districts() -> dict[str, str]:
    """street code → district adcode of every street/town."""
    return _cached(("street_districts", None), lambda: load_street_districts(get_web_engine()))


def bounds(district: str | None) -> dict[str, list[list[float]]]:
    """code → [[south, west], [north, east]] of the districts and city (None) or of one
    district's streets."""
    if district is not None and district not in districts():
        return {}
    return _cached(("bounds", district), lambda: area_bounds(get_web_engine(), district=district))


def clear() -> None:
    """Forget everything (tests, street imports)."""
    with _lock:
        _cache.clear()
