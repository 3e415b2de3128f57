"""Importing real street boundaries replaces the approximate ones and re-assigns everything."""

import json

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from data import geo, migrate
from data.reference_data import StreetImportError, import_street_boundaries
from simulator.seed import seed_city
from tests.conftest import SEED_END

pytestmark = pytest.mark.integration


@pytest.fixture
def city(scratch_db):
    migrate.upgrade(scratch_db)
    seed_city(scratch_db, scale="tiny", random_seed=3, end=SEED_END)
    return scratch_db


def one(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).one()


def _gcj_feature(code, polygon_wgs84):
    def to_gcj(coords):
        lon, lat = geo.wgs84_to_gcj02(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    gcj = shapely.transform(polygon_wgs84, to_gcj)
    return {
        "type": "Feature",
        "properties": {"street_code": code},
        "geometry": shapely.geometry.mapping(gcj),
    }


def test_import_replaces_and_reassigns(city, tmp_path):
    code, x, y = one(
        city,
        "SELECT code, ST_X(label_point), ST_Y(label_point) FROM street"
        " WHERE district_adcode = '310115' ORDER BY code LIMIT 1",
    )
    # a 4 km square around the street's label point, reaching into its neighbours
    square = shapely.box(x - 0.02, y - 0.018, x + 0.02, y + 0.018)
    path = tmp_path / "streets.geojson"
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": [_gcj_feature(code, square)]})
    )
    raw_before = one(city, "SELECT count(*) FROM reading")[0]

    assert import_street_boundaries(city, path=path, datum="gcj02") == 1

    approximate, source = one(
        city, "SELECT approximate, geom_source FROM street WHERE code = :c", c=code
    )
    assert approximate is False and source == "import:streets.geojson"
    # stored in WGS-84: the imported area is the square we meant, not one shifted by the datum
    overlap = one(
        city,
        "SELECT ST_Area(ST_Intersection(geom, ST_GeomFromText(:sq, 4326)))"
        " / ST_Area(ST_GeomFromText(:sq, 4326)) FROM street WHERE code = :c",
        sq=square.wkt,
        c=code,
    )[0]
    assert overlap > 0.9
    overlapping = one(
        city,
        "SELECT count(*) FROM street a JOIN street b ON a.code < b.code"
        " AND a.district_adcode = b.district_adcode"
        " AND ST_Area(ST_Intersection(a.geom, b.geom)::geography) > 1",
    )[0]
    assert overlapping == 0
    misplaced = one(
        city,
        "SELECT count(*) FROM device d JOIN street s ON s.code = d.street_code"
        " WHERE NOT ST_Intersects(s.geom, d.geom)",
    )[0]
    assert misplaced == 0
    inside = one(city, "SELECT count(*) FROM device WHERE street_code = :c", c=code)[0]
    assert inside > 0
    rollup_rows = one(city, "SELECT sum(n_readings) FROM rollup_street_15m")[0]
    assert rollup_rows == raw_before
    by_street = one(
        city,
        "SELECT coalesce(sum(n_readings), 0) FROM rollup_street_15m WHERE street_code = :c",
        c=code,
    )[0]
    truth = one(
        city,
        "SELECT count(*) FROM reading r JOIN device d ON d.id = r.device_id"
        " WHERE d.street_code = :c",
        c=code,
    )[0]
    assert by_street == truth


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a readable GeoJSON"),
        ('{"type": "FeatureCollection", "features": []}', "no features"),
        (
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties":'
            ' {"street_code": "999999999"}, "geometry": null}]}',
            "is not one of the 234",
        ),
    ],
)
def test_bad_files_are_explained(city, tmp_path, content, message):
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(StreetImportError, match=message):
        import_street_boundaries(city, path=path)
