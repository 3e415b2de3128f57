"""Device clusters of a district per zoom level, served by URL.

What a district's devices are is read from the status counters by grid cell (data/devices
.cell_points, revision 0015): Pudong costs its ~20,000 cells whether it holds 100k devices or
2.3M, so the layer does not grow with the fleet. One snapshot of a district's cells is read per
SNAPSHOT_SECONDS and cached; each map view asks for `devices.json?zoom=…` and gets at most a few
hundred grid clusters (count, worst state and the count of each state, so the browser can draw
the mix and not just the worst), or, zoomed in past DEVICE_ZOOM, the individual devices inside
its bounding box, read by box (worst first, at most MAX_POINTS).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from datetime import datetime
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from flask import Flask, Response, jsonify, request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from components import reference
from components.replay import replay_at, stamp
from components.theme import STATE_RANK
from data.asof import replay_args
from data.checks import InvalidQuery
from data.clock import CITY_TZ
from data.devices import CELL_STATES, cell_points, devices_in_box
from data.errors import OneScreenError, report_failure
from data.scope import CITY, Scope, scoped
from web.services import EXTENSION, AppServices
from web.session import current_principal

log = logging.getLogger(__name__)

# devices change state continuously: a snapshot is reused for this long (and the URL says which)
SNAPSHOT_SECONDS = 60
DEVICE_ZOOM = 15  # from this zoom on, individual devices are sent (inside the view only)
VIEW_ZOOM = 12  # from this zoom on, only the view (rounded out to 0.02°) is clustered
_VIEW_STEP = 0.02
MIN_ZOOM, MAX_ZOOM = 8, 19
CLUSTER_PIXELS = 56  # grid cell edge on screen
MAX_POINTS = 5000
_KEEP = 256
_SHANGHAI = (120.5, 30.4, 122.5, 32.0)
# a district unseen for a while is shown from a snapshot up to this many periods old (refreshed
# at once in the background) rather than making its first viewer wait for a new one
STALE_VERSIONS = 5
_EMPTY = pd.DataFrame(
    {
        "cell": np.array([], np.int64),
        "lon": np.array([], np.float64),
        "lat": np.array([], np.float64),
        **{state: np.array([], np.int64) for state in CELL_STATES},
    }
)
# the counters' states are the map's, in its order of severity
assert CELL_STATES == STATE_RANK
Box = tuple[float, float, float, float]


def snapshot_version(now: float | None = None) -> int:
    """The current snapshot number; part of the layer URL so browsers refetch when it changes."""
    return int((time.time() if now is None else now) // SNAPSHOT_SECONDS)


def devices_url(
    *,
    district: str,
    category: str | None,
    zoom: float | None = None,
    bounds: list | None = None,
    version: int | None = None,
    at: datetime | None = None,
) -> str:
    """The URL of a district's device clusters (or devices) for a map view; a replay's (`at`)
    clusters the counters as they stood then."""
    level = clamp_zoom(zoom)
    query: dict[str, object] = {"zoom": level}
    if level >= VIEW_ZOOM and bounds:
        (south, west), (north, east) = bounds
        # rounded outwards so small pans reuse the same URL (and the browser's cache)
        step = _VIEW_STEP
        box = (
            math.floor(west / step) * step,
            math.floor(south / step) * step,
            math.ceil(east / step) * step,
            math.ceil(north / step) * step,
        )
        query["bbox"] = ",".join(f"{v:.2f}" for v in box)
    if category:
        query["category"] = category
    query["v"] = snapshot_version() if version is None else version
    if at is not None:
        # the past's devices are clusters at every zoom: counters by cell, not devices
        query.pop("bbox", None)
        query["at"] = stamp(at)
    return f"/geo/district/{district}/devices.json?{urlencode(query)}"


def clamp_zoom(zoom: object) -> int:
    """A zoom level from the browser as an int in [MIN_ZOOM, MAX_ZOOM] (10 when unusable)."""
    try:
        value = float(zoom)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 10
    if math.isnan(value):
        return 10
    return int(min(max(math.floor(value), MIN_ZOOM), MAX_ZOOM))


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """west,south,east,north inside Shanghai's neighbourhood, or None; ValueError if malformed."""
    if not text:
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError("bbox must be west,south,east,north")
    west, south, east, north = (float(p) for p in parts)
    if not (west < east and south < north):
        raise ValueError("bbox must have west < east and south < north")
    lo_w, lo_s, hi_e, hi_n = _SHANGHAI
    if east < lo_w or west > hi_e or north < lo_s or south > hi_n:
        raise ValueError("bbox is outside Shanghai")
    return west, south, east, north


