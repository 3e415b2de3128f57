"""The live simulator's core on a simulated clock: rate, timestamps, values, faults, storms."""

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from data import catalog
from data.ingest_store import plausible_range
from data.live_city import LiveDevices
from data.writes import reading_levels
from localservers.mosquitto import ManagedBroker
from simulator.city import DISTRICT_POPULATION
from simulator.live import (
    HAPPENING_REACH,
    HAPPENINGS,
    PLATFORM_RATE,
    STORM_WEATHER,
    US,
    LiveCity,
    LiveConfig,
    encode_readings,
    plausible_bounds,
    split_batch,
    storm_intensity,
    tick_seconds,
)

TYPES = catalog.load_device_types()
TYPE_BY_ID = {t.type_id: t for t in TYPES}
START = 1_795_000_000 * US  # 2026-11-18, a fixed instant
DISTRICTS = np.array(sorted(DISTRICT_POPULATION))
QUIET = LiveConfig(
    storm_every_s=None,
    faults_per_device_hour=0,
    silences_per_device_hour=0,
    first_ramp_s=None,
    ramps_per_device_hour=0,
    stuck_per_device_hour=0,
    spikes_per_device_hour=0,
    skews_per_device_hour=0,
)


def fake_devices(n=3000, *, seed=1, maintenance=0):
    rng = np.random.default_rng(seed)
    status = np.array(["active"] * n, dtype=object)
    status[:maintenance] = "maintenance"
    return LiveDevices(
        device_id=np.arange(1, n + 1, dtype=np.int64),
        type_id=rng.choice([t.type_id for t in TYPES], n).astype(np.int64),
        district_adcode=DISTRICTS[np.arange(n) % len(DISTRICTS)],
        street_code=np.array(["310101001"] * n),
        status=status.astype(str),
    )


def simulate(city, *, seconds, tick=1.0, start=START):
    """All readings of `seconds` of simulated time, plus the instant of each step."""
    batches, steps = [], []
    now = start
    for _ in range(int(seconds / tick)):
        now += int(tick * US)
        batch = city.step(now)
        steps.append((now, len(batch)))
        batches.append(batch)
    cat = {
        f: np.concatenate([getattr(b, f) for b in batches])
        for f in ("device_id", "ts_us", "value", "quality")
    }
    return cat, steps


def by_type(attribute, missing=np.nan):
    """A type attribute as an array indexed by type id."""
    out = np.full(max(TYPE_BY_ID) + 1, missing, dtype=float)
    for t in TYPES:
        value = getattr(t, attribute)
        out[t.type_id] = missing if value is None else value
    return out


def levels(cat):
    t = fake_type_lookup()[cat["device_id"]]
    return reading_levels(
        cat["value"],
        normal_min=by_type("normal_min")[t],
        normal_max=by_type("normal_max")[t],
        alarm_min=by_type("alarm_min")[t],
        alarm_max=by_type("alarm_max")[t],
    )


_DEVICES = fake_devices()


def fake_type_lookup():
    lookup = np.zeros(len(_DEVICES) + 1, dtype=np.int64)
    lookup[_DEVICES.device_id] = _DEVICES.type_id
    return lookup


@pytest.mark.parametrize("rate", [97, 1_000, 10_000])
def test_rate_matches_the_target_on_a_simulated_clock(rate):
    city = LiveCity(_DEVICES, TYPES, replace(LiveConfig(rate=rate), seed=5), start_us=START)
    seconds = 1200 if rate < 5_000 else 300
    _, steps = simulate(city, seconds=seconds, tick=tick_seconds(rate))
    achieved = sum(n for _, n in steps) / seconds
    assert achieved == pytest.approx(rate, rel=0.05)
    # evenly spread: no step carries much more than its share (no bursts of whole rounds)
    assert max(n for _, n in steps) < 4 * rate * tick_seconds(rate) + 50


def test_each_device_reports_on_its_own_interval_compressed_alike():
    city = LiveCity(_DEVICES, TYPES, replace(QUIET, rate=97), start_us=START)
    interval = np.array([TYPE_BY_ID[int(t)].interval_s for t in _DEVICES.type_id])
    ratio = interval * US / city.period_us
    assert ratio == pytest.approx(np.full(len(ratio), city.speedup), rel=1e-3)
    natural = (1 / interval).sum()
    assert city.speedup == pytest.approx(97 / natural)


