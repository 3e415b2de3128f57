"""What the engine watches, built from plain tables: which early-warning rules apply to each
type, and the per-series limits and learned normals (SeriesSpec). Shared by the live loop (tables
from the store) and the benchmark's replay (tables from the labelled history)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from data.rule_types import Rule, rules_for_type
from foresight.baseline import CityBaselines
from foresight.engine import EARLY_KINDS, SeriesSpec


def early_rules_by_type(rules: Sequence[Rule], types: pd.DataFrame) -> dict[int, dict[str, Rule]]:
    """Per type id, the enabled early-warning rules that apply to it (most specific row)."""
    out: dict[int, dict[str, Rule]] = {}
    for type_id, category, value_kind in zip(
        types["id"].tolist(),
        types["category_code"].tolist(),
        types["value_kind"].tolist(),
        strict=True,
    ):
        applicable = rules_for_type(
            rules, type_id=int(type_id), category=str(category), value_kind=str(value_kind)
        )
        early = {code: rule for code, rule in applicable.items() if rule.kind in EARLY_KINDS}
        if early:
            out[int(type_id)] = early
    return out


def routine_types(rules_by_type: dict[int, dict[str, Rule]]) -> list[int]:
    """The types a baseline (routine) rule watches: they need the hour-of-week normal."""
    return [t for t, r in rules_by_type.items() if any(x.kind == "baseline" for x in r.values())]


@dataclass(frozen=True)
class Normals:
    """Per device: the daily cycle (n × 24) and, for the rows that learned one, the hour-of-week
    normal (week_row → line of week_median / week_spread, −1 for none: the daily cycle serves
    every day of the week)."""

    season: np.ndarray
    season_spread: np.ndarray
    week_row: np.ndarray
    week_median: np.ndarray
    week_spread: np.ndarray


def empty_normals(n: int) -> Normals:
    """Normals of `n` devices, all unknown (NaN), with no hour-of-week line yet."""
    return Normals(
        season=np.full((n, 24), np.nan, dtype=np.float32),
        season_spread=np.full((n, 24), np.nan, dtype=np.float32),
        week_row=np.full(n, -1, dtype=np.int64),
        week_median=np.empty((0, 168), dtype=np.float32),
        week_spread=np.empty((0, 168), dtype=np.float32),
    )


def place_normals(out: Normals, rows: np.ndarray, median: np.ndarray, spread: np.ndarray) -> None:
    """Put the daily cycle of profiles of 24 or 168 slots for `rows` into `out` (a weekly
    profile's days averaged; its hours of the week go in with `with_weeks`)."""
    if median.shape[1] == 24:
        out.season[rows] = median
        out.season_spread[rows] = spread
    else:
        out.season[rows] = median.reshape(-1, 7, 24).mean(axis=1)
        out.season_spread[rows] = spread.reshape(-1, 7, 24).mean(axis=1)


def with_weeks(out: Normals, rows: np.ndarray, median: np.ndarray, spread: np.ndarray) -> Normals:
    """`out` with hour-of-week lines (168 slots) for `rows`. Only profiles learned by the week
    get one: a daily one copied seven times held the same numbers in 7× the memory (at 10M
    devices, 6.7 of the rules engine's 9.7 GB)."""
    week_row = np.full(len(out.season), -1, dtype=np.int64)
    week_row[rows] = np.arange(len(rows))
    return replace(
        out,
        week_row=week_row,
        week_median=np.asarray(median, dtype=np.float32).reshape(-1, 168),
        week_spread=np.asarray(spread, dtype=np.float32).reshape(-1, 168),
    )


def normals_from_city(fitted: CityBaselines, *, week: np.ndarray) -> Normals:
    """Normals from a fit held in memory (the benchmark's nightly refit); hour-of-week lines
    for the `week` rows that learned one."""
    out = empty_normals(len(fitted.slots))
    daily = np.flatnonzero(fitted.slots == 24)
    place_normals(out, daily, fitted.median24[daily], fitted.spread24[daily])
    weekly = np.flatnonzero(fitted.slots == 168)
    lines = fitted.week_row[weekly]
    place_normals(out, weekly, fitted.median168[lines], fitted.spread168[lines])
    kept = week[weekly]
    return with_weeks(
        out, weekly[kept], fitted.median168[lines[kept]], fitted.spread168[lines[kept]]
    )


def build_spec(*, devices: pd.DataFrame, types: pd.DataFrame, normals: Normals) -> SeriesSpec:
    """The engine's view of `devices` (id, type_id, street_code; sorted by id)."""
    t = types.set_index("id").loc[devices["type_id"].to_numpy()]
    # street × type as one number (street codes are 9 digits): no string per device
    groups = pd.factorize(
        devices["street_code"].astype(np.int64) * 65536 + devices["type_id"].astype(np.int64)
    )[0]
    return SeriesSpec(
        device_id=devices["id"].to_numpy(dtype=np.int64),
        type_id=devices["type_id"].to_numpy(dtype=np.int64),
        peer_group=np.asarray(groups, dtype=np.int64),
        interval_s=t["interval_s"].to_numpy(dtype=np.float64),
        normal_min=t["normal_min"].to_numpy(dtype=np.float64),
        normal_max=t["normal_max"].to_numpy(dtype=np.float64),
        alarm_min=t["alarm_min"].to_numpy(dtype=np.float64, na_value=np.nan),
        alarm_max=t["alarm_max"].to_numpy(dtype=np.float64, na_value=np.nan),
        resolution=10.0 ** -t["decimals"].to_numpy(dtype=np.float64),
        season=normals.season,
        season_spread=normals.season_spread,
        normal_row=normals.week_row,
        normal_median=normals.week_median,
        normal_spread=normals.week_spread,
    )
