"""How devices behave over time, shared by the live city, the seed and the labelled history.

Everything is a pure numpy function of (device, timestamp, seed), so a baseline learned from the
seeded history matches what the live city sends: near-limit daily cycles, elderly households'
routines and their breaks, and the shape of a ramp towards an alarm limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.catalog import DeviceType

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
CITY_OFFSET_US = 8 * HOUR_US  # Asia/Shanghai, UTC+8 all year
# The seed the seeded history's behaviour is drawn with: the live city's default (`simulate
# --seed 0`), so a default live run continues each device's seeded routine and cycle.
BEHAVIOUR_SEED = 0

# Ramps: (shortest, longest) rise in minutes and the side they move to (0 = either limit).
RAMP_MINUTES = {
    "ponding": (20.0, 60.0),
    "river_level": (60.0, 180.0),
    "tide_level": (60.0, 180.0),
    "methane_manhole": (20.0, 40.0),
    "gas_pressure": (20.0, 40.0),
    "pipe_pressure": (20.0, 40.0),
    "transformer_load": (30.0, 60.0),
    "cable_temp": (30.0, 60.0),
}
RAMP_SIDE = {"pipe_pressure": -1, "gas_pressure": 0}
# Near-limit daily cycles: the measurands a forecast must not mistake for a ramp, and their side.
NEAR_LIMIT_SIDE = {
    "tide_level": 1,
    "river_level": 1,
    "transformer_load": 1,
    "pipe_pressure": -1,
    "gas_pressure": 0,
}
NEAR_LIMIT_SHARE = 0.025
WATER, DOOR = 1, 2  # elderly households' routine devices
HOUSEHOLD_MEASURANDS = {"water_meter": WATER, "door_inactivity": DOOR}
BREAK_RATE = 0.06  # share of household-days whose routine breaks (no water, door shut)
BREAK_HOURS = (3.0, 8.0)
# salts of the per-device hash, one per independent draw
_NEAR, _NEAR_F, _NEAR_SIDE, _WAKE, _BED, _OUT, _BACK, _PM, _PM_LEN, _LAST, _FLOOR = range(11)
_DAY_JITTER, _BREAK, _BREAK_LEN, _USAGE = 20, 21, 22, 23


def hash_uniform(seed: int, key: np.ndarray, salt: int, day: np.ndarray | int = 0) -> np.ndarray:
    """A uniform [0, 1) number per (seed, key, salt, day), stable across runs (splitmix64)."""
    x = (
        np.asarray(key, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        + np.asarray(day, dtype=np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        + np.uint64((seed * 1_000_003 + salt * 7919) & 0xFFFFFFFFFFFF)
    )
    x = np.atleast_1d(x)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def local_day(ts_us: np.ndarray) -> np.ndarray:
    """The Shanghai calendar day number of each instant (days since 1970-01-01)."""
    return (np.asarray(ts_us) + CITY_OFFSET_US) // DAY_US


def day_start_us(day: np.ndarray) -> np.ndarray:
    """The UTC instant (µs) of 00:00 Shanghai on each day number."""
    return np.asarray(day, dtype=np.int64) * DAY_US - CITY_OFFSET_US


@dataclass(frozen=True)
class Profiles:
    """Per device (in the order given): its near-limit cycle and its household routine."""

    device_id: np.ndarray
    near_side: np.ndarray  # +1/-1: cycle peaks near that alarm limit; 0: the type's own cycle
    near_amp: np.ndarray  # the daily amplitude replacing the type's
    near_noise: np.ndarray  # the noise sd replacing the type's
    household: np.ndarray  # 0, WATER or DOOR
    wake_h: np.ndarray  # usual first activity of the water meter (local hour)
    bed_h: np.ndarray
    out_h: np.ndarray  # usual first opening of the door
    back_h: np.ndarray
    pm_out_h: np.ndarray
    pm_back_h: np.ndarray
    last_h: np.ndarray  # last opening of the evening
    floor: np.ndarray  # night-time trickle of the water meter, L/h


def device_profiles(
    device_id: np.ndarray, type_id: np.ndarray, device_types: list[DeviceType], *, seed: int
) -> Profiles:
    """Each device's near-limit cycle and household routine, chosen from its id and the seed."""
    device_id = np.asarray(device_id, dtype=np.int64)
    by_id = {t.type_id: t for t in device_types}
    measurand = np.array([by_id[int(t)].measurand for t in type_id], dtype=object)
    near_side, near_amp, near_noise = _near_limit(device_id, type_id, measurand, by_id, seed)
    household = np.array([HOUSEHOLD_MEASURANDS.get(m, 0) for m in measurand], dtype=np.int8)

    def u(salt: int) -> np.ndarray:
        return hash_uniform(seed, device_id, salt)

    wake = 6.0 + 3.0 * u(_WAKE)
    out = wake + 0.3 + 0.7 * u(_OUT)
    # the evening's last opening is late enough that the night never exceeds ~11.5 h shut
    last = np.maximum(21.0 + 1.5 * u(_LAST) - 0.6, out + 12.8)
    bed = np.minimum(np.maximum(21.0 + 2.0 * u(_BED), last + 0.3), 23.5)
    pm_out = 14.5 + 1.5 * u(_PM)
    return Profiles(
        device_id=device_id,
        near_side=near_side,
        near_amp=near_amp,
        near_noise=near_noise,
        household=household,
        wake_h=wake,
        bed_h=bed,
        out_h=out,
        back_h=out + 1.0 + 1.5 * u(_BACK),
        pm_out_h=pm_out,
        pm_back_h=pm_out + 1.0 + 1.0 * u(_PM_LEN),
        last_h=last,
        floor=0.6 + 0.4 * u(_FLOOR),
    )


