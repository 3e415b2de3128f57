"""Dash's wildcard attributes (data-*, aria-*), which a component takes only by unpacking."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def wildcards(attributes: Mapping[str, str]) -> dict[str, Any]:
    """`attributes` to unpack into a component (typed Any: the components' typed keyword
    arguments cannot say that only data-* and aria-* names arrive this way)."""
    return dict(attributes)
