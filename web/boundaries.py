"""Map boundaries served by URL: simplified once in PostGIS, cached per process, ETag-validated.

Map components point their GeoJSON layers at `boundary_url(...)` instead of sending polygons
through callbacks, so a refresh never re-sends or rebuilds geometry.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import threading

import geobuf
from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from data.errors import OneScreenError, report_failure
from data.reference_reads import (
    BOUNDARY_LEVELS,
    boundaries_geojson,
    district_codes,
    reference_version,
)
from web.services import web_engine

log = logging.getLogger(__name__)

DISTRICT_LEVELS = ("districts", "streets", "grid")


def boundary_url(*, level: str, district: str | None = None, fmt: str = "geojson") -> str:
    """Where a map layer fetches one boundary level (optionally of one district).

    `fmt="pbf"` is geobuf (gzip'd on the wire): a third of the GeoJSON size for the H3 grid.
    """
    if district is None:
        return f"/geo/{level}.{fmt}"
    return f"/geo/district/{district}/{level}.{fmt}"


def _geobuf_gz(body: str) -> bytes:
    return gzip.compress(geobuf.encode(json.loads(body), 6, 2), compresslevel=6)


class _BoundaryCache:
    """GeoJSON bodies by (level, district), valid for one reference-data version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._bodies: dict[tuple[str, str | None], tuple[str, str]] = {}
        self._geobufs: dict[tuple[str, str | None], bytes] = {}
        self._districts: set[str] = set()

    def get(self, level: str, district: str | None) -> tuple[str, str] | None:
        engine = web_engine()
        version = reference_version(engine)
        with self._lock:
            if version != self._version:
                self._version = version
                self._bodies.clear()
                self._geobufs.clear()
                self._districts = set(district_codes(engine))
            if district is not None and district not in self._districts:
                return None
            cached = self._bodies.get((level, district))
        if cached is None:
            body = boundaries_geojson(engine, level=level, district=district)
            etag = hashlib.sha1(f"{version}|{body}".encode()).hexdigest()[:20]
            cached = (etag, body)
            with self._lock:
                self._bodies[(level, district)] = cached
        return cached

    def get_geobuf(self, level: str, district: str | None) -> tuple[str, bytes] | None:
        found = self.get(level, district)
        if found is None:
            return None
        etag, body = found
        with self._lock:
            packed = self._geobufs.get((level, district))
        if packed is None:
            packed = _geobuf_gz(body)
            with self._lock:
                self._geobufs[(level, district)] = packed
        return f"{etag}-pbf", packed


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


BOUNDARIES = "onescreen-boundaries"


def register_boundary_routes(server: Flask) -> None:
    """Add the /geo/… routes to the Flask server behind the Dash app."""
    server.extensions[BOUNDARIES] = _BoundaryCache()
    for rule, view in (
        ("/geo/<level>.geojson", city_boundaries),
        ("/geo/<level>.pbf", city_boundaries_geobuf),
        ("/geo/district/<district>/<level>.geojson", district_boundaries),
        ("/geo/district/<district>/<level>.pbf", district_boundaries_geobuf),
    ):
        server.add_url_rule(rule, view_func=view, methods=["GET"])


def warm_boundaries(server: Flask) -> int:
    """Build now the bodies first views fetch: the city's districts, and each district's streets
    (GeoJSON) and grid (geobuf); how many."""
    with server.app_context():
        cache: _BoundaryCache = server.extensions[BOUNDARIES]
        built = 1 if cache.get("districts", None) else 0
        for district in district_codes(web_engine()):
            built += bool(cache.get("streets", district)) + bool(cache.get_geobuf("grid", district))
    return built


def city_boundaries(level: str) -> Response:
    """GET /geo/<level>.geojson: one city-wide boundary level as GeoJSON."""
    return _serve(level, None)


def city_boundaries_geobuf(level: str) -> Response:
    """GET /geo/<level>.pbf: one city-wide boundary level as geobuf."""
    return _serve(level, None, "pbf")


def district_boundaries(district: str, level: str) -> Response:
    """GET /geo/district/<district>/<level>.geojson: one level inside a district as GeoJSON."""
    return _serve(level, district)


def district_boundaries_geobuf(district: str, level: str) -> Response:
    """GET /geo/district/<district>/<level>.pbf: one level inside a district as geobuf."""
    return _serve(level, district, "pbf")


def _serve(level: str, district: str | None, fmt: str = "geojson") -> Response:
    """One boundary level from this app's cache, ETag-validated, in GeoJSON or geobuf."""
    allowed = BOUNDARY_LEVELS if district is None else DISTRICT_LEVELS
    if level not in allowed:
        return _error(404, f"unknown boundary level {level!r}; one of {', '.join(allowed)}")
    cache: _BoundaryCache = current_app.extensions[BOUNDARIES]
    try:
        found: tuple[str, str] | tuple[str, bytes] | None = (
            cache.get(level, district) if fmt == "geojson" else cache.get_geobuf(level, district)
        )
    except (SQLAlchemyError, OneScreenError) as exc:
        report_failure(log, "boundaries unavailable", exc)
        return _error(503, "boundaries temporarily unavailable")
    if found is None:
        return _error(404, f"unknown district {district!r}")
    etag, body = found
    response = _body_response(etag, body)
    response.set_etag(etag)
    # short max-age: an import of real street boundaries must reach open screens soon
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _body_response(etag: str, body: str | bytes) -> Response:
    """304 when the client holds `etag`; else GeoJSON text, or geobuf gzip'd when accepted."""
    if request.if_none_match.contains(etag):
        return Response(status=304)
    if isinstance(body, str):
        return Response(body, mimetype="application/geo+json")
    if "gzip" in (request.headers.get("Accept-Encoding") or ""):
        response = Response(body, mimetype="application/x-protobuf")
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Vary"] = "Accept-Encoding"
        return response
    return Response(gzip.decompress(body), mimetype="application/x-protobuf")
