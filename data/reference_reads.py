"""Reading the reference geography: code look-ups (allow-lists for callbacks), boundaries for
the maps, area bounds for walls. Loading it is data/reference_data.py."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.checks import InvalidQuery, check_scope

# Reference look-ups (allow-lists for callbacks) -------------------------------------------------


def district_codes(engine: Engine) -> dict[str, tuple[str, str]]:
    """adcode → (name_zh, name_en) of every district."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT adcode, name_zh, name_en FROM district ORDER BY adcode")
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def category_codes(engine: Engine) -> dict[str, tuple[str, str]]:
    """category code → (name_zh, name_en), in display order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT code, name_zh, name_en FROM device_category ORDER BY sort_order")
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def street_names(engine: Engine, *, district: str) -> dict[str, tuple[str, str, bool]]:
    """street code → (name_zh, name_en, approximate) of one district's streets/towns."""
    check_scope(district=district)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT code, name_zh, name_en, approximate FROM street"
                " WHERE district_adcode = :district ORDER BY code"
            ),
            {"district": district},
        )
        return {r[0]: (r[1], r[2], bool(r[3])) for r in rows}


def grid_cell_ids(engine: Engine) -> np.ndarray:
    """Every H3 cell id in the grid, as int64."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT cell FROM grid_cell")).scalars().all()
    return np.asarray(rows, dtype=np.int64)


# Boundaries for the maps ----------------------------------------------------------------------

BOUNDARY_LEVELS = ("city", "districts", "streets", "grid")

# Simplification tolerances in degrees (~20 m and ~10 m at Shanghai): invisible at city and
# district zoom, and far smaller than the slivers a coarser per-polygon simplification would open
# between neighbours.
_DISTRICT_TOLERANCE = 0.0002
_STREET_TOLERANCE = 0.0001

_BOUNDARY_SQL = {
    "city": """
        SELECT 'city' AS code, '上海市' AS name_zh, 'Shanghai' AS name_en,
               NULL::text AS district_adcode, false AS approximate,
               ST_SimplifyPreserveTopology(geom, {district_tol}) AS geom
        FROM city_outline
    """,
    "districts": """
        SELECT adcode AS code, name_zh, name_en, adcode AS district_adcode,
               false AS approximate, ST_SimplifyPreserveTopology(geom, {district_tol}) AS geom
        FROM district
        WHERE CAST(:district AS text) IS NULL OR adcode = :district
    """,
    "streets": """
        SELECT code, name_zh, name_en, district_adcode, approximate,
               ST_SimplifyPreserveTopology(geom, {street_tol}) AS geom
        FROM street
        WHERE CAST(:district AS text) IS NULL OR district_adcode = :district
    """,
    "grid": """
        SELECT cell::text AS code, NULL::text AS name_zh, NULL::text AS name_en,
               district_adcode, false AS approximate, geom
        FROM grid_cell
        WHERE CAST(:district AS text) IS NULL OR district_adcode = :district
    """,
}


def boundaries_geojson(engine: Engine, *, level: str, district: str | None = None) -> str:
    """A GeoJSON FeatureCollection (text) of one boundary level, built and simplified in PostGIS.

    Feature ids are the area codes, so map styling can key on them; coordinates have 6 decimals
    (~0.1 m).
    """
    if level not in BOUNDARY_LEVELS:
        raise InvalidQuery(f"level must be one of {', '.join(BOUNDARY_LEVELS)}, not {level!r}")
    check_scope(district=district)
    inner = _BOUNDARY_SQL[level].format(
        district_tol=_DISTRICT_TOLERANCE, street_tol=_STREET_TOLERANCE
    )
    statement = sa.text(
        "SELECT json_build_object('type', 'FeatureCollection', 'features',"
        " coalesce(json_agg(json_build_object("
        "   'type', 'Feature', 'id', b.code,"
        "   'properties', json_build_object('code', b.code, 'name_zh', b.name_zh,"
        "       'name_en', b.name_en, 'district', b.district_adcode,"
        "       'approximate', b.approximate),"
        "   'geometry', ST_AsGeoJSON(b.geom, 6)::json) ORDER BY b.code), '[]'::json))::text"
        f" FROM ({inner}) b"
    )
    with engine.connect() as conn:
        collection: str = conn.execute(statement, {"district": district}).scalar_one()
    return collection


def reference_version(engine: Engine) -> str:
    """Changes whenever reference geography is (re)loaded or streets are imported."""
    with engine.connect() as conn:
        version: str = conn.execute(
            sa.text(
                "SELECT coalesce(max(updated_at)::text, 'none') FROM app_meta"
                " WHERE key IN ('reference', 'streets_imported')"
            )
        ).scalar_one()
    return version


# Walls: where areas are --------------------------------------------------------------------------


def area_bounds(engine: Engine, *, district: str | None = None) -> dict[str, list[list[float]]]:
    """code → [[south, west], [north, east]]: every district (and the city), or one district's
    streets."""
    check_scope(district=district)
    if district is None:
        statement = sa.text(
            "SELECT adcode, ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e)"
            " FROM (SELECT adcode, ST_Envelope(geom) AS e FROM district) d"
            " UNION ALL SELECT 'city', ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e)"
            " FROM (SELECT ST_Envelope(geom) AS e FROM city_outline) c"
        )
    else:
        statement = sa.text(
            "SELECT code, ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e)"
            " FROM (SELECT code, ST_Envelope(geom) AS e FROM street"
            "       WHERE district_adcode = :district) s"
        )
    with engine.connect() as conn:
        rows = conn.execute(statement, {"district": district}).all()
    return {
        row[0]: [[round(row[1], 5), round(row[2], 5)], [round(row[3], 5), round(row[4], 5)]]
        for row in rows
    }


def street_districts(engine: Engine) -> dict[str, str]:
    """street code → district adcode of every street/town."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT code, district_adcode FROM street")).all()
    return {code: district for code, district in rows}