def test_a_city_asked_for_no_rate_plays_at_its_own_at_least_the_platforms():
    small = LiveCity(_DEVICES, TYPES, replace(QUIET, rate=None), start_us=START)
    assert small.rate == PLATFORM_RATE and small.speedup > 1
    # a city whose devices at their real intervals send more than the platform's average
    fastest = min(TYPES, key=lambda t: t.interval_s)
    devices = fake_devices(120_000)
    devices = replace(devices, type_id=np.full(len(devices.device_id), fastest.type_id))
    big = LiveCity(devices, TYPES, replace(QUIET, rate=None), start_us=START)
    assert big.rate == pytest.approx(120_000 / fastest.interval_s) and big.rate > PLATFORM_RATE
    assert big.speedup == pytest.approx(1.0)
    # a rate asked for is kept, whatever the city
    assert LiveCity(devices, TYPES, replace(QUIET, rate=50), start_us=START).rate == 50


def test_timestamps_strictly_increase_per_device_and_never_lie_ahead():
    busy = LiveConfig(
        rate=20_000,  # several readings per device and step
        seed=3,
        storm_every_s=30,
        storm_now=True,
        storm_minutes=(1, 2),
        faults_per_device_hour=2,
        fault_minutes=(0.2, 1),
        silences_per_device_hour=2,
        skews_per_device_hour=0,  # a skewed clock steps back on purpose (tested on its own)
        silence_minutes=(0.2, 1),
    )
    city = LiveCity(_DEVICES, TYPES, busy, start_us=START)
    devices, stamps = [], []
    previous = now = START
    for _ in range(600):
        now += int(0.25 * US)
        batch = city.step(now)
        assert (batch.ts_us <= now).all()
        assert (batch.ts_us > previous - busy.max_catch_up_s * US).all()
        assert (np.diff(batch.ts_us) >= 0).all()
        devices.append(batch.device_id)
        stamps.append(batch.ts_us)
        previous = now
    device, ts = np.concatenate(devices), np.concatenate(stamps)
    order = np.argsort(device, kind="stable")  # keeps each device's readings in sending order
    same = np.diff(device[order]) == 0
    assert same.sum() > 100_000
    assert (np.diff(ts[order])[same] > 0).all()


def test_values_stay_physically_plausible_through_faults_and_storms():
    rough = LiveConfig(
        rate=3_000,
        seed=9,
        storm_every_s=60,
        storm_now=True,
        storm_minutes=(4, 6),
        faults_per_device_hour=0.5,
    )
    city = LiveCity(_DEVICES, TYPES, rough, start_us=START)
    cat, _ = simulate(city, seconds=1800)
    type_of = fake_type_lookup()[cat["device_id"]]
    low, high = plausible_bounds(TYPES)
    assert np.isfinite(cat["value"]).all()
    assert (cat["value"] >= low[type_of]).all() and (cat["value"] <= high[type_of]).all()
    ranges = np.array(
        [
            plausible_range(
                value_kind=t.value_kind,
                normal_min=t.normal_min,
                normal_max=t.normal_max,
                alarm_min=t.alarm_min,
                alarm_max=t.alarm_max,
            )
            for t in TYPES
        ]
    )
    ingest_low, ingest_high = np.zeros((2, max(TYPE_BY_ID) + 1))
    ingest_low[[t.type_id for t in TYPES]], ingest_high[[t.type_id for t in TYPES]] = ranges.T
    value = cat["value"]
    assert (value >= ingest_low[type_of]).all() and (value <= ingest_high[type_of]).all()
    binary = np.array([t.value_kind == "binary" for t in TYPES])
    binary_ids = np.array([t.type_id for t in TYPES])[binary]
    assert np.isin(value[np.isin(type_of, binary_ids)], [0.0, 1.0]).all()
    # a sluice gate opens at most 100%, where 100% is not itself an alarm limit
    percent = [t.type_id for t in TYPES if t.unit == "%" and (t.alarm_max or 0) < 100]
    assert (value[np.isin(type_of, percent)] <= 100).all()
    # no negative rainfall, depth, load…
    assert (value[by_type("normal_min")[type_of] >= 0] >= 0).all()
    scale = 10.0 ** by_type("decimals")[type_of]
    assert np.allclose(value, np.round(value * scale) / scale, rtol=0, atol=1e-9)
    # faults and storms did happen, and in both directions of severity
    lv = levels(cat)
    assert (lv == 2).sum() > 50 and (lv == 1).sum() > 50
    assert set(np.unique(cat["quality"])) <= {0, 1, 2}