def snapshot_frame(
    engine: Engine,
    *,
    district: str,
    category: str | None,
    bbox: Box | None = None,
    at: datetime | None = None,
) -> pd.DataFrame:
    """The district's devices by grid cell (cell, lon, lat, a count per STATE_RANK state), or
    with a box, its devices inside it (id, lon, lat, s: the rank of the device's state)."""
    # one snapshot serves everyone allowed to see this district: the route checks who asks
    with scoped(Scope(districts=district)):
        if bbox is not None:
            return devices_in_box(
                engine,
                district=district,
                category=category,
                bbox=bbox,
                states=STATE_RANK,
                limit=MAX_POINTS,
            )
        frames = cell_points(engine, district=district, category=category, **replay_args(at))
    return frames.get(district, _EMPTY)


def city_snapshot_frames(engine: Engine) -> dict[str, pd.DataFrame]:
    """Every district's snapshot (no category) from one read: the server's own warm-up, whose
    frames each serve only those the route lets see their district."""
    with scoped(Scope(districts=CITY)):
        return cell_points(engine)


def _point(lon: float, lat: float, properties: dict) -> dict:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
        "properties": properties,
    }


def cluster_features(frame: pd.DataFrame, *, zoom: int, bbox: Box | None) -> dict:
    """GeoJSON of the view: grid clusters (n, worst state s, per-state counts c, zoom_to) or,
    from a frame of devices past DEVICE_ZOOM, single devices."""
    if bbox is not None:
        west, south, east, north = bbox
        frame = frame[frame["lon"].between(west, east) & frame["lat"].between(south, north)]
    if zoom >= DEVICE_ZOOM and "s" in frame:
        # worst first, so a capped answer still shows every alarm
        inside = frame.sort_values("s", kind="stable").head(MAX_POINTS)
        features = [
            _point(lon, lat, {"id": int(i), "s": int(s), "cluster": False})
            for i, lon, lat, s in zip(
                inside["id"], inside["lon"], inside["lat"], inside["s"], strict=True
            )
        ]
        return {"type": "FeatureCollection", "features": features}
    return grid_clusters(frame, zoom=zoom)


def _state_counts(frame: pd.DataFrame) -> np.ndarray:
    """Devices per STATE_RANK state of each row: a device's one-hot, a cell's counts."""
    if "s" in frame:
        ranks = frame["s"].to_numpy().astype(np.int64)
        counts = np.zeros((len(frame), len(STATE_RANK)), dtype=np.int64)
        counts[np.arange(len(frame)), ranks] = 1
        return counts
    return frame[list(STATE_RANK)].to_numpy(dtype=np.int64)


