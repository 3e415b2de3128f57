"""Device points of a district served by URL as gzip'd geobuf, cached briefly, for clustering.

At seed scale Pudong has ~100k devices: as GeoJSON that is ~11 MB, as geobuf ~2.7 MB and
~0.55 MB gzip'd; the browser clusters them (supercluster) so only a few hundred markers draw.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from urllib.parse import urlencode

import geobuf
from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from components import reference
from components.theme import STATE_RANK
from data.engine import get_engine
from data.errors import OneScreenError
from data.queries import InvalidQuery, area_devices

log = logging.getLogger(__name__)

# devices change state continuously: a snapshot is reused for this long (and the URL says which)
SNAPSHOT_SECONDS = 120
_PRECISION = 5  # ~1 m
_KEEP = 64


def snapshot_version(now: float | None = None) -> int:
    """The current snapshot number; part of the layer URL so browsers refetch when it changes."""
    return int((time.time() if now is None else now) // SNAPSHOT_SECONDS)


def devices_url(*, district: str, category: str | None, version: int | None = None) -> str:
    """The URL of a district's device points (optionally one category)."""
    query = {"v": snapshot_version() if version is None else version}
    if category:
        query["category"] = category
    return f"/geo/district/{district}/devices.pbf?{urlencode(query)}"


def devices_geobuf(*, district: str, category: str | None) -> tuple[bytes, int]:
    """Geobuf bytes of the district's devices (props: id, s = state rank) and count."""
    frame = area_devices(get_engine(), district=district, category=category)
    rank = {state: index for index, state in enumerate(STATE_RANK)}
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]},
            "properties": {"id": int(device_id), "s": rank.get(state, 4)},
        }
        for device_id, lon, lat, state in zip(
            frame.get("id", []),
            frame.get("lon", []),
            frame.get("lat", []),
            frame.get("state", []),
            strict=True,
        )
    ]
    collection = {"type": "FeatureCollection", "features": features}
    return geobuf.encode(collection, _PRECISION, 2), len(features)


class _SnapshotCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[tuple[str, str | None, int], tuple[str, bytes, bytes]] = {}
        self._building: dict[tuple[str, str | None, int], threading.Lock] = {}

    def get(self, district: str, category: str | None, version: int) -> tuple[str, bytes, bytes]:
        key = (district, category, version)
        with self._lock:
            hit = self._bodies.get(key)
            if hit is not None:
                return hit
            building = self._building.setdefault(key, threading.Lock())
        # one build per snapshot even when a whole wall of screens asks at once
        with building:
            with self._lock:
                hit = self._bodies.get(key)
            if hit is not None:
                return hit
            body, _count = devices_geobuf(district=district, category=category)
            etag = hashlib.sha1(body).hexdigest()[:20]
            entry = (etag, body, gzip.compress(body, compresslevel=5))
            with self._lock:
                self._bodies[key] = entry
                self._building.pop(key, None)
                while len(self._bodies) > _KEEP:
                    self._bodies.pop(next(iter(self._bodies)))
            return entry


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def register_device_routes(server: Flask) -> None:
    """Add /geo/district/<adcode>/devices.pbf to the Flask server."""
    cache = _SnapshotCache()

    @server.get("/geo/district/<district>/devices.pbf")
    def district_devices(district: str) -> Response:
        category = request.args.get("category") or None
        try:
            if district not in reference.districts():
                return _error(404, f"unknown district {district!r}")
            if category is not None and category not in reference.categories():
                return _error(400, f"unknown category {category!r}")
            version = request.args.get("v", type=int)
            current = snapshot_version()
            # old or future snapshot numbers map to the current one: nothing is built for them
            version = (
                current if version is None or not current - 1 <= version <= current else version
            )
            etag, body, compressed = cache.get(district, category, version)
        except (SQLAlchemyError, OneScreenError, InvalidQuery):
            log.exception("device points unavailable")
            return _error(503, "device points temporarily unavailable")
        if request.if_none_match.contains(etag):
            response = Response(status=304)
        elif "gzip" in (request.headers.get("Accept-Encoding") or ""):
            response = Response(compressed, mimetype="application/x-protobuf")
            response.headers["Content-Encoding"] = "gzip"
            response.headers["Vary"] = "Accept-Encoding"
        else:
            response = Response(body, mimetype="application/x-protobuf")
        response.set_etag(etag)
        response.headers["Cache-Control"] = f"public, max-age={SNAPSHOT_SECONDS}"
        return response
