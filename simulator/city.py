"""The synthetic city: devices placed in real district polygons, readings with daily cycles, faults.

Everything here is pure numpy/shapely and deterministic for a given random seed and end time; the
`seed` command (simulator/seed.py) hands the results to data/writes.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from data.catalog import Category, DeviceType
from data.writes import ReadingBatch, reading_levels
from simulator.shapes import (
    BEHAVIOUR_SEED,
    CITY_OFFSET_US,
    HOUR_US,
    Profiles,
    device_profiles,
    hash_uniform,
    normal_values,
)

US = 1_000_000
QUARTER_US = 900 * US
# salts of the long-history devices' reporting phase (shapes.py uses 0–23)
_HOUR_SALT, _QUARTER_SALT, _SPREAD_SALT = 40, 41, 42

# Resident population in 10k (7th national census, 2020): device density follows people.
DISTRICT_POPULATION = {
    "310101": 66.2,
    "310104": 111.3,
    "310105": 69.3,
    "310106": 97.6,
    "310107": 124.0,
    "310109": 75.7,
    "310110": 124.2,
    "310112": 265.3,
    "310113": 223.5,
    "310114": 183.4,
    "310115": 568.2,
    "310116": 82.3,
    "310117": 191.0,
    "310118": 127.1,
    "310120": 114.1,
    "310151": 63.7,
}

# Categories whose alarms endanger life: their threshold incidents are critical, not major.
LIFE_SAFETY = frozenset({"fire", "gas", "flood", "building", "elderly"})


@dataclass(frozen=True)
class Scale:
    """How big a synthetic city is, and how far back its readings go."""

    name: str
    devices: int
    history_hours: int
    # weeks of history for the devices whose normal is learned (households, near-limit cycles)
    history_days: int = 21


SCALES = {
    "tiny": Scale("tiny", 3_000, 6),
    "demo": Scale("demo", 20_000, 24),
    "seed": Scale("seed", 510_000, 24),
    # 1% of seed scale: the benchmark compares query latency against it
    "seed-1pct": Scale("seed-1pct", 5_100, 24),
    # the real platform's target, 10 million devices: two hours of readings (~14M), and no weeks
    # of learned history (at this size those would be ~190M readings of their own)
    "target": Scale("target", 10_000_000, 2, history_days=0),
}


@dataclass(frozen=True)
class Geography:
    """The streets the generator places devices in (WGS-84), with their district."""

    street_codes: np.ndarray  # str
    street_districts: np.ndarray  # str
    street_is_urban: np.ndarray  # bool: 街道 (subdistrict) rather than 镇/乡 (town)
    street_geoms: list[BaseGeometry]
    street_area_km2: np.ndarray


@dataclass(frozen=True)
class Episode:
    """A stretch of abnormal values on one device (a fault or a storm's effect)."""

    device_index: int
    start_us: int
    end_us: int
    direction: int  # +1 above the alarm_max/normal_max side, -1 below
    to_alarm: bool  # reaches the alarm threshold, or only the warning band
    cause: str  # 'fault' or 'rainstorm'


@dataclass
class City:
    """A generated city: devices, silences, fault episodes, and the time window."""

    devices: pd.DataFrame
    silent_from_us: np.ndarray  # per device: when it stops reporting (int64 max = never)
    episodes: list[Episode]
    start: datetime  # the window every device reports in
    end: datetime
    scale: Scale
    random_seed: int
    # each device's near-limit cycle and household routine (simulator/shapes.py), as live has them
    profiles: Profiles
    behaviour_seed: int
    # from here the devices with a learned normal report (weeks before `start`)
    history_start: datetime

    @property
    def long_history(self) -> np.ndarray:
        """Per device: does it report from history_start (households, near-limit cycles)?"""
        return (self.profiles.household != 0) | (self.profiles.near_side != 0)

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        return {
            name: self.devices[name].to_numpy()
            for name in ("id", "district_adcode", "street_code", "lon", "lat")
        }

    def device_row(self, device_index: int) -> dict[str, Any]:
        """One device's id, district, street and location (far cheaper than a frame row)."""
        return {name: column[device_index] for name, column in self._columns.items()}

    def first_us(self) -> np.ndarray:
        """Per device: the start of its readings (µs)."""
        return np.where(self.long_history, _to_us(self.history_start), _to_us(self.start))


def type_arrays(device_types: list[DeviceType]) -> dict[str, np.ndarray]:
    """Per-type parameters as arrays indexed by type_id (0 unused)."""
    size = max(t.type_id for t in device_types) + 1
    out: dict[str, np.ndarray] = {
        name: np.zeros(size)
        for name in (
            "interval",
            "baseline",
            "amplitude",
            "peak",
            "noise",
            "decimals",
            "normal_min",
            "normal_max",
            "alarm_min",
            "alarm_max",
            "binary",
        )
    }
    for t in device_types:
        i = t.type_id
        out["interval"][i] = t.interval_s
        out["baseline"][i] = t.baseline
        out["amplitude"][i] = t.daily_amplitude
        out["peak"][i] = t.peak_hour
        out["noise"][i] = t.noise_sd
        out["decimals"][i] = t.decimals
        out["normal_min"][i] = t.normal_min
        out["normal_max"][i] = t.normal_max
        out["alarm_min"][i] = np.nan if t.alarm_min is None else t.alarm_min
        out["alarm_max"][i] = np.nan if t.alarm_max is None else t.alarm_max
        out["binary"][i] = 1.0 if t.value_kind == "binary" else 0.0
    return out


def allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` into integer parts proportional to weights (largest remainders)."""
    shares = weights / weights.sum() * total
    parts = np.floor(shares).astype(np.int64)
    remainder = total - parts.sum()
    if remainder:
        order = np.argsort(-(shares - parts), kind="stable")
        parts[order[:remainder]] += 1
    return parts


def sample_in(
    geom: BaseGeometry,
    count: int,
    rng: np.random.Generator,
    *,
    center: tuple[float, float],
    spread_deg: float,
) -> np.ndarray:
    """`count` points inside geom: Gaussian around center, uniform fallback for odd shapes."""
    prepared = geom
    shapely.prepare(prepared)
    out = np.empty((0, 2))
    minx, miny, maxx, maxy = geom.bounds
    attempts = 0
    while len(out) < count:
        need = count - len(out)
        attempts += 1
        if attempts <= 6:
            pts = rng.normal(loc=center, scale=spread_deg, size=(need * 3 + 16, 2))
        else:  # the Gaussian keeps missing (thin or island-heavy shape): go uniform
            pts = np.column_stack(
                [rng.uniform(minx, maxx, need * 4 + 16), rng.uniform(miny, maxy, need * 4 + 16)]
            )
        inside = shapely.contains_xy(prepared, pts[:, 0], pts[:, 1])
        out = np.vstack([out, pts[inside][:need]])
    return out[:count]


def generate_devices(
    *,
    geography: Geography,
    categories: list[Category],
    device_types: list[DeviceType],
    scale: Scale,
    rng: np.random.Generator,
    end: datetime,
) -> pd.DataFrame:
    """Devices with type, district, street and location; ids ordered by district then street."""
    weights = np.array(
        [DISTRICT_POPULATION.get(d, 50.0) for d in geography.street_districts], dtype=float
    )
    # a district's devices go mostly to its 街道 (dense urban) and less to its 镇 (towns)
    street_weight = np.where(geography.street_is_urban, 3.0, 1.0) * np.sqrt(
        geography.street_area_km2
    )
    district_of_street = geography.street_districts
    for district in np.unique(district_of_street):
        mask = district_of_street == district
        weights[mask] = weights[mask][0] * street_weight[mask] / street_weight[mask].sum()
    per_street = allocate(scale.devices, weights)

    lon_parts, lat_parts, street_idx_parts = [], [], []
    for i, (geom, n) in enumerate(zip(geography.street_geoms, per_street, strict=True)):
        if n == 0:
            continue
        centroid = geom.representative_point()
        spread_km = max(0.3, 0.45 * np.sqrt(geography.street_area_km2[i]))
        pts = sample_in(
            geom, int(n), rng, center=(centroid.x, centroid.y), spread_deg=spread_km / 105.0
        )
        lon_parts.append(pts[:, 0])
        lat_parts.append(pts[:, 1])
        street_idx_parts.append(np.full(int(n), i))
    street_idx = np.concatenate(street_idx_parts)

    category_share = {c.code: c.device_share for c in categories}
    type_ids = np.array([t.type_id for t in device_types])
    type_weight = np.array([category_share[t.category] * t.share for t in device_types])
    type_weight = type_weight / np.array(
        [sum(u.share for u in device_types if u.category == t.category) for t in device_types]
    )
    counts = allocate(scale.devices, type_weight)
    device_type_ids = rng.permutation(np.repeat(type_ids, counts))
    category_by_type = {t.type_id: t.category for t in device_types}

    install_days = rng.integers(30, 5 * 365, size=scale.devices)
    installed_on = [end.date() - timedelta(days=int(d)) for d in install_days]
    status = np.where(rng.random(scale.devices) < 0.004, "maintenance", "active")

    frame = pd.DataFrame(
        {
            "type_id": device_type_ids.astype(np.int16),
            "district_adcode": geography.street_districts[street_idx],
            "street_code": geography.street_codes[street_idx],
            "lon": np.concatenate(lon_parts),
            "lat": np.concatenate(lat_parts),
            "installed_on": installed_on,
            "status": status,
        }
    )
    frame = frame.sort_values(["district_adcode", "street_code"], kind="stable").reset_index(
        drop=True
    )
    frame.insert(0, "id", np.arange(1, len(frame) + 1, dtype=np.int64))
    frame["category"] = frame["type_id"].map(category_by_type)
    seq = frame.groupby("district_adcode").cumcount() + 1
    frame.insert(
        1,
        "code",
        "SH-"
        + frame["district_adcode"]
        + "-"
        + frame["category"].str.upper().str[:4]
        + "-"
        + seq.astype(str).str.zfill(6),
    )
    return frame


# demo households per monitored transformer area (台区): an urban public 10/0.4 kV transformer
# feeds some hundreds of households; a real deployment imports the grid's counts (import-served)
DEMO_HOUSEHOLDS = (120, 480)


def served_households(
    devices: pd.DataFrame, device_types: list[DeviceType], *, random_seed: int
) -> pd.Series:
    """The demo households each outage monitor stands for (None for other devices); drawn
    apart from the city's own random stream, which stays as it was."""
    outage = {t.type_id for t in device_types if t.measurand == "outage"}
    rng = np.random.default_rng([random_seed, 12])
    low, high = DEMO_HOUSEHOLDS
    drawn = rng.integers(low, high + 1, size=len(devices))
    return (
        pd.Series(drawn, index=devices.index).where(devices["type_id"].isin(outage)).astype("Int64")
    )


def plan_city(
    *,
    geography: Geography,
    categories: list[Category],
    device_types: list[DeviceType],
    scale: Scale,
    random_seed: int,
    end: datetime,
    behaviour_seed: int = BEHAVIOUR_SEED,
) -> City:
    """Devices plus the day's story: which go silent, which fault, where the rainstorm hits."""
    rng = np.random.default_rng(random_seed)
    end = end.astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(hours=scale.history_hours)
    history_start = min(start, end - timedelta(days=scale.history_days))
    devices = generate_devices(
        geography=geography,
        categories=categories,
        device_types=device_types,
        scale=scale,
        rng=rng,
        end=end,
    )
    devices["served"] = served_households(devices, device_types, random_seed=random_seed)
    n = len(devices)
    start_us, end_us = _to_us(start), _to_us(end)
    span = end_us - start_us

    never = np.iinfo(np.int64).max
    silent_from = np.full(n, never, dtype=np.int64)
    silent = rng.random(n) < 0.012
    silent_from[silent] = start_us + (rng.random(silent.sum()) * span).astype(np.int64)
    maintenance = devices["status"].to_numpy() == "maintenance"
    silent_from[maintenance] = _to_us(history_start)  # under maintenance: nothing arrives

    types = {t.type_id: t for t in device_types}
    type_ids = devices["type_id"].to_numpy()  # row order is device order (ids 1..N)
    episodes: list[Episode] = []
    fault_rate = 0.004 * scale.history_hours / 24
    faulty = np.flatnonzero((rng.random(n) < fault_rate) & ~maintenance)
    for idx in faulty:
        t = types[int(type_ids[idx])]
        duration = int(rng.uniform(20 * 60, 6 * 3600) * US)
        begin = start_us + int(rng.random() * max(span - 30 * 60 * US, 1))
        episodes.append(
            Episode(
                device_index=int(idx),
                start_us=begin,
                end_us=min(begin + duration, end_us + 6 * 3600 * US),
                direction=fault_direction(t, rng),
                to_alarm=t.value_kind == "binary" or rng.random() < 0.6,
                cause="fault",
            )
        )
    episodes.extend(_rainstorm(devices, types, rng, start_us=start_us, end_us=end_us))
    return City(
        devices=devices,
        silent_from_us=silent_from,
        episodes=episodes,
        start=start,
        end=end,
        scale=scale,
        random_seed=random_seed,
        profiles=device_profiles(
            devices["id"].to_numpy(), type_ids, device_types, seed=behaviour_seed
        ),
        behaviour_seed=behaviour_seed,
        history_start=history_start,
    )


def fault_direction(t: DeviceType, rng: np.random.Generator) -> int:
    """Which side a fault pushes a type's values to (+1 high, -1 low)."""
    if t.alarm_max is not None and t.alarm_min is not None:
        return 1 if rng.random() < 0.7 else -1
    return 1 if t.alarm_max is not None or t.alarm_min is None else -1


def _rainstorm(
    devices: pd.DataFrame,
    types: dict[int, DeviceType],
    rng: np.random.Generator,
    *,
    start_us: int,
    end_us: int,
) -> list[Episode]:
    """An afternoon downpour over a few districts: flood sensors rise together for ~2 hours."""
    span = end_us - start_us
    if span < 4 * 3600 * US:
        return []
    districts = rng.choice(sorted(DISTRICT_POPULATION), size=3, replace=False)
    storm_start = start_us + int(span * rng.uniform(0.35, 0.65))
    flood = devices.index[
        (devices["category"] == "flood")
        & devices["district_adcode"].isin(districts)
        & (devices["status"] == "active")
    ].to_numpy()
    hit = flood[rng.random(len(flood)) < 0.25]
    type_ids = devices["type_id"].to_numpy()
    episodes = []
    for idx in hit:
        t = types[int(type_ids[idx])]
        if t.value_kind == "binary" and rng.random() < 0.7:
            continue
        begin = storm_start + int(rng.uniform(0, 40 * 60) * US)
        episodes.append(
            Episode(
                device_index=int(idx),
                start_us=begin,
                end_us=begin + int(rng.uniform(60 * 60, 150 * 60) * US),
                direction=fault_direction(t, rng) if t.alarm_max is None else 1,
                to_alarm=rng.random() < 0.35,
                cause="rainstorm",
            )
        )
    return episodes


def _to_us(moment: datetime) -> int:
    return round(moment.timestamp() * US)


def iter_reading_batches(
    city: City, device_types: list[DeviceType], *, devices_per_batch: int = 40_000
) -> Iterator[ReadingBatch]:
    """The readings, device-major in blocks of consecutive ids (a block = one batch): every
    device's over the window, the long-history devices' from history_start."""
    params = type_arrays(device_types)
    devices = city.devices
    end_us = _to_us(city.end)
    first_us = city.first_us()
    aligned = _aligned_offsets(city, params)
    episodes_by_device: dict[int, list[Episode]] = {}
    for ep in city.episodes:
        episodes_by_device.setdefault(ep.device_index, []).append(ep)

    for block_start in range(0, len(devices), devices_per_batch):
        block = slice(block_start, min(block_start + devices_per_batch, len(devices)))
        # one generator per block, so a block's readings do not depend on the batch size before it
        rng = np.random.default_rng([city.random_seed, block_start])
        owner, ts = _schedule(
            devices["type_id"].to_numpy()[block].astype(np.int64),
            params,
            first_us=first_us[block],
            aligned_us=aligned[block],
            stop_us=np.minimum(city.silent_from_us[block], end_us + 1),
            end_us=end_us,
            rng=rng,
        )
        yield _block_readings(
            city,
            owner=owner + block_start,
            ts=ts,
            episodes_by_device=episodes_by_device,
            params=params,
            rng=rng,
        )


def _schedule(
    type_ids: np.ndarray,
    params: dict[str, np.ndarray],
    *,
    first_us: np.ndarray,
    aligned_us: np.ndarray,
    stop_us: np.ndarray,
    end_us: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(device, timestamp) of each reading: every interval from a device's start (plus its phase)
    until it stops, device-major and in time order."""
    interval_us = (params["interval"][type_ids] * US).astype(np.int64)
    # a short window still sees every device once: its phase is within the window
    phase = (rng.random(len(type_ids)) * np.minimum(interval_us, end_us - first_us)).astype(
        np.int64
    )
    phase = np.where(aligned_us >= 0, (aligned_us - first_us) % interval_us, phase)
    first = first_us + phase
    counts = np.where(stop_us > first, (stop_us - 1 - first) // interval_us + 1, 0)
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(type_ids)), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    # a few seconds of jitter, always far below the interval, so timestamps stay unique
    jitter = (rng.random(total) * np.minimum(interval_us[owner] // 10, 5 * US)).astype(np.int64)
    return owner, np.minimum(first[owner] + k * interval_us[owner] + jitter, end_us)


def _aligned_offsets(city: City, params: dict[str, np.ndarray]) -> np.ndarray:
    """Per long-history device, when in its interval it reports (µs past a multiple of it since
    the epoch; -1 for the others): the same hours for a district's devices of one type, the same
    quarter of the hour for a street's (like devices polled by one gateway; it also keeps weeks
    of history to few rollup rows), and a near-limit device's at its cycle's extreme."""
    devices = city.devices
    type_ids = devices["type_id"].to_numpy().astype(np.int64)
    interval_us = (params["interval"][type_ids] * US).astype(np.int64)
    district = pd.util.hash_array(devices["district_adcode"].to_numpy(dtype=object))
    street = pd.util.hash_array(devices["street_code"].to_numpy(dtype=object))
    ids = devices["id"].to_numpy()
    seed = city.behaviour_seed
    kind = district + type_ids.astype(np.uint64)  # a district's devices of one type
    hour = np.floor(hash_uniform(seed, kind, _HOUR_SALT) * 4) * HOUR_US
    quarter = np.floor(hash_uniform(seed, street, _QUARTER_SALT) * 4) * QUARTER_US
    spread = hash_uniform(seed, ids, _SPREAD_SALT) * 10 * 60 * US
    # a near-limit device reports at the extreme of its cycle: its history shows how near it comes
    near = city.profiles.near_side
    extreme_h = params["peak"][type_ids] + np.where(near < 0, 12.0, 0.0) - CITY_OFFSET_US / HOUR_US
    at_extreme = (extreme_h % 24.0) * HOUR_US + spread / 10.0
    offset = np.where(near != 0, at_extreme, hour + quarter + spread).astype(np.int64)
    return np.where(city.long_history, offset % interval_us, -1)


def _block_readings(
    city: City,
    *,
    owner: np.ndarray,
    ts: np.ndarray,
    episodes_by_device: dict[int, list[Episode]],
    params: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> ReadingBatch:
    """Values of the scheduled readings: each device's normal (as live sends it), its episodes."""
    type_ids = city.devices["type_id"].to_numpy().astype(np.int64)
    t_type = type_ids[owner]
    value = normal_values(
        params,
        city.profiles,
        owner,
        t_type,
        ts,
        rng.normal(0.0, 1.0, len(ts)),
        seed=city.behaviour_seed,
    )
    first, last = (int(owner[0]), int(owner[-1])) if len(owner) else (0, -1)
    for dev_index in sorted(d for d in episodes_by_device if first <= d <= last):
        lo, hi = np.searchsorted(owner, [dev_index, dev_index + 1])
        for ep in episodes_by_device[dev_index]:
            a, b = np.searchsorted(ts[lo:hi], [ep.start_us, ep.end_us])
            if b > a:
                value[lo + a : lo + b] = episode_values(
                    ep, int(type_ids[dev_index]), params, int(b - a), rng
                )
    value = round_to_type(value, params, t_type)
    quality = np.zeros(len(ts), dtype=np.int16)
    flagged = rng.random(len(ts))
    quality[flagged < 0.002] = 1
    quality[flagged < 0.0004] = 2
    ids = city.devices["id"].to_numpy()
    return ReadingBatch(device_id=ids[owner], ts_us=ts, value=value, quality=quality)


def round_to_type(
    value: np.ndarray, params: dict[str, np.ndarray], t_type: np.ndarray
) -> np.ndarray:
    """Values rounded to their type's decimals."""
    scale = 10.0 ** params["decimals"][t_type]
    return np.round(value * scale) / scale


def episode_values(
    ep: Episode, type_id: int, params: dict[str, np.ndarray], count: int, rng: np.random.Generator
) -> np.ndarray:
    """Values during an episode: over the alarm (or only the warning) threshold, with noise."""
    if params["binary"][type_id] > 0:
        return np.ones(count)
    normal_min, normal_max = params["normal_min"][type_id], params["normal_max"][type_id]
    alarm_min, alarm_max = params["alarm_min"][type_id], params["alarm_max"][type_id]
    width = max(normal_max - normal_min, 1e-6)
    if ep.direction > 0:
        edge = alarm_max if ep.to_alarm and np.isfinite(alarm_max) else normal_max
        gap = (alarm_max - normal_max) if np.isfinite(alarm_max) else 0.2 * width
        target = edge + (0.05 + 0.25 * rng.random(count)) * (gap if not ep.to_alarm else width)
        if not ep.to_alarm:
            target = (
                np.minimum(target, alarm_max - 1e-6 * width) if np.isfinite(alarm_max) else target
            )
    else:
        edge = alarm_min if ep.to_alarm and np.isfinite(alarm_min) else normal_min
        gap = (normal_min - alarm_min) if np.isfinite(alarm_min) else 0.2 * width
        target = edge - (0.05 + 0.25 * rng.random(count)) * (gap if not ep.to_alarm else width)
        if not ep.to_alarm:
            target = (
                np.maximum(target, alarm_min + 1e-6 * width) if np.isfinite(alarm_min) else target
            )
        if normal_min >= 0:
            target = np.maximum(target, 0.0)
    return target


def city_day(moment: datetime) -> date:
    """The Shanghai calendar day of an instant."""
    return (moment.astimezone(UTC) + timedelta(hours=8)).date()


SEVERITY_ZH = {"critical": "紧急", "major": "重要", "minor": "一般"}


@dataclass
class IncidentBook:
    """Incidents and their event history as they are found, batch by batch."""

    incidents: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    # (device_id, rule) pairs with an unresolved incident: the schema allows only one of each
    live: set[tuple[int, str]] = field(default_factory=set)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Incidents and events as frames ready for data.writes.insert_incidents."""
        return pd.DataFrame(self.incidents), pd.DataFrame(self.events)


def record_incidents(
    book: IncidentBook,
    *,
    city: City,
    batch: ReadingBatch,
    device_types: list[DeviceType],
    street_names: dict[str, tuple[str, str]],
    rng: np.random.Generator,
) -> None:
    """Turn this batch's threshold crossings (fault episodes, near-limit peaks, broken routines)
    and silences into incidents."""
    params = type_arrays(device_types)
    types = {t.type_id: t for t in device_types}
    end_us = _to_us(city.end)
    if len(batch) == 0:
        return
    type_ids = city.devices["type_id"].to_numpy()
    # ids are 1..N in frame order, and batches are device-major and sorted by id
    first_id, last_id = int(batch.device_id[0]), int(batch.device_id[-1])
    episodes = [ep for ep in city.episodes if first_id <= ep.device_index + 1 <= last_id]
    _record_crossings(
        book,
        city=city,
        batch=batch,
        episodes=episodes,
        params=params,
        types=types,
        type_ids=type_ids,
        street_names=street_names,
        rng=rng,
        end_us=end_us,
    )
    _record_routine_crossings(
        book,
        city=city,
        batch=batch,
        episodes=episodes,
        params=params,
        types=types,
        street_names=street_names,
        rng=rng,
        end_us=end_us,
    )
    _record_silences(
        book,
        city=city,
        device_indexes=range(first_id - 1, last_id),
        types=types,
        type_ids=type_ids,
        street_names=street_names,
        rng=rng,
        end_us=end_us,
    )


def _record_crossings(
    book: IncidentBook,
    *,
    city: City,
    batch: ReadingBatch,
    episodes: list[Episode],
    params: dict[str, np.ndarray],
    types: dict[int, DeviceType],
    type_ids: np.ndarray,
    street_names: dict[str, tuple[str, str]],
    rng: np.random.Generator,
    end_us: int,
) -> None:
    """Open an incident for each fault episode whose readings leave the normal band."""
    for ep in episodes:
        device_id = ep.device_index + 1
        lo, hi = np.searchsorted(batch.device_id, [device_id, device_id + 1])
        ts, value = batch.ts_us[lo:hi], batch.value[lo:hi]
        window = (ts >= ep.start_us) & (ts < ep.end_us)
        t = types[int(type_ids[ep.device_index])]
        level = reading_levels(
            value,
            normal_min=params["normal_min"][t.type_id],
            normal_max=params["normal_max"][t.type_id],
            alarm_min=params["alarm_min"][t.type_id],
            alarm_max=params["alarm_max"][t.type_id],
        )
        crossing = np.flatnonzero(window & (level > 0))
        if len(crossing) == 0:
            continue
        opened = int(ts[crossing[0]])
        worst = int(level[crossing].max())
        after = np.flatnonzero((ts > ts[crossing[-1]]) & (level == 0))
        cleared_us = int(ts[after[0]]) if len(after) else None
        peak_index = crossing[np.argmax(np.abs(value[crossing] - t.baseline))]
        _add_incident(
            book,
            city=city,
            device_index=ep.device_index,
            t=t,
            rng=rng,
            street_names=street_names,
            opened_us=opened,
            cleared_us=cleared_us,
            end_us=end_us,
            rule=(
                "binary_alarm"
                if t.value_kind == "binary"
                else f"{'alarm' if worst == 2 else 'warning'}_{_side(ep.direction)}"
            ),
            severity=_severity(t.category, worst),
            trigger_value=float(value[peak_index]),
            threshold=_threshold(t, worst, ep.direction),
        )


def _record_routine_crossings(
    book: IncidentBook,
    *,
    city: City,
    batch: ReadingBatch,
    episodes: list[Episode],
    params: dict[str, np.ndarray],
    types: dict[int, DeviceType],
    street_names: dict[str, tuple[str, str]],
    rng: np.random.Generator,
    end_us: int,
) -> None:
    """Open an incident for each run of a long-history device's readings beyond its normal band
    outside its episodes: a near-limit cycle's peaks and troughs, a broken routine."""
    device_index = batch.device_id - 1  # ids are 1..N in frame order
    rows = np.flatnonzero(city.long_history[device_index])
    if len(rows) == 0:
        return
    type_ids = city.devices["type_id"].to_numpy().astype(np.int64)
    ts, value, device = batch.ts_us[rows], batch.value[rows], device_index[rows]
    t_type = type_ids[device]
    level = reading_levels(
        value,
        normal_min=params["normal_min"][t_type],
        normal_max=params["normal_max"][t_type],
        alarm_min=params["alarm_min"][t_type],
        alarm_max=params["alarm_max"][t_type],
    )
    offset = value - params["baseline"][t_type]
    side = np.where(level > 0, np.sign(offset), 0.0)
    for ep in episodes:  # an episode's readings are that episode's incident
        side[(device == ep.device_index) & (ts >= ep.start_us) & (ts < ep.end_us)] = 0.0
    for first, stop in _runs(device, side):
        t = types[int(t_type[first])]
        worst = int(level[first:stop].max())
        peak = first + int(np.argmax(np.abs(offset[first:stop])))
        direction = int(side[first])
        # cleared by the device's next reading (back in the band, or beyond the other side)
        cleared = int(ts[stop]) if stop < len(rows) and device[stop] == device[first] else None
        _add_incident(
            book,
            city=city,
            device_index=int(device[first]),
            t=t,
            rng=rng,
            street_names=street_names,
            opened_us=int(ts[first]),
            cleared_us=cleared,
            end_us=end_us,
            rule=f"{'alarm' if worst == 2 else 'warning'}_{_side(direction)}",
            severity=_severity(t.category, worst),
            trigger_value=float(value[peak]),
            threshold=_threshold(t, worst, direction),
        )


def _runs(device: np.ndarray, side: np.ndarray) -> list[tuple[int, int]]:
    """[first, stop) of each run of consecutive rows of one device on the same non-zero side."""
    if len(side) == 0:
        return []
    change = np.ones(len(side), dtype=bool)
    change[1:] = (device[1:] != device[:-1]) | (side[1:] != side[:-1])
    starts = np.flatnonzero(change)
    stops = np.append(starts[1:], len(side))
    keep = side[starts] != 0
    return list(zip(starts[keep].tolist(), stops[keep].tolist(), strict=True))


def _record_silences(
    book: IncidentBook,
    *,
    city: City,
    device_indexes: range,
    types: dict[int, DeviceType],
    type_ids: np.ndarray,
    street_names: dict[str, tuple[str, str]],
    rng: np.random.Generator,
    end_us: int,
) -> None:
    """Open an offline incident for each active device silent past its grace before the end."""
    for device_index in device_indexes:
        silent_from = city.silent_from_us[device_index]
        if silent_from >= end_us:
            continue
        if city.devices.at[device_index, "status"] != "active":
            continue
        t = types[int(type_ids[device_index])]
        grace = max(3 * t.interval_s, 600) * US
        if silent_from + grace >= end_us:
            continue
        _add_incident(
            book,
            city=city,
            device_index=device_index,
            t=t,
            rng=rng,
            street_names=street_names,
            opened_us=int(silent_from + grace),
            cleared_us=None,
            end_us=end_us,
            rule="offline",
            severity="major" if t.category in LIFE_SAFETY else "minor",
            trigger_value=None,
            threshold=None,
        )


def _side(direction: int) -> str:
    return "high" if direction > 0 else "low"


def _severity(category: str, level: int) -> str:
    if level == 2:
        return "critical" if category in LIFE_SAFETY else "major"
    return "minor"


def _threshold(t: DeviceType, level: int, direction: int) -> float | None:
    if t.value_kind == "binary":
        return t.alarm_max
    if direction > 0:
        return t.alarm_max if level == 2 else t.normal_max
    return t.alarm_min if level == 2 else t.normal_min


def _add_incident(
    book: IncidentBook,
    *,
    city: City,
    device_index: int,
    t: DeviceType,
    rng: np.random.Generator,
    street_names: dict[str, tuple[str, str]],
    opened_us: int,
    cleared_us: int | None,
    end_us: int,
    rule: str,
    severity: str,
    trigger_value: float | None,
    threshold: float | None,
) -> None:
    """Add an incident and its events unless the device already has a live one for this rule."""
    device = city.device_row(device_index)
    if (int(device["id"]), rule) in book.live:
        return
    incident_id = len(book.incidents) + 1
    opened = _from_us(opened_us)
    status, acknowledged_at, resolved_at = _incident_progress(
        rng, opened_us=opened_us, cleared_us=cleared_us, end_us=end_us
    )
    if status != "resolved":
        book.live.add((int(device["id"]), rule))
    title_zh, title_en = _incident_titles(
        t, rule=rule, street=street_names[device["street_code"]], trigger_value=trigger_value
    )
    book.incidents.append(
        {
            "id": incident_id,
            "device_id": int(device["id"]),
            "type_id": t.type_id,
            "category_code": t.category,
            "district_adcode": device["district_adcode"],
            "street_code": device["street_code"],
            "rule_code": rule,
            "severity": severity,
            "status": status,
            "title_zh": title_zh,
            "title_en": title_en,
            "trigger_value": trigger_value,
            "threshold": threshold,
            "opened_at": opened,
            "acknowledged_at": acknowledged_at,
            "resolved_at": resolved_at,
            "lon": float(device["lon"]),
            "lat": float(device["lat"]),
        }
    )
    book.events.extend(
        _incident_events(
            incident_id,
            opened=opened,
            acknowledged_at=acknowledged_at,
            resolved_at=resolved_at,
            duty=f"duty-{device['district_adcode']}",
        )
    )


def _incident_progress(
    rng: np.random.Generator, *, opened_us: int, cleared_us: int | None, end_us: int
) -> tuple[str, datetime | None, datetime | None]:
    """Status, acknowledged_at and resolved_at of an incident as people would have handled it."""
    # people acknowledge after minutes, and close the ticket a while after the values recover
    ack_us = opened_us + int(rng.uniform(2, 25) * 60 * US)
    resolved_us = cleared_us + int(rng.uniform(5, 45) * 60 * US) if cleared_us is not None else None
    acknowledged_at = _from_us(ack_us) if ack_us < end_us and rng.random() < 0.8 else None
    resolved_at = (
        _from_us(resolved_us) if resolved_us is not None and resolved_us < end_us else None
    )
    status = "resolved" if resolved_at else ("acknowledged" if acknowledged_at else "open")
    if resolved_at and acknowledged_at and acknowledged_at > resolved_at:
        acknowledged_at = None
    return status, acknowledged_at, resolved_at


def _incident_titles(
    t: DeviceType, *, rule: str, street: tuple[str, str], trigger_value: float | None
) -> tuple[str, str]:
    """Chinese and English incident titles naming the street, device type and shown value."""
    street_zh, street_en = street
    if rule == "offline":
        return f"{street_zh}{t.name_zh}离线", f"{t.name_en} offline in {street_en}"
    shown = f"{trigger_value:.{t.decimals}f}{t.unit}" if trigger_value is not None else ""
    # a level-1 crossing is 越限 (beyond the normal band); 预警 means a forecast breach
    kind_zh = "报警" if rule.startswith(("alarm", "binary")) else "越限"
    kind_en = "alarm" if kind_zh == "报警" else "warning"
    return (
        f"{street_zh}{t.name_zh}{kind_zh} {shown}".strip(),
        f"{t.name_en} {kind_en} in {street_en} {shown}".strip(),
    )


def _incident_events(
    incident_id: int,
    *,
    opened: datetime,
    acknowledged_at: datetime | None,
    resolved_at: datetime | None,
    duty: str,
) -> list[dict]:
    """The opened, and where they happened acknowledged and resolved, events of an incident."""
    events: list[dict] = [
        {
            "incident_id": incident_id,
            "at": opened,
            "kind": "opened",
            "actor": "system:rules",
            "from_status": None,
            "to_status": "open",
            "note": None,
        }
    ]
    if acknowledged_at:
        events.append(
            {
                "incident_id": incident_id,
                "at": acknowledged_at,
                "kind": "acknowledged",
                "actor": duty,
                "from_status": "open",
                "to_status": "acknowledged",
                "note": "已派单 / dispatched",
            }
        )
    if resolved_at:
        events.append(
            {
                "incident_id": incident_id,
                "at": resolved_at,
                "kind": "resolved",
                "actor": duty,
                "from_status": "acknowledged" if acknowledged_at else "open",
                "to_status": "resolved",
                "note": "数值恢复正常 / values back to normal",
            }
        )
    return events


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / US, tz=UTC)
