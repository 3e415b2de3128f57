"""The live synthetic city: the seeded devices report now, through MQTT or HTTP, at a chosen rate.

The core (`LiveCity.step`) is a pure function of a clock and a random seed: it says which readings
fall due up to an instant, so the tests drive it over simulated hours in milliseconds. `run` puts
it on the wall clock and hands batches to a publisher (`MqttPublisher`, `HttpPublisher`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import orjson

from data.catalog import DeviceType
from data.errors import OneScreenError
from data.live_city import LiveDevices
from data.writes import ReadingBatch
from simulator.city import (
    US,
    Episode,
    episode_values,
    fault_direction,
    round_to_type,
    type_arrays,
)
from simulator.fleet import Fleet
from simulator.shapes import (
    RAMP_MINUTES,
    device_profiles,
    normal_values,
    ramp_fraction,
    ramp_side,
    ramp_target,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from config import Settings
    from ingest.broker import MqttCredentials

log = logging.getLogger(__name__)

NEVER = np.iinfo(np.int64).max
NO_EPISODE, FAULT, STORM, RAMP, STUCK, SPIKE = 0, 1, 2, 3, 4, 5
# episodes in which a device reports on change, at the fast alarm period
FAST_KINDS = (FAULT, STORM, RAMP)
STORM_RAMPS = ("ponding", "river_level", "tide_level")
# Share of a storm district's flood sensors of each kind that the storm reaches.
STORM_REACH = {
    "rain_gauge": 0.9,
    "ponding": 0.7,
    "river_level": 0.6,
    "tide_level": 0.5,
    "gate_opening": 0.5,
    "pump_status": 0.15,
}
STORM_KINDS = ("rainstorm", "typhoon")
# the weather stations a storm moves in its districts, and which way: rain and fog with any
# storm; a typhoon's gale and falling pressure too
STORM_WEATHER = {
    "rainstorm": {"rainfall": 1, "visibility": -1},
    "typhoon": {"rainfall": 1, "visibility": -1, "wind_speed": 1, "pressure": -1},
}
STORM_WEATHER_REACH = 0.8
# a scenario's trouble in one street, in turn: which measurands go beyond alarm at once (a fault)
# and which move there over minutes (a ramp): a feeder's outage, a main bursting (pressure falls,
# leak noise and flow rise), a gas leak under the manholes, an old person's SOS
HAPPENINGS = {
    "outage": (("outage",), ()),
    "burst": (("leak_noise", "flow"), ("pipe_pressure",)),
    "gas_leak": (("kitchen_gas",), ("methane_manhole",)),
    "sos": (("sos_button",), ()),
}
# at most this many devices of a street take part (a feeder's or a main's reach), one for an SOS
HAPPENING_REACH = {"outage": 12, "burst": 8, "gas_leak": 6, "sos": 1}
# a happening's street is drawn among this many of the streets with the most devices it moves
HAPPENING_STREETS = 8
SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


# the real platform's average (8.4 million readings a day), and the least a city is played at:
# a small demo city at its own pace (~3.8/s) would show little happen
PLATFORM_RATE = 97.0


def city_rate(natural: float) -> float:
    """The rate a city of `natural` readings/s (its devices at their own intervals) is played
    at when none is asked for: its own, at least the platform's average (a 10M city ~1,900/s)."""
    return max(PLATFORM_RATE, natural)


@dataclass(frozen=True)
class LiveConfig:
    """How the live city behaves: its rate and how often things go wrong."""

    # readings/s; None: the city's own (`city_rate`)
    rate: float | None = PLATFORM_RATE
    seed: int = 0
    # quiet minutes between the end of one storm and the start of the next; None = no storms
    storm_every_s: float | None = 40 * 60
    storm_now: bool = False
    # the first storm comes this soon (a demo shows its events within minutes), then one every
    # storm_every_s; None: the first after storm_every_s too
    first_storm_s: float | None = 5 * 60
    storm_minutes: tuple[float, float] = (30.0, 60.0)
    # one HAPPENINGS trouble this often, the kinds in turn (the first after first_happening_s);
    # None = none
    happening_every_s: float | None = None
    first_happening_s: float = 2 * 60
    happening_minutes: tuple[float, float] = (20.0, 40.0)
    # a first ponding ramp this long after the start, so a 预警 shows within minutes; None = off
    first_ramp_s: float | None = 60.0
    first_ramp_minutes: tuple[float, float] = (20.0, 25.0)
    # standalone ramps to an alarm limit, per hour of each device that can ramp (gas, water, …)
    ramps_per_device_hour: float = 0.0015
    stuck_per_device_hour: float = 0.0003
    stuck_minutes: tuple[float, float] = (60.0, 360.0)
    spikes_per_device_hour: float = 0.0003
    skews_per_device_hour: float = 0.0001
    skew_minutes: tuple[float, float] = (30.0, 120.0)
    skew_lag_minutes: tuple[float, float] = (20.0, 60.0)
    storm_districts: tuple[int, int] = (3, 5)
    faults_per_device_hour: float = 0.005
    fault_minutes: tuple[float, float] = (3.0, 12.0)
    silences_per_device_hour: float = 0.003
    silence_minutes: tuple[float, float] = (10.0, 90.0)
    # a device in trouble reports on change and then this often, like real alarm-capable sensors
    alarm_period_s: float = 15.0
    # after a stall (broker down) a device sends at most this much of what it missed
    max_catch_up_s: float = 30.0


@dataclass(frozen=True)
class Storm:
    """A rainstorm or typhoon over some districts."""

    kind: str
    start_us: int
    end_us: int
    districts: tuple[str, ...]
    devices: int  # flood sensors it reaches
    # the devices it reaches (ramped levels included): a bench's ground truth
    device_ids: tuple[int, ...] = ()