def test_healthy_devices_stay_inside_their_normal_range():
    city = LiveCity(_DEVICES, TYPES, replace(QUIET, rate=2_000), start_us=START)
    cat, _ = simulate(city, seconds=600)
    lv = levels(cat)
    assert not (lv == 2).any()
    # only near-limit daily cycles and broken household routines may leave the normal band
    index = cat["device_id"] - 1
    allowed = (city.profiles.near_side[index] != 0) | (city.profiles.household[index] != 0)
    assert not ((lv == 1) & ~allowed).any()


def test_a_storm_floods_three_districts_past_alarm_for_minutes_then_recedes():
    config = replace(QUIET, rate=97, storm_every_s=10 * 3600, storm_now=True, seed=11)
    city = LiveCity(_DEVICES, TYPES, config, start_us=START)
    # river and tide levels rise over hours and take half as long again to recede
    cat, _ = simulate(city, seconds=5 * 3600, tick=5.0)
    storm = city.storm or None
    events = city.drain_events()
    assert any("over" in e and "ended" in e for e in events), events
    started = next(e for e in events if "min (" in e)
    lv = levels(cat)
    type_of = fake_type_lookup()[cat["device_id"]]
    flood = np.array([TYPE_BY_ID[int(t)].category == "flood" for t in type_of])
    district_of = _DEVICES.district_adcode[cat["device_id"] - 1]
    alarmed = flood & (lv == 2)
    assert len(np.unique(district_of[alarmed])) >= 3, started
    # storms touch flood-control sensors and their districts' rain, visibility, wind and
    # pressure stations only (others' near-limit cycles stay short of alarm)
    kind = started.split()[0]
    measurand = np.array([TYPE_BY_ID[int(t)].measurand for t in type_of], dtype=object)
    weather = np.isin(measurand, list(STORM_WEATHER[kind])) & np.isin(
        district_of, np.unique(district_of[alarmed])
    )
    assert not (~flood & ~weather & (lv == 2)).any()
    assert (weather & (lv == 2)).any() and (weather & (lv == 1)).any(), started
    if kind == "typhoon":
        assert (weather & (measurand == "wind_speed") & (lv >= 1)).any()
    # some sensors stay beyond alarm for several minutes
    spans = [
        np.ptp(cat["ts_us"][alarmed & (cat["device_id"] == d)])
        for d in np.unique(cat["device_id"][alarmed])
    ]
    assert max(spans) >= 3 * 60 * US
    # …then recede: the last reading of every flood sensor is normal again
    assert storm is None
    last = {}
    own_cycle = city.profiles.near_side[cat["device_id"] - 1] == 0
    stormed = (flood | weather) & own_cycle
    for device, level in zip(cat["device_id"][stormed], lv[stormed], strict=True):
        last[int(device)] = int(level)
    assert sum(last.values()) == 0


def test_storm_intensity_rises_holds_and_recedes():
    ts = np.array([0, 15, 30, 50, 75, 90, 100]) * US
    s = storm_intensity(ts, start_us=0, end_us=100 * US)
    assert s[0] == 0 and s[-1] == 0
    assert s[2] == s[3] == s[4] == 1
    assert 0 < s[1] < 1 and 0 < s[5] < 1


def test_a_fault_crosses_a_threshold_then_recovers():
    config = replace(QUIET, rate=1_000, faults_per_device_hour=0.05, seed=2)
    city = LiveCity(_DEVICES, TYPES, config, start_us=START)
    cat, _ = simulate(city, seconds=3600)
    lv = levels(cat)
    faulted = np.unique(cat["device_id"][lv > 0])
    assert len(faulted) >= 20
    recovered = 0
    for device in faulted:
        mine = lv[cat["device_id"] == device]
        if mine[-1] == 0 and (mine[np.argmax(mine > 0) :] == 0).any():
            recovered += 1
    assert recovered >= 0.6 * len(faulted)


