"""GCJ-02 ↔ WGS-84 conversion, reference boundaries, approximate streets and the H3 grid."""

import geopandas as gpd
import h3
import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon

from data import geo

GEOD = Geod(ellps="WGS84")
PUDONG = "310115"


def metres(lon1, lat1, lon2, lat2):
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


@pytest.fixture(scope="module")
def grid_points():
    lon, lat = np.meshgrid(np.linspace(120.85, 122.2, 40), np.linspace(30.65, 31.9, 40))
    return lon.ravel(), lat.ravel()


def test_round_trips_are_far_below_a_centimetre(grid_points):
    lon, lat = grid_points
    back_lon, back_lat = geo.gcj02_to_wgs84(*geo.wgs84_to_gcj02(lon, lat))
    assert np.max(metres(lon, lat, back_lon, back_lat)) < 0.01
    again_lon, again_lat = geo.wgs84_to_gcj02(*geo.gcj02_to_wgs84(lon, lat))
    assert np.max(metres(lon, lat, again_lon, again_lat)) < 0.01


def test_arrays_keep_their_shape(grid_points):
    lon, lat = (a.reshape(40, 40) for a in grid_points)
    out_lon, out_lat = geo.gcj02_to_wgs84(lon, lat)
    assert out_lon.shape == out_lat.shape == (40, 40)


def test_scalars_in_scalars_out():
    out = geo.wgs84_to_gcj02(121.4737, 31.2304)
    assert isinstance(out[0], float) and isinstance(out[1], float)
    back = geo.gcj02_to_wgs84(*out)
    assert isinstance(back[0], float) and isinstance(back[1], float)
    assert metres(121.4737, 31.2304, *back) < 0.01
    again = geo.wgs84_to_gcj02(*geo.gcj02_to_wgs84(121.4737, 31.2304))
    assert metres(121.4737, 31.2304, *again) < 0.01


def test_offset_at_peoples_square_is_a_few_hundred_metres():
    gcj = geo.wgs84_to_gcj02(121.4737, 31.2304)
    assert 300 < metres(121.4737, 31.2304, *gcj) < 700


def test_outside_china_is_unchanged():
    assert geo.wgs84_to_gcj02(2.3522, 48.8566) == (2.3522, 48.8566)
    assert geo.gcj02_to_wgs84(-74.006, 40.7128) == (-74.006, 40.7128)
    lon, lat = np.array([2.3522, 121.4737]), np.array([48.8566, 31.2304])
    out_lon, out_lat = geo.gcj02_to_wgs84(lon, lat)
    assert (out_lon[0], out_lat[0]) == (2.3522, 48.8566)
    assert (out_lon[1], out_lat[1]) != (121.4737, 31.2304)


def test_geometry_conversion_moves_every_vertex():
    square = shapely.box(121.4, 31.2, 121.5, 31.3)
    moved = geo.geometry_gcj02_to_wgs84(square)
    original = shapely.get_coordinates(square)
    converted = shapely.get_coordinates(moved)
    distances = metres(original[:, 0], original[:, 1], converted[:, 0], converted[:, 1])
    assert np.all((distances > 300) & (distances < 700))
    lon, lat = geo.gcj02_to_wgs84(original[:, 0], original[:, 1])
    np.testing.assert_array_equal(converted, np.column_stack([lon, lat]))


@pytest.fixture(scope="module")
def districts():
    return geo.district_frame()


@pytest.fixture(scope="module")
def street_table():
    return geo.street_frame()


@pytest.fixture(scope="module")
def streets(districts, street_table):
    return geo.approximate_streets(districts, street_table)


@pytest.fixture(scope="module")
def grid(districts, streets):
    return geo.h3_grid(districts, streets, resolution=8)


def test_districts(districts):
    assert list(districts.columns) == ["adcode", "name_zh", "name_en", "geometry"]
    assert len(districts) == 16
    assert districts["adcode"].str.fullmatch(r"3101\d\d").all()
    assert districts.is_valid.all()
    assert all(isinstance(g, MultiPolygon) for g in districts.geometry)
    assert districts.crs.to_epsg() == 4326
    parts = {a: len(g.geoms) for a, g in zip(districts.adcode, districts.geometry, strict=True)}
    assert (parts["310151"], parts[PUDONG], parts["310116"]) == (5, 3, 4)