def _near_limit(
    device_id: np.ndarray,
    type_id: np.ndarray,
    measurand: np.ndarray,
    by_id: dict[int, DeviceType],
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Side, amplitude and noise of the near-limit cycle devices (2–3% of the forecast kinds)."""
    n = len(device_id)
    side = np.zeros(n, dtype=np.int8)
    amp, noise = np.zeros(n), np.zeros(n)
    eligible = np.array([m in NEAR_LIMIT_SIDE for m in measurand], dtype=bool)
    chosen = np.flatnonzero(eligible & (hash_uniform(seed, device_id, _NEAR) < NEAR_LIMIT_SHARE))
    fraction = 0.85 + 0.10 * hash_uniform(seed, device_id[chosen], _NEAR_F)
    flip = hash_uniform(seed, device_id[chosen], _NEAR_SIDE) < 0.5
    for k, i in enumerate(chosen):
        t = by_id[int(type_id[i])]
        s = _near_side(t, NEAR_LIMIT_SIDE[str(measurand[i])] or (-1 if flip[k] else 1))
        limit = t.alarm_max if s > 0 else t.alarm_min if s < 0 else None
        if limit is None:
            continue
        gap = abs(limit - t.baseline)
        side[i] = s
        amp[i] = fraction[k] * gap
        # the noise shrinks where needed so that peak + 3 sd stays inside the limit
        noise[i] = min(t.noise_sd, (1.0 - fraction[k]) * gap / 3.5)
    return side, amp, noise


def _near_side(t: DeviceType, side: int) -> int:
    """The side a near-limit cycle peaks on: `side`, unless the other limit is nearer to the
    baseline (a sine that came near the far limit would cross the near one)."""
    gap = {
        +1: abs(t.alarm_max - t.baseline) if t.alarm_max is not None else np.inf,
        -1: abs(t.alarm_min - t.baseline) if t.alarm_min is not None else np.inf,
    }
    if gap[-side] >= gap[side]:
        return side
    return -side if NEAR_LIMIT_SIDE.get(t.measurand, 0) == 0 else 0


def normal_values(
    params: dict[str, np.ndarray],
    profiles: Profiles,
    idx: np.ndarray,
    t_type: np.ndarray,
    ts_us: np.ndarray,
    noise: np.ndarray,
    *,
    seed: int,
) -> np.ndarray:
    """A well device's values: its type's (or its near-limit) daily cycle, or its routine."""
    hour = ((ts_us + CITY_OFFSET_US) % DAY_US) / HOUR_US
    side = profiles.near_side[idx]
    near = side != 0
    amplitude = np.where(near, profiles.near_amp[idx], params["amplitude"][t_type])
    sd = np.where(near, profiles.near_noise[idx], params["noise"][t_type])
    # a near-limit cycle never crosses: its noise is cut at 3 sd (the limit is 3.5 sd past its peak)
    noise = np.where(near, np.clip(noise, -3.0, 3.0), noise)
    # a low-side device's trough (12 h after the type's peak) is what comes near its limit
    value = (
        params["baseline"][t_type]
        + amplitude * np.sin(2 * np.pi * (hour - params["peak"][t_type] + 6) / 24.0)
        + noise * sd
    )
    value[params["binary"][t_type] > 0] = 0.0
    value = np.clip(value, np.where(params["normal_min"][t_type] >= 0, 0.0, -np.inf), None)
    household = profiles.household[idx]
    for kind, routine in ((WATER, water_values), (DOOR, door_values)):
        rows = np.flatnonzero(household == kind)
        if len(rows):
            value[rows] = routine(profiles, idx[rows], ts_us[rows], noise[rows], seed=seed)
    return value


def break_hours(profiles: Profiles, idx: np.ndarray, day: np.ndarray, *, seed: int) -> np.ndarray:
    """Hours the household's routine stays broken on that day from its usual first activity
    (0 = an ordinary day)."""
    key = profiles.device_id[idx]
    broken = hash_uniform(seed, key, _BREAK, day) < BREAK_RATE
    length = BREAK_HOURS[0] + (BREAK_HOURS[1] - BREAK_HOURS[0]) * hash_uniform(
        seed, key, _BREAK_LEN, day
    )
    return np.where(broken, length, 0.0)


def usual_first_activity_h(profiles: Profiles, idx: np.ndarray) -> np.ndarray:
    """The local hour a household's device usually first shows activity (water or door)."""
    return np.where(profiles.household[idx] == DOOR, profiles.out_h[idx], profiles.wake_h[idx])


def water_values(
    profiles: Profiles, idx: np.ndarray, ts_us: np.ndarray, noise: np.ndarray, *, seed: int
) -> np.ndarray:
    """Water use (L/h): a trickle at night, morning and evening peaks between wake and bed."""
    day = local_day(ts_us)
    hour = (ts_us - day_start_us(day)) / HOUR_US
    key = profiles.device_id[idx]
    jitter = (hash_uniform(seed, key, _DAY_JITTER, day) - 0.5) * 0.5
    wake = profiles.wake_h[idx] + jitter
    bed = profiles.bed_h[idx] + jitter
    scale = 0.8 + 0.4 * hash_uniform(seed, key, _USAGE)
    usage = scale * (
        6.0
        + 28.0 * np.exp(-(((hour - wake - 0.6) / 0.6) ** 2))
        + 10.0 * np.exp(-(((hour - 12.0) / 0.7) ** 2))
        + 22.0 * np.exp(-(((hour - bed + 3.0) / 0.9) ** 2))
    )
    awake = (hour >= wake) & (hour < bed)
    broken = break_hours(profiles, idx, day, seed=seed)
    usual = profiles.wake_h[idx]
    awake &= ~((broken > 0) & (hour >= np.minimum(usual, wake)) & (hour < usual + broken))
    floor = profiles.floor[idx]
    value = np.where(awake, floor + usage + 2.0 * noise, floor + 0.05 * noise)
    # stays above the type's normal minimum: a quiet night is not a low-flow warning
    return np.clip(value, 0.6, 58.0)


def door_values(
    profiles: Profiles, idx: np.ndarray, ts_us: np.ndarray, noise: np.ndarray, *, seed: int
) -> np.ndarray:
    """Hours since the door last opened: climbs overnight, resets at the household's outings."""
    del noise  # an elapsed time has no measurement noise
    day = local_day(ts_us)
    latest = np.full(len(ts_us), -np.inf)
    for back in (0, 1):
        d = day - back
        for opening in _door_openings(profiles, idx, d, seed=seed):
            ok = np.isfinite(opening)
            at = day_start_us(d) + (np.where(ok, opening, 0.0) * HOUR_US).astype(np.int64)
            ok &= at <= ts_us
            latest = np.where(ok, np.maximum(latest, at), latest)
    since = (ts_us - latest) / HOUR_US
    # no opening in two days: a broken routine that still climbs, capped where sensors saturate
    return np.clip(np.where(np.isfinite(since), since, 36.0), 0.0, 47.0)


def _door_openings(
    profiles: Profiles, idx: np.ndarray, day: np.ndarray, *, seed: int
) -> list[np.ndarray]:
    """Local hours of the door's openings on each day (nan where a break keeps it shut)."""
    key = profiles.device_id[idx]
    jitter = (hash_uniform(seed, key, _DAY_JITTER, day) - 0.5) * 0.3
    hours = [
        profiles.out_h[idx] + jitter,
        profiles.back_h[idx] + jitter,
        profiles.pm_out_h[idx] + jitter,
        profiles.pm_back_h[idx] + jitter,
        profiles.last_h[idx] + jitter,
    ]
    broken = break_hours(profiles, idx, day, seed=seed)
    usual = profiles.out_h[idx]
    shut = [(broken > 0) & (h >= usual - 0.5) & (h < usual + broken) for h in hours]
    return [np.where(s, np.nan, h) for h, s in zip(hours, shut, strict=True)]


def ramp_fraction(
    ts_us: np.ndarray,
    *,
    start_us: np.ndarray,
    rise_us: np.ndarray,
    hold_us: np.ndarray,
    fall_us: np.ndarray,
    power: np.ndarray,
) -> np.ndarray:
    """0 → 1 over the rise (linear to gently accelerating), 1 while held, 0 again after the fall."""
    t = (ts_us - start_us).astype(np.float64)
    rising = np.clip(t / np.maximum(rise_us, 1), 0.0, 1.0) ** power
    falling = 1.0 - np.clip((t - rise_us - hold_us) / np.maximum(fall_us, 1), 0.0, 1.0)
    return np.where(t < rise_us, rising, falling) * (t >= 0)


def ramp_target(t: DeviceType, side: int, u: float) -> float:
    """Where a ramp ends: a little beyond the type's alarm limit on that side."""
    limit = t.alarm_max if side > 0 else t.alarm_min
    if limit is None:
        raise ValueError(f"{t.code} has no alarm limit on side {side}")
    overshoot = (0.04 + 0.11 * u) * abs(limit - t.baseline)
    target = limit + side * overshoot
    return max(target, 0.0) if t.normal_min >= 0 else target


def ramp_side(t: DeviceType, u: float) -> int:
    """The side a ramp of this type moves to (+1 up to alarm_max, -1 down to alarm_min)."""
    side = RAMP_SIDE.get(t.measurand, 1)
    if side == 0:
        side = 1 if u < 0.5 else -1
    if side > 0 and t.alarm_max is None:
        return -1
    if side < 0 and t.alarm_min is None:
        return 1
    return side