def test_offline_and_inactive_devices_send_nothing_and_the_rest_keep_the_rate():
    devices = fake_devices(maintenance=100)
    offline = np.arange(200, 400)
    city = LiveCity(devices, TYPES, replace(QUIET, rate=500), start_us=START, offline_ids=offline)
    cat, steps = simulate(city, seconds=300)
    sent = np.unique(cat["device_id"])
    assert not np.isin(sent, offline).any()
    assert not np.isin(sent, np.arange(1, 101)).any()
    assert sum(n for _, n in steps) / 300 == pytest.approx(500, rel=0.05)
    # an operator resolves the offline incidents: those devices come back
    city.set_offline(np.empty(0, np.int64))
    cat, _ = simulate(city, seconds=300, start=START + 300 * US)
    assert np.isin(offline, cat["device_id"]).mean() > 0.5


def test_silences_happen_and_end():
    config = replace(
        QUIET, rate=3_000, silences_per_device_hour=0.2, silence_minutes=(2, 3), seed=4
    )
    city = LiveCity(_DEVICES, TYPES, config, start_us=START)
    simulate(city, seconds=120)
    assert (city.silent_until > START + 120 * US).sum() > 5
    assert (city.silent_until > 0).sum() > 10


def test_payload_follows_the_ingest_contract():
    city = LiveCity(_DEVICES, TYPES, replace(QUIET, rate=1_000), start_us=START)
    batch = city.step(START + 2 * US)
    chunks = split_batch(batch, max_rows=700)
    assert [len(c) for c in chunks][:-1] == [700] * (len(chunks) - 1)
    body = orjson.loads(encode_readings(chunks[0]))
    assert list(body) == ["readings"]
    rows = body["readings"]
    assert len(rows) == 700
    for row, device, ts, value in zip(
        rows, batch.device_id, batch.ts_us, batch.value, strict=False
    ):
        assert set(row) == {"device_id", "ts", "value", "quality"}
        assert row["device_id"] == device and isinstance(row["device_id"], int)
        parsed = datetime.fromisoformat(row["ts"])
        assert parsed.utcoffset() is not None and row["ts"].endswith("+00:00")
        assert round(parsed.timestamp() * US) == ts
        assert row["value"] == value


def test_ticks_keep_messages_batched():
    assert tick_seconds(97) == 1.0  # ~97 readings a message, at most a second late
    assert tick_seconds(10_000) == 0.1  # ~1,000 a message, 10 a second


def test_broker_config_keeps_a_backlog():
    text = ManagedBroker(root=Path("/x"), port=1884).config_text(run_as="mosquitto")
    lines = set(text.splitlines())
    assert {
        "listener 1884 127.0.0.1",
        "allow_anonymous false",
        "persistence true",
        "persistence_location /x/data/",
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
        "max_inflight_messages 1000",
        "log_dest file /x/mosquitto.log",
        "user mosquitto",
    } <= lines


def _ramp_readings(city, cat, device):
    mine = cat["device_id"] == device
    return cat["ts_us"][mine], cat["value"][mine]


def test_a_ponding_ramp_starts_within_two_minutes_rises_gradually_and_reaches_the_alarm():
    config = replace(QUIET, rate=97, seed=4, first_ramp_s=60.0)
    city = LiveCity(_DEVICES, TYPES, config, start_us=START)
    simulate(city, seconds=120)
    ramping = np.flatnonzero(city.ep_kind == 3)
    assert len(ramping) == 1 and city.measurand[ramping[0]] == "ponding"
    i = int(ramping[0])
    assert city.ep_start[i] - START <= 2 * 60 * US
    rise = int(city.ep_rise[i])
    cat, _ = simulate(city, seconds=rise / US + 300, start=START + 120 * US)
    ts, value = _ramp_readings(city, cat, int(city.device_id[i]))
    t = TYPE_BY_ID[int(city.type_id[i])]
    during = (ts >= city.ep_start[i]) & (ts < city.ep_start[i] + rise)
    # on change: every alarm period, not the type's (compressed) interval
    assert np.median(np.diff(ts[during])) <= config.alarm_period_s * US * 1.01
    way = t.alarm_max - t.baseline
    assert np.abs(np.diff(value[during])).max() < 0.1 * way
    beyond = ts[value > t.alarm_max]
    assert len(beyond) and beyond[0] >= city.ep_start[i] + 0.75 * rise
    assert value[during][:3].max() < t.normal_max  # it starts from the healthy value


