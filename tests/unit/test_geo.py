"""GCJ-02 ↔ WGS-84 conversion, reference boundaries, approximate streets and the H3 grid."""

import numpy as np
import pytest
import shapely
from pyproj import Geod

from data import geo

GEOD = Geod(ellps="WGS84")


def metres(lon1, lat1, lon2, lat2):
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def test_round_trips_are_far_below_a_centimetre():
    lon, lat = np.meshgrid(np.linspace(120.85, 122.2, 40), np.linspace(30.65, 31.9, 40))
    lon, lat = lon.ravel(), lat.ravel()
    back_lon, back_lat = geo.gcj02_to_wgs84(*geo.wgs84_to_gcj02(lon, lat))
    assert np.max(metres(lon, lat, back_lon, back_lat)) < 0.01
    again_lon, again_lat = geo.wgs84_to_gcj02(*geo.gcj02_to_wgs84(lon, lat))
    assert np.max(metres(lon, lat, again_lon, again_lat)) < 0.01


def test_scalars_in_scalars_out():
    out = geo.wgs84_to_gcj02(121.4737, 31.2304)
    assert isinstance(out[0], float) and isinstance(out[1], float)
    back = geo.gcj02_to_wgs84(*out)
    assert metres(121.4737, 31.2304, *back) < 0.01


def test_offset_at_peoples_square_is_a_few_hundred_metres():
    gcj = geo.wgs84_to_gcj02(121.4737, 31.2304)
    assert 300 < metres(121.4737, 31.2304, *gcj) < 700


def test_outside_china_is_unchanged():
    assert geo.wgs84_to_gcj02(2.3522, 48.8566) == (2.3522, 48.8566)
    assert geo.gcj02_to_wgs84(-74.006, 40.7128) == (-74.006, 40.7128)


def test_geometry_conversion_moves_every_vertex():
    square = shapely.box(121.4, 31.2, 121.5, 31.3)
    moved = geo.geometry_gcj02_to_wgs84(square)
    original = shapely.get_coordinates(square)
    converted = shapely.get_coordinates(moved)
    distances = metres(original[:, 0], original[:, 1], converted[:, 0], converted[:, 1])
    assert np.all((distances > 300) & (distances < 700))


@pytest.fixture(scope="module")
def districts():
    return geo.district_frame()


@pytest.fixture(scope="module")
def streets(districts):
    return geo.approximate_streets(districts, geo.street_frame())


def test_districts(districts):
    assert len(districts) == 16
    assert districts["adcode"].str.match(r"^3101\d\d$").all()
    assert districts.is_valid.all()
    assert districts.crs.to_epsg() == 4326


def test_approximate_streets_partition_each_district(districts, streets):
    assert len(streets) == 234
    assert not streets.geometry.is_empty.any()
    assert streets.is_valid.all()
    metric_districts = districts.to_crs(geo.METRIC_CRS).set_index("adcode")
    metric_streets = streets.to_crs(geo.METRIC_CRS)
    for adcode, group in metric_streets.groupby("district_adcode"):
        district = metric_districts.geometry[adcode]
        union = shapely.union_all(group.geometry.values)
        assert union.symmetric_difference(district).area < 1e-6 * district.area, adcode
        assert group.area.sum() == pytest.approx(district.area, rel=1e-6), adcode


def test_approximate_streets_are_seeded(districts):
    table = geo.street_frame()
    first = geo.approximate_streets(districts, table, seed=1)
    again = geo.approximate_streets(districts, table, seed=1)
    other = geo.approximate_streets(districts, table, seed=2)
    assert all(a.equals(b) for a, b in zip(first.geometry, again.geometry, strict=True))
    assert not all(a.equals(b) for a, b in zip(first.geometry, other.geometry, strict=True))


def test_h3_grid_assignment(districts, streets):
    grid = geo.h3_grid(districts, streets, resolution=8)
    assert grid["cell"].is_unique
    by_code = streets.set_index("code").geometry
    sample = grid.sample(300, random_state=1)
    for row in sample.itertuples():
        assert by_code[row.street_code].contains(row.geometry.centroid)
    pudong_cells = (grid["district_adcode"] == "310115").sum()
    pudong_km2 = districts.to_crs(geo.METRIC_CRS).set_index("adcode").area["310115"] / 1e6
    # res-8 hexagons cover ~0.56 km² at Shanghai's latitude
    assert pudong_cells == pytest.approx(pudong_km2 / 0.56, rel=0.1)


def test_point_cells_matches_h3():
    import h3

    cells = geo.point_cells(np.array([121.4737, 121.5]), np.array([31.2304, 31.3]), resolution=8)
    assert cells.dtype == np.int64
    assert cells[0] == h3.str_to_int(h3.latlng_to_cell(31.2304, 121.4737, 8))
