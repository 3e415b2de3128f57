"""Dashboard routes and callbacks through the Flask stack, on the seeded test database."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import geobuf
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from components.theme import STATE_RANK
from data import writes
from data.areas import cell_metrics
from data.devices import area_devices
from data.kpis import area_kpis
from data.topic_reads import measurands_now
from tests.conftest import app_on
from tests.dash_client import client_for, post_callback, sign_in
from web.boundaries import boundary_url
from web.device_layer import devices_url

pytestmark = pytest.mark.integration
PUDONG = "310115"


@pytest.fixture
def app(db_url, seeded):
    with app_on(db_url) as dash_app:
        dash_app.server.test_client().get("/")  # callbacks register on the first request
        yield dash_app


@pytest.fixture
def operator(engine, seeded):
    """A city operator's session."""
    return sign_in(engine, role="operator")


# the devices of the district's grid cells (a cell belongs to the district of its centre), by
# map state, as area_devices says each one is: what the clusters must add up to
CELL_DEVICES = """
    SELECT count(*) FROM device d
    JOIN device_type t ON t.id = d.type_id
    JOIN grid_cell g ON g.cell = d.cell
    WHERE g.district_adcode = :district AND d.status <> 'retired'
      AND (CAST(:category AS text) IS NULL OR t.category_code = :category)
      AND d.id = ANY(:ids)
"""


def test_device_clusters_count_every_device_of_the_district(app, engine, operator):
    client = client_for(app, operator)
    # each device as it was when the counters were last made
    at = datetime.fromisoformat(str(writes.get_meta(engine, key="status_as_of")))
    with engine.connect() as conn:
        codes = conn.execute(sa.text("SELECT adcode FROM district")).scalars().all()
    devices = pd.concat([area_devices(engine, district=code, at=at) for code in codes])
    for category in (None, "flood"):
        response = client.get(devices_url(district=PUDONG, category=category, zoom=11))
        assert response.status_code == 200
        features = response.get_json()["features"]
        assert len(features) > 5
        mix = np.zeros(len(STATE_RANK), dtype=int)
        for feature in features:
            properties = feature["properties"]
            if properties["cluster"]:
                mix += properties["c"]
                assert sum(properties["c"]) == properties["n"]
            else:
                mix[properties["s"]] += 1
        with engine.connect() as conn:
            for rank, state in enumerate(STATE_RANK):
                ids = devices.loc[devices["state"] == state, "id"].tolist()
                expected = conn.execute(
                    sa.text(CELL_DEVICES),
                    {"district": PUDONG, "category": category, "ids": ids},
                ).scalar_one()
                assert mix[rank] == expected, (category, state)
        assert mix.sum() > (500 if category is None else 10)


def test_zoomed_in_the_devices_of_the_view_are_read_by_box(app, engine, operator):
    client = client_for(app, operator)
    pudong = area_devices(engine, district=PUDONG)  # now, as the devices are read by box
    lon, lat = pudong["lon"].median(), pudong["lat"].median()
    box = [[lat - 0.03, lon - 0.03], [lat + 0.03, lon + 0.03]]
    response = client.get(devices_url(district=PUDONG, category=None, zoom=16, bounds=box))
    features = response.get_json()["features"]
    ids = {f["properties"]["id"] for f in features}
    assert features and all(not f["properties"]["cluster"] for f in features)
    # the URL's box is the view's, rounded out to 0.02°
    west, south, east, north = (float(v) for v in response.request.args["bbox"].split(","))
    inside = pudong[pudong["lon"].between(west, east) & pudong["lat"].between(south, north)]
    assert ids == set(inside["id"])
    states = dict(zip(pudong["id"], pudong["state"], strict=True))
    assert all(STATE_RANK[f["properties"]["s"]] == states[f["properties"]["id"]] for f in features)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/geo/district/999999/devices.json?zoom=11", 404),
        ("/geo/district/310115/devices.json?zoom=11&category=nope", 400),
        ("/geo/district/310115/devices.json?zoom=16&bbox=1,2,3", 400),
        ("/geo/district/310115/devices.json?zoom=abc&v=-5", 200),
    ],
)
def test_device_layer_rejects_bad_parameters_clearly(app, path, status, operator):
    response = client_for(app, operator).get(path)
    assert response.status_code == status
    if status != 200:
        assert "error" in response.get_json()


