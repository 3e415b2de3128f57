"""What the read queries accept: scope codes, time windows, severities, statuses, states."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

SEVERITIES = ("critical", "major", "minor")
INCIDENT_STATUSES = ("open", "acknowledged", "resolved")
DEVICE_STATES = ("normal", "warning", "alarm", "forecast", "offline", "maintenance")
# incident kinds that count as alarm figures (a 预警 or a lying sensor is not an alarm)
ALARM_KINDS = ("alarm", "anomaly")
_DISTRICT_RE = re.compile(r"^3101[0-9]{2}$")
_STREET_RE = re.compile(r"^3101[0-9]{5}$")
_CATEGORY_RE = re.compile(r"^[a-z_]{2,32}$")


class InvalidQuery(ValueError):
    """A query argument is malformed (the message names it); nothing was sent to the database."""


def check_scope(
    *, district: str | None = None, street: str | None = None, category: str | None = None
) -> None:
    """Raise InvalidQuery unless each given code is well formed."""
    if district is not None and not _DISTRICT_RE.match(district):
        raise InvalidQuery(f"district must be a 6-digit Shanghai adcode (3101xx), not {district!r}")
    if street is not None and not _STREET_RE.match(street):
        raise InvalidQuery(f"street must be a 9-digit street/town code, not {street!r}")
    if category is not None and not _CATEGORY_RE.match(category):
        raise InvalidQuery(f"category must be a category code such as 'flood', not {category!r}")


def check_window(start: datetime, end: datetime) -> None:
    """Raise InvalidQuery unless [start, end) is an aware window of at most 400 days."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidQuery("start and end must be timezone-aware datetimes")
    if end <= start:
        raise InvalidQuery("end must be after start")
    if end - start > timedelta(days=400):
        raise InvalidQuery("time windows are limited to 400 days")


_MEASURAND_RE = re.compile(r"[a-z][a-z0-9_]{1,40}")
MAX_MEASURANDS = 16


def check_measurands(measurands: Sequence[str]) -> None:
    """Raise InvalidQuery unless `measurands` are 1 to MAX_MEASURANDS well-formed codes."""
    if not measurands or len(measurands) > MAX_MEASURANDS:
        raise InvalidQuery(f"give 1 to {MAX_MEASURANDS} measurands")
    if not all(isinstance(m, str) and _MEASURAND_RE.fullmatch(m) for m in measurands):
        raise InvalidQuery("a measurand is a short lower-case code")
