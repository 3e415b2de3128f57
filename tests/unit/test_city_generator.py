"""The synthetic city generator, without a database: determinism, density, readings, incidents."""

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from data import catalog, geo
from data.live_city import LiveDevices
from simulator import city as city_module
from simulator.city import SCALES, Geography, IncidentBook, plan_city, record_incidents
from simulator.live import LiveCity, LiveConfig

END = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    districts = geo.district_frame()
    streets = geo.approximate_streets(districts, geo.street_frame())
    areas = streets.to_crs(geo.METRIC_CRS).area.to_numpy() / 1e6
    geography = Geography(
        street_codes=streets["code"].to_numpy(dtype=str),
        street_districts=streets["district_adcode"].to_numpy(dtype=str),
        street_is_urban=streets["name_zh"].str.endswith("街道").to_numpy(),
        street_geoms=list(streets.geometry),
        street_area_km2=areas,
    )
    names = {r.code: (r.name_zh, r.name_en) for r in streets.itertuples()}
    return geography, names, catalog.load_categories(), catalog.load_device_types()


def plan(world, *, seed=11, scale="demo"):
    geography, _, categories, types = world
    return plan_city(
        geography=geography,
        categories=categories,
        device_types=types,
        scale=SCALES[scale],
        random_seed=seed,
        end=END,
    )


def digest(city, types):
    h = hashlib.sha256()
    h.update(city.devices[["id", "type_id", "lon", "lat"]].to_numpy().tobytes())
    for batch in city_module.iter_reading_batches(city, types, devices_per_batch=7_000):
        h.update(batch.device_id.tobytes() + batch.ts_us.tobytes() + batch.value.tobytes())
    return h.hexdigest()


def test_same_seed_same_city(world):
    types = world[3]
    assert digest(plan(world, scale="tiny"), types) == digest(plan(world, scale="tiny"), types)
    assert digest(plan(world, scale="tiny"), types) != digest(
        plan(world, seed=12, scale="tiny"), types
    )


def test_devices_follow_population(world):
    city = plan(world)
    devices = city.devices
    assert len(devices) == SCALES["demo"].devices
    assert devices["id"].tolist() == list(range(1, len(devices) + 1))
    counts = devices["district_adcode"].value_counts()
    assert counts.idxmax() == "310115"  # Pudong
    areas = geo.district_frame().to_crs(geo.METRIC_CRS).set_index("adcode").area / 1e6
    density = counts / areas
    assert density["310101"] > 20 * density["310151"]  # Huangpu vs Chongming
    assert density.idxmin() == "310151"


def test_readings_volume_and_shape(world):
    city = plan(world)
    types = world[3]
    batches = list(city_module.iter_reading_batches(city, types))
    every = np.concatenate([b.device_id for b in batches])
    ts = np.concatenate([b.ts_us for b in batches])
    start_us = int(city.start.timestamp() * 1e6)
    end_us = int(city.end.timestamp() * 1e6)
    window = ts >= start_us
    expected = catalog.expected_readings_per_day(
        devices_total=len(city.devices), categories=world[2], device_types=types
    )
    # silences and maintenance remove a little; the rest is the calibrated volume
    assert 0.93 * expected < window.sum() < 1.03 * expected
    assert len(np.unique(every * 10**17 + ts % 10**17)) == len(ts)  # (device, ts) unique
    assert ts.max() <= end_us
    # only the devices with a learned normal report before the window, from weeks before
    long_ids = city.devices["id"].to_numpy()[city.long_history]
    assert set(np.unique(every[~window])) <= set(long_ids)
    assert ts.min() >= int(city.history_start.timestamp() * 1e6)
    assert city.end - city.history_start == timedelta(days=SCALES["demo"].history_days)


def test_faults_become_incidents(world):
    city = plan(world)
    _, names, _, types = world
    book = IncidentBook()
    rng = np.random.default_rng(1)
    for batch in city_module.iter_reading_batches(city, types):
        record_incidents(
            book, city=city, batch=batch, device_types=types, street_names=names, rng=rng
        )
    incidents, events = book.frames()
    assert len(incidents) > 20
    assert set(incidents["severity"]) <= {"critical", "major", "minor"}
    assert {"offline"} < set(incidents["rule_code"])
    resolved = incidents[incidents["status"] == "resolved"]
    assert (resolved["resolved_at"] > resolved["opened_at"]).all()
    assert (events.groupby("incident_id")["kind"].first() == "opened").all()
    live = incidents[incidents["status"] != "resolved"]
    assert not live.duplicated(["device_id", "rule_code"]).any()
    # a near-limit cycle's daily peaks are in the warning band: an incident each, never an alarm
    near_ids = city.devices["id"].to_numpy()[city.profiles.near_side != 0]
    faulty = {ep.device_index + 1 for ep in city.episodes}
    near = incidents[
        incidents["device_id"].isin(set(near_ids) - faulty) & (incidents["rule_code"] != "offline")
    ]
    assert len(near) > 2 * 20 * len(set(near_ids) - faulty) * 0.9
    assert set(near["rule_code"]) <= {"warning_high", "warning_low"}
    assert (near["opened_at"] < city.start).mean() > 0.9  # most are in the weeks of history
    # 预警 means a forecast: a warning-band crossing is 越限
    assert not incidents["title_zh"].str.contains("预警").any()
    assert incidents["title_zh"].str.contains("越限").any()


