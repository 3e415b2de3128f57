"""Sensors that lie (自动化运维): stuck values, impossible spikes, clocks far from arrival time,
values implausible against the street's peers. Each check reads the per-series windows kept by
the engine (rows × window, newest last) and answers one boolean per row."""

from __future__ import annotations

import warnings

import numpy as np


def trailing_run(recent: np.ndarray) -> np.ndarray:
    """How many of each row's newest readings (rows × k, newest last) equal the newest."""
    same = (recent == recent[:, -1:]) & ~np.isnan(recent)
    # count the leading Trues of the reversed row
    return np.cumprod(same[:, ::-1], axis=1).sum(axis=1)


def repeat_odds(recent: np.ndarray, *, run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Before each row's trailing run: how often consecutive readings were equal (smoothed), and
    how many pairs that is based on."""
    k = recent.shape[1]
    cols = np.arange(k - 1)[None, :]
    before = cols < (k - run[:, None] - 1)
    a, b = recent[:, :-1], recent[:, 1:]
    valid = before & ~np.isnan(a) & ~np.isnan(b)
    pairs = valid.sum(axis=1)
    equal = (valid & (a == b)).sum(axis=1)
    return (equal + 0.25) / (pairs + 1.0), pairs


def stuck(
    recent: np.ndarray,
    *,
    min_run: np.ndarray,
    raised: np.ndarray,
    floor: np.ndarray,
    prior_odds: np.ndarray,
    chance: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose newest readings repeat one value for longer than the series' own habit of
    repeating makes plausible (a run a healthy series shows with odds below `chance`), except
    at the physical `floor` (a dry ponding sensor reads 0 for days); returns (stuck, run length).
    A raised row stays stuck while the run goes on. `prior_odds`: the chance that two readings
    repeat that the series' learned noise and resolution imply (0 where unknown)."""
    run = trailing_run(recent)
    resting = recent[:, -1] <= floor
    odds, pairs = repeat_odds(recent, run=run)
    odds = np.maximum(odds, np.nan_to_num(prior_odds))
    with np.errstate(divide="ignore"):
        needed = 1 + np.ceil(np.log(chance) / np.log(np.clip(odds, 1e-9, 0.999)))
    needed = np.maximum(needed, min_run)
    judged = (pairs >= 8) & (needed <= recent.shape[1] // 2)
    return (judged & ~resting & (run >= needed)) | (raised & (run >= min_run)), run


def spike(recent: np.ndarray, *, steps: float, floor: np.ndarray) -> np.ndarray:
    """The middle of the newest three readings stood away from its neighbours by more than
    `steps` of the series' typical step (and `floor`), by more than any step the series made
    before (bursty series, such as water use, jump for real), and the next came straight back."""
    a, b, c = recent[:, -3], recent[:, -2], recent[:, -1]
    away = np.abs(b - (a + c) / 2.0)
    before = np.abs(np.diff(recent[:, :-2], axis=1))
    with warnings.catch_warnings():  # rows without history: all NaN, judged below as no spike
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nan_to_num(np.nanmedian(before, axis=1), nan=np.inf)
        largest = np.nan_to_num(np.nanmax(before, axis=1), nan=np.inf)
    unheard = away > np.maximum(np.maximum(steps * typical, floor), largest)
    return unheard & (np.abs(c - a) < away / 2.0)


def skewed(lags: np.ndarray, *, run: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """The last `run` readings all arrived more than `limit` seconds from their timestamps."""
    k = lags.shape[1]
    tail = np.arange(k)[None, :] >= k - run[:, None]
    far = np.abs(lags) > limit[:, None]
    return np.asarray(np.where(tail, far & ~np.isnan(lags), True).all(axis=1))


def peer_outliers(
    *,
    group: np.ndarray,
    value: np.ndarray,
    floor: np.ndarray,
    deviation: np.ndarray,
    min_peers: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose latest value is `deviation` robust spreads from their group's median (groups of
    at least `min_peers` reporting rows); returns (outlier, group median, robust z)."""
    ok = ~np.isnan(value)
    g, v = group[ok], value[ok]
    order = np.lexsort((v, g))
    gs, vs = g[order], v[order]
    uniq, start, count = np.unique(gs, return_index=True, return_counts=True)
    med = np.empty(len(uniq))
    q1 = np.empty(len(uniq))
    q3 = np.empty(len(uniq))
    for q, out in ((0.5, med), (0.25, q1), (0.75, q3)):
        pos = start + q * (count - 1)
        low = np.floor(pos).astype(np.int64)
        high = np.minimum(low + 1, start + count - 1)
        out[:] = vs[low] * (1 - (pos - low)) + vs[high] * (pos - low)
    where = np.searchsorted(uniq, group)
    where = np.clip(where, 0, max(len(uniq) - 1, 0))
    known = (len(uniq) > 0) & ok
    if len(uniq) == 0:
        nan = np.full(len(group), np.nan)
        return np.zeros(len(group), dtype=bool), nan, nan
    known &= uniq[where] == group
    spread = np.maximum((q3 - q1)[where] / 1.349, floor)
    z = np.where(known, (value - med[where]) / spread, np.nan)
    outlier = known & (count[where] >= min_peers) & (np.abs(z) > deviation)
    return outlier, np.where(known, med[where], np.nan), z
