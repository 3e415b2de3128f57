"""Geography without SQL: GCJ-02 ↔ WGS-84, reference boundaries, approximate streets, H3 grid."""

from __future__ import annotations

from pathlib import Path
from typing import overload

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
WGS84 = "EPSG:4326"
METRIC_CRS = "EPSG:32651"  # UTM 51N: metres across Shanghai

# GCJ-02 (the offset datum of AMap and other Chinese web maps) on the Krasovsky ellipsoid.
_A = 6378245.0
_EE = 0.00669342162296594323
# 1e-9° is about 0.1 mm; the fixed point gains ~5 digits a step, so 20 steps is never reached
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_STEPS = 20

# 8 discrete Lloyd steps even out cells as much as ~10 exact Voronoi steps, at a third of the cost
_LLOYD_STEPS = 8
_LLOYD_SAMPLES_PER_CELL = 300


def _outside_china(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.bool_]:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _offset(
    lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
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
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
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
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    outside = _outside_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _forward(
    lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def _inverse(
    lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    w_lon, w_lat = lon.copy(), lat.copy()
    for _ in range(_INVERSE_MAX_STEPS):
        f_lon, f_lat = _forward(w_lon, w_lat)
        step_lon, step_lat = f_lon - lon, f_lat - lat
        w_lon, w_lat = w_lon - step_lon, w_lat - step_lat
        if max(np.max(np.abs(step_lon), initial=0.0), np.max(np.abs(step_lat), initial=0.0)) < (
            _INVERSE_TOLERANCE_DEG
        ):
            break
    return w_lon, w_lat


def _shaped(
    lon: ArrayLike, lat: ArrayLike, out: tuple[NDArray[np.float64], NDArray[np.float64]]
) -> tuple[float, float] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    if np.ndim(lon) == 0 and np.ndim(lat) == 0:
        return float(out[0]), float(out[1])
    return out


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def wgs84_to_gcj02(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[float, float] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    """WGS-84 → GCJ-02 for floats or arrays (points outside China are returned unchanged)."""
    out = _forward(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return _shaped(lon, lat, out)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def gcj02_to_wgs84(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[float, float] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    """GCJ-02 → WGS-84 by fixed-point iteration on the forward formula (round trip ≪ 1 cm)."""
    out = _inverse(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return _shaped(lon, lat, out)


def geometry_gcj02_to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    """Any shapely geometry from GCJ-02 to WGS-84."""

    def convert(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack(_inverse(coords[:, 0], coords[:, 1]))

    return shapely.transform(geom, convert)


def _as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    geom = shapely.make_valid(geom)
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    # make_valid and intersection can leave slivers as lines or points: only areas count here
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
    geometry = [_as_multipolygon(geometry_gcj02_to_wgs84(g)) for g in frame.geometry]
    # the file says EPSG:4326 because GeoJSON must; its numbers are GCJ-02 until converted above
    frame = gpd.GeoDataFrame(frame[["adcode", "name_zh", "name_en"]], geometry=geometry, crs=WGS84)
    return frame.sort_values("adcode").reset_index(drop=True)


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
    return frame[["code", "district_adcode", "name_zh", "name_en"]]


def _sample_points(
    polygon: BaseGeometry, count: int, rng: np.random.Generator
) -> NDArray[np.float64]:
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
    # Lloyd on a dense sample of the polygon (k-means) handles islands and concave coasts
    # without clipping Voronoi cells at every step
    sample = _sample_points(polygon, max(4000, count * _LLOYD_SAMPLES_PER_CELL), rng)
    for _ in range(_LLOYD_STEPS):
        owner = ((sample[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        for k in range(count):
            mine = sample[owner == k]
            if len(mine):
                seeds[k] = mine.mean(axis=0)
    # a concave district can pull a centroid outside itself; snapping it to one of its *own*
    # samples keeps every seed inside and distinct, so no street ends up with an empty cell
    owner = ((sample[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    for k in np.flatnonzero(~shapely.contains_xy(polygon, seeds[:, 0], seeds[:, 1])):
        mine = sample[owner == k]
        pool = mine if len(mine) else sample
        seeds[k] = pool[((pool - seeds[k]) ** 2).sum(axis=1).argmin()]
    minx, miny, maxx, maxy = polygon.bounds
    envelope = shapely.box(minx - 1000, miny - 1000, maxx + 1000, maxy + 1000)
    regions = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=envelope, ordered=True)
    cells = list(shapely.intersection(np.asarray(regions.geoms), polygon))
    if len(cells) != count or any(shapely.area(cells) <= 0):
        raise ValueError(f"partition produced {len(cells)} cells for {count} seeds")
    return cells


def approximate_streets(
    districts: gpd.GeoDataFrame, streets: pd.DataFrame, *, seed: int = 20260701
) -> gpd.GeoDataFrame:
    """Plausible, non-overlapping street areas: a seeded Voronoi partition of each district."""
    metric = districts.to_crs(METRIC_CRS)
    rows = []
    for adcode, area in zip(metric["adcode"], metric.geometry, strict=True):
        mine = streets[streets["district_adcode"] == adcode].sort_values("code")
        if mine.empty:
            continue
        # one stream per district: adding a street in one district leaves the others unchanged
        rng = np.random.default_rng([seed, int(adcode)])
        cells = _partition(area, len(mine), rng)
        for street, cell in zip(mine.itertuples(), cells, strict=True):
            rows.append(
                {
                    "code": street.code,
                    "district_adcode": adcode,
                    "name_zh": street.name_zh,
                    "name_en": street.name_en,
                    "geometry": _as_multipolygon(cell),
                }
            )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=METRIC_CRS).to_crs(WGS84)
    # geopandas makes a geometry column of the list; pandas-stubs take no list of objects
    frame["geometry"] = [_as_multipolygon(g) for g in frame.geometry]  # type: ignore[assignment]
    frame["approximate"] = True
    return frame


def _hexagon(cell: str) -> Polygon:
    return Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])


def h3_grid(
    districts: gpd.GeoDataFrame, streets: gpd.GeoDataFrame, *, resolution: int = 8
) -> gpd.GeoDataFrame:
    """H3 cells whose centre lies in a district, with the district and street of that centre."""
    # h3 and GEOS may round a centre near an edge differently: gather with a one-edge margin
    # and let GEOS decide below
    margin_deg = h3.average_hexagon_edge_length(resolution, unit="km") / 111.0
    candidates: set[str] = set()
    for geom in districts.geometry:
        shape = h3.geo_to_h3shape(geom.buffer(margin_deg).__geo_interface__)
        candidates.update(h3.h3shape_to_cells(shape, resolution))
    ids = np.array(sorted(candidates), dtype=object)
    centres = np.array([h3.cell_to_latlng(c) for c in ids]).reshape(-1, 2)  # (lat, lng)
    points = gpd.GeoDataFrame(
        {"cell_str": ids},
        geometry=gpd.points_from_xy(centres[:, 1], centres[:, 0]),
        crs=WGS84,
    )

    in_district = gpd.sjoin(
        points, districts[["adcode", "geometry"]], how="inner", predicate="intersects"
    )
    # a centre on a shared border belongs to the lower adcode, so reruns agree
    in_district = (
        in_district.sort_values(["cell_str", "adcode"])
        .drop_duplicates("cell_str")
        .drop(columns="index_right")
        .rename(columns={"adcode": "district_adcode"})
    )
    street_shapes = streets[["code", "district_adcode", "geometry"]].rename(
        columns={"code": "street_code", "district_adcode": "street_district"}
    )
    in_street = gpd.sjoin(in_district, street_shapes, how="left", predicate="intersects")
    # a street of the neighbouring district touching the centre does not count; NaN sorts last,
    # so a cell keeps a street of its own district whenever it has one
    foreign = in_street["street_district"] != in_street["district_adcode"]
    in_street.loc[foreign, "street_code"] = np.nan
    in_street = in_street.sort_values(["cell_str", "street_code"]).drop_duplicates("cell_str")
    assigned = in_street[["cell_str", "district_adcode", "street_code", "geometry"]]

    # streets read back rounded from the store, or imported with holes, can leave gaps: a centre
    # there takes the nearest street of its own district rather than being dropped
    missing = assigned["street_code"].isna()
    if missing.any():
        nearest = _nearest_street(assigned[missing], street_shapes)
        assigned = assigned.copy()
        assigned.loc[missing, "street_code"] = nearest
        assigned = assigned[assigned["street_code"].notna()]

    return gpd.GeoDataFrame(
        {
            "cell": np.array([h3.str_to_int(c) for c in assigned["cell_str"]], dtype=np.int64),
            "resolution": np.full(len(assigned), resolution, dtype=np.int64),
            "district_adcode": assigned["district_adcode"].to_numpy(dtype=str),
            "street_code": assigned["street_code"].to_numpy(dtype=str),
        },
        geometry=[_hexagon(c) for c in assigned["cell_str"]],
        crs=WGS84,
    )


def _nearest_street(points: gpd.GeoDataFrame, streets: gpd.GeoDataFrame) -> list[str | None]:
    metric_streets = streets.to_crs(METRIC_CRS)
    metric_points = points.to_crs(METRIC_CRS)
    found: list[str | None] = []
    for point, adcode in zip(metric_points.geometry, metric_points["district_adcode"], strict=True):
        mine = metric_streets[metric_streets["street_district"] == adcode]
        if mine.empty:
            found.append(None)
            continue
        found.append(str(mine["street_code"].iloc[int(np.argmin(mine.distance(point)))]))
    return found


def point_cells(lon: ArrayLike, lat: ArrayLike, *, resolution: int = 8) -> NDArray[np.int64]:
    """H3 cell (int64) of each point."""
    lon_a = np.asarray(lon, dtype=float).ravel()
    lat_a = np.asarray(lat, dtype=float).ravel()
    to_cell, to_int = h3.latlng_to_cell, h3.str_to_int
    return np.fromiter(
        (
            to_int(to_cell(y, x, resolution))
            for x, y in zip(lon_a.tolist(), lat_a.tolist(), strict=True)
        ),
        dtype=np.int64,
        count=len(lon_a),
    )
