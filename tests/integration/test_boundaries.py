"""Boundaries served by URL: valid GeoJSON, simplified, cached with ETags, bad paths refused."""

import json

import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import shape

from tests.conftest import app_on
from web.boundaries import boundary_url

pytestmark = pytest.mark.integration


@pytest.fixture
def client(db_url, seeded):
    with app_on(db_url) as app:
        yield app.server.test_client()


def test_districts(client, engine):
    response = client.get(boundary_url(level="districts"))
    assert response.status_code == 200
    assert response.mimetype == "application/geo+json"
    collection = json.loads(response.data)
    assert len(collection["features"]) == 16
    pudong = next(f for f in collection["features"] if f["id"] == "310115")
    assert pudong["properties"]["name_zh"] == "浦东新区"
    simplified = shape(pudong["geometry"])
    with engine.connect() as conn:
        stored = shapely.from_wkb(
            conn.execute(
                sa.text("SELECT ST_AsBinary(geom) FROM district WHERE adcode = '310115'")
            ).scalar_one()
        )
    # simplified once: fewer vertices, same shape
    assert shapely.get_num_coordinates(simplified) < shapely.get_num_coordinates(stored)
    assert simplified.symmetric_difference(stored).area / stored.area < 0.005


def test_district_streets_and_grid(client, engine):
    streets = json.loads(client.get(boundary_url(level="streets", district="310115")).data)
    with engine.connect() as conn:
        expected = conn.execute(
            sa.text("SELECT count(*) FROM street WHERE district_adcode = '310115'")
        ).scalar_one()
    assert len(streets["features"]) == expected
    assert all(f["properties"]["approximate"] is True for f in streets["features"])
    grid = json.loads(client.get(boundary_url(level="grid", district="310101")).data)
    assert grid["features"] and all(
        f["properties"]["district"] == "310101" for f in grid["features"]
    )


def test_etag_revalidation(client):
    first = client.get(boundary_url(level="districts"))
    etag = first.headers["ETag"].strip('"')
    again = client.get(boundary_url(level="districts"), headers={"If-None-Match": f'"{etag}"'})
    assert again.status_code == 304
    assert "max-age" in again.headers["Cache-Control"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/geo/rivers.geojson", 404),
        ("/geo/district/310199/streets.geojson", 404),
        ("/geo/district/31011'--/streets.geojson", 404),
        ("/geo/district/310115/city.geojson", 404),
    ],
)
def test_bad_paths(client, path, status):
    response = client.get(path)
    assert response.status_code == status
    assert "error" in json.loads(response.data)
    assert b"Traceback" not in response.data
