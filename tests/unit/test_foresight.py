"""The early-warning detectors on synthetic series: ramps foreseen early, cycles and noise not,
stuck, spiking and skewed sensors caught, a household's routine break found."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from data.rule_types import Rule
from foresight import baseline, trend
from foresight.engine import Foresight, SeriesSpec

DAY = 86400.0
T0 = 1_780_000_000.0  # a Monday-ish epoch second; only differences matter

FORECAST = Rule(
    code="forecast_high", kind="forecast", severity="critical", level=2, side=1,
    horizon_s=3600, confidence=0.9, window_s=1800, min_points=5, clear_s=600,
)  # fmt: skip
STUCK = Rule(code="stuck", kind="stuck", severity="minor", min_points=3)
SPIKE = Rule(code="spike", kind="jump", severity="minor", deviation=4, clear_s=3600)
CLOCK = Rule(code="clock", kind="clock", severity="minor", window_s=600, min_points=2)
ROUTINE = Rule(code="routine", kind="baseline", severity="major", side=0, deviation=4)
PEER = Rule(code="peer", kind="peer", severity="minor", deviation=8, min_points=4, duration_s=0)


def spec(n: int, *, interval: float = 900.0, normal=(0.0, 5.0), alarm_max=15.0, **extra):
    """n series of one type (id 1) in one street; no learned normal unless given."""
    base = {
        "device_id": np.arange(1, n + 1, dtype=np.int64),
        "type_id": np.ones(n, dtype=np.int64),
        "peer_group": np.zeros(n, dtype=np.int64),
        "interval_s": np.full(n, interval),
        "normal_min": np.full(n, normal[0]),
        "normal_max": np.full(n, normal[1]),
        "alarm_min": np.full(n, np.nan),
        "alarm_max": np.full(n, alarm_max),
        "resolution": np.full(n, 0.1),
        "season": np.full((n, 24), np.nan),
        "season_spread": np.full((n, 24), np.nan),
        "normal_row": np.arange(n),
        "normal_median": np.full((n, 168), np.nan),
        "normal_spread": np.full((n, 168), np.nan),
    }
    base.update(extra)
    return SeriesSpec(**base)


def replay(fx: Foresight, device, ts, value, *, arrived=None, step_s: float = 60.0):
    """Feed readings in arrival order, `step_s` at a time, evaluating after each step."""
    arrived = ts if arrived is None else arrived
    order = np.argsort(arrived, kind="stable")
    device, ts, value, arrived = device[order], ts[order], value[order], arrived[order]
    findings = []
    edges = np.arange(arrived[0], arrived[-1] + step_s, step_s)
    for lo, hi in itertools.pairwise(edges):
        take = (arrived >= lo) & (arrived < hi)
        fx.observe(
            device_id=device[take], ts_s=ts[take], value=value[take], arrived_s=arrived[take]
        )
        findings += fx.evaluate(now_s=hi)
    return findings


def opened(findings, code):
    return [f for f in findings if f.action == "open" and f.rule.code == code]


def ramp_series(minutes: float, *, rng, start=T0 + 3600, top=17.0):
    """Quiet at 0.5 cm every 15 min for an hour, then a ramp to `top` at 15 s, noise 0.3."""
    quiet = np.arange(T0, start, 900.0)
    rise = np.arange(start, start + minutes * 60, 15.0)
    ts = np.r_[quiet, rise]
    value = np.r_[np.full(len(quiet), 0.5), 0.5 + (top - 0.5) * (rise - start) / (minutes * 60)]
    return ts, value + rng.normal(0, 0.3, len(ts))


@pytest.mark.parametrize(("minutes", "lead"), [(20, 12), (30, 15), (40, 15), (60, 15)])
def test_a_ramp_is_foreseen_at_least_15_minutes_before_the_alarm(minutes, lead):
    rng = np.random.default_rng(minutes)
    ts, value = ramp_series(minutes, rng=rng)
    fx = Foresight(spec(1), {1: {"forecast_high": FORECAST}})
    findings = replay(fx, np.ones(len(ts), np.int64), ts, value)
    found = opened(findings, "forecast_high")
    alarm_at = ts[np.argmax(value >= 15.0)]
    assert found, "the ramp was not foreseen"
    lead_min = (alarm_at - found[0].at_s) / 60
    assert lead_min >= lead, lead_min
    assert found[0].figures["probability"] >= 0.9
    # the estimate of the crossing is updated as readings arrive, and closes in on the truth
    updates = [f for f in findings if f.action == "update" and f.at_s < alarm_at]
    assert updates
    last = updates[-1]
    assert abs(last.at_s + last.figures["expected_s"] - alarm_at) <= 300


def _daily_peaks(n: int, days: int):
    """n series peaking at 14:00 at 13.5 of a 15 limit, noise 0.4, every 2 min (as dense as the
    sped-up demo city reports, so the trend sees every wobble); and the cycle."""
    rng = np.random.default_rng(7)
    ts = np.arange(T0, T0 + days * DAY, 120.0)
    hour = ((ts + 8 * 3600) % DAY) / 3600
    cycle = 8.0 + 5.5 * np.cos(2 * np.pi * (hour - 14) / 24)
    season = 8.0 + 5.5 * np.cos(2 * np.pi * (np.arange(24) + 0.5 - 14) / 24)
    device = np.repeat(np.arange(1, n + 1), len(ts))
    values = np.tile(cycle, n) + rng.normal(0, 0.4, n * len(ts))
    return device, np.tile(ts, n), values, season


def test_noise_and_a_daily_peak_below_the_limit_raise_no_forecast():
    n, days = 100, 2
    device, ts, values, season = _daily_peaks(n, days)
    fx = Foresight(
        spec(n, normal=(0, 12), season=np.tile(season, (n, 1))), {1: {"forecast_high": FORECAST}}
    )
    found = opened(replay(fx, device, ts, values, step_s=120), "forecast_high")
    assert len(found) / (n * days) * 1000 <= 1.0, len(found)


def test_without_the_cycle_the_same_peaks_would_be_forecast():
    # the control for the test above: the learned daily cycle is what keeps those peaks quiet
    n, days = 100, 2
    device, ts, values, _ = _daily_peaks(n, days)
    fx = Foresight(spec(n, normal=(0, 12)), {1: {"forecast_high": FORECAST}})
    found = opened(replay(fx, device, ts, values, step_s=120), "forecast_high")
    assert len(found) / (n * days) * 1000 > 10, len(found)


def test_a_stuck_sensor_is_caught_within_three_intervals():
    rng = np.random.default_rng(3)
    ts = np.arange(T0, T0 + 40 * 900, 900.0)
    values = np.round(2.0 + rng.normal(0, 0.5, len(ts)), 2)
    stuck_from = 20
    values[stuck_from:] = values[stuck_from]
    fx = Foresight(spec(1), {1: {"stuck": STUCK}})
    found = opened(replay(fx, np.ones(len(ts), np.int64), ts, values, step_s=900), "stuck")
    assert len(found) == 1
    assert found[0].at_s - ts[stuck_from] <= 3 * 900


def test_a_flat_but_healthy_series_is_not_stuck():
    ts = np.arange(T0, T0 + 40 * 900, 900.0)
    values = np.zeros(len(ts))  # a dry rain gauge: always 0, never varied
    fx = Foresight(spec(1), {1: {"stuck": STUCK}})
    assert not opened(replay(fx, np.ones(len(ts), np.int64), ts, values, step_s=900), "stuck")


def test_a_spike_and_a_skewed_clock_are_caught_and_a_storm_rise_is_not_a_spike():
    ts = np.arange(T0, T0 + 20 * 900, 900.0)
    spiky = np.full(len(ts), 2.0)
    spiky[10] = 9.0
    rising = np.minimum(2.0 + np.maximum(np.arange(len(ts)) - 10, 0) * 4.0, 20.0)
    device = np.r_[np.ones(len(ts)), np.full(len(ts), 2)].astype(np.int64)
    arrived = np.r_[ts, ts + np.where(np.arange(len(ts)) >= 12, 3600.0, 1.0)]
    fx = Foresight(spec(2), {1: {"spike": SPIKE, "clock": CLOCK}})
    found = replay(fx, device, np.r_[ts, ts], np.r_[spiky, rising], arrived=arrived, step_s=900)
    assert [f.device_id for f in opened(found, "spike")] == [1]
    assert [f.device_id for f in opened(found, "clock")] == [2]


def test_a_household_silent_against_its_own_routine_is_found():
    ts = np.arange(T0, T0 + 28 * DAY, 3600.0)
    hour = ((ts + 8 * 3600) % DAY) // 3600
    usage = np.where((hour >= 7) & (hour <= 21), 18.0, 0.0)
    profiles = baseline.fit_profiles(
        series=np.zeros(len(ts), np.int64), ts_s=ts, values=usage, n_series=1, slots=168
    )
    # two households: only the second has a learned normal (the first is judged by nothing)
    fx = Foresight(
        spec(2, interval=3600.0, normal=(0.5, 60), alarm_max=np.nan,
             normal_row=np.array([-1, 0]), normal_median=profiles.median,
             normal_spread=profiles.spread),
        {1: {"routine": ROUTINE}},
    )  # fmt: skip
    day = T0 + 28 * DAY
    today = np.arange(day, day + DAY, 3600.0)
    t_hour = ((today + 8 * 3600) % DAY) // 3600
    device = np.r_[np.ones(len(today)), np.full(len(today), 2)].astype(np.int64)
    silent = np.zeros(2 * len(today))  # no water all day
    found = opened(replay(fx, device, np.r_[today, today], silent, step_s=3600), "routine")
    first_usual = today[np.argmax(t_hour == 7)]
    assert [f.device_id for f in found] == [2]
    assert found[0].at_s - first_usual <= 2 * 3600
    assert found[0].figures["usual"] == pytest.approx(18.0)


def test_a_routine_learned_by_the_day_judges_every_day_of_the_week():
    """A device whose normal was learned as a daily cycle has no hour-of-week line (a copy
    seven times over cost 7× the memory): the routine check reads its daily cycle instead."""
    ts = np.arange(T0, T0 + 28 * DAY, 3600.0)
    hour = ((ts + 8 * 3600) % DAY) // 3600
    usage = np.where((hour >= 7) & (hour <= 21), 18.0, 0.0)
    daily = baseline.fit_profiles(
        series=np.zeros(len(ts), np.int64), ts_s=ts, values=usage, n_series=1, slots=24
    )
    season = np.full((2, 24), np.nan)
    spread = np.full((2, 24), np.nan)
    season[1], spread[1] = daily.median[0], daily.spread[0]
    fx = Foresight(
        spec(2, interval=3600.0, normal=(0.5, 60), alarm_max=np.nan, season=season,
             season_spread=spread, normal_row=np.array([-1, -1]),
             normal_median=np.empty((0, 168)), normal_spread=np.empty((0, 168))),
        {1: {"routine": ROUTINE}},
    )  # fmt: skip
    for offset in (28, 31):  # a Monday-like day and a Thursday-like one: the same cycle
        day = T0 + offset * DAY
        today = np.arange(day, day + DAY, 3600.0)
        device = np.r_[np.ones(len(today)), np.full(len(today), 2)].astype(np.int64)
        silent = np.zeros(2 * len(today))
        found = opened(replay(fx, device, np.r_[today, today], silent, step_s=3600), "routine")
        assert [f.device_id for f in found] == [2], offset
        assert found[0].figures["usual"] == pytest.approx(18.0)


def test_a_device_far_from_its_street_peers_is_found():
    rng = np.random.default_rng(5)
    n = 8
    ts = np.arange(T0, T0 + 6 * 900, 900.0)
    device = np.repeat(np.arange(1, n + 1), len(ts))
    values = 20.0 + rng.normal(0, 0.5, n * len(ts))
    values[device == 3] = 55.0  # reports, but nothing like its neighbours
    fx = Foresight(spec(n, normal=(10, 30), alarm_max=60.0), {1: {"peer": PEER}})
    found = opened(replay(fx, device, np.tile(ts, n), values, step_s=900), "peer")
    assert [f.device_id for f in found] == [3]


def test_forecast_series_draws_the_band_and_the_crossing():
    ts = np.arange(0.0, 1200.0, 15.0)
    values = 0.5 + ts / 2400 * 15
    f = trend.forecast_series(
        ts_s=ts, values=values, limit=15, side=1, horizon_s=3600, window_s=1800,
        min_points=5, confidence=0.9,
    )  # fmt: skip
    assert f is not None and f.breach_at_s == pytest.approx(2320, abs=60)
    assert (f.lower <= f.mean).all() and (f.mean <= f.upper).all()
    assert trend.forecast_series(
        ts_s=ts[:3], values=values[:3], limit=15, side=1, horizon_s=3600, window_s=1800,
        min_points=5, confidence=0.9,
    ) is None  # fmt: skip


def test_what_a_device_usually_does_at_that_hour_is_neither_stuck_nor_a_spike():
    # a household meter: a constant night trickle, then the morning's first water, every day
    ts = np.arange(T0, T0 + 3 * DAY, 3600.0)
    hour = (((ts + 8 * 3600) % DAY) // 3600).astype(int)
    rng = np.random.default_rng(11)
    values = np.where(hour < 6, 0.8, np.where(hour == 7, 38.0, 12.0 + rng.normal(0, 3, len(ts))))
    values = np.round(values, 1)
    median = np.where(np.arange(24) < 6, 0.8, np.where(np.arange(24) == 7, 36.0, 12.0))
    spread = np.where(np.arange(24) < 6, 0.0, 3.0)
    fx = Foresight(
        spec(1, interval=3600.0, normal=(0.5, 60), alarm_max=np.nan,
             season=median[None, :], season_spread=spread[None, :]),
        {1: {"stuck": STUCK, "spike": SPIKE}},
    )  # fmt: skip
    found = replay(fx, np.ones(len(ts), np.int64), ts, values, step_s=3600)
    assert not opened(found, "stuck") and not opened(found, "spike")
    # without the learned normal the same series looks broken
    fx = Foresight(spec(1, interval=3600.0, normal=(0.5, 60), alarm_max=np.nan),
                   {1: {"stuck": STUCK, "spike": SPIKE}})  # fmt: skip
    found = replay(fx, np.ones(len(ts), np.int64), ts, values, step_s=3600)
    assert opened(found, "stuck") or opened(found, "spike")
