"""Reference geography and catalogue as stored: real districts, approximate streets, H3 grid."""

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration


def scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def test_counts(engine, seeded):
    assert scalar(engine, "SELECT count(*) FROM district") == 16
    assert scalar(engine, "SELECT count(*) FROM street") == 234
    assert scalar(engine, "SELECT count(*) FROM device_type") == 360
    assert scalar(engine, "SELECT count(*) FROM device_category") == 12
    assert scalar(engine, "SELECT count(*) FROM grid_cell") > 5000


def test_store_is_wgs84_and_shanghai_sized(engine, seeded):
    assert scalar(engine, "SELECT count(DISTINCT ST_SRID(geom)) FROM district") == 1
    assert scalar(engine, "SELECT min(ST_SRID(geom)) FROM street") == 4326
    total = scalar(engine, "SELECT sum(area_km2) FROM district")
    # AMap's district polygons include tidal flats and estuary water: ~8,000 km², where the
    # official land area is 6,340 km²
    assert 7500 < total < 8500
    # People's Square (WGS-84) lies in Huangpu once the GCJ-02 offset is removed
    assert (
        scalar(
            engine,
            "SELECT adcode FROM district"
            " WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint(121.4737, 31.2304), 4326))",
        )
        == "310101"
    )


def test_streets_partition_their_district(engine, seeded):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.adcode, ST_Area(d.geom::geography), sum(ST_Area(s.geom::geography)),"
                " ST_Area(ST_SymDifference(d.geom, ST_Union(s.geom))::geography),"
                " bool_and(s.approximate)"
                " FROM district d JOIN street s ON s.district_adcode = d.adcode"
                " GROUP BY d.adcode, d.geom"
            )
        ).all()
    assert len(rows) == 16
    for adcode, district_area, street_sum, gap, approximate in rows:
        assert street_sum == pytest.approx(district_area, rel=1e-3), adcode
        assert gap / district_area < 1e-3, adcode
        assert approximate


def test_grid_cells_agree_with_streets(engine, seeded):
    mismatches = scalar(
        engine,
        "SELECT count(*) FROM grid_cell g JOIN street s ON s.code = g.street_code"
        " WHERE NOT ST_Intersects(s.geom, ST_Centroid(g.geom))"
        " OR s.district_adcode <> g.district_adcode",
    )
    assert mismatches == 0


def test_devices_lie_in_their_street(engine, seeded):
    outside = scalar(
        engine,
        "SELECT count(*) FROM device d JOIN street s ON s.code = d.street_code"
        " WHERE NOT ST_Intersects(s.geom, d.geom) OR s.district_adcode <> d.district_adcode",
    )
    assert outside == 0
