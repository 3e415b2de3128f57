"""The map context layer (sea, coast, rivers, metro, roads): load, import, and read by area."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Engine

from data import geo
from data.writes import copy_rows, set_meta

BUNDLED = geo.REFERENCE_DIR / "context_shanghai_wgs84.geojson"
KINDS = ("water", "coast", "river", "road", "metro_line", "metro_station")
# the geometry each kind must have
SHAPES = {
    "water": ("Polygon", "MultiPolygon"),
    "metro_station": ("Point",),
    **{k: ("LineString", "MultiLineString") for k in ("coast", "river", "road", "metro_line")},
}
# as far as the maps may pan (components/area_map.py): a file with nothing here is not Shanghai
# in the datum it was said to be in
REGION = shapely.box(120.3, 30.2, 122.7, 32.3)
MAX_FEATURES = 200_000
SIMPLIFY_DEG = 0.00005  # ~5 m: finer than any map here draws
# stations and roads only where a street-level map can show them
DETAIL_ZOOM = 12
_COLOR = re.compile(r"^#?[0-9a-fA-F]{6}$")


class ContextImportError(ValueError):
    """A context file cannot be imported; the message says which feature and why."""


@dataclass(frozen=True)
class ContextFeature:
    """One feature of the context layer, WGS-84."""

    kind: str
    geom: BaseGeometry
    name_zh: str | None = None
    name_en: str | None = None
    ref: str | None = None
    color: str | None = None
    source: str = ""


def _osm_kind(props: dict[str, Any]) -> str | None:
    """The context kind of an OpenStreetMap-tagged feature (or of one already kinded)."""
    if props.get("kind") in KINDS:
        return str(props["kind"])
    railway, highway = props.get("railway"), props.get("highway")
    if props.get("natural") == "coastline":
        return "coast"
    if props.get("waterway") in ("river", "canal"):
        return "river"
    if props.get("natural") == "water" or props.get("waterway") == "riverbank":
        return "water"
    if railway in ("subway", "light_rail", "monorail"):
        return "metro_line"
    if railway in ("station", "halt", "stop") and (
        props.get("station") in ("subway", "light_rail") or props.get("subway") == "yes"
    ):
        return "metro_station"
    if highway in ("motorway", "trunk", "primary", "secondary"):
        return "road"
    return None


def _text(props: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = props.get(key)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()[:80]
    return None


def parse_features(collection: Any, *, datum: str, source: str) -> tuple[list[ContextFeature], int]:
    """The context features of a GeoJSON FeatureCollection (WGS-84) and how many were skipped."""
    if datum not in ("gcj02", "wgs84"):
        raise ContextImportError(f"datum must be wgs84 or gcj02, not {datum!r}")
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list):
        raise ContextImportError("not a GeoJSON FeatureCollection (no list of features)")
    if len(features) > MAX_FEATURES:
        raise ContextImportError(f"{len(features)} features; at most {MAX_FEATURES} are accepted")
    found: list[ContextFeature] = []
    for number, feature in enumerate(features, start=1):
        props = (feature.get("properties") if isinstance(feature, dict) else None) or {}
        kind = _osm_kind(props)
        if kind is None:
            continue
        geom = _geometry(feature, number=number, kind=kind, datum=datum)
        color = _text(props, "color", "colour")
        found.append(
            ContextFeature(
                kind=kind,
                geom=geom,
                name_zh=_text(props, "name_zh", "name:zh", "name"),
                name_en=_text(props, "name_en", "name:en"),
                ref=_text(props, "ref"),
                color=("#" + color.lstrip("#").lower()) if color and _COLOR.match(color) else None,
                source=_text(props, "source") or source,
            )
        )
    if not found:
        raise ContextImportError(
            "no context features: expected OpenStreetMap tags (waterway=river, natural=water or "
            "coastline, railway=subway, railway=station with station=subway, highway=motorway/"
            "trunk/primary/secondary) or a `kind` property"
        )
    if not any(f.geom.intersects(REGION) for f in found):
        raise ContextImportError(
            "no feature lies in or near Shanghai: a different area, or coordinates not in "
            f"{datum} (use --datum)"
        )
    return found, len(features) - len(found)


def _geometry(feature: dict[str, Any], *, number: int, kind: str, datum: str) -> BaseGeometry:
    """The feature's valid WGS-84 geometry, or ContextImportError saying why not."""
    try:
        geom = shapely.geometry.shape(feature["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ContextImportError(f"feature {number} ({kind}): bad geometry ({exc})") from None
    if geom.geom_type not in SHAPES[kind]:
        raise ContextImportError(
            f"feature {number} ({kind}): a {geom.geom_type}, expected {' or '.join(SHAPES[kind])}"
        )
    if geom.is_empty:
        raise ContextImportError(f"feature {number} ({kind}): geometry is empty")
    if datum == "gcj02":
        geom = geo.geometry_gcj02_to_wgs84(geom)
    return shapely.make_valid(geom) if kind == "water" else geom


def read_context_file(path: Path, *, datum: str = "wgs84") -> tuple[list[ContextFeature], int]:
    """The context features of a GeoJSON file and how many it had of no context kind."""
    try:
        collection = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContextImportError(f"{path}: not a readable GeoJSON file ({exc})") from None
    try:
        return parse_features(collection, datum=datum, source=f"import:{Path(path).name}")
    except ContextImportError as exc:
        raise ContextImportError(f"{path}: {exc}") from None


def replace_context(engine: Engine, features: list[ContextFeature], *, origin: str) -> int:
    """Replace the whole context layer with `features`; how many are stored."""
    rows = (
        (
            f.kind,
            f.name_zh,
            f.name_en,
            f.ref,
            f.color,
            f.source,
            f"SRID=4326;{shapely.to_wkt(f.geom, rounding_precision=6, trim=True)}",
        )
        for f in features
    )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM map_context"))
        copy_rows(
            conn,
            table="map_context",
            columns=["kind", "name_zh", "name_en", "ref", "color", "source", "geom"],
            rows=rows,
        )
        # lines and areas kept to ~5 m: a large extract stays small to serve
        conn.execute(
            sa.text(
                "UPDATE map_context SET geom = ST_SimplifyPreserveTopology(geom, :tol)"
                " WHERE kind <> 'metro_station'"
            ),
            {"tol": SIMPLIFY_DEG},
        )
        set_meta(conn, key="context", value={"origin": origin, "features": len(features)})
    return len(features)


def import_context(engine: Engine, *, path: Path, datum: str = "wgs84") -> tuple[int, int]:
    """Replace the context layer with a user's GeoJSON extract; (stored, skipped)."""
    features, skipped = read_context_file(path, datum=datum)
    return replace_context(engine, features, origin=Path(path).name), skipped


def load_context_if_empty(engine: Engine) -> int:
    """Load the bundled Shanghai context when the store has none; how many features loaded."""
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM map_context)")).scalar_one():
            return 0
    features, _ = read_context_file(BUNDLED)
    return replace_context(engine, features, origin=BUNDLED.name)


def context_version(engine: Engine) -> str:
    """Changes whenever the context layer is replaced."""
    with engine.connect() as conn:
        version: str = conn.execute(
            sa.text(
                "SELECT coalesce(max(updated_at)::text, 'none') FROM app_meta WHERE key = 'context'"
            )
        ).scalar_one()
    return version


def context_geojson(
    engine: Engine,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    district: str | None = None,
    zoom: int = 10,
    limit: int = 20_000,
) -> str:
    """The context features in a box (or around a district) as GeoJSON text, coarser when far out.

    Stations and roads only from DETAIL_ZOOM; water and lines simplified to what `zoom` shows.
    """
    # a pixel at zoom z is ~ 156 km·cos(31°)/2^z: simplify to about one pixel
    tolerance = 0.0 if zoom >= 14 else 1.2 / 2**zoom
    statement = sa.text(
        "WITH area AS ("
        "  SELECT CASE WHEN CAST(:district AS text) IS NOT NULL THEN"
        "    (SELECT ST_Expand(ST_Envelope(geom), 0.05) FROM district WHERE adcode = :district)"
        "  WHEN CAST(:west AS float8) IS NOT NULL THEN"
        "    ST_MakeEnvelope(:west, :south, :east, :north, 4326) END AS box)"
        " SELECT coalesce(json_agg(json_build_object("
        "   'type', 'Feature',"
        "   'properties', json_strip_nulls(json_build_object('kind', c.kind, 'name_zh', c.name_zh,"
        "     'name_en', c.name_en, 'ref', c.ref, 'color', c.color)),"
        "   'geometry', ST_AsGeoJSON(CASE WHEN :tolerance > 0 AND c.kind <> 'metro_station'"
        "     THEN ST_SimplifyPreserveTopology(c.geom, :tolerance) ELSE c.geom END, 6)::json)"
        "   ORDER BY c.id), '[]')::text"
        " FROM (SELECT m.* FROM map_context m, area"
        "   WHERE (area.box IS NULL OR m.geom && area.box)"
        "   AND (:zoom >= :detail OR m.kind NOT IN ('metro_station', 'road'))"
        "   ORDER BY m.id LIMIT :limit) c"
    )
    west, south, east, north = bbox if bbox else (None, None, None, None)
    with engine.connect() as conn:
        features: str = conn.execute(
            statement,
            {
                "district": district,
                "west": west,
                "south": south,
                "east": east,
                "north": north,
                "tolerance": tolerance,
                "zoom": zoom,
                "detail": DETAIL_ZOOM,
                "limit": limit,
            },
        ).scalar_one()
    return '{"type":"FeatureCollection","features":' + features + "}"