def test_district_area(districts):
    # AMap's polygons take in tidal flats and estuary water: ~8,000 km² against the official
    # 6,340 km², so the official figure is a lower bound here
    total_km2 = districts.to_crs(geo.METRIC_CRS).area.sum() / 1e6
    assert total_km2 == pytest.approx(8_000, rel=0.05)
    assert total_km2 > 6_340


def test_districts_are_converted_exactly_once(districts):
    # converted twice, or not at all, every district would sit ~1 km or 0 m from the original
    raw = gpd.read_file(geo.REFERENCE_DIR / "shanghai_districts_gcj02.geojson")
    raw = raw.assign(adcode=raw["adcode"].astype(str)).set_index("adcode")
    for row in districts.itertuples():
        before, after = raw.geometry[row.adcode].centroid, row.geometry.centroid
        assert 300 < metres(before.x, before.y, after.x, after.y) < 700, row.adcode


def test_city_outline_matches_the_districts(districts):
    outline = geo.city_outline()
    assert isinstance(outline, MultiPolygon) and outline.is_valid
    union = shapely.union_all(districts.geometry.values)
    assert outline.symmetric_difference(union).area < 1e-6 * union.area


def test_street_table(street_table, districts):
    assert list(street_table.columns) == ["code", "district_adcode", "name_zh", "name_en"]
    assert len(street_table) == 234
    assert street_table["code"].str.fullmatch(r"3101\d{5}").all()
    assert street_table["code"].is_unique and street_table["name_en"].is_unique
    assert set(street_table["district_adcode"]) == set(districts["adcode"])
    assert (street_table["code"].str[:6] == street_table["district_adcode"]).all()
    names = dict(zip(street_table["name_zh"], street_table["name_en"], strict=True))
    assert names["南京东路街道"] == "Nanjingdonglu Subdistrict"
    assert names["静安寺街道"] == "Jing'ansi Subdistrict"
    assert names["长桥街道"] == "Changqiao Subdistrict"  # 长 read cháng, not zhǎng
    assert names["高行镇"] == "Gaohang Town"
    assert names["横沙乡"] == "Hengsha Township"
    assert names["东海农场"] == "Donghai Farm"


def test_approximate_streets_shape(streets, street_table):
    assert list(streets.columns) == [
        "code",
        "district_adcode",
        "name_zh",
        "name_en",
        "geometry",
        "approximate",
    ]
    assert sorted(streets["code"]) == sorted(street_table["code"])
    assert streets.crs.to_epsg() == 4326
    assert streets["approximate"].all()
    assert all(isinstance(g, MultiPolygon) for g in streets.geometry)
    assert streets.is_valid.all()
    assert (streets.to_crs(geo.METRIC_CRS).area > 10_000).all()  # every street > 1 ha


def test_approximate_streets_partition_each_district(districts, streets):
    metric_districts = districts.to_crs(geo.METRIC_CRS).set_index("adcode")
    metric_streets = streets.to_crs(geo.METRIC_CRS)
    for adcode, group in metric_streets.groupby("district_adcode"):
        district = metric_districts.geometry[adcode]
        cells = group.geometry.to_numpy()
        tree = shapely.STRtree(cells)
        left, right = tree.query(cells, predicate="intersects")
        pairs = left < right
        overlap = shapely.intersection(cells[left[pairs]], cells[right[pairs]])
        assert shapely.area(overlap).sum() < 1e-9 * district.area, adcode
        union = shapely.union_all(cells)
        assert union.symmetric_difference(district).area < 1e-6 * district.area, adcode
        # every island is shared out, not only the main body
        for part in district.geoms:
            assert part.difference(union).area < 1e-6 * district.area, adcode


