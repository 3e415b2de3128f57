"""Countdowns to an expected breach (预警), always computed from expected_at when drawn, never
stored: the same 预警 reads "in 23 min" now and "in 22 min" a minute later."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from components.i18n import t


def minutes_until(expected_at: object, now: datetime) -> int | None:
    """Whole minutes from `now` to `expected_at` (0 once it is due; None when unknown)."""
    if not isinstance(expected_at, datetime) or pd.isna(expected_at):
        # missing: None from the database, NaT or NaN from a frame
        return None
    seconds = (expected_at - now).total_seconds()
    # "in 0 min" reads as a mistake: under a minute left counts as one, past it as due
    return 0 if seconds <= 0 else max(1, round(seconds / 60))


def format_limit(limit: float | None, unit: str) -> str:
    """An alarm limit with its unit, without a trailing ".0" ("15 cm", "0.25 MPa")."""
    if limit is None:
        return unit
    text = f"{limit:.3f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".strip()


def countdown(minutes: int | None, lang: str, *, limit: float | None, unit: str, side: int) -> str:
    """The feed's countdown in `lang`: 预计 23 分钟后超过报警值 15 cm (or below, or due now)."""
    value = format_limit(limit, unit)
    if minutes is None or minutes <= 0:
        return t("fx.feed.due_low" if side < 0 else "fx.feed.due", lang, limit=value)
    key = "fx.feed.countdown_low" if side < 0 else "fx.feed.countdown"
    return t(key, lang, m=minutes, limit=value)


def earliest(minutes: int | None, lang: str) -> str:
    """The 预警 tile's line: "最早 12 分钟后" / "earliest in 12 min" (or due, or none)."""
    if minutes is None:
        return t("fx.tile.forecast_none", lang)
    if minutes <= 0:
        return t("fx.tile.forecast_due", lang)
    return t("fx.tile.forecast_next", lang, m=minutes)
