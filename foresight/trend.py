"""Breach forecasts: a straight-line trend over the recent window, on top of the daily cycle.

Every series is fitted at once (rows of a matrix, NaN where a row has fewer points): ordinary
least squares of value − seasonal(t) on time, then the forecast at a grid of steps up to the
horizon, with the prediction interval of the fit. The probability of a breach within the horizon
is the largest probability over the grid that the value is beyond the limit at that step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr, stdtrit

GRID_STEPS = 12  # forecast points up to the horizon (plus now)
HOUR = 3600.0


@dataclass(frozen=True)
class Fit:
    """Per series: the trend of value − seasonal at now (level), slope per hour and spread."""

    n: np.ndarray  # points used
    level: np.ndarray  # fitted residual at now
    slope_h: np.ndarray  # per hour
    sigma: np.ndarray  # residual standard deviation
    t_mean_h: np.ndarray  # weighted mean point time, hours before now (negative)
    level_var: np.ndarray  # variance factor of the level: Σw² / (Σw)²
    slope_var: np.ndarray  # variance factor of the slope: Σw²dt² / (Σw dt²)²
    dof: np.ndarray  # degrees of freedom of the spread: effective points − 2 (at least 1)


def fit(*, t_h: np.ndarray, r: np.ndarray, floor: np.ndarray, tau_h: np.ndarray) -> Fit:
    """Weighted least-squares line through each row of (t_h, r), ignoring NaN; t in hours
    relative to now, weights decaying with age (time constant tau_h), so a trend that has just
    begun is not averaged away by the calm before it."""
    ok = ~np.isnan(r) & ~np.isnan(t_h)
    w = np.where(ok, np.exp(np.where(ok, t_h, 0.0) / tau_h[:, None]), 0.0)
    sw = np.maximum(w.sum(axis=1), 1e-300)
    t = np.where(ok, t_h, 0.0)
    y = np.where(ok, r, 0.0)
    t_mean = (w * t).sum(axis=1) / sw
    y_mean = (w * y).sum(axis=1) / sw
    dt = np.where(ok, t - t_mean[:, None], 0.0)
    dy = np.where(ok, y - y_mean[:, None], 0.0)
    stt = (w * dt * dt).sum(axis=1)
    slope = np.where(stt > 0, (w * dt * dy).sum(axis=1) / np.where(stt > 0, stt, 1.0), 0.0)
    resid = np.where(ok, dy - slope[:, None] * dt, 0.0)
    sw2 = (w * w).sum(axis=1)
    n_eff = sw * sw / np.maximum(sw2, 1e-300)
    var = (w * resid * resid).sum(axis=1) / sw * n_eff / np.maximum(n_eff - 2.0, 1.0)
    # a perfectly straight or quantised series would claim certainty it does not have
    sigma = np.maximum(np.sqrt(var), floor)
    slope_var = np.where(
        stt > 0, (w * w * dt * dt).sum(axis=1) / np.where(stt > 0, stt, 1.0) ** 2, 1e12
    )
    return Fit(
        n=ok.sum(axis=1).astype(np.float64),
        level=y_mean - slope * t_mean,
        slope_h=slope,
        sigma=sigma,
        t_mean_h=t_mean,
        level_var=sw2 / np.maximum(sw * sw, 1e-300),
        dof=np.maximum(n_eff - 2.0, 1.0),
        slope_var=slope_var,
    )


@dataclass(frozen=True)
class Breach:
    """Per series: chance of crossing the limit within the horizon and when."""

    probability: np.ndarray  # max over the grid of P(beyond the limit)
    expected_s: np.ndarray  # seconds from now until the mean forecast crosses (NaN: not within)
    earliest_s: np.ndarray  # ... until the band's near edge crosses (NaN: not within)
    latest_s: np.ndarray  # ... until the band's far edge crosses (NaN: not within)


def grid(horizon_s: np.ndarray) -> np.ndarray:
    """Forecast steps per series, seconds from now: 0 … horizon in GRID_STEPS equal steps."""
    return horizon_s[:, None] * (np.arange(GRID_STEPS + 1) / GRID_STEPS)[None, :]


def predict(
    model: Fit, *, steps_s: np.ndarray, seasonal: np.ndarray, confidence: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and band (lower, upper) at `steps_s`; `seasonal` = the daily cycle at those steps."""
    h = steps_s / HOUR
    mean = model.level[:, None] + model.slope_h[:, None] * h + seasonal
    lead = h - model.t_mean_h[:, None]
    sd = model.sigma[:, None] * np.sqrt(
        1.0 + model.level_var[:, None] + lead * lead * model.slope_var[:, None]
    )
    # Student's t: a spread estimated from a handful of readings is itself uncertain
    z = stdtrit(model.dof, 0.5 + confidence / 2.0)[:, None]
    return mean, mean - z * sd, mean + z * sd


