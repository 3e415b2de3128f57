"""Map boundaries served by URL: simplified once in PostGIS, cached per process, ETag-validated.

Map components point their GeoJSON layers at `boundary_url(...)` instead of sending polygons
through callbacks, so a refresh never re-sends or rebuilds geometry.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from data.engine import get_engine
from data.errors import OneScreenError
from data.queries import BOUNDARY_LEVELS, boundaries_geojson, district_codes, reference_version

log = logging.getLogger(__name__)

DISTRICT_LEVELS = ("districts", "streets", "grid")


def boundary_url(*, level: str, district: str | None = None) -> str:
    """Where a map layer fetches one boundary level (optionally of one district)."""
    if district is None:
        return f"/geo/{level}.geojson"
    return f"/geo/district/{district}/{level}.geojson"


class _BoundaryCache:
    """GeoJSON bodies by (level, district), valid for one reference-data version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._bodies: dict[tuple[str, str | None], tuple[str, str]] = {}
        self._districts: set[str] = set()

    def get(self, level: str, district: str | None) -> tuple[str, str] | None:
        engine = get_engine()
        version = reference_version(engine)
        with self._lock:
            if version != self._version:
                self._version = version
                self._bodies.clear()
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


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def register_boundary_routes(server: Flask) -> None:
    """Add the /geo/… routes to the Flask server behind the Dash app."""
    cache = _BoundaryCache()

    def serve(level: str, district: str | None) -> Response:
        allowed = BOUNDARY_LEVELS if district is None else DISTRICT_LEVELS
        if level not in allowed:
            return _error(404, f"unknown boundary level {level!r}; one of {', '.join(allowed)}")
        try:
            found = cache.get(level, district)
        except (SQLAlchemyError, OneScreenError):
            log.exception("boundaries unavailable")
            return _error(503, "boundaries temporarily unavailable")
        if found is None:
            return _error(404, f"unknown district {district!r}")
        etag, body = found
        if request.if_none_match.contains(etag):
            response = Response(status=304)
        else:
            response = Response(body, mimetype="application/geo+json")
        response.set_etag(etag)
        # short max-age: an import of real street boundaries must reach open screens soon
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @server.get("/geo/<level>.geojson")
    def city_boundaries(level: str) -> Response:
        return serve(level, None)

    @server.get("/geo/district/<district>/<level>.geojson")
    def district_boundaries(district: str, level: str) -> Response:
        return serve(level, district)