def storm_intensity(
    ts_us: np.ndarray, *, start_us: int | np.ndarray, end_us: int | np.ndarray
) -> np.ndarray:
    """0 → 1 over the first 30% of a storm, 1 until 75%, back to 0 at its end (smoothed)."""
    span = np.maximum(np.asarray(end_us) - np.asarray(start_us), 1)
    f = (np.asarray(ts_us, dtype=np.float64) - start_us) / span
    x = np.clip(np.minimum(f / 0.3, (1.0 - f) / 0.25), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def plausible_bounds(device_types: list[DeviceType]) -> tuple[np.ndarray, np.ndarray]:
    """Per type id: the lowest and highest value the simulator may send (physically sensible)."""
    size = max(t.type_id for t in device_types) + 1
    low, high = np.full(size, -np.inf), np.full(size, np.inf)
    for t in device_types:
        width = max(t.normal_max - t.normal_min, 1e-6)
        top = max(t.normal_max, t.alarm_max if t.alarm_max is not None else t.normal_max)
        bottom = min(t.normal_min, t.alarm_min if t.alarm_min is not None else t.normal_min)
        if t.value_kind == "binary":
            low[t.type_id], high[t.type_id] = 0.0, 1.0
            continue
        high[t.type_id] = 100.0 if t.unit == "%" and top < 100 else top + width
        low[t.type_id] = 0.0 if t.normal_min >= 0 else bottom - width
    return low, high


class LiveCity:
    """The devices' schedules, faults, silences and storms; `step(now)` yields what is due."""

    def __init__(
        self,
        devices: LiveDevices,
        device_types: list[DeviceType],
        config: LiveConfig,
        *,
        start_us: int,
        offline_ids: np.ndarray | None = None,
    ) -> None:
        active = devices.status == "active"
        self.device_id = devices.device_id[active]
        self.type_id = devices.type_id[active].astype(np.int64)
        # districts and streets as indices into their sorted codes: 4 bytes a device, not the
        # 24-36 of a code (a 10M city's simulator held 3.9 GB)
        self.district_codes, district = np.unique(
            devices.district_adcode[active], return_inverse=True
        )
        self.district = district.astype(np.int32)
        self.street_codes, street = np.unique(devices.street_code[active], return_inverse=True)
        self.street = street.astype(np.int32)
        self.config = config
        self.types = {t.type_id: t for t in device_types}
        self.params = type_arrays(device_types)
        natural = float((1.0 / self.params["interval"][self.type_id]).sum())
        self.rate = config.rate if config.rate is not None else city_rate(natural)
        self.low, self.high = plausible_bounds(device_types)
        n = len(self.device_id)
        if n == 0:
            raise ValueError("the database has no active devices to simulate")
        measurand = {t.type_id: t.measurand for t in device_types}
        category = {t.type_id: t.category for t in device_types}
        self.measurand = np.array([measurand[int(t)] for t in self.type_id], dtype=object)
        self.profiles = device_profiles(
            self.device_id, self.type_id, device_types, seed=config.seed
        )
        self.can_ramp = (
            np.isin(self.measurand, list(RAMP_MINUTES))
            & (self.params["binary"][self.type_id] == 0)
            & (self.profiles.near_side == 0)
        )
        self.is_flood = np.array([category[int(t)] == "flood" for t in self.type_id])
        self.is_weather = np.array([category[int(t)] == "weather" for t in self.type_id])
        self.rng = np.random.default_rng([config.seed, 20260701])
        self.offline = np.zeros(n, dtype=bool)
        self.silent_until = np.zeros(n, dtype=np.int64)
        self.ep_kind = np.zeros(n, dtype=np.int8)
        self.ep_start = np.zeros(n, dtype=np.int64)
        self.ep_end = np.zeros(n, dtype=np.int64)
        self.ep_direction = np.ones(n, dtype=np.int8)
        self.ep_to_alarm = np.zeros(n, dtype=bool)
        # a ramp's rise, hold and shape, and the value it heads for (or a stuck sensor's value)
        self.ep_rise = np.ones(n, dtype=np.int64)
        self.ep_hold = np.zeros(n, dtype=np.int64)
        self.ep_power = np.ones(n)
        self.ep_value = np.zeros(n)
        # a clock-skewed device stamps its readings this far behind, until then
        self.lag_us = np.zeros(n, dtype=np.int64)
        self.lag_until = np.zeros(n, dtype=np.int64)
        self.first_ramp_us = (
            NEVER if config.first_ramp_s is None else start_us + int(config.first_ramp_s * US)
        )
        self.last_ts = np.full(n, start_us - 1, dtype=np.int64)
        self.now_us = start_us
        self.storm: Storm | None = None
        first_storm_s = 0 if config.storm_now else config.first_storm_s or config.storm_every_s
        self.next_storm_us = (
            NEVER
            if config.storm_every_s is None
            else start_us + int(min(first_storm_s or 0, config.storm_every_s) * US)
        )
        self.next_happening_us = (
            NEVER
            if config.happening_every_s is None
            else start_us + int(config.first_happening_s * US)
        )
        self.happenings = 0
        self.set_offline(offline_ids if offline_ids is not None else np.empty(0, np.int64))
        # a random phase per device spreads the first round evenly over one period
        self.next_due = start_us + (self.rng.random(n) * self.period_us).astype(np.int64) + 1
        self.events: list[str] = []

    # --- schedule ---------------------------------------------------------------------------

    def set_offline(self, ids: np.ndarray) -> None:
        """Devices with a live 'offline' incident stay silent; the others share the rate."""
        self.offline = np.isin(self.device_id, ids)
        reporting = ~self.offline
        interval = self.params["interval"][self.type_id]
        natural = float((1.0 / interval[reporting]).sum()) if reporting.any() else 1.0
        # every device's own interval shrinks by the same factor, so the mix stays the real one
        self.speedup = self.rate / natural
        self.period_us = np.maximum((interval / self.speedup * US).astype(np.int64), 1_000)

    def reporting_rate(self) -> float:
        """Readings per second the current schedule produces (silences aside)."""
        return float((US / self.period_us[~self.offline]).sum())

    def step(self, now_us: int) -> ReadingBatch:
        """Every reading due in (previous step, now_us], ordered by time."""
        if now_us <= self.now_us:
            return _empty_batch()
        self._happenings(self.now_us, now_us)
        self.now_us = now_us
        due = np.flatnonzero(self.next_due <= now_us)
        if len(due) == 0:
            return _empty_batch()
        quiet = self.offline[due] | (self.silent_until[due] > now_us)
        if quiet.any():
            skipped = due[quiet]
            # a silent device misses its turns: its next one is after now
            p = self.period_us[skipped]
            self.next_due[skipped] += ((now_us - self.next_due[skipped]) // p + 1) * p
            due = due[~quiet]
        floor = now_us - int(self.config.max_catch_up_s * US)
        self.next_due[due] = np.maximum(self.next_due[due], floor)
        in_episode = np.isin(self.ep_kind[due], FAST_KINDS) & (self.ep_start[due] <= now_us)
        period = np.where(
            in_episode,
            np.minimum(self.period_us[due], int(self.config.alarm_period_s * US)),
            self.period_us[due],
        )
        counts = (now_us - self.next_due[due]) // period + 1
        total = int(counts.sum())
        owner = np.repeat(np.arange(len(due)), counts)
        k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        ts = self.next_due[due][owner] + k * period[owner]
        self.last_ts[due] = self.next_due[due] + (counts - 1) * period
        self.next_due[due] += counts * period
        device = due[owner]
        value = self._values(device, ts)
        quality = np.zeros(total, dtype=np.int16)
        flagged = self.rng.random(total)
        quality[flagged < 0.002] = 1
        quality[flagged < 0.0004] = 2
        # a skewed clock stamps the reading late; the schedule keeps the true time
        lagging = self.lag_until[device] > ts
        ts = np.where(lagging, ts - self.lag_us[device], ts)
        order = np.argsort(ts, kind="stable")
        return ReadingBatch(
            device_id=self.device_id[device][order],
            ts_us=ts[order],
            value=value[order],
            quality=quality[order],
        )

    def _values(self, device: np.ndarray, ts: np.ndarray) -> np.ndarray:
        t_type = self.type_id[device]
        value = normal_values(
            self.params,
            self.profiles,
            device,
            t_type,
            ts,
            self.rng.standard_normal(len(ts)),
            seed=self.config.seed,
        )
        kind = self.ep_kind[device]
        within = (ts >= self.ep_start[device]) & (ts < self.ep_end[device])
        value = self._shaped(device, ts, value, kind, within)
        hit = np.flatnonzero(np.isin(kind, (FAULT, STORM)) & within)
        if len(hit):
            d = device[hit]
            target = self._episode_targets(d)
            healthy = value[hit]
            storm = self.ep_kind[d] == STORM
            if storm.any():
                s = storm_intensity(
                    ts[hit][storm], start_us=self.ep_start[d][storm], end_us=self.ep_end[d][storm]
                )
                binary = self.params["binary"][t_type[hit][storm]] > 0
                blended = healthy[storm] + s * (target[storm] - healthy[storm])
                target[storm] = np.where(
                    binary, np.where(s >= 0.5, target[storm], healthy[storm]), blended
                )
            value[hit] = target
        value = np.clip(value, self.low[t_type], self.high[t_type])
        return round_to_type(value, self.params, t_type)

    def _shaped(
        self, device: np.ndarray, ts: np.ndarray, value: np.ndarray, kind: np.ndarray, within
    ) -> np.ndarray:
        """Ramps blended in, stuck sensors' repeated value, and a spike's one wild reading."""
        ramp = np.flatnonzero((kind == RAMP) & within)
        if len(ramp):
            d = device[ramp]
            f = ramp_fraction(
                ts[ramp],
                start_us=self.ep_start[d],
                rise_us=self.ep_rise[d],
                hold_us=self.ep_hold[d],
                fall_us=self.ep_rise[d] // 2,
                power=self.ep_power[d],
            )
            target = self.ep_value[d] + self.params["noise"][self.type_id[d]] * (
                self.rng.standard_normal(len(ramp))
            )
            value[ramp] = (1.0 - f) * value[ramp] + f * target
        stuck = np.flatnonzero((kind == STUCK) & within)
        value[stuck] = self.ep_value[device[stuck]]
        spike = np.flatnonzero((kind == SPIKE) & within)
        if len(spike):
            # only a device's first reading is wild; the episode is then over
            devices, first = np.unique(device[spike], return_index=True)
            rows = spike[first]
            t = self.type_id[devices]
            width = self.params["normal_max"][t] - self.params["normal_min"][t]
            value[rows] += (
                self.ep_direction[devices] * (0.9 + 0.6 * self.rng.random(len(rows))) * width
            )
            self.ep_kind[devices] = NO_EPISODE
        return value

    def _episode_targets(self, d: np.ndarray) -> np.ndarray:
        """Values beyond the warning or alarm limit for devices `d` (city.episode_values)."""
        out = np.empty(len(d))
        key = self.type_id[d] * 4 + (self.ep_direction[d] > 0) * 2 + self.ep_to_alarm[d]
        for group in np.unique(key):
            rows = np.flatnonzero(key == group)
            type_id, rest = divmod(int(group), 4)
            ep = Episode(
                device_index=-1,
                start_us=0,
                end_us=0,
                direction=1 if rest >= 2 else -1,
                to_alarm=bool(rest % 2),
                cause="live",
            )
            out[rows] = episode_values(ep, type_id, self.params, len(rows), self.rng)
        return out

    # --- what happens in the city ------------------------------------------------------------

    def _happenings(self, since_us: int, now_us: int) -> None:
        hours = (now_us - since_us) / US / 3600
        self._end_episodes(now_us)
        if self.storm is not None and now_us >= self.storm.end_us:
            self.events.append(f"{self.storm.kind} over {', '.join(self.storm.districts)} ended")
            self.storm = None
            if self.config.storm_every_s is not None:
                self.next_storm_us = now_us + int(self.config.storm_every_s * US)
        if self.storm is None and now_us >= self.next_storm_us:
            self.start_storm(now_us)
        if now_us >= self.next_happening_us:
            kinds = list(HAPPENINGS)
            self.start_happening(kinds[self.happenings % len(kinds)], now_us)
            self.happenings += 1
            self.next_happening_us = now_us + int((self.config.happening_every_s or 0) * US)
        n = len(self.device_id)
        cfg = self.config
        for _ in range(self.rng.poisson(cfg.faults_per_device_hour * n * hours)):
            self._start_fault(now_us)
        if now_us >= self.first_ramp_us:
            self.first_ramp_us = NEVER
            self._first_ramp(now_us)
        ramping = int(self.can_ramp.sum())
        for _ in range(self.rng.poisson(cfg.ramps_per_device_hour * ramping * hours)):
            self._start_ramp(int(self.rng.choice(np.flatnonzero(self.can_ramp))), now_us)
        self._sensor_troubles(now_us, n * hours)
        for _ in range(self.rng.poisson(cfg.silences_per_device_hour * n * hours)):
            i = int(self.rng.integers(n))
            if self.ep_kind[i] == NO_EPISODE:
                minutes = self.rng.uniform(*cfg.silence_minutes)
                self.silent_until[i] = now_us + int(minutes * 60 * US)

    def _free(self, i: int, now_us: int) -> bool:
        return (
            self.ep_kind[i] == NO_EPISODE and not self.offline[i] and self.silent_until[i] <= now_us
        )

    def _first_ramp(self, now_us: int) -> None:
        """An underpass starts flooding soon after the start: the demo's first 预警."""
        ponding = np.flatnonzero(self.can_ramp & (self.measurand == "ponding"))
        pool = ponding if len(ponding) else np.flatnonzero(self.can_ramp)
        free = [int(i) for i in pool if self._free(int(i), now_us)]
        if free:
            i = int(self.rng.choice(free))
            self._start_ramp(i, now_us, minutes=self.rng.uniform(*self.config.first_ramp_minutes))

    def _start_ramp(
        self, i: int, now_us: int, *, minutes: float | None = None, to_alarm: bool = True
    ) -> None:
        """Device i moves gradually from its value to beyond its alarm limit (or only into the
        warning band), holds a few minutes, and recovers."""
        if not self._free(i, now_us):
            return
        t = self.types[int(self.type_id[i])]
        low, high = RAMP_MINUTES[t.measurand]
        rise = int((minutes if minutes is not None else self.rng.uniform(low, high)) * 60 * US)
        hold = int(self.rng.uniform(3, 8) * 60 * US)
        side = ramp_side(t, self.rng.random())
        target = ramp_target(t, side, self.rng.random())
        if not to_alarm:
            edge = t.normal_max if side > 0 else t.normal_min
            target = edge + self.rng.uniform(0.3, 0.7) * (target - edge)
        self.ep_kind[i], self.ep_start[i] = RAMP, now_us
        self.ep_end[i] = now_us + rise + hold + rise // 2
        self.ep_rise[i], self.ep_hold[i] = rise, hold
        self.ep_power[i], self.ep_value[i] = self.rng.uniform(1.0, 1.4), target
        self.ep_direction[i], self.ep_to_alarm[i] = side, to_alarm
        self._report_at(np.array([i]), np.array([now_us]))
        self.events.append(
            f"{t.measurand} ramp on device {int(self.device_id[i])} over {rise / US / 60:.0f} min"
        )

    def _sensor_troubles(self, now_us: int, device_hours: float) -> None:
        """Sensors that lie: stuck values, a single wild reading, a clock running late."""
        cfg, n = self.config, len(self.device_id)
        analog = self.params["binary"][self.type_id] == 0
        for kind, rate in ((STUCK, cfg.stuck_per_device_hour), (SPIKE, cfg.spikes_per_device_hour)):
            for _ in range(self.rng.poisson(rate * device_hours)):
                i = int(self.rng.integers(n))
                if not (analog[i] and self._free(i, now_us)):
                    continue
                minutes = self.rng.uniform(*cfg.stuck_minutes) if kind == STUCK else 24 * 60.0
                self.ep_kind[i], self.ep_start[i] = kind, now_us
                self.ep_end[i] = now_us + int(minutes * 60 * US)
                self.ep_direction[i] = 1 if self.rng.random() < 0.5 else -1
                t = self.type_id[i : i + 1]
                self.ep_value[i] = round_to_type(
                    normal_values(
                        self.params,
                        self.profiles,
                        np.array([i]),
                        t,
                        np.array([now_us]),
                        self.rng.standard_normal(1),
                        seed=cfg.seed,
                    ),
                    self.params,
                    t,
                )[0]
        for _ in range(self.rng.poisson(cfg.skews_per_device_hour * device_hours)):
            i = int(self.rng.integers(n))
            if self.lag_until[i] <= now_us:
                lag = self.rng.uniform(*cfg.skew_lag_minutes) * 60 * US
                # an odd microsecond keeps skewed stamps off the device's earlier ones
                self.lag_us[i] = int(lag) + 137
                self.lag_until[i] = now_us + int(self.rng.uniform(*cfg.skew_minutes) * 60 * US)

    def _end_episodes(self, now_us: int) -> None:
        over = np.flatnonzero((self.ep_kind != NO_EPISODE) & (self.ep_end <= now_us))
        if len(over):
            # the recovery is reported at once, as the alarm was
            self._report_at(over, self.ep_end[over])
            self.ep_kind[over] = NO_EPISODE

    def _report_at(self, devices: np.ndarray, at_us: np.ndarray) -> None:
        soon = np.maximum(at_us, self.last_ts[devices] + 1)
        self.next_due[devices] = np.minimum(self.next_due[devices], soon)

    def _start_fault(self, now_us: int) -> None:
        i = int(self.rng.integers(len(self.device_id)))
        if self.ep_kind[i] != NO_EPISODE or self.offline[i] or self.silent_until[i] > now_us:
            return
        t = self.types[int(self.type_id[i])]
        minutes = self.rng.uniform(*self.config.fault_minutes)
        self.ep_kind[i] = FAULT
        self.ep_start[i] = now_us
        self.ep_end[i] = now_us + int(minutes * 60 * US)
        self.ep_direction[i] = fault_direction(t, self.rng)
        self.ep_to_alarm[i] = t.value_kind == "binary" or self.rng.random() < 0.6
        self._report_at(np.array([i]), np.array([now_us]))

    def start_storm(self, now_us: int) -> Storm:
        """A rainstorm or typhoon starts now over 3+ districts; flood sensors rise together."""
        cfg = self.config
        minutes = self.rng.uniform(*cfg.storm_minutes)
        end_us = now_us + int(minutes * 60 * US)
        free = (
            self.is_flood
            & ~self.offline
            & (self.silent_until <= now_us)
            & (self.ep_kind == NO_EPISODE)
        )
        analog = self.params["binary"][self.type_id] == 0
        districts, counts = np.unique(self.district[free & analog], return_counts=True)
        # districts with a few analog flood sensors, so every one of them really floods
        candidates = districts[counts >= 2] if (counts >= 2).sum() >= 3 else districts
        want = min(
            int(self.rng.integers(cfg.storm_districts[0], cfg.storm_districts[1] + 1)),
            len(candidates),
        )
        chosen = self.rng.choice(candidates, size=want, replace=False) if want else candidates[:0]
        hit_total, reached = 0, []
        for district in sorted(chosen):
            members = np.flatnonzero(free & (self.district == district))
            reach = np.array([STORM_REACH.get(m, 0.5) for m in self.measurand[members]])
            hit = members[self.rng.random(len(members)) < reach]
            to_alarm = self.rng.random(len(hit)) < 0.6
            # at least two analog sensors per district go past their alarm limit
            sure = members[analog[members]][:2]
            hit = np.concatenate([hit, sure])
            to_alarm = np.concatenate([to_alarm, np.ones(len(sure), dtype=bool)])
            hit, first = np.unique(hit, return_index=True)
            to_alarm = to_alarm[first] | np.isin(hit, sure)
            # water levels rise gradually over tens of minutes, not in a jump
            levels = np.isin(self.measurand[hit], STORM_RAMPS) & self.can_ramp[hit]
            for i, alarm in zip(hit[levels], to_alarm[levels], strict=True):
                self._start_ramp(int(i), now_us, to_alarm=bool(alarm))
            reached.append(self.device_id[hit])
            hit, to_alarm = hit[~levels], to_alarm[~levels]
            self.ep_kind[hit] = STORM
            self.ep_start[hit] = now_us
            self.ep_end[hit] = end_us
            self.ep_direction[hit] = 1  # flood alarms are all high-side (level, rain, gates)
            self.ep_to_alarm[hit] = to_alarm
            self._report_at(hit, np.full(len(hit), now_us))
            hit_total += len(hit)
        kind = str(self.rng.choice(STORM_KINDS))
        stations = self._storm_weather(kind, chosen, now_us, end_us)
        reached.append(self.device_id[stations])
        self.storm = Storm(
            kind=kind,
            start_us=now_us,
            end_us=end_us,
            districts=tuple(str(self.district_codes[d]) for d in sorted(chosen)),
            devices=hit_total,
            device_ids=tuple(int(i) for i in np.concatenate(reached or [np.empty(0, np.int64)])),
        )
        self.events.append(
            f"{kind} over {', '.join(self.storm.districts)} for {minutes:.0f} min "
            f"({hit_total} flood sensors, {len(stations)} weather stations)"
        )
        return self.storm

    def _storm_weather(
        self, kind: str, districts: np.ndarray, now_us: int, end_us: int
    ) -> np.ndarray:
        """The storm's districts' weather stations join it (STORM_WEATHER): some to their
        warning line, some past their alarm limit; their indices."""
        moves = STORM_WEATHER[kind]
        free = (
            self.is_weather
            & np.isin(self.district, districts)
            & np.isin(self.measurand, list(moves))
            & ~self.offline
            & (self.silent_until <= now_us)
            & (self.ep_kind == NO_EPISODE)
        )
        members = np.flatnonzero(free)
        hit = members[self.rng.random(len(members)) < STORM_WEATHER_REACH]
        self.ep_kind[hit] = STORM
        self.ep_start[hit] = now_us
        self.ep_end[hit] = end_us
        self.ep_direction[hit] = [moves[str(m)] for m in self.measurand[hit]]
        self.ep_to_alarm[hit] = self.rng.random(len(hit)) < 0.5
        self._report_at(hit, np.full(len(hit), now_us))
        return hit

    def start_happening(self, kind: str, now_us: int) -> np.ndarray:
        """A HAPPENINGS trouble starts now in one street (one of the best equipped for it); the
        indices of the devices it moves."""
        faults, ramps = HAPPENINGS[kind]
        free = (
            np.isin(self.measurand, faults + ramps)
            & (self.ep_kind == NO_EPISODE)
            & ~self.offline
            & (self.silent_until <= now_us)
        )
        if not free.any():
            return np.empty(0, np.int64)
        streets, counts = np.unique(self.street[free], return_counts=True)
        # one of the streets best equipped for it: a feeder's or a main's trouble shows on
        # several of its devices (and can reach a warning level), in a different street each time
        best = np.argsort(counts, kind="stable")[-HAPPENING_STREETS:]
        street = streets[self.rng.choice(best)]
        members = self.rng.permutation(np.flatnonzero(free & (self.street == street)))
        members = members[: HAPPENING_REACH[kind]]
        minutes = self.rng.uniform(*self.config.happening_minutes)
        for i in members:
            if self.measurand[i] in ramps and self.can_ramp[i]:
                self._start_ramp(int(i), now_us, minutes=self.rng.uniform(4.0, 8.0))
                continue
            t = self.types[int(self.type_id[i])]
            self.ep_kind[i], self.ep_start[i] = FAULT, now_us
            self.ep_end[i] = now_us + int(minutes * 60 * US)
            self.ep_direction[i] = ramp_side(t, self.rng.random())
            self.ep_to_alarm[i] = True
            self._report_at(np.array([i]), np.array([now_us]))
        self.events.append(
            f"{kind} in street {self.street_codes[street]}: {len(members)} devices for up to"
            f" {minutes:.0f} min"
        )
        return members

    def drain_events(self) -> list[str]:
        """Storm starts and ends since the last call, for the log."""
        events, self.events = self.events, []
        return events


def _empty_batch() -> ReadingBatch:
    return ReadingBatch(
        device_id=np.empty(0, np.int64),
        ts_us=np.empty(0, np.int64),
        value=np.empty(0),
        quality=np.empty(0, np.int16),
    )


# --- wire format -----------------------------------------------------------------------------


def encode_readings(batch: ReadingBatch) -> bytes:
    """The batch as the ingest JSON body: {"readings": [{device_id, ts, value, quality}, …]}."""
    stamps = np.datetime_as_string(batch.ts_us.astype("datetime64[us]"), unit="us")
    rows = [
        {"device_id": d, "ts": f"{t}+00:00", "value": v, "quality": q}
        for d, t, v, q in zip(
            batch.device_id.tolist(),
            stamps.tolist(),
            batch.value.tolist(),
            batch.quality.tolist(),
            strict=True,
        )
    ]
    return orjson.dumps({"readings": rows})


def split_batch(batch: ReadingBatch, *, max_rows: int) -> list[ReadingBatch]:
    """Consecutive slices of at most max_rows readings."""
    return [
        ReadingBatch(
            device_id=batch.device_id[i : i + max_rows],
            ts_us=batch.ts_us[i : i + max_rows],
            value=batch.value[i : i + max_rows],
            quality=batch.quality[i : i + max_rows],
        )
        for i in range(0, len(batch), max_rows)
    ]


def telemetry_topic(prefix: str, source: str) -> str:
    """Where a source publishes: <prefix>/<source>/telemetry."""
    return f"{prefix}/{source}/telemetry"


# --- publishers ------------------------------------------------------------------------------


class Publisher(Protocol):
    """Sends encoded batches; blocks when the far side falls behind, never drops silently."""

    def send(self, payload: bytes, *, rows: int) -> None:
        """Send one encoded batch of `rows` readings."""
        ...

    def delivered(self) -> int:
        """Readings the far side has acknowledged so far."""
        ...

    def close(self, *, timeout_s: float) -> int:
        """Wait up to `timeout_s` for what is in flight, then stop; returns readings unconfirmed."""
        ...


class MqttPublisher:
    """QoS 1 publisher with a bounded window of unacknowledged messages; reconnects by itself."""

    def __init__(
        self,
        url: str,
        *,
        topic: str,
        stop: threading.Event,
        window: int = 64,
        client_id: str | None = None,
        credentials: MqttCredentials | None = None,
    ) -> None:
        import os

        import paho.mqtt.client as mqtt

        from ingest.broker import parse_broker_url

        host, port = parse_broker_url(url)
        self.url, self.topic, self.stop_event, self.window = url, topic, stop, window
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: dict[int, int] = {}  # mid -> readings in it
        self._early: set[int] = set()  # PUBACKs that beat publish() back to us
        self._delivered = 0
        self._closing = False
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"onescreen-simulator-{os.getpid()}",
            protocol=mqtt.MQTTv311,
        )
        if credentials is not None:
            # the broker takes the login as the client id
            self.client.username_pw_set(credentials.username, credentials.password)
        self.client.max_inflight_messages_set(window)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s refused the connection: %s", self.url, reason_code)
            return
        log.info("connected to %s, publishing to %s", self.url, self.topic)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not (self.stop_event.is_set() or self._closing):
            log.warning("lost the broker %s (%s); reconnecting", self.url, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._changed:
            rows = self._pending.pop(mid, None)
            if rows is None:
                self._early.add(mid)
            else:
                self._delivered += rows
            self._changed.notify_all()

    def send(self, payload: bytes, *, rows: int) -> None:
        """Publish one message; waits while `window` messages are unacknowledged."""
        warned = time.monotonic()
        with self._changed:
            while len(self._pending) >= self.window:
                if self.stop_event.is_set():
                    # stopping while the broker is away: this message is simply not sent
                    return
                self._changed.wait(0.5)
                if time.monotonic() - warned > 10:
                    warned = time.monotonic()
                    log.warning(
                        "broker %s has not acknowledged %d messages; waiting",
                        self.url,
                        len(self._pending),
                    )
        # publish() outside our lock: paho calls on_publish while holding its own lock
        info = self.client.publish(self.topic, payload, qos=1)
        if info.rc not in (0, 4):  # 4 = not connected: paho keeps it and sends on reconnect
            raise RuntimeError(f"MQTT publish failed: {info.rc}")
        with self._changed:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._delivered += rows
            else:
                self._pending[info.mid] = rows

    def delivered(self) -> int:
        """Readings the broker has acknowledged."""
        with self._lock:
            return self._delivered

    def close(self, *, timeout_s: float) -> int:
        """Wait for outstanding acknowledgements, disconnect; returns readings left unconfirmed."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._pending and time.monotonic() < deadline:
                self._changed.wait(0.2)
            lost = sum(self._pending.values())
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
        return lost


class HttpPublisher:
    """POSTs batches with a bearer token; retries 5xx, 429 and connection errors with backoff."""

    def __init__(self, url: str, *, token: str, stop: threading.Event) -> None:
        import requests

        self.url, self.stop_event = url, stop
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        self._delivered = 0
        self.rejected = 0
        self.duplicate = 0

    def send(self, payload: bytes, *, rows: int) -> None:
        """POST one batch until the server answers; a 4xx answer is logged loudly, not retried."""
        import requests

        delay = 0.5
        while True:
            try:
                response = self.session.post(self.url, data=payload, timeout=30)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    self._account(response, rows)
                    return
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code in (401, 403):
                        raise PermissionError(
                            f"{self.url} refused the token ({response.status_code}): "
                            f"{response.text[:300]}"
                        )
                    self.rejected += rows
                    log.error(
                        "%s rejected a batch of %d readings (%d): %s",
                        self.url,
                        rows,
                        response.status_code,
                        response.text[:500],
                    )
                    return
                problem = f"HTTP {response.status_code}"
            if self.stop_event.is_set():
                raise ConnectionError(f"gave up sending {rows} readings to {self.url}: {problem}")
            log.warning("%s: %s; retrying in %.1f s", self.url, problem, delay)
            self.stop_event.wait(delay)
            delay = min(delay * 2, 10.0)

    def _account(self, response, rows: int) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        stored = int(body.get("stored", rows))
        duplicate = int(body.get("duplicate", 0))
        rejected = int(body.get("rejected", 0))
        self._delivered += stored + duplicate
        self.duplicate += duplicate
        if rejected:
            self.rejected += rejected
            details = body.get("errors") or body.get("rejections") or ""
            log.warning(
                "%s rejected %d of %d readings: %s", self.url, rejected, rows, str(details)[:500]
            )

    def delivered(self) -> int:
        """Readings the server stored or already had."""
        return self._delivered

    def close(self, *, timeout_s: float) -> int:
        """Nothing is ever in flight between calls."""
        self.session.close()
        return 0


# --- the wall-clock loop ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    """What one simulate run sent."""

    generated: int
    delivered: int
    messages: int
    seconds: float
    unconfirmed: int


def tick_seconds(rate: float) -> float:
    """How often the loop wakes: a few hundred readings a message, at least 10 messages a second
    at high rates, at most one second of delay at low ones."""
    return min(1.0, max(0.1, 500.0 / rate))


def run(
    city: LiveCity,
    publisher: Publisher,
    *,
    stop: threading.Event,
    duration_s: float | None = None,
    max_rows: int = 2000,
    refresh_offline: Callable[[], np.ndarray] | None = None,
    refresh_every_s: float = 60.0,
    log_every_s: float = 10.0,
    clock: Callable[[], float] = time.time,
    fleet: Fleet | None = None,
) -> RunReport:
    """Stream the city (and its fleet's positions) until `stop` is set or `duration_s` has
    passed."""
    tick = tick_seconds(city.rate)
    started = time.monotonic()
    last_log = last_refresh = started
    generated = messages = 0
    logged_generated, logged_delivered = 0, 0
    while not stop.is_set():
        loop_start = time.monotonic()
        if duration_s is not None and loop_start - started >= duration_s:
            break
        batch = city.step(int(clock() * US))
        for chunk in split_batch(batch, max_rows=max_rows):
            publisher.send(encode_readings(chunk), rows=len(chunk))
            messages += 1
        generated += len(batch)
        if fleet is not None:
            sent, sent_messages = send_fixes(fleet.step(clock()), publisher, max_rows=max_rows)
            generated += sent
            messages += sent_messages
        for event in city.drain_events():
            log.info("%s", event)
        now = time.monotonic()
        if refresh_offline is not None and now - last_refresh >= refresh_every_s:
            last_refresh = now
            try:
                city.set_offline(refresh_offline())
            except Exception as exc:  # the database may be restarting: keep the last set
                log.warning("could not re-read offline devices: %s", exc)
        if now - last_log >= log_every_s:
            delivered = publisher.delivered()
            span = now - last_log
            log.info(
                "sent %d readings in %.1f s (%.0f/s, target %.0f/s), %d confirmed (%.0f/s)",
                generated - logged_generated,
                span,
                (generated - logged_generated) / span,
                city.rate,
                delivered - logged_delivered,
                (delivered - logged_delivered) / span,
            )
            last_log, logged_generated, logged_delivered = now, generated, delivered
        stop.wait(max(0.0, tick - (time.monotonic() - loop_start)))
    unconfirmed = publisher.close(timeout_s=15.0)
    if unconfirmed:
        log.error("%d readings were not confirmed by the receiver before exit", unconfirmed)
    return RunReport(
        generated=generated,
        delivered=publisher.delivered(),
        messages=messages,
        seconds=time.monotonic() - started,
        unconfirmed=unconfirmed,
    )


def send_fixes(fixes: list[dict], publisher: Publisher, *, max_rows: int) -> tuple[int, int]:
    """Publish the fleet's position rows; (rows, messages) sent."""
    messages = 0
    for start in range(0, len(fixes), max_rows):
        chunk = fixes[start : start + max_rows]
        publisher.send(orjson.dumps({"readings": chunk}), rows=len(chunk))
        messages += 1
    return len(fixes), messages


def local_token(engine: Engine, settings: Settings, source: str) -> str:
    """The simulator's own token, city-wide (it sends for any device, as asked here), kept in
    `<data dir>/simulator-token` (0600) and reused while it is live."""
    from data.engine import embedded_data_dir
    from data.ingest_store import ensure_local_token

    return ensure_local_token(
        engine,
        state_file=embedded_data_dir(settings) / "simulator-token",
        source=source,
        label="live simulator",
    )


def _mqtt_login(
    engine: Engine, settings: Settings, *, token: str | None, source: str
) -> MqttCredentials:
    """The MQTT login to publish with: the one in the settings (serve's simulator), or the
    given token's (its password is the token), or a new token's."""
    from data.ingest_store import find_principal
    from ingest.broker import MqttCredentials

    if settings.mqtt_username and settings.mqtt_password:
        return MqttCredentials(settings.mqtt_username, settings.mqtt_password.get_secret_value())
    token = token or local_token(engine, settings, source)
    principal = find_principal(engine, token=token)
    if principal is None:
        raise OneScreenError("the ingest token is unknown or revoked")
    if principal.mqtt_username is None:
        raise OneScreenError(
            "this token was made before MQTT logins existed (revision 0007): create a new one"
            " with `tokens create`"
        )
    return MqttCredentials(principal.mqtt_username, token)


def start_simulation(
    engine: Engine,
    *,
    settings: Settings,
    stop: threading.Event,
    rate: float | None,
    transport: str,
    broker: str | None = None,
    http_url: str | None = None,
    token: str | None = None,
    source: str = "simulator",
    duration_s: float | None = None,
    seed: int = 0,
    storm_every_minutes: float | None = 20,
    storm_now: bool = False,
    happening_every_minutes: float | None = 10,
    fleet: bool = True,
    duty_officer: bool = False,
) -> RunReport:
    """Load the seeded devices, connect the transport, and stream until stopped; with `fleet`
    the units' positions too, and with `duty_officer` the demo's scripted dispatcher."""
    from data import catalog
    from data.live_city import load_live_devices, offline_device_ids

    if rate is not None and not rate > 0:
        raise OneScreenError(f"--rate must be a positive number of readings/s, not {rate}")
    if not re.match(SOURCE_PATTERN, source):
        raise OneScreenError(f"--source must match {SOURCE_PATTERN}, not {source!r}")
    devices = load_live_devices(engine)
    if len(devices) == 0:
        raise OneScreenError("the database has no devices: run `python cli.py seed` first")
    config = LiveConfig(
        rate=rate,
        seed=seed,
        storm_every_s=storm_every_minutes * 60 if storm_every_minutes else None,
        storm_now=storm_now,
        happening_every_s=happening_every_minutes * 60 if happening_every_minutes else None,
    )
    city = LiveCity(
        devices,
        catalog.load_device_types(),
        config,
        start_us=int(time.time() * US),
        offline_ids=offline_device_ids(engine),
    )
    del devices  # the city keeps what it plays; the codes as read cost ~1 GB at 10M
    publisher: Publisher
    token = token or (settings.ingest_token.get_secret_value() if settings.ingest_token else None)
    if transport == "http":
        url = http_url or f"http://{settings.host}:{settings.port}/api/v1/readings"
        publisher = HttpPublisher(
            url, token=token or local_token(engine, settings, source), stop=stop
        )
        target = url
    else:
        from ingest.broker import broker_url

        credentials = _mqtt_login(engine, settings, token=token, source=source)
        # the logins are ours to keep in step only on the broker the settings name
        url = broker or broker_url(settings, engine=None if settings.mqtt_username else engine)
        topic = telemetry_topic(settings.mqtt_topic_prefix, credentials.username)
        publisher = MqttPublisher(url, topic=topic, stop=stop, credentials=credentials)
        target = f"{url} {topic}"
    log.info(
        "simulating %d devices (%d silent: offline incident) at %.0f readings/s "
        "(%.1f× their real intervals) → %s",
        int((city.device_id > 0).sum()),
        int(city.offline.sum()),
        city.rate,
        city.speedup,
        target,
    )
    return run(
        city,
        publisher,
        stop=stop,
        duration_s=duration_s,
        refresh_offline=lambda: offline_device_ids(engine),
        fleet=Fleet(engine, duty_officer=duty_officer, seed=seed) if fleet else None,
    )
