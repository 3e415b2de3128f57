"""Sensors that lie (自动化运维): stuck values, impossible spikes, clocks far from arrival time,
values implausible against the street's peers. Each check reads the per-series windows kept by
the engine (rows × window, newest last) and answers one boolean per row."""

from __future__ import annotations

import numpy as np


def stuck(recent: np.ndarray, *, run: np.ndarray, varied: np.ndarray) -> np.ndarray:
    """The last `run` readings are identical, in a series that `varied` before (rows × k, newest
    last; NaN = no reading)."""
    k = recent.shape[1]
    cols = np.arange(k)[None, :]
    tail = cols >= k - run[:, None]
    last = recent[:, -1:]
    same = np.where(tail, recent == last, True).all(axis=1)
    enough = (~np.isnan(np.where(tail, recent, 0.0))).all(axis=1)
    return same & enough & varied


def changes(recent: np.ndarray) -> np.ndarray:
    """How many times each row's value changed between consecutive readings."""
    a, b = recent[:, :-1], recent[:, 1:]
    return ((a != b) & ~np.isnan(a) & ~np.isnan(b)).sum(axis=1)


def spike(last3: np.ndarray, *, jump: np.ndarray) -> np.ndarray:
    """The middle of the last three readings jumped away by more than `jump` and straight back."""
    a, b, c = last3[:, 0], last3[:, 1], last3[:, 2]
    up, down = b - a, c - b
    return (
        (np.abs(up) > jump)
        & (np.abs(down) > jump)
        & (np.sign(up) != np.sign(down))
        & (np.abs(c - a) < jump / 2.0)
    )


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