def test_standalone_ramps_keep_coming_city_wide():
    config = replace(QUIET, rate=97, seed=6, ramps_per_device_hour=0.0015)
    devices = fake_devices(20_000, seed=2)
    city = LiveCity(devices, TYPES, config, start_us=START)
    simulate(city, seconds=3600, tick=10.0)
    ramps = [e for e in city.drain_events() if " ramp " in e]
    assert len(ramps) >= 3, ramps


def test_a_stuck_sensor_repeats_its_value_and_a_skewed_clock_stamps_late():
    config = replace(
        QUIET, rate=2_000, seed=8, stuck_per_device_hour=1.0, skews_per_device_hour=1.0
    )
    city = LiveCity(_DEVICES, TYPES, config, start_us=START)
    cat, steps = simulate(city, seconds=600)
    stuck = np.flatnonzero(city.ep_kind == 4)
    assert len(stuck) >= 5
    repeated = 0
    for i in stuck:
        mine = (cat["device_id"] == city.device_id[i]) & (cat["ts_us"] >= city.ep_start[i])
        if mine.sum() >= 2:
            assert len(np.unique(cat["value"][mine])) == 1
            repeated += 1
    assert repeated >= 3
    late = steps[-1][0] - cat["ts_us"]
    assert (late > 19 * 60 * US).any() and (late < 61 * 60 * US + 600 * US).all()


def test_a_demo_city_sees_its_first_storm_within_minutes_then_one_every_storm_every_s():
    config = replace(QUIET, rate=97, seed=5, storm_every_s=40 * 60)  # first_storm_s: the default
    city = LiveCity(_DEVICES, TYPES, config, start_us=START)
    now, starts = START, []
    while now < START + 90 * 60 * US:
        now += 10 * US
        had = city.storm
        city.step(now)
        if city.storm is not None and city.storm is not had:
            starts.append((now - START) / US / 60)
    assert starts and starts[0] <= config.first_storm_s / 60 + 0.2  # minutes, not forty
    assert len(starts) >= 2 and starts[1] - starts[0] >= 40  # then after 40 calm minutes


def _street_devices(n=3000, *, seed=1):
    """The fake devices (their types as `levels` knows them) spread over eight streets."""
    devices = fake_devices(n, seed=seed)
    streets = np.array([f"31010100{k}" for k in range(8)])
    return replace(devices, street_code=streets[np.arange(n) % len(streets)])


@pytest.mark.parametrize("kind", ["outage", "burst", "gas_leak", "sos"])
def test_a_happening_takes_one_streets_devices_of_its_scenario_past_alarm(kind):
    devices = _street_devices()
    config = replace(QUIET, rate=97, seed=7, happening_every_s=3600, first_happening_s=30)
    city = LiveCity(devices, TYPES, config, start_us=START)
    city.happenings = list(HAPPENINGS).index(kind)  # this kind comes first
    cat, _ = simulate(city, seconds=20 * 60, tick=5.0)
    events = [e for e in city.drain_events() if " in street " in e]
    assert len(events) == 1 and events[0].startswith(f"{kind} in street"), events
    lv = levels(cat)
    alarmed = np.unique(cat["device_id"][lv == 2])
    faults, ramps = HAPPENINGS[kind]
    measurand = np.array([TYPE_BY_ID[int(t)].measurand for t in devices.type_id])
    # only the scenario's own measurands, all in the one street, up to its reach
    assert len(alarmed) >= 1
    assert set(measurand[alarmed - 1]) <= set(faults + ramps)
    assert len(set(devices.street_code[alarmed - 1])) == 1
    assert len(alarmed) <= HAPPENING_REACH[kind]
    if kind == "burst":  # the main's pressure falls below its alarm limit
        pressure = alarmed[measurand[alarmed - 1] == "pipe_pressure"]
        lows = cat["value"][np.isin(cat["device_id"], pressure) & (lv == 2)]
        assert len(lows) and (lows < by_type("alarm_min")[devices.type_id[pressure[0] - 1]]).all()


def test_no_happening_unless_configured():
    city = LiveCity(_street_devices(), TYPES, replace(QUIET, rate=97), start_us=START)
    simulate(city, seconds=10 * 60, tick=5.0)
    assert not [e for e in city.drain_events() if " in street " in e]
