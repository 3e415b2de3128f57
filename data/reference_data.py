"""Load the reference data (districts, streets, H3 grid, device catalogue) into the store."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
import sqlalchemy as sa
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Engine

from data import catalog, geo
from data.context_data import load_context_if_empty
from data.writes import copy_rows, set_meta

log = logging.getLogger(__name__)

GRID_RESOLUTION = 8
METRIC_CRS = "EPSG:32651"  # UTM 51N: metres over Shanghai, for areas
STREET_SEED = 20260701


class StreetImportError(ValueError):
    """A street-boundary file cannot be imported; the message says which feature and why."""


@dataclass(frozen=True)
class ReferenceSummary:
    """What the store holds after loading."""

    districts: int
    streets: int
    approximate_streets: int
    grid_cells: int
    categories: int
    device_types: int


def _ewkt(geom: BaseGeometry) -> str:
    return f"SRID=4326;{shapely.to_wkt(geom, rounding_precision=7, trim=True)}"


def _multi(geom: BaseGeometry) -> MultiPolygon:
    geom = shapely.make_valid(geom)
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    polygons = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
    parts: list[Polygon] = []
    for g in polygons:
        parts.extend(g.geoms if isinstance(g, MultiPolygon) else [g])
    return MultiPolygon(parts)


def reference_summary(engine: Engine) -> ReferenceSummary:
    """Count what reference data the store holds."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM district), (SELECT count(*) FROM street),"
                " (SELECT count(*) FROM street WHERE approximate),"
                " (SELECT count(*) FROM grid_cell), (SELECT count(*) FROM device_category),"
                " (SELECT count(*) FROM device_type)"
            )
        ).one()
    return ReferenceSummary(*(int(v) for v in row))


def load_reference_data(engine: Engine, *, street_seed: int = STREET_SEED) -> ReferenceSummary:
    """Fill empty reference tables; tables that already hold data are left as they are."""
    load_context_if_empty(engine)
    summary = reference_summary(engine)
    if summary.districts and summary.streets and summary.grid_cells and summary.device_types:
        return summary
    districts = geo.district_frame()
    streets_table = geo.street_frame()
    with engine.begin() as conn:
        if not summary.districts:
            _insert_districts(conn, districts)
        if not summary.streets:
            streets = geo.approximate_streets(districts, streets_table, seed=street_seed)
            _insert_streets(conn, streets, source=f"voronoi:seed={street_seed}")
            refresh_street_neighbours(conn)
        if not summary.grid_cells:
            _insert_grid(conn)
        if not summary.device_types:
            _insert_catalog(conn)
        set_meta(
            conn,
            key="reference",
            value={
                "datum": "WGS-84 (EPSG:4326), converted from AMap GCJ-02 at load",
                "street_seed": street_seed,
                "grid_resolution": GRID_RESOLUTION,
            },
        )
    return reference_summary(engine)


def _insert_districts(conn: sa.Connection, districts: gpd.GeoDataFrame) -> None:
    areas = districts.to_crs(METRIC_CRS).area / 1e6
    rows = (
        (
            row.adcode,
            row.name_zh,
            row.name_en,
            float(area),
            _ewkt(_multi(geom)),
            _ewkt(geom.representative_point()),
        )
        for row, geom, area in zip(districts.itertuples(), districts.geometry, areas, strict=True)
    )
    copy_rows(
        conn,
        table="district",
        columns=["adcode", "name_zh", "name_en", "area_km2", "geom", "label_point"],
        rows=rows,
    )
    outline = geo.city_outline()
    copy_rows(conn, table="city_outline", columns=["geom"], rows=[(_ewkt(_multi(outline)),)])


def refresh_street_neighbours(conn: sa.Connection) -> int:
    """Recompute which streets neighbour which (revision 0009 on; 0 before it)."""
    if not conn.execute(sa.text("SELECT to_regclass('street_neighbour') IS NOT NULL")).scalar():
        return 0
    return int(conn.execute(sa.text("SELECT refresh_street_neighbours()")).scalar_one())


def _insert_streets(conn: sa.Connection, streets: gpd.GeoDataFrame, *, source: str) -> None:
    areas = streets.to_crs(METRIC_CRS).area / 1e6
    rows = (
        (
            row.code,
            row.district_adcode,
            row.name_zh,
            row.name_en,
            float(area),
            True,
            source,
            _ewkt(_multi(geom)),
            _ewkt(geom.representative_point()),
        )
        for row, geom, area in zip(streets.itertuples(), streets.geometry, areas, strict=True)
    )
    copy_rows(
        conn,
        table="street",
        columns=[
            "code",
            "district_adcode",
            "name_zh",
            "name_en",
            "area_km2",
            "approximate",
            "geom_source",
            "geom",
            "label_point",
        ],
        rows=rows,
    )