def breach(
    model: Fit,
    *,
    steps_s: np.ndarray,
    seasonal: np.ndarray,
    limit: np.ndarray,
    side: np.ndarray,
    confidence: np.ndarray,
) -> Breach:
    """When each series' forecast crosses its limit on its side (1 above, −1 below)."""
    mean, lower, upper = predict(model, steps_s=steps_s, seasonal=seasonal, confidence=confidence)
    s = side[:, None].astype(np.float64)
    lim = limit[:, None]
    half = stdtrit(model.dof, 0.5 + confidence / 2.0)[:, None]
    sd = np.maximum((upper - lower) / 2.0 / half, 1e-12)
    probability = stdtr(model.dof[:, None], s * (mean - lim) / sd).max(axis=1)
    near, far = np.where(s > 0, upper, lower), np.where(s > 0, lower, upper)
    return Breach(
        probability=probability,
        expected_s=_first_crossing(s * (mean - lim), steps_s),
        earliest_s=_first_crossing(s * (near - lim), steps_s),
        latest_s=_first_crossing(s * (far - lim), steps_s),
    )


def _first_crossing(gap: np.ndarray, steps_s: np.ndarray) -> np.ndarray:
    """Seconds until `gap` (beyond the limit when ≥ 0) first turns non-negative, interpolated."""
    beyond = gap >= 0
    first = np.argmax(beyond, axis=1)
    rows = np.arange(len(gap))
    found = beyond[rows, first]
    prev = np.maximum(first - 1, 0)
    g0, g1 = gap[rows, prev], gap[rows, first]
    s0, s1 = steps_s[rows, prev], steps_s[rows, first]
    frac = np.where((first > 0) & (g1 != g0), -g0 / np.where(g1 != g0, g1 - g0, 1.0), 0.0)
    at = np.where(first > 0, s0 + np.clip(frac, 0.0, 1.0) * (s1 - s0), 0.0)
    return np.where(found, at, np.nan)


@dataclass(frozen=True)
class SeriesForecast:
    """One series' forecast from its last reading to the horizon, for a chart."""

    t_s: np.ndarray  # epoch seconds
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    breach_at_s: float | None  # epoch seconds the mean crosses the limit
    probability: float


def forecast_series(
    *,
    ts_s: np.ndarray,
    values: np.ndarray,
    limit: float,
    side: int,
    horizon_s: float,
    window_s: float,
    min_points: int,
    confidence: float,
    seasonal: np.ndarray | None = None,
) -> SeriesForecast | None:
    """One series' forecast as the engine makes it (None when the window has too few points)."""
    from foresight.baseline import interpolate

    ts_s = np.asarray(ts_s, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(ts_s) == 0:
        return None
    now = float(ts_s.max())
    keep = ts_s >= now - window_s
    if keep.sum() < min_points:
        return None
    profile = None if seasonal is None else np.asarray(seasonal, dtype=np.float64)[None, :]
    t, v = ts_s[keep][None, :], values[keep][None, :]
    s_pts = interpolate(profile, t) if profile is not None else np.zeros_like(t)
    model = fit(
        t_h=(t - now) / HOUR,
        r=v - s_pts,
        floor=np.array([1e-9]),
        tau_h=np.array([window_s / 4 / HOUR]),
    )
    steps = grid(np.array([float(horizon_s)]))
    s_grid = interpolate(profile, now + steps) if profile is not None else np.zeros_like(steps)
    conf = np.array([float(confidence)])
    mean, lower, upper = predict(model, steps_s=steps, seasonal=s_grid, confidence=conf)
    verdict = breach(
        model,
        steps_s=steps,
        seasonal=s_grid,
        limit=np.array([float(limit)]),
        side=np.array([side]),
        confidence=conf,
    )
    expected = float(verdict.expected_s[0])
    return SeriesForecast(
        t_s=now + steps[0],
        mean=mean[0],
        lower=lower[0],
        upper=upper[0],
        breach_at_s=None if np.isnan(expected) else now + expected,
        probability=float(verdict.probability[0]),
    )
