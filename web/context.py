"""The map context layer by URL: /geo/context.geojson, by box or district and zoom, cached.

Bodies are cached per process for one context version (an `import-context` changes it) and
validated by ETag, like the boundaries; parameters are checked and refused with a clear message.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from urllib.parse import urlencode

from flask import Flask, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from data.context_data import context_geojson, context_version
from data.errors import OneScreenError, report_failure
from data.reference_reads import district_codes
from web.boundaries import _body_response, _error
from web.services import web_engine

log = logging.getLogger(__name__)

CONTEXT = "onescreen-context"
PARAMS = {"bbox", "district", "zoom"}
ZOOMS = range(8, 19)
CITY_ZOOM, DISTRICT_ZOOM = 10, 13
# enough for every district and the usual boxes; a flood of distinct boxes only clears it
MAX_CACHED = 128
_NUMBER = r"-?\d{1,3}(?:\.\d{1,7})?"
_BBOX = re.compile(rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$")


def context_url(*, district: str | None = None, detail: bool = False) -> str:
    """Where a map fetches its context: the city's (with stations when `detail`, for maps that
    zoom to streets), or around one district."""
    if district is None:
        return f"/geo/context.geojson?zoom={DISTRICT_ZOOM if detail else CITY_ZOOM}"
    return f"/geo/context.geojson?{urlencode({'district': district, 'zoom': DISTRICT_ZOOM})}"


Key = tuple[tuple[float, float, float, float] | None, str | None, int]


class _ContextCache:
    """GeoJSON bodies by (bbox, district, zoom), valid for one context version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: str | None = None
        self._bodies: dict[Key, tuple[str, str]] = {}
        self._districts: set[str] = set()

    def known_district(self, district: str) -> bool:
        with self._lock:
            if district in self._districts:
                return True
        self._districts = set(district_codes(web_engine()))
        return district in self._districts

    def get(self, key: Key) -> tuple[str, str]:
        engine = web_engine()
        version = context_version(engine)
        with self._lock:
            if version != self._version or len(self._bodies) >= MAX_CACHED:
                self._version = version
                self._bodies.clear()
            cached = self._bodies.get(key)
        if cached is None:
            bbox, district, zoom = key
            body = context_geojson(engine, bbox=bbox, district=district, zoom=zoom)
            cached = (hashlib.sha1(f"{version}|{body}".encode()).hexdigest()[:20], body)
            with self._lock:
                self._bodies[key] = cached
        return cached


def register_context_routes(server: Flask) -> None:
    """Add GET /geo/context.geojson to the Flask server behind the Dash app."""
    server.extensions[CONTEXT] = _ContextCache()
    server.add_url_rule("/geo/context.geojson", view_func=map_context, methods=["GET"])


def _parse(args: dict[str, str]) -> Key | str:
    """The cache key of the query, or the message saying what is wrong with it."""
    unknown = sorted(set(args) - PARAMS)
    if unknown:
        return f"unknown parameter {unknown[0]!r}; use bbox, district and zoom"
    zoom_text = args.get("zoom", str(CITY_ZOOM))
    if not zoom_text.isdigit() or int(zoom_text) not in ZOOMS:
        return f"zoom must be a whole number from {ZOOMS[0]} to {ZOOMS[-1]}, not {zoom_text!r}"
    district = args.get("district")
    if district is not None and not re.fullmatch(r"\d{6}", district):
        return f"district must be a 6-digit adcode, not {district!r}"
    bbox = None
    if "bbox" in args:
        if district is not None:
            return "give bbox or district, not both"
        if not _BBOX.match(args["bbox"]):
            return "bbox must be west,south,east,north in degrees, e.g. 121.4,31.1,121.6,31.3"
        west, south, east, north = (float(v) for v in args["bbox"].split(","))
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            return "bbox must have west < east and south < north, within ±180/±90 degrees"
        bbox = (west, south, east, north)
    return (bbox, district, int(zoom_text))


def map_context() -> Response:
    """GET /geo/context.geojson?[bbox=w,s,e,n|district=ADCODE]&zoom=Z: the context features."""
    key = _parse(request.args.to_dict())
    if isinstance(key, str):
        return _error(400, key)
    cache: _ContextCache = current_app.extensions[CONTEXT]
    try:
        if key[1] is not None and not cache.known_district(key[1]):
            return _error(404, f"unknown district {key[1]!r}")
        etag, body = cache.get(key)
    except (SQLAlchemyError, OneScreenError) as exc:
        report_failure(log, "map context unavailable", exc)
        return _error(503, "map context temporarily unavailable")
    response = _body_response(etag, body)
    response.set_etag(etag)
    # short max-age: an import of a new context must reach open screens soon
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