def _read_geoframe(conn: sa.Connection, sql: str) -> gpd.GeoDataFrame:
    """The rows of a query whose `geom` column is the geometry."""
    # geopandas passes a SQLAlchemy text() on to pandas; its stubs list only a str
    frame: gpd.GeoDataFrame = gpd.read_postgis(sa.text(sql), conn, geom_col="geom")  # type: ignore[call-overload]
    return frame


def _street_geoframe(conn: sa.Connection) -> gpd.GeoDataFrame:
    return _read_geoframe(
        conn, "SELECT code, district_adcode, geom FROM street ORDER BY code"
    ).rename_geometry("geometry")


def _district_geoframe(conn: sa.Connection) -> gpd.GeoDataFrame:
    return _read_geoframe(
        conn, "SELECT adcode, geom FROM district ORDER BY adcode"
    ).rename_geometry("geometry")


def _insert_grid(conn: sa.Connection) -> None:
    cells = geo.h3_grid(
        _district_geoframe(conn), _street_geoframe(conn), resolution=GRID_RESOLUTION
    )
    rows = (
        (int(cell), GRID_RESOLUTION, district, street, _ewkt(geom))
        for cell, district, street, geom in zip(
            cells["cell"],
            cells["district_adcode"],
            cells["street_code"],
            cells.geometry,
            strict=True,
        )
    )
    copy_rows(
        conn,
        table="grid_cell",
        columns=["cell", "resolution", "district_adcode", "street_code", "geom"],
        rows=rows,
    )


def _insert_catalog(conn: sa.Connection) -> None:
    categories = catalog.load_categories()
    copy_rows(
        conn,
        table="device_category",
        columns=["code", "name_zh", "name_en", "scenario_zh", "scenario_en", "color", "sort_order"],
        rows=(
            (c.code, c.name_zh, c.name_en, c.scenario_zh, c.scenario_en, c.color, c.sort_order)
            for c in categories
        ),
    )
    copy_rows(
        conn,
        table="device_type",
        columns=[
            "id",
            "code",
            "category_code",
            "name_zh",
            "name_en",
            "measurand",
            "unit",
            "value_kind",
            "interval_s",
            "normal_min",
            "normal_max",
            "alarm_min",
            "alarm_max",
            "decimals",
        ],
        rows=(
            (
                t.type_id,
                t.code,
                t.category,
                t.name_zh,
                t.name_en,
                t.measurand,
                t.unit,
                t.value_kind,
                t.interval_s,
                t.normal_min,
                t.normal_max,
                t.alarm_min,
                t.alarm_max,
                t.decimals,
            )
            for t in catalog.load_device_types()
        ),
    )


def import_street_boundaries(
    engine: Engine, *, path: Path, datum: str = "gcj02", code_property: str = "street_code"
) -> int:
    """Replace generated street areas with real ones from a GeoJSON file; returns streets replaced.

    Streets not in the file keep their approximate areas, trimmed so nothing overlaps; devices,
    grid cells and rollups are re-assigned to the new areas.
    """
    if datum not in ("gcj02", "wgs84"):
        raise StreetImportError(f"datum must be gcj02 or wgs84, not {datum!r}")
    features = _read_features(path)
    with engine.begin() as conn:
        known = dict(
            conn.execute(sa.text("SELECT code, district_adcode FROM street")).tuples().all()
        )
        imported = _street_geometries(
            features, known=known, code_property=code_property, datum=datum
        )
        if not imported:
            raise StreetImportError(f"{path}: no features")
        for code, geom in imported.items():
            conn.execute(
                sa.text(
                    "UPDATE street SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid("
                    "ST_Intersection(ST_GeomFromEWKT(:geom), d.geom)), 3)),"
                    " approximate = false, geom_source = :source"
                    " FROM district d"
                    " WHERE street.code = :code AND d.adcode = street.district_adcode"
                ),
                {"geom": _ewkt(geom), "code": code, "source": f"import:{Path(path).name}"},
            )
        _fit_generated_streets(conn)
        _reassign_to_streets(conn)
        refresh_street_neighbours(conn)
        set_meta(
            conn,
            key="streets_imported",
            value={"file": Path(path).name, "datum": datum, "streets": sorted(imported)},
        )
    return len(imported)


