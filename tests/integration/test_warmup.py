"""What a web worker prepares before serving (web/warmup.py), and the device snapshots it fills."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import sqlalchemy as sa

from data.devices import CELL_STATES, cell_points
from data.reference_reads import district_codes
from tests.conftest import app_on
from tests.dash_client import client_for, sign_in
from web.boundaries import BOUNDARIES
from web.device_layer import SNAPSHOTS, STALE_VERSIONS, devices_url, snapshot_version
from web.warmup import warm_before_serving

pytestmark = pytest.mark.integration
PUDONG = "310115"


@pytest.fixture
def app(db_url, seeded):
    with app_on(db_url) as dash_app:
        yield dash_app


def _cell_devices(engine, district: str) -> int:
    """Devices the counters hold in the district's grid cells."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT coalesce(sum(devices_total), 0) FROM cell_status WHERE district_adcode = :d"
            ),
            {"d": district},
        ).scalar_one()


def test_cell_points_count_every_device_of_each_cell_once(engine, seeded):
    points = cell_points(engine)
    assert set(points) == set(district_codes(engine))
    with engine.connect() as conn:
        counted = dict(
            conn.execute(
                sa.text(
                    "SELECT s.district_adcode, count(DISTINCT s.cell) FROM cell_status s GROUP BY 1"
                )
            ).all()
        )
    for district, frame in points.items():
        assert len(frame) == counted[district]
        assert frame[list(CELL_STATES)].to_numpy().min() >= 0
        assert int(frame[list(CELL_STATES)].to_numpy().sum()) == _cell_devices(engine, district)
    flood = cell_points(engine, district=PUDONG, category="flood")[PUDONG]
    assert 0 < flood[list(CELL_STATES)].to_numpy().sum() < _cell_devices(engine, PUDONG)


def test_the_warm_up_builds_every_district_before_the_first_request(app, engine):
    beats = []
    assert warm_before_serving(app.server, budget_s=120, heartbeat=lambda: beats.append(1))
    assert beats, "the worker's heartbeat was not kept while it waited"
    snapshots = app.server.extensions[SNAPSHOTS]
    version = snapshot_version()
    districts = list(district_codes(engine))
    # the warm-up may straddle a snapshot boundary: its frames are then the previous version's
    built = [
        d
        for d in districts
        if snapshots.holds(d, None, version) or snapshots.holds(d, None, version - 1)
    ]
    assert built == districts
    boundaries = app.server.extensions[BOUNDARIES]
    assert {("districts", None)} | {("streets", d) for d in districts} <= set(boundaries._bodies)
    assert {("grid", d) for d in districts} <= set(boundaries._geobufs)
    # and what a viewer then gets is every device of the district, clustered
    client = client_for(app, sign_in(engine, role="operator"))
    features = client.get(devices_url(district=PUDONG, category=None, zoom=11)).get_json()
    assert sum(f["properties"].get("n", 1) for f in features["features"]) == _cell_devices(
        engine, PUDONG
    )


def test_a_district_unseen_for_a_while_is_shown_at_once_and_refreshed(app, engine):
    snapshots = app.server.extensions[SNAPSHOTS]
    version = snapshot_version()
    cells = len(cell_points(engine, district=PUDONG)[PUDONG])
    stale = pd.DataFrame({"cell": [], "lon": [], "lat": []})
    # a snapshot a few periods old is served as it is while the current one builds
    snapshots.put(PUDONG, None, version - STALE_VERSIONS, stale)
    assert snapshots.get(PUDONG, None, version) is stale
    deadline = time.monotonic() + 30
    while not snapshots.holds(PUDONG, None, version) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(snapshots.get(PUDONG, None, version)) == cells
    # an older one is not: the view waits for its current snapshot
    snapshots.put("310101", None, version - STALE_VERSIONS - 1, stale)
    assert len(snapshots.get("310101", None, version)) == len(
        cell_points(engine, district="310101")["310101"]
    )
