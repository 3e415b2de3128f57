"""Labelled history for the early-warning bench: its labels agree with its readings."""

import numpy as np
import pandas as pd
import pytest

from data import catalog
from simulator.scenarios import FAST_PERIOD_S, labelled_history
from simulator.shapes import US, device_profiles

TYPES = catalog.load_device_types()
BY_ID = {t.type_id: t for t in TYPES}
END = 1_795_000_000 * US


def demo_devices(n=2500, seed=3):
    rng = np.random.default_rng(seed)
    shares = {c.code: c.device_share for c in catalog.load_categories()}
    weight = np.array(
        [
            shares[t.category] * t.share / sum(u.share for u in TYPES if u.category == t.category)
            for t in TYPES
        ]
    )
    type_id = rng.choice([t.type_id for t in TYPES], n, p=weight / weight.sum())
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "type_id": type_id,
            "district_adcode": np.where(np.arange(n) < n // 2, "310101", "310104"),
            "street_code": "310101001",
        }
    )


@pytest.fixture(scope="module")
def history():
    return labelled_history(devices=demo_devices(), device_types=TYPES, days=14, end_us=END)


def series(history, device):
    mine = history.readings.device_id == device
    return history.readings.ts_us[mine], history.readings.value[mine], history.arrived_us[mine]


def test_every_kind_of_event_is_there_in_numbers(history):
    counts = history.events["kind"].value_counts()
    assert counts["ramp"] >= 40 and counts["inactivity"] >= 30 and counts["stuck"] >= 30
    assert counts["spike"] > 0 and counts["clock"] > 0 and counts["near_limit"] >= 14
    ramps = history.events[history.events["kind"] == "ramp"]
    assert {"ponding", "pipe_pressure"} <= set(ramps["measurand"])
    assert ramps["measurand"].isin(["river_level", "tide_level"]).any()
    assert ramps["measurand"].isin(["gas_pressure", "methane_manhole"]).any()
    assert (np.diff(history.arrived_us) >= 0).all()


def test_ramps_rise_gradually_at_the_fast_period_and_cross_at_alarm_us(history):
    for ev in history.events[history.events["kind"] == "ramp"].itertuples():
        t = BY_ID[int(demo_devices().type_id[ev.device_id - 1])]
        ts, value, _ = series(history, ev.device_id)
        inside = (ts >= ev.start_us) & (ts < ev.alarm_us)
        assert np.all(np.diff(ts[inside]) == FAST_PERIOD_S * US)
        limit = t.alarm_max if ev.side > 0 else t.alarm_min
        way = abs(limit - t.baseline)
        # a step moves a few % of the way, plus the type's own noise
        assert np.abs(np.diff(value[inside])).max() < 0.08 * way + 5 * t.noise_sd, ev
        assert np.median(np.abs(np.diff(value[inside]))) < 0.05 * way + 2 * t.noise_sd
        assert ((value[inside] - limit) * ev.side <= 0).all()
        crossed = value[ts == ev.alarm_us][0]
        assert (crossed - limit) * ev.side > 0
        # the alarm comes near the end of the rise, not at once
        assert ev.alarm_us - ev.start_us >= 15 * 60 * US


def test_near_limit_cycles_come_close_but_never_cross(history):
    near = history.events[history.events["kind"] == "near_limit"]
    for device, side in near.groupby("device_id")["side"].first().items():
        t = BY_ID[int(demo_devices().type_id[device - 1])]
        _, value, _ = series(history, device)
        limit = t.alarm_max if side > 0 else t.alarm_min
        way = abs(limit - t.baseline)
        extreme = value.max() if side > 0 else value.min()
        assert (extreme - limit) * side < 0
        assert abs(limit - extreme) <= 0.15 * way


def test_stuck_repeats_exactly_and_clock_skew_lags_arrival(history):
    for ev in history.events[history.events["kind"] == "stuck"].itertuples():
        ts, value, _ = series(history, ev.device_id)
        inside = (ts >= ev.start_us) & (ts < ev.end_us)
        assert len(np.unique(value[inside])) <= 1
    for ev in history.events[history.events["kind"] == "clock"].itertuples():
        ts, _, arrived = series(history, ev.device_id)
        lag = arrived - ts
        window = (arrived >= ev.start_us) & (arrived < ev.end_us)
        assert ((lag[window] >= 20 * 60 * US) & (lag[window] <= 60 * 60 * US + 1000)).all()
        assert (lag[~window] == 0).all()


def test_a_break_keeps_water_at_a_trickle_from_the_usual_first_activity(history):
    breaks = history.events[
        (history.events["kind"] == "inactivity") & (history.events["measurand"] == "water_meter")
    ]
    assert len(breaks) >= 5
    for ev in breaks.itertuples():
        ts, value, _ = series(history, ev.device_id)
        inside = (ts >= ev.usual_us) & (ts < ev.end_us)
        assert (value[inside] <= 1.2).all()


def test_households_have_their_own_routines():
    ids = np.arange(1, 201)
    water = next(t for t in TYPES if t.measurand == "water_meter").type_id
    profiles = device_profiles(ids, np.full(200, water), TYPES, seed=0)
    assert len(np.unique(np.round(profiles.wake_h, 4))) > 150
    assert profiles.wake_h.min() >= 6 and profiles.wake_h.max() <= 9
    assert profiles.bed_h.min() >= 21 and profiles.bed_h.max() <= 23.5
    # same seed, same households; another seed, other households
    again = device_profiles(ids, np.full(200, water), TYPES, seed=0)
    assert np.array_equal(again.wake_h, profiles.wake_h)
    other = device_profiles(ids, np.full(200, water), TYPES, seed=1)
    assert not np.array_equal(other.wake_h, profiles.wake_h)