def grid_clusters(frame: pd.DataFrame, *, zoom: int) -> dict:
    """The devices of `frame` (devices, or counts by grid cell) by grid cell of CLUSTER_PIXELS at
    `zoom`, cells in (x, y) order: a single device is itself; more make a cluster at their mean
    point with its count, its worst state and its count per state (`c`, one per STATE_RANK
    entry, drawn as ring segments)."""
    # Web Mercator: one pixel is 360 / (256 · 2^zoom) degrees of longitude
    cell_lon = CLUSTER_PIXELS * 360.0 / (256 * 2**zoom)
    cell_lat = cell_lon * math.cos(math.radians(31.2))
    counts = _state_counts(frame)
    weight = counts.sum(axis=1)
    keep = weight > 0
    frame, counts, weight = frame[keep], counts[keep], weight[keep]
    lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
    # one sortable number per cell (cells are positive: Shanghai is east and north of 0, 0);
    # numpy sums by cell here are 4× faster than a pandas groupby at district zoom
    cell = np.floor(lon / cell_lon).astype(np.int64) * (1 << 31)
    cell += np.floor(lat / cell_lat).astype(np.int64)
    inverse, cells = pd.factorize(cell, sort=True)
    size = len(cells)
    count = np.bincount(inverse, weights=weight, minlength=size).astype(np.int64)
    mix = np.zeros((size, len(STATE_RANK)), dtype=np.int64)
    np.add.at(mix, inverse, counts)
    # a device's id where the cluster is one device given as such (cells do not name theirs)
    single = np.full(size, -1, dtype=np.int64)
    if "id" in frame:
        first = np.full(size, np.iinfo(np.int64).max)
        np.minimum.at(first, inverse, frame["id"].to_numpy())
        single = np.where(count == 1, first, -1)
    columns = (
        (
            np.bincount(inverse, weights=lon * weight, minlength=size) / np.maximum(count, 1)
        ).tolist(),
        (
            np.bincount(inverse, weights=lat * weight, minlength=size) / np.maximum(count, 1)
        ).tolist(),
        count.tolist(),
        # the worst state: the first rank with a device
        (mix > 0).argmax(axis=1).tolist(),
        single.tolist(),
        mix.tolist(),
    )
    zoom_to = min(zoom + 2, DEVICE_ZOOM)
    features = []
    for x, y, n, worst, device, state_counts in zip(*columns, strict=True):
        if device >= 0:
            features.append(_point(x, y, {"id": device, "s": worst, "cluster": False}))
        else:
            properties = {
                "cluster": True,
                "n": n,
                "s": worst,
                "zoom_to": zoom_to,
                "c": state_counts,
            }
            features.append(_point(x, y, properties))
    return {"type": "FeatureCollection", "features": features}


# district, category, snapshot, the view's box (devices one by one) and the replayed instant
_Key = tuple[str, str | None, int, Box | None, datetime | None]


class _SnapshotCache:
    """Frames per (district, category, snapshot, box or None); one build per key under load.

    When a new snapshot is due but an earlier one (at most STALE_VERSIONS old) exists, the
    earlier one is served while the new one builds in the background, so only a district's
    first view after start (which the warm-up prepares) or after a long quiet spell waits.
    """

    def __init__(self, app: AppServices) -> None:
        # the app's services, not the request's: snapshots are also refreshed by threads
        self.app = app
        self._lock = threading.Lock()
        self._frames: dict[_Key, pd.DataFrame] = {}
        self._building: dict[_Key, threading.Lock] = {}

    def get(
        self,
        district: str,
        category: str | None,
        version: int,
        bbox: Box | None = None,
        at: datetime | None = None,
    ) -> pd.DataFrame:
        key = (district, category, version, bbox, at)
        with self._lock:
            hit = self._frames.get(key)
            if hit is not None:
                return hit
            previous = None if at else self._latest(district, category, version, bbox)
            if previous is not None:
                if key not in self._building:
                    self._building[key] = threading.Lock()
                    threading.Thread(target=self._refresh, args=(key,), daemon=True).start()
                return previous
        return self._build(key)

    def _latest(
        self, district: str, category: str | None, version: int, bbox: Box | None
    ) -> pd.DataFrame | None:
        """The newest kept frame of the view older than `version`, if recent enough."""
        for older in range(version - 1, version - 1 - STALE_VERSIONS, -1):
            frame = self._frames.get((district, category, older, bbox, None))
            if frame is not None:
                return frame
        return None

    def holds(self, district: str, category: str | None, version: int) -> bool:
        """Whether the frame of this view and snapshot is built."""
        with self._lock:
            return (district, category, version, None, None) in self._frames

    def put(self, district: str, category: str | None, version: int, frame: pd.DataFrame) -> None:
        """Keep a frame built elsewhere (the warm-up's city-wide read)."""
        with self._lock:
            self._frames.setdefault((district, category, version, None, None), frame)
            self._evict()

    def _evict(self) -> None:
        while len(self._frames) > _KEEP:
            self._frames.pop(next(iter(self._frames)))

    def _refresh(self, key: _Key) -> None:
        try:
            self._build(key)
        except (SQLAlchemyError, OneScreenError, InvalidQuery) as exc:
            # the previous snapshot keeps being served; the next request retries
            log.warning("device snapshot %s not refreshed: %s", key, exc)

    def _build(self, key: _Key) -> pd.DataFrame:
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                hit = self._frames.get(key)
            if hit is not None:
                return hit
            try:
                frame = snapshot_frame(
                    self.app.read_engine, district=key[0], category=key[1], bbox=key[3], at=key[4]
                )
            except Exception:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:
                self._frames[key] = frame
                self._building.pop(key, None)
                self._evict()
            return frame


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