def _read_features(path: Path) -> list[dict[str, Any]]:
    """The features of a GeoJSON FeatureCollection file, or StreetImportError saying why not."""
    try:
        collection = json.loads(Path(path).read_text(encoding="utf-8"))
        features: list[dict[str, Any]] = collection["features"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StreetImportError(
            f"{path}: not a readable GeoJSON FeatureCollection ({exc})"
        ) from None
    return features


def _street_geometries(
    features: list[dict[str, Any]], *, known: dict[str, str], code_property: str, datum: str
) -> dict[str, BaseGeometry]:
    """Each feature's WGS-84 multipolygon by street code; the first bad feature raises."""
    imported: dict[str, BaseGeometry] = {}
    for number, feature in enumerate(features, start=1):
        props = feature.get("properties") or {}
        code = str(props.get(code_property, "")).strip()
        if code not in known:
            raise StreetImportError(
                f"feature {number}: property {code_property!r} = {code!r} is not one of the "
                "234 street/town codes"
            )
        try:
            geom = shapely.geometry.shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StreetImportError(f"feature {number} ({code}): bad geometry ({exc})") from None
        if datum == "gcj02":
            geom = geo.geometry_gcj02_to_wgs84(geom)
        geom = _multi(geom)
        if geom.is_empty:
            raise StreetImportError(f"feature {number} ({code}): geometry is empty")
        imported[code] = geom
    return imported


def _fit_generated_streets(conn: sa.Connection) -> None:
    """Trim generated streets around the imported ones, fill the gaps left, refresh areas."""
    # generated neighbours give way to real boundaries
    conn.execute(
        sa.text(
            "UPDATE street s SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid("
            "ST_Difference(s.geom, real.geom)), 3))"
            " FROM (SELECT district_adcode, ST_Union(geom) AS geom FROM street"
            "       WHERE NOT approximate GROUP BY district_adcode) real"
            " WHERE s.approximate AND s.district_adcode = real.district_adcode"
        )
    )
    # what a smaller real area leaves uncovered goes to the nearest generated neighbour, so
    # the streets still partition their district
    conn.execute(
        sa.text(
            "WITH holes AS ("
            "  SELECT row_number() OVER () AS id, h.adcode, h.geom FROM ("
            "    SELECT d.adcode,"
            "      (ST_Dump(ST_CollectionExtract(ST_MakeValid("
            "         ST_Difference(d.geom, ST_Union(s.geom))), 3))).geom AS geom"
            "    FROM district d JOIN street s ON s.district_adcode = d.adcode"
            "    GROUP BY d.adcode, d.geom) h"
            "  WHERE ST_Area(h.geom::geography) > 1),"
            " owner AS ("
            "  SELECT DISTINCT ON (h.id) h.id, h.geom, s.code FROM holes h"
            "  JOIN street s ON s.district_adcode = h.adcode AND s.approximate"
            "  ORDER BY h.id, ST_Distance(s.geom, h.geom), s.code)"
            " UPDATE street s SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid("
            "   ST_Union(s.geom, g.geom)), 3))"
            " FROM (SELECT code, ST_Union(geom) AS geom FROM owner GROUP BY code) g"
            " WHERE s.code = g.code"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE street SET area_km2 = greatest(ST_Area(geom::geography) / 1e6, 1e-6),"
            " label_point = ST_PointOnSurface(geom)"
        )
    )


def _reassign_to_streets(conn: sa.Connection) -> None:
    conn.execute(
        sa.text(
            "UPDATE device d SET street_code = s.code FROM street s"
            " WHERE s.district_adcode = d.district_adcode AND ST_Intersects(s.geom, d.geom)"
            " AND d.street_code <> s.code"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE grid_cell g SET street_code = s.code FROM street s"
            " WHERE s.district_adcode = g.district_adcode"
            " AND ST_Intersects(s.geom, ST_Centroid(g.geom)) AND g.street_code <> s.code"
        )
    )
    bounds = conn.execute(sa.text("SELECT min(bucket), max(bucket) FROM rollup_street_15m")).one()
    if bounds[0] is not None:
        conn.execute(
            sa.text("SELECT rebuild_rollups(:start, :end + interval '15 minutes')"),
            {"start": bounds[0], "end": bounds[1]},
        )


def streets_frame(engine: Engine) -> pd.DataFrame:
    """Streets with district, names, urban flag, area and WGS-84 geometry (for the generator)."""
    with engine.connect() as conn:
        return _read_geoframe(
            conn,
            "SELECT code, district_adcode, name_zh, name_en, area_km2, geom FROM street"
            " ORDER BY district_adcode, code",
        )
