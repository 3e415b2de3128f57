"""Geography without SQL: GCJ-02 ↔ WGS-84, reference boundaries, approximate streets, H3 grid."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
METRIC_CRS = "EPSG:32651"  # UTM 51N: metres across Shanghai

# GCJ-02 (the offset datum of AMap and other Chinese web maps) on the Krasovsky ellipsoid.
_A = 6378245.0
_EE = 0.00669342162296594323


def _outside_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = lon - 105.0, lat - 35.0
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad_lat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat):
    """WGS-84 → GCJ-02 for floats or arrays (points outside China are returned unchanged)."""
    lon_a, lat_a = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _delta(lon_a, lat_a)
    outside = _outside_china(lon_a, lat_a)
    out_lon = np.where(outside, lon_a, lon_a + dlon)
    out_lat = np.where(outside, lat_a, lat_a + dlat)
    if np.ndim(lon) == 0 and np.ndim(lat) == 0:
        return float(out_lon), float(out_lat)
    return out_lon, out_lat


def gcj02_to_wgs84(lon, lat):
    """GCJ-02 → WGS-84 by fixed-point iteration on the forward transform (error ≪ 1 cm)."""
    g_lon, g_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(30):
        f_lon, f_lat = wgs84_to_gcj02(w_lon, w_lat)
        e_lon, e_lat = np.asarray(f_lon) - g_lon, np.asarray(f_lat) - g_lat
        w_lon, w_lat = w_lon - e_lon, w_lat - e_lat
        if max(np.max(np.abs(e_lon), initial=0), np.max(np.abs(e_lat), initial=0)) < 1e-10:
            break
    if np.ndim(lon) == 0 and np.ndim(lat) == 0:
        return float(w_lon), float(w_lat)
    return w_lon, w_lat


def geometry_gcj02_to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    """Any shapely geometry from GCJ-02 to WGS-84."""

    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = gcj02_to_wgs84(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geom, convert)


def _as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    geom = shapely.make_valid(geom)
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    parts: list[Polygon] = []
    for part in getattr(geom, "geoms", []):
        if isinstance(part, Polygon):
            parts.append(part)
        elif isinstance(part, MultiPolygon):
            parts.extend(part.geoms)
    return MultiPolygon(parts)


def district_frame(*, path: Path | None = None) -> gpd.GeoDataFrame:
    """The 16 districts in WGS-84: adcode, name_zh, name_en, geometry (valid MultiPolygons)."""
    frame = gpd.read_file(path or REFERENCE_DIR / "shanghai_districts_gcj02.geojson")
    frame["adcode"] = frame["adcode"].astype(str)
    frame["geometry"] = [_as_multipolygon(geometry_gcj02_to_wgs84(g)) for g in frame.geometry]
    frame = frame.set_crs("EPSG:4326", allow_override=True)
    return (
        frame[["adcode", "name_zh", "name_en", "geometry"]]
        .sort_values("adcode")
        .reset_index(drop=True)
    )


def city_outline(*, path: Path | None = None) -> MultiPolygon:
    """Shanghai's outline in WGS-84."""
    frame = gpd.read_file(path or REFERENCE_DIR / "shanghai_city_gcj02.geojson")
    return _as_multipolygon(geometry_gcj02_to_wgs84(shapely.union_all(frame.geometry.values)))


def street_frame(*, path: Path | None = None) -> pd.DataFrame:
    """The 234 streets/towns: code, district_adcode, name_zh, name_en (codes as text)."""
    frame = pd.read_csv(
        path or REFERENCE_DIR / "streets.csv",
        dtype={"street_code": str, "district_adcode": str},
    )
    frame = frame.rename(columns={"street_code": "code"})
    if "name_en" not in frame:
        frame["name_en"] = frame["name_zh"]
    return frame[["code", "district_adcode", "name_zh", "name_en"]]