@pytest.fixture(scope="module")
def demo(world):
    """The demo city and its readings as one frame (device index, ts, value, local hour)."""
    city = plan(world)
    batches = list(city_module.iter_reading_batches(city, world[3]))
    ids = np.concatenate([b.device_id for b in batches])
    ts = np.concatenate([b.ts_us for b in batches])
    frame = pd.DataFrame(
        {
            "device": ids - 1,
            "ts": ts,
            "value": np.concatenate([b.value for b in batches]),
            "hour": ((ts // 10**6 + 8 * 3600) % 86400) // 3600,
        }
    )
    in_episode = np.zeros(len(frame), dtype=bool)
    for ep in city.episodes:
        in_episode |= (frame["device"] == ep.device_index) & frame["ts"].between(
            ep.start_us, ep.end_us - 1
        )
    return city, frame[~in_episode].reset_index(drop=True)


def test_near_limit_history_comes_close_without_crossing(world, demo):
    city, readings = demo
    types = {t.type_id: t for t in world[3]}
    near = np.flatnonzero(city.profiles.near_side != 0)
    assert len(near) >= 20
    for i in near:
        t = types[int(city.devices.at[i, "type_id"])]
        side = int(city.profiles.near_side[i])
        limit = t.alarm_max if side > 0 else t.alarm_min
        values = readings.loc[readings["device"] == i, "value"].to_numpy()
        extreme = values.max() if side > 0 else values.min()
        assert (limit - extreme) * side > 0, f"{t.code} crossed its alarm limit {limit}"
        low, high = t.alarm_min or -np.inf, t.alarm_max or np.inf
        assert (values > low).all() and (values < high).all(), f"{t.code}: the far limit"
        # the history shows how near it comes: within 15% of the gap from its baseline
        assert (limit - extreme) * side <= 0.15 * abs(limit - t.baseline), t.code


def test_households_follow_their_routine_for_weeks(world, demo):
    city, readings = demo
    types = {t.type_id: t for t in world[3]}
    measurand = city.devices["type_id"].map(lambda t: types[t].measurand).to_numpy()
    first = readings.groupby("device")["ts"].min()
    end_us = city.end.timestamp() * 1e6
    households = np.flatnonzero(city.profiles.household != 0)
    assert set(np.flatnonzero(np.isin(measurand, ["water_meter", "door_inactivity"]))) == set(
        households
    )
    # 21 days of history: the first reading within one interval of end - 21 days
    active = households[city.devices["status"].to_numpy()[households] == "active"]
    interval = city_module.type_arrays(world[3])["interval"][city.devices["type_id"].to_numpy()]
    history_us = end_us - 21 * 86400e6
    assert (first[active] - history_us < interval[active] * 1e6).all()
    others = np.setdiff1d(first.index, np.flatnonzero(city.long_history))
    assert ((end_us - first[others]) / 3600e6 <= SCALES["demo"].history_hours).all()
    water = readings[measurand[readings["device"]] == "water_meter"]
    by_hour = water.groupby("hour")["value"].mean()
    night = by_hour[[1, 2, 3, 4]].max()  # a trickle at night, use by day
    assert night < 2.0 and by_hour[7:21].mean() > 5 * night
    door = readings[measurand[readings["device"]] == "door_inactivity"]
    door_by_hour = door.groupby("hour")["value"].mean()
    # hours since the door last opened: longest before the morning outing, short in the day
    assert door_by_hour[[4, 5]].min() > 5.0 > door_by_hour[[12, 13, 14]].max()
    # and some days the routine breaks: the door stays shut past the normal band (12 h)
    assert (door.groupby("device")["value"].max() > 12.0).sum() >= 3


def test_seeded_and_live_values_are_one_function(world, demo):
    city, readings = demo
    types = world[3]
    devices = city.devices
    live = LiveCity(
        LiveDevices(
            device_id=devices["id"].to_numpy(),
            type_id=devices["type_id"].to_numpy().astype(np.int64),
            district_adcode=devices["district_adcode"].to_numpy(dtype=str),
            street_code=devices["street_code"].to_numpy(dtype=str),
            status=np.full(len(devices), "active"),
        ),
        types,
        LiveConfig(storm_every_s=None, first_ramp_s=None),  # the default live seed
        start_us=int(city.start.timestamp() * 1e6),
    )
    params = city_module.type_arrays(types)
    rows = readings[city.long_history[readings["device"]]]
    device = rows["device"].to_numpy()
    # the live city's value at the very instants the seed stamped (its episodes are all idle)
    live_value = live._values(device, rows["ts"].to_numpy())
    seeded = rows["value"].to_numpy()
    household = city.profiles.household[device]
    door = household == 2
    assert np.array_equal(seeded[door], live_value[door])  # an elapsed time has no noise
    near = city.profiles.near_side[device] != 0
    sd = city.profiles.near_noise[device[near]]
    step = 10.0 ** -params["decimals"][devices["type_id"].to_numpy()[device[near]]]
    # both sides draw their own noise (cut at 3 sd), nothing else differs
    assert (np.abs(seeded[near] - live_value[near]) <= 6 * sd + step).all()
    water = household == 1
    assert np.corrcoef(seeded[water], live_value[water])[0, 1] > 0.95