SNAPSHOTS = "onescreen-device-snapshots"


def warm_snapshots(server: Flask) -> int:
    """Build every district's current snapshot now, from one city-wide read; how many."""
    cache: _SnapshotCache = server.extensions[SNAPSHOTS]
    version = snapshot_version()
    frames = city_snapshot_frames(cache.app.read_engine)
    for district, frame in frames.items():
        cache.put(district, None, version, frame)
    return len(frames)


def warm_in_background(server: Flask) -> threading.Thread:
    """Build every district's current snapshot in a daemon thread (first views of a wall)."""

    def warm() -> None:
        try:
            warm_snapshots(server)
        except (SQLAlchemyError, OneScreenError, InvalidQuery) as exc:
            log.warning("device snapshots not prepared: %s", exc)

    thread = threading.Thread(target=warm, name="onescreen-warm-devices", daemon=True)
    thread.start()
    return thread


def register_device_routes(server: Flask) -> None:
    """Add /geo/district/<adcode>/devices.json to the Flask server (after its services)."""
    cache = server.extensions[SNAPSHOTS] = _SnapshotCache(server.extensions[EXTENSION])

    @server.get("/geo/district/<district>/devices.json")
    def district_devices(district: str) -> Response:
        category = request.args.get("category") or None
        try:
            bbox = parse_bbox(request.args.get("bbox"))
            at = replay_at(request.args.get("at"), now=datetime.now(CITY_TZ))
        except (ValueError, InvalidQuery) as exc:
            return _error(400, str(exc))
        zoom = clamp_zoom(request.args.get("zoom"))
        principal = current_principal()
        if principal is None or not principal.allows(district):
            return _error(403, "this district is outside your scope")
        try:
            if district not in reference.districts():
                return _error(404, f"unknown district {district!r}")
            if category is not None and category not in reference.categories():
                return _error(400, f"unknown category {category!r}")
            version = request.args.get("v", type=int)
            current = snapshot_version()
            # only the current and the previous snapshot exist; anything else means "current"
            if version is None or not current - 1 <= version <= current:
                version = current
            # devices one by one only inside a view of now; otherwise the finest clusters
            box = bbox if zoom >= DEVICE_ZOOM and at is None else None
            zoom = zoom if box is not None else min(zoom, DEVICE_ZOOM - 1)
            frame = cache.get(district, category, version, box, at)
        except (SQLAlchemyError, OneScreenError, InvalidQuery) as exc:
            report_failure(log, "device points unavailable", exc)
            return _error(503, "device points temporarily unavailable")
        body = json.dumps(cluster_features(frame, zoom=zoom, bbox=bbox), separators=(",", ":"))
        etag = hashlib.sha1(body.encode()).hexdigest()[:20]
        if request.if_none_match.contains(etag):
            response = Response(status=304)
        else:
            response = Response(body, mimetype="application/geo+json")
        response.set_etag(etag)
        # one person's view: private, but a browser may reuse it for a snapshot's life
        response.headers["Cache-Control"] = f"private, max-age={SNAPSHOT_SECONDS}"
        return response
