"""Allow-lists from the store (districts, categories, streets), in the app's reference memo."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import has_app_context

from data.reference_reads import area_bounds, category_codes, district_codes, street_names
from data.reference_reads import street_districts as load_street_districts
from web.services import services, web_engine

_T = TypeVar("_T")


def _cached(key: tuple[str, str | None], load: Callable[[], _T]) -> _T:
    # the app's reference memo (flask-caching, a few minutes): one read per list per worker
    memo = services().reference
    name = ":".join(part or "" for part in key)
    value = memo.get(name)
    if value is None:
        value = load()
        memo.set(name, value)
    return value


def districts() -> dict[str, tuple[str, str]]:
    """adcode → (name_zh, name_en)."""
    return _cached(("districts", None), lambda: district_codes(web_engine()))


def categories() -> dict[str, tuple[str, str]]:
    """category code → (name_zh, name_en), in display order."""
    return _cached(("categories", None), lambda: category_codes(web_engine()))


def streets(district: str) -> dict[str, tuple[str, str, bool]]:
    """street code → (name_zh, name_en, approximate) of a known district ({} otherwise)."""
    if district not in districts():
        return {}
    return _cached(("streets", district), lambda: street_names(web_engine(), district=district))


def street_districts() -> dict[str, str]:
    """street code → district adcode of every street/town."""
    return _cached(("street_districts", None), lambda: load_street_districts(web_engine()))


def bounds(district: str | None) -> dict[str, list[list[float]]]:
    """code → [[south, west], [north, east]] of the districts and city (None) or of one
    district's streets."""
    if district is not None and district not in districts():
        return {}
    return _cached(("bounds", district), lambda: area_bounds(web_engine(), district=district))


def clear() -> None:
    """Forget the current app's lists (after a street import); outside an app, nothing is kept."""
    if has_app_context():
        services().reference.clear()
