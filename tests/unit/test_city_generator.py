"""The synthetic city generator, without a database: determinism, density, readings, incidents."""

import hashlib
from datetime import UTC, datetime

import numpy as np
import pytest

from data import catalog, geo
from simulator import city as city_module
from simulator.city import SCALES, Geography, IncidentBook, plan_city, record_incidents

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
    total = sum(len(b) for b in batches)
    expected = catalog.expected_readings_per_day(
        devices_total=len(city.devices), categories=world[2], device_types=types
    )
    # silences and maintenance remove a little; the rest is the calibrated volume
    assert 0.93 * expected < total < 1.03 * expected
    every = np.concatenate([b.device_id for b in batches])
    ts = np.concatenate([b.ts_us for b in batches])
    assert len(np.unique(every * 10**17 + ts % 10**17)) == total  # (device, ts) unique
    start_us = int(city.start.timestamp() * 1e6)
    end_us = int(city.end.timestamp() * 1e6)
    assert ts.min() >= start_us and ts.max() <= end_us


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
