"""Each device's normal: the median and robust spread of its readings per hour of the day (24
slots) or of the week (168, Monday 00:00 Shanghai first): the pooled (street × type, type)
profiles once over every reading, each device's own in slices of devices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOCAL_OFFSET_S = 8 * 3600  # Asia/Shanghai, no daylight saving
DAY = 86400
IQR_TO_SD = 1.349  # the interquartile range of a normal distribution, in standard deviations


def slot_of(ts_s: np.ndarray, *, slots: int) -> np.ndarray:
    """The hour-of-day (24) or hour-of-week (168) slot of each instant, Shanghai time."""
    local = np.floor_divide(np.asarray(ts_s, dtype=np.float64) + LOCAL_OFFSET_S, 1.0)
    day = np.floor_divide(local, DAY)
    hour = np.floor_divide(local - day * DAY, 3600).astype(np.int64)
    if slots == 24:
        return hour
    weekday = ((day + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    return weekday * 24 + hour


def interpolate(profile: np.ndarray, ts_s: np.ndarray) -> np.ndarray:
    """Each row's profile (n × slots) at its instants (n × m), linear between slot centres."""
    slots = profile.shape[1]
    cycle_h = float(slots)
    local_h = (np.asarray(ts_s, dtype=np.float64) + LOCAL_OFFSET_S) / 3600.0
    if slots == 168:
        local_h = local_h + 3 * 24  # hour 0 of the cycle is a Monday
    pos = np.nan_to_num(np.mod(local_h - 0.5, cycle_h))  # no reading (NaN): any slot
    low = np.floor(pos).astype(np.int64) % slots
    high = (low + 1) % slots
    frac = pos - np.floor(pos)
    rows = np.arange(profile.shape[0])[:, None]
    return profile[rows, low] * (1.0 - frac) + profile[rows, high] * frac


def band_at(
    *, median: np.ndarray, spread: np.ndarray, ts_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One device's normal (median, spread) at instants `ts_s`, for a chart's band."""
    ts = np.asarray(ts_s, dtype=np.float64)[None, :]
    mid = interpolate(np.asarray(median, dtype=np.float64)[None, :], ts)[0]
    sd = interpolate(np.asarray(spread, dtype=np.float64)[None, :], ts)[0]
    return mid, sd


@dataclass(frozen=True)
class Profiles:
    """Per series and slot: median, spread (IQR / 1.349) and how many readings were behind it."""

    median: np.ndarray
    spread: np.ndarray
    count: np.ndarray


def fit_profiles(
    *, series: np.ndarray, ts_s: np.ndarray, values: np.ndarray, n_series: int, slots: int
) -> Profiles:
    """Median and spread per (series, slot), from readings of series indices 0 … n_series − 1."""
    key = np.asarray(series, dtype=np.int64) * slots + slot_of(ts_s, slots=slots)
    order = np.lexsort((values, key))
    key, vals = key[order], np.asarray(values, dtype=np.float64)[order]
    size = n_series * slots
    count = np.bincount(key, minlength=size)
    start = np.cumsum(count) - count
    median = np.full(size, np.nan)
    q1 = np.full(size, np.nan)
    q3 = np.full(size, np.nan)
    has = count > 0
    for q, out in ((0.5, median), (0.25, q1), (0.75, q3)):
        pos = start[has] + q * (count[has] - 1)
        low = np.floor(pos).astype(np.int64)
        high = np.minimum(low + 1, start[has] + count[has] - 1)
        frac = pos - low
        out[has] = vals[low] * (1.0 - frac) + vals[high] * frac
    shape = (n_series, slots)
    return Profiles(
        median=median.reshape(shape),
        spread=((q3 - q1) / IQR_TO_SD).reshape(shape),
        count=count.reshape(shape),
    )


def fill(profiles: Profiles, *, fallback: Profiles, min_count: int) -> Profiles:
    """Slots with fewer than `min_count` readings take the fallback's (same shape) values."""
    thin = profiles.count < min_count
    return Profiles(
        median=np.where(thin, fallback.median, profiles.median),
        spread=np.where(thin, fallback.spread, profiles.spread),
        count=np.where(thin, fallback.count, profiles.count),
    )


def week_from_day(day: Profiles) -> Profiles:
    """A 168-slot profile repeating a 24-slot one every day of the week."""
    return Profiles(
        median=np.tile(day.median, (1, 7)),
        spread=np.tile(day.spread, (1, 7)),
        count=np.tile(day.count, (1, 7)),
    )


def smooth_gaps(profile: np.ndarray) -> np.ndarray:
    """NaN slots (no readings at all) take the mean of the row's other slots; rows all NaN, 0."""
    out = profile.copy()
    row_mean = np.nanmean(np.where(np.isnan(out).all(axis=1, keepdims=True), 0.0, out), axis=1)
    holes = np.isnan(out)
    out[holes] = np.broadcast_to(row_mean[:, None], out.shape)[holes]
    return out


@dataclass(frozen=True)
class Pooled:
    """Hour-of-day profiles of each street × type group and of each type, over every reading."""

    street: Profiles
    kind: Profiles


def pooled_profiles(
    *, row: np.ndarray, ts_s: np.ndarray, values: np.ndarray, street_type: np.ndarray,
    type_index: np.ndarray,
) -> Pooled:  # fmt: skip
    """The pooled profiles a device falls back on (`row` = each reading's device index)."""
    n = len(street_type)
    n_groups = int(street_type.max()) + 1 if n else 0
    n_types = int(type_index.max()) + 1 if n else 0
    return Pooled(
        street=fit_profiles(
            series=street_type[row], ts_s=ts_s, values=values, n_series=n_groups, slots=24
        ),
        kind=fit_profiles(
            series=type_index[row], ts_s=ts_s, values=values, n_series=n_types, slots=24
        ),
    )


@dataclass(frozen=True)
class CityBaselines:
    """Per device (in the order given): its slots (24 or 168), median, spread, source, days."""

    slots: np.ndarray
    median24: np.ndarray  # n × 24
    spread24: np.ndarray
    week_row: np.ndarray  # the device's line in median168 / spread168, −1 for none
    median168: np.ndarray  # k × 168, only the devices with an hour-of-week normal
    spread168: np.ndarray
    source: np.ndarray  # 'device' | 'street' | 'type'
    days: np.ndarray


def fit_city(
    *,
    row: np.ndarray,
    ts_s: np.ndarray,
    values: np.ndarray,
    street_type: np.ndarray,
    type_index: np.ndarray,
    weekly: np.ndarray,
    min_count: int = 3,
    min_week_days: float = 14.0,
    pooled: Pooled | None = None,
) -> CityBaselines:
    """Every device's normal from its readings (`row` = its device's index): its own hour of day
    where it has `min_count` readings a slot, else its street's devices of the same type, else its
    type's; hour of week for `weekly` devices with `min_week_days` of history. `pooled` (the
    city's, for a slice of its devices) defaults to the pools of these readings alone."""
    n = len(street_type)
    if pooled is None:
        pooled = pooled_profiles(
            row=row, ts_s=ts_s, values=values, street_type=street_type, type_index=type_index
        )
    day, source = _day_profiles(
        row=row, ts_s=ts_s, values=values, street_type=street_type, type_index=type_index,
        pooled=pooled, min_count=min_count,
    )  # fmt: skip
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, row, ts_s)
    np.maximum.at(last, row, ts_s)
    days = np.where(np.isfinite(first), (last - first) / DAY, 0.0)
    use_week = weekly & (days >= min_week_days)
    # hour-of-week profiles only for the devices that get one: n × 168 for a whole seed-scale
    # city would take gigabytes
    week_row = np.where(use_week, np.cumsum(use_week) - 1, -1)
    take = use_week[row]
    week = fill(
        fit_profiles(
            series=week_row[row[take]],
            ts_s=ts_s[take],
            values=values[take],
            n_series=int(use_week.sum()),
            slots=168,
        ),
        fallback=week_from_day(
            Profiles(day.median[use_week], day.spread[use_week], day.count[use_week])
        ),
        min_count=2,
    )
    return CityBaselines(
        slots=np.where(use_week, 168, 24),
        median24=smooth_gaps(day.median),
        spread24=_floored(smooth_gaps(day.spread)),
        week_row=week_row,
        median168=smooth_gaps(week.median),
        spread168=_floored(smooth_gaps(week.spread)),
        source=source,
        days=days,
    )