def test_approximate_streets_are_seeded(districts, street_table):
    first = geo.approximate_streets(districts, street_table, seed=1)
    again = geo.approximate_streets(districts, street_table, seed=1)
    other = geo.approximate_streets(districts, street_table, seed=2)
    assert first["code"].tolist() == again["code"].tolist() == other["code"].tolist()
    assert all(a.equals_exact(b, 0) for a, b in zip(first.geometry, again.geometry, strict=True))
    differs = [not a.equals(b) for a, b in zip(first.geometry, other.geometry, strict=True)]
    assert sum(differs) > 200  # single-street districts aside, every cell moves


def test_h3_grid_columns(grid):
    assert list(grid.columns) == [
        "cell",
        "resolution",
        "district_adcode",
        "street_code",
        "geometry",
    ]
    assert grid.crs.to_epsg() == 4326
    assert grid["cell"].dtype == np.int64 and grid["cell"].is_unique
    assert (grid["resolution"] == 8).all()
    assert grid["street_code"].notna().all()
    first = grid.iloc[0]
    cell = h3.int_to_str(int(first["cell"]))
    lat, lng = h3.cell_to_latlng(cell)
    assert first.geometry.contains(shapely.Point(lng, lat))  # (lng, lat), not h3's (lat, lng)
    assert len(first.geometry.exterior.coords) == 7


def test_h3_grid_assigns_the_street_and_district_of_each_centre(grid, streets, districts):
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in grid["cell"]])
    lat, lng = centres[:, 0], centres[:, 1]
    by_code = streets.set_index("code")
    for code, idx in grid.groupby("street_code").indices.items():
        street = by_code.loc[code]
        assert (grid["district_adcode"].to_numpy()[idx] == street["district_adcode"]).all()
        assert shapely.intersects_xy(street.geometry, lng[idx], lat[idx]).all(), code
    city = shapely.union_all(districts.geometry.values)
    assert shapely.intersects_xy(city, lng, lat).all()


def test_h3_grid_covers_every_district(grid, districts):
    # every centre inside a district is in the grid: count h3's own fill of each district
    for row in districts.itertuples():
        expected = h3.h3shape_to_cells(h3.geo_to_h3shape(row.geometry.__geo_interface__), 8)
        got = (grid["district_adcode"] == row.adcode).sum()
        assert got == pytest.approx(len(expected), rel=0.01), row.adcode


def test_h3_grid_pudong_cell_count(grid, districts):
    pudong = grid[grid["district_adcode"] == PUDONG]
    pudong_km2 = districts.to_crs(geo.METRIC_CRS).set_index("adcode").area[PUDONG] / 1e6
    # res-8 hexagons here average ~0.56 km² (0.737 km² is the global mean), and AMap's Pudong
    # takes in ~1,700 km² including its flats
    cell_km2 = np.mean([h3.cell_area(h3.int_to_str(int(c)), "km^2") for c in pudong["cell"]])
    assert 0.5 < cell_km2 < 0.6
    assert len(pudong) == pytest.approx(pudong_km2 / cell_km2, rel=0.05)


def test_point_cells_match_h3():
    lon = np.array([121.4737, 121.5, 2.3522])
    lat = np.array([31.2304, 31.3, 48.8566])
    cells = geo.point_cells(lon, lat, resolution=8)
    assert cells.dtype == np.int64 and cells.shape == (3,)
    expected = [h3.str_to_int(h3.latlng_to_cell(y, x, 8)) for x, y in zip(lon, lat, strict=True)]
    assert cells.tolist() == expected
    assert geo.point_cells([121.4737], [31.2304], resolution=7)[0] == h3.str_to_int(
        h3.latlng_to_cell(31.2304, 121.4737, 7)
    )
    assert len(geo.point_cells(np.array([]), np.array([]))) == 0


def test_h3_grid_gives_centres_outside_every_street_the_nearest_street(districts, streets, grid):
    # gaps between streets (rounded coordinates, an imported file with holes) must not drop cells
    huangpu = districts[districts["adcode"] == "310101"]
    mine = streets[streets["district_adcode"] == "310101"]
    gone = mine["code"].iloc[0]
    partial = geo.h3_grid(huangpu, mine[mine["code"] != gone], resolution=8)
    assert len(partial) == (grid["district_adcode"] == "310101").sum()
    assert gone not in set(partial["street_code"])
    assert set(partial["street_code"]) <= set(mine["code"])
