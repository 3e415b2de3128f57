"""Labelled history for the early-warning benchmark: weeks of readings with injected events.

`labelled_history` replays the same value functions as the live city and the seed
(simulator/shapes.py) over days, injects ramps to the alarm limit, stuck sensors, spikes and
clock skew on chosen (device, day) pairs, and says exactly where each event is, so a detector
replayed over the readings can be scored. `scheduled_readings` is the shared reading schedule
(the seed's weeks of history for baseline devices use it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data.catalog import DeviceType
from data.writes import ReadingBatch
from simulator.city import round_to_type, type_arrays
from simulator.live import plausible_bounds
from simulator.shapes import (
    DAY_US,
    HOUR_US,
    RAMP_MINUTES,
    US,
    Profiles,
    break_hours,
    day_start_us,
    device_profiles,
    local_day,
    normal_values,
    ramp_fraction,
    ramp_side,
    ramp_target,
    usual_first_activity_h,
)

FAST_PERIOD_S = 60  # a ramping device reports on change, at most this often
EVENT_COLUMNS = [
    "kind",
    "device_id",
    "start_us",
    "end_us",
    "side",
    "measurand",
    "category",
    "alarm_us",
    "usual_us",
]
# ramps of each group over the history, at least (ponding, levels, gas, pipe pressure, power)
RAMP_GROUPS = {
    "ponding": ("ponding",),
    "level": ("river_level", "tide_level"),
    "gas": ("methane_manhole", "gas_pressure"),
    "pipe": ("pipe_pressure",),
    "power": ("transformer_load", "cable_temp"),
}
RAMPS_PER_GROUP = 12
STUCK_EPISODES, SPIKES, CLOCK_SKEWS = 40, 30, 12


@dataclass(frozen=True)
class LabelledHistory:
    """Readings in arrival order, when each arrived, and the events injected into them."""

    readings: ReadingBatch
    arrived_us: np.ndarray
    events: pd.DataFrame
    start_us: int
    end_us: int


def scheduled_readings(
    type_ids: np.ndarray,
    params: dict[str, np.ndarray],
    *,
    start_us: int,
    end_us: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(device index, timestamp) of every reading in [start, end) at each type's interval."""
    interval_us = (params["interval"][type_ids] * US).astype(np.int64)
    phase = (rng.random(len(type_ids)) * np.minimum(interval_us, end_us - start_us)).astype(
        np.int64
    )
    first = start_us + phase
    counts = np.where(end_us > first, (end_us - 1 - first) // interval_us + 1, 0)
    owner = np.repeat(np.arange(len(type_ids)), counts)
    k = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    # a few seconds of jitter, far below the interval, so timestamps stay unique
    jitter = (rng.random(len(owner)) * np.minimum(interval_us[owner] // 10, 5 * US)).astype(
        np.int64
    )
    return owner, np.minimum(first[owner] + k * interval_us[owner] + jitter, end_us - 1)


def labelled_history(
    *,
    devices: pd.DataFrame,
    device_types: list[DeviceType],
    days: int = 14,
    end_us: int,
    seed: int = 0,
) -> LabelledHistory:
    """`days` of readings for `devices` ending at end_us, with ramps, near-limit cycles, routine
    breaks, stuck sensors, spikes and clock skew, each labelled in `events`."""
    if days < 2:
        raise ValueError("labelled history needs at least 2 days")
    rng = np.random.default_rng([seed, 20260917])
    start_us = end_us - days * DAY_US
    ids = devices["id"].to_numpy(dtype=np.int64)
    type_ids = devices["type_id"].to_numpy(dtype=np.int64)
    params = type_arrays(device_types)
    types = {t.type_id: t for t in device_types}
    profiles = device_profiles(ids, type_ids, device_types, seed=seed)
    plan = _plan_events(ids, type_ids, types, profiles, rng, start_us=start_us, days=days)

    owner, ts = scheduled_readings(type_ids, params, start_us=start_us, end_us=end_us, rng=rng)
    ramps = plan[plan["kind"] == "ramp"]
    owner, ts, ramp_of = _with_fast_readings(owner, ts, ramps)
    order = np.lexsort((ts, owner))
    owner, ts, ramp_of = owner[order], ts[order], ramp_of[order]
    t_type = type_ids[owner]
    value = normal_values(
        params, profiles, owner, t_type, ts, rng.standard_normal(len(ts)), seed=seed
    )
    value = _apply_ramps(value, ts, ramp_of, ramps, params, t_type, rng)
    low, high = plausible_bounds(device_types)
    value = round_to_type(np.clip(value, low[t_type], high[t_type]), params, t_type)
    arrived = ts.copy()
    events = []
    row: Any
    for row in plan.itertuples():
        rows = _rows_of(owner, ts, int(row.device), int(row.start_us), int(row.end_us))
        if row.kind == "stuck" and len(rows) and rows[0] > 0 and owner[rows[0] - 1] == row.device:
            value[rows] = value[rows[0] - 1]
        elif row.kind == "spike" and len(rows):
            rows = rows[:1]
            width = params["normal_max"][t_type[rows]] - params["normal_min"][t_type[rows]]
            jump = value[rows] + float(row.side) * (0.9 + 0.6 * rng.random()) * width
            value[rows] = np.clip(jump, low[t_type[rows]], high[t_type[rows]])
        elif row.kind == "clock":
            ts[rows] -= int(row.lag_us)
        events.append(_event_row(row, rows, ts, value, types, ids, type_ids, params))
    events.extend(_routine_events(ids, type_ids, types, profiles, start_us, days, seed))
    order = np.argsort(arrived, kind="stable")
    return LabelledHistory(
        readings=ReadingBatch(
            device_id=ids[owner][order],
            ts_us=ts[order],
            value=value[order],
            quality=np.zeros(len(ts), dtype=np.int16),
        ),
        arrived_us=arrived[order],
        events=pd.DataFrame(events, columns=EVENT_COLUMNS)
        .sort_values(["start_us", "device_id"], kind="stable")
        .reset_index(drop=True),
        start_us=start_us,
        end_us=end_us,
    )


def _rows_of(owner: np.ndarray, ts: np.ndarray, device: int, lo: int, hi: int) -> np.ndarray:
    """Positions of a device's readings in [lo, hi) in (owner, ts)-sorted arrays."""
    first, last = np.searchsorted(owner, [device, device + 1])
    a, b = np.searchsorted(ts[first:last], [lo, hi])
    return np.arange(first + a, first + b)


def _plan_events(
    ids: np.ndarray,
    type_ids: np.ndarray,
    types: dict[int, DeviceType],
    profiles: Profiles,
    rng: np.random.Generator,
    *,
    start_us: int,
    days: int,
) -> pd.DataFrame:
    """Ramps, stuck episodes, spikes and clock skews on distinct (device, day) pairs."""
    measurand = np.array([types[int(t)].measurand for t in type_ids], dtype=object)
    analog = np.array([types[int(t)].value_kind == "analog" for t in type_ids])
    plain = analog & (profiles.near_side == 0) & (profiles.household == 0)
    taken: set[tuple[int, int]] = set()
    rows: list[dict] = []
    first_day = int(local_day(np.array([start_us]))[0]) + 1  # day 0 stays clean: warm-up
    last_day = int(local_day(np.array([start_us + days * DAY_US - 1]))[0]) - 1

    def pick(pool: np.ndarray, count: int) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        for _ in range(count * 20):
            if len(out) == count or len(pool) == 0:
                break
            device, day = int(rng.choice(pool)), int(rng.integers(first_day, last_day + 1))
            if (device, day) not in taken:
                taken.add((device, day))
                hour = rng.uniform(1.0, 16.0)
                out.append((device, day, int(day_start_us(np.array([day]))[0] + hour * HOUR_US)))
        return out

    for group in RAMP_GROUPS.values():
        pool = np.flatnonzero(plain & np.isin(measurand, group))
        count = max(RAMPS_PER_GROUP, round(0.004 * len(pool) * days))
        for device, _, at in pick(pool, count):
            rows.append(_ramp_plan(device, at, types[int(type_ids[device])], rng))
    for kind, count, hours in (
        ("stuck", STUCK_EPISODES, (1.0, 6.0)),
        ("spike", SPIKES, (0.0, 0.0)),
        ("clock", CLOCK_SKEWS, (1.0, 4.0)),
    ):
        for device, _, at in pick(np.flatnonzero(plain), count):
            span = rng.uniform(*hours) * HOUR_US if hours[1] else 6 * HOUR_US
            rows.append(
                {
                    "kind": kind,
                    "device": device,
                    "start_us": at,
                    "end_us": at + int(span),
                    "side": (1 if rng.random() < 0.5 else -1) if kind == "spike" else 0,
                    "lag_us": int(rng.uniform(20, 60) * 60 * US) + 137,
                }
            )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["device", "start_us"], kind="stable").reset_index(drop=True)


def _ramp_plan(device: int, at: int, t: DeviceType, rng: np.random.Generator) -> dict:
    """One ramp: its rise, hold beyond the limit, fall, shape and target."""
    low, high = RAMP_MINUTES[t.measurand]
    rise = int(rng.uniform(low, high) * 60 * US)
    hold = int(rng.uniform(3, 8) * 60 * US)
    side = ramp_side(t, rng.random())
    return {
        "kind": "ramp",
        "device": device,
        "start_us": at,
        "end_us": at + rise + hold + rise // 2,
        "side": side,
        "rise_us": rise,
        "hold_us": hold,
        "power": rng.uniform(1.0, 1.4),
        "target": ramp_target(t, side, rng.random()),
    }


def _with_fast_readings(
    owner: np.ndarray, ts: np.ndarray, ramps: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readings inside a ramp replaced by one every FAST_PERIOD_S; which ramp (row) each is in."""
    ramp_of = np.full(len(ts), -1, dtype=np.int64)
    if len(ramps) == 0:
        return owner, ts, ramp_of
    device = ramps["device"].to_numpy(dtype=np.int64)
    start = ramps["start_us"].to_numpy(dtype=np.int64)
    end = ramps["end_us"].to_numpy(dtype=np.int64)
    inside = np.zeros(len(ts), dtype=bool)
    order = np.argsort(owner, kind="stable")
    for d, s, e in zip(device, start, end, strict=True):
        lo, hi = np.searchsorted(owner[order], [d, d + 1])
        mine = order[lo:hi]
        inside[mine[(ts[mine] >= s) & (ts[mine] < e)]] = True
    step = FAST_PERIOD_S * US
    counts = (end - start + step - 1) // step
    which = np.repeat(np.arange(len(ramps)), counts)
    k = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return (
        np.concatenate([owner[~inside], device[which]]),
        np.concatenate([ts[~inside], start[which] + k * step]),
        np.concatenate([ramp_of[~inside], which]),
    )


def _apply_ramps(
    value: np.ndarray,
    ts: np.ndarray,
    ramp_of: np.ndarray,
    ramps: pd.DataFrame,
    params: dict[str, np.ndarray],
    t_type: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Blend the ramp's values in: from the device's own value to its target and back."""
    rows = np.flatnonzero(ramp_of >= 0)
    if len(rows) == 0:
        return value
    r = ramp_of[rows]

    def col(name: str) -> np.ndarray:
        return ramps[name].to_numpy()[r]

    f = ramp_fraction(
        ts[rows],
        start_us=col("start_us").astype(np.int64),
        rise_us=col("rise_us").astype(np.int64),
        hold_us=col("hold_us").astype(np.int64),
        fall_us=col("rise_us").astype(np.int64) // 2,
        power=col("power").astype(np.float64),
    )
    noisy_target = col("target").astype(np.float64) + params["noise"][t_type[rows]] * (
        rng.standard_normal(len(rows))
    )
    out = value.copy()
    out[rows] = (1.0 - f) * value[rows] + f * noisy_target
    return out


def _event_row(
    row,
    rows: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    types: dict[int, DeviceType],
    ids: np.ndarray,
    type_ids: np.ndarray,
    params: dict[str, np.ndarray],
) -> list:
    """The label of one injected event (ramp: with the first reading beyond the alarm limit)."""
    t = types[int(type_ids[row.device])]
    alarm_us: float = np.nan
    start, end = int(row.start_us), int(row.end_us)
    if row.kind == "ramp":
        limit = t.alarm_max if row.side > 0 else t.alarm_min
        beyond = rows[(value[rows] - limit) * row.side > 0]
        alarm_us = float(ts[beyond[0]]) if len(beyond) else np.nan
    elif row.kind == "spike" and len(rows):
        start = int(ts[rows[0]])
        end = start + int(params["interval"][t.type_id] * US)
    return [
        row.kind,
        int(ids[row.device]),
        start,
        end,
        int(row.side),
        t.measurand,
        t.category,
        alarm_us,
        np.nan,
    ]


def _routine_events(
    ids: np.ndarray,
    type_ids: np.ndarray,
    types: dict[int, DeviceType],
    profiles: Profiles,
    start_us: int,
    days: int,
    seed: int,
) -> list[list]:
    """The near-limit devices' daily peaks and the households' broken mornings."""
    out: list[list] = []
    first_day = int(local_day(np.array([start_us]))[0])
    day_list = np.arange(first_day, first_day + days + 1)
    day0 = day_start_us(day_list)
    for i in np.flatnonzero(profiles.near_side != 0):
        t = types[int(type_ids[i])]
        side = int(profiles.near_side[i])
        peak_h = (t.peak_hour + (0 if side > 0 else 12)) % 24
        for d0 in day0:
            peak = int(d0 + peak_h * HOUR_US)
            if start_us <= peak - 2 * HOUR_US and peak + 2 * HOUR_US <= start_us + days * DAY_US:
                out.append(
                    [
                        *("near_limit", int(ids[i]), peak - 2 * HOUR_US, peak + 2 * HOUR_US),
                        *(side, t.measurand, t.category, np.nan, np.nan),
                    ]
                )
    households = np.flatnonzero(profiles.household != 0)
    for i in households:
        t = types[int(type_ids[i])]
        idx = np.full(len(day_list), i)
        hours = break_hours(profiles, idx, day_list, seed=seed)
        rising = 1 if t.measurand == "door_inactivity" else -1
        usual = day0 + (usual_first_activity_h(profiles, idx) * HOUR_US).astype(np.int64)
        for u, h in zip(usual[hours > 0], hours[hours > 0], strict=True):
            end = int(u + h * HOUR_US)
            if start_us <= u and end <= start_us + days * DAY_US:
                out.append(
                    [
                        "inactivity",
                        int(ids[i]),
                        int(u),
                        end,
                        rising,
                        t.measurand,
                        t.category,
                        np.nan,
                        float(u),
                    ]
                )
    return out