def _sample_points(polygon: BaseGeometry, count: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = polygon.bounds
    shapely.prepare(polygon)
    points = np.empty((0, 2))
    while len(points) < count:
        xs = rng.uniform(minx, maxx, count * 8 + 32)
        ys = rng.uniform(miny, maxy, count * 8 + 32)
        inside = shapely.contains_xy(polygon, xs, ys)
        points = np.vstack([points, np.column_stack([xs[inside], ys[inside]])])
    return points[:count]


def _partition(polygon: BaseGeometry, count: int, rng: np.random.Generator) -> list[BaseGeometry]:
    """`count` non-overlapping cells covering polygon: Voronoi of seeds relaxed by Lloyd steps."""
    if count == 1:
        return [polygon]
    seeds = _sample_points(polygon, count, rng)
    # Lloyd relaxation on a dense sample approximates centroidal Voronoi cells cheaply
    sample = _sample_points(polygon, max(4000, count * 300), rng)
    for _ in range(8):
        d2 = ((sample[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
        owner = d2.argmin(axis=1)
        for k in range(count):
            mine = sample[owner == k]
            if len(mine):
                seeds[k] = mine.mean(axis=0)
    # a concave district can pull a centroid outside itself: pull it back to the nearest sample
    outside = ~shapely.contains_xy(polygon, seeds[:, 0], seeds[:, 1])
    for k in np.flatnonzero(outside):
        seeds[k] = sample[((sample - seeds[k]) ** 2).sum(axis=1).argmin()]
    envelope = shapely.box(*polygon.buffer(1000).bounds)
    regions = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=envelope)
    cells = list(regions.geoms)
    # voronoi_polygons does not keep input order: match each region to the seed it contains
    ordered: list[BaseGeometry] = [Polygon()] * count
    for cell in cells:
        inside = shapely.contains_xy(cell, seeds[:, 0], seeds[:, 1])
        index = int(np.flatnonzero(inside)[0]) if inside.any() else -1
        if index >= 0:
            ordered[index] = cell.intersection(polygon)
    return ordered


def approximate_streets(
    districts: gpd.GeoDataFrame, streets: pd.DataFrame, *, seed: int = 20260701
) -> gpd.GeoDataFrame:
    """Plausible, non-overlapping street areas: a seeded Voronoi partition of each district."""
    metric = districts.to_crs(METRIC_CRS)
    rows = []
    for district in metric.itertuples():
        mine = streets[streets["district_adcode"] == district.adcode].sort_values("code")
        if mine.empty:
            continue
        rng = np.random.default_rng([seed, int(district.adcode)])
        cells = _partition(district.geometry, len(mine), rng)
        for street, cell in zip(mine.itertuples(), cells, strict=True):
            rows.append(
                {
                    "code": street.code,
                    "district_adcode": district.adcode,
                    "name_zh": street.name_zh,
                    "name_en": street.name_en,
                    "geometry": _as_multipolygon(cell),
                }
            )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=METRIC_CRS).to_crs("EPSG:4326")
    frame["geometry"] = [_as_multipolygon(g) for g in frame.geometry]
    frame["approximate"] = True
    return frame


def h3_grid(
    districts: gpd.GeoDataFrame, streets: gpd.GeoDataFrame, *, resolution: int = 8
) -> gpd.GeoDataFrame:
    """H3 cells whose centre lies in a district, with the district and street of that centre."""
    cells: set[str] = set()
    for geom in districts.geometry:
        # a one-cell buffer catches hexagons whose centre is inside but whose body pokes out
        shape = h3.geo_to_h3shape(geom.buffer(0.01).__geo_interface__)
        cells.update(h3.h3shape_to_cells(shape, resolution))
    ids = sorted(cells)
    centres = np.array([h3.cell_to_latlng(c) for c in ids])  # (lat, lng)
    points = gpd.GeoDataFrame(
        {"cell_str": ids},
        geometry=gpd.points_from_xy(centres[:, 1], centres[:, 0]),
        crs="EPSG:4326",
    )
    street_shapes = streets[["code", "district_adcode", "geometry"]].rename(
        columns={"code": "street_code"}
    )
    joined = gpd.sjoin(points, street_shapes, how="inner", predicate="within")
    joined = joined.drop_duplicates("cell_str")
    hexagons = [
        Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in joined["cell_str"]
    ]
    return gpd.GeoDataFrame(
        {
            "cell": [h3.str_to_int(c) for c in joined["cell_str"]],
            "resolution": resolution,
            "district_adcode": joined["district_adcode"].to_numpy(),
            "street_code": joined["street_code"].to_numpy(),
        },
        geometry=hexagons,
        crs="EPSG:4326",
    ).astype({"cell": "int64"})


def point_cells(lon: np.ndarray, lat: np.ndarray, *, resolution: int = 8) -> np.ndarray:
    """H3 cell (int64) of each point."""
    to_cell = h3.latlng_to_cell
    to_int = h3.str_to_int
    return np.fromiter(
        (to_int(to_cell(y, x, resolution)) for x, y in zip(lon, lat, strict=True)),
        dtype=np.int64,
        count=len(lon),
    )