def test_grid_is_served_as_gzipped_geobuf(app, engine):
    client = app.server.test_client()
    url = boundary_url(level="grid", district=PUDONG, fmt="pbf")
    packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert packed.status_code == 200 and packed.headers["Content-Encoding"] == "gzip"
    cells = geobuf.decode(gzip.decompress(packed.data))["features"]
    as_json = json.loads(client.get(boundary_url(level="grid", district=PUDONG)).data)
    assert len(cells) == len(as_json["features"]) > 100
    assert len(packed.data) * 3 < len(json.dumps(as_json))
    plain = client.get(url)
    assert geobuf.decode(plain.data)["features"][0]["properties"]["district"] == PUDONG
    heat = cell_metrics(engine, district=PUDONG)
    assert set(heat["cell"].astype(str)) <= {f["properties"]["code"] for f in cells}


def _callback(app, output_fragment: str, values: dict, session) -> dict:
    response = _post_callback(app, output_fragment, values, session)
    assert response.status_code == 200, response.data[:500]
    return response.get_json()["response"]


def _post_callback(app, output_fragment: str, values: dict, session):
    """POST a callback with `values` named "key.property" (pattern ids by their "key")."""

    def value_of(ident, prop):
        name = ident["key"] if isinstance(ident, dict) else ident
        return values.get(f"{name}.{prop}")

    return post_callback(app, output_fragment, value_of, session=session)


def test_district_tiles_callback_returns_the_store_figures(app, engine, operator):
    values = {
        "category.value": "",
        "street.data": None,
        "os-refresh.n_intervals": 1,
        "district-state.data": {"district": PUDONG},
        "os-lang.data": "en",
    }
    body = json.dumps(
        _callback(app, "district-tiles.children", values, operator), ensure_ascii=False
    )
    kpis = area_kpis(engine, district=PUDONG)
    assert f"{kpis.devices_total:,}" in body and "Devices" in body


def test_callbacks_turn_bad_browser_values_into_defaults_not_errors(app, engine, operator):
    values = {
        "metric.value": "DROP TABLE",
        "category.value": "<script>",
        "os-refresh.n_intervals": 1,
        "os-lang.data": "klingon",
    }
    body = json.dumps(
        _callback(app, "overview-areas.hideout", values, operator), ensure_ascii=False
    )
    assert "未结事件" in body  # default metric, default language
    hostile = {
        "category.value": "",
        "street.data": "310115999",
        "os-refresh.n_intervals": 1,
        "district-state.data": {"district": "x' OR 1=1"},
        "os-lang.data": "zh",
    }
    response = _post_callback(app, "district-tiles.children", hostile, operator)
    assert response.status_code == 204  # PreventUpdate: nothing sent, nothing broken


def test_a_scenario_views_figures_are_the_stores_and_forged_scenarios_send_nothing(
    app, engine, operator
):
    values = {
        "topic-state.data": {"topic": "flood"},
        "os-refresh.n_intervals": 1,
        "os-lang.data": "en",
    }
    body = json.dumps(_callback(app, "topic-figures.children", values, operator))
    ponding = measurands_now(engine, measurands=("ponding",))["ponding"]
    assert "Underpasses above 15 cm" in body
    assert f"of {ponding.online:,} online" in body
    for forged in ({"topic": "x' OR 1=1"}, {"topic": ["flood"]}, "flood", None):
        response = _post_callback(
            app, "topic-figures.children", {**values, "topic-state.data": forged}, operator
        )
        assert response.status_code == 204  # PreventUpdate: nothing sent, nothing broken