def _day_profiles(
    *,
    row: np.ndarray,
    ts_s: np.ndarray,
    values: np.ndarray,
    street_type: np.ndarray,
    type_index: np.ndarray,
    pooled: Pooled,
    min_count: int,
) -> tuple[Profiles, np.ndarray]:
    """Hour-of-day profiles: the device's own; for a sparse reporter its own pooled over the
    neighbouring hours; else its street's devices of the type; else the type's. And the source."""
    n = len(street_type)
    own = fit_profiles(series=row, ts_s=ts_s, values=values, n_series=n, slots=24)
    wide = fit_profiles(
        series=np.tile(row, 3),
        ts_s=np.concatenate([ts_s - 3600.0, ts_s, ts_s + 3600.0]),
        values=np.tile(values, 3),
        n_series=n,
        slots=24,
    )
    street, kind = pooled.street, pooled.kind
    by_street = Profiles(
        street.median[street_type], street.spread[street_type], street.count[street_type]
    )
    by_type = Profiles(kind.median[type_index], kind.spread[type_index], kind.count[type_index])
    others = fill(by_street, fallback=by_type, min_count=min_count)
    mine = fill(own, fallback=wide, min_count=min_count)
    day = fill(fill(mine, fallback=others, min_count=min_count), fallback=by_type, min_count=1)
    owned = (mine.count >= min_count).sum(axis=1) >= 18
    streeted = (by_street.count >= min_count).sum(axis=1) >= 18
    return day, np.where(owned, "device", np.where(streeted, "street", "type"))


def _floored(spread: np.ndarray) -> np.ndarray:
    """Each slot's spread, at least half the device's typical one: a slot's few readings can
    agree by chance, and a spread of zero would make any change an anomaly."""
    with np.errstate(all="ignore"):
        typical = np.nan_to_num(np.nanmedian(spread, axis=1), nan=0.0)
    return np.maximum(spread, 0.5 * typical[:, None])
