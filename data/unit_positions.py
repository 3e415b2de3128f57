"""Units' position fixes, as the ingest paths (HTTP, MQTT) deliver them.

A fix moves the unit if it is newer than the unit's last one; only a unit's newest position is
kept, so a resent fix, an older one, or one overtaken by a newer fix of the same body is reported
as a duplicate (nothing of it was stored). A dispatched unit that moves is en route; one
within ARRIVE_M of its target has arrived — written to its history and its incident's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.dispatch import ARRIVE_M, record_change


@dataclass(frozen=True)
class UnitCatalog:
    """The units that may report positions: code → (id, home district or '' for the city)."""

    units: dict[str, tuple[int, str]]


@dataclass(frozen=True)
class FixBatch:
    """Position fixes: unit ids, times (µs since the epoch) and GCJ-02 degrees."""

    unit_id: np.ndarray
    ts_us: np.ndarray
    lon: np.ndarray
    lat: np.ndarray

    def __len__(self) -> int:
        return len(self.unit_id)

    @classmethod
    def joined(cls, batches: list[FixBatch]) -> FixBatch:
        """The batches one after the other (an empty batch for none)."""
        if not batches:
            return EMPTY_FIXES
        return cls(
            np.concatenate([b.unit_id for b in batches]),
            np.concatenate([b.ts_us for b in batches]),
            np.concatenate([b.lon for b in batches]),
            np.concatenate([b.lat for b in batches]),
        )


EMPTY_FIXES = FixBatch(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


def load_unit_catalog(engine: Engine) -> UnitCatalog:
    """The units that move (crews and vehicles; facilities stay where they are)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.code, r.id, coalesce(r.district_adcode, '') AS district FROM resource r"
                " JOIN resource_kind k ON k.code = r.kind_code WHERE k.class <> 'facility'"
            )
        ).all()
    return UnitCatalog({row.code: (int(row.id), row.district) for row in rows})


def _moment(ts_us: np.integer) -> datetime:
    """A fix time (µs since the epoch) as an aware datetime."""
    return datetime.fromtimestamp(int(ts_us) / 1e6, tz=UTC)


def store_fixes(conn: sa.Connection, fixes: FixBatch, *, actor: str = "gps") -> np.ndarray:
    """Apply the fixes; per fix, whether it was new (False: not newer than the unit's last)."""
    if not len(fixes):
        return np.zeros(0, dtype=bool)
    conn.execute(
        sa.text("SELECT ensure_day_partitions('resource_track', :start, :end)"),
        {"start": _moment(fixes.ts_us.min()), "end": _moment(fixes.ts_us.max())},
    )
    rows = conn.execute(
        sa.text(
            "WITH f AS (SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:ts AS float8[]),"
            "   CAST(:lon AS float8[]), CAST(:lat AS float8[])) WITH ORDINALITY"
            "   AS f(id, ts, lon, lat, n)),"
            " latest AS (SELECT DISTINCT ON (id) id, n, to_timestamp(ts / 1e6) AS at,"
            "   ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS p FROM f ORDER BY id, ts DESC, n),"
            " moved AS (UPDATE resource r SET geom = l.p, fix_at = l.at,"
            "   status = CASE WHEN o.status IN ('dispatched', 'en_route')"
            "     AND ST_DWithin(geography(l.p), geography(o.target), :arrive_m) THEN 'on_site'"
            "     WHEN o.status = 'dispatched' AND NOT ST_Equals(l.p, o.geom) THEN 'en_route'"
            "     ELSE o.status END,"
            "   arrived_at = CASE WHEN o.status IN ('dispatched', 'en_route')"
            "     AND ST_DWithin(geography(l.p), geography(o.target), :arrive_m) THEN l.at"
            "     ELSE o.arrived_at END"
            "  FROM latest l, resource o WHERE r.id = l.id AND o.id = l.id"
            "  AND (o.fix_at IS NULL OR l.at > o.fix_at)"
            "  RETURNING r.id, l.n, o.status AS from_status, r.status AS to_status,"
            "   r.incident_id, r.task_id, l.at, l.p, o.geom AS was),"
            # the track replay draws units from (revision 0014): where a fix moved its unit
            # (a parked unit's heartbeats say nothing new)
            " tracked AS (INSERT INTO resource_track (resource_id, at, geom)"
            "  SELECT id, at, p FROM moved WHERE NOT ST_Equals(p, was))"
            # new: the fix that moved its unit; the others (resent, older, or overtaken by a
            # newer one of the same body: only the newest position is kept) are duplicates
            " SELECT f.n, m.id IS NOT NULL AS new, m.from_status, m.to_status, m.incident_id,"
            "   m.task_id, m.id FROM f LEFT JOIN moved m ON m.n = f.n ORDER BY f.n"
        ),
        {
            "ids": fixes.unit_id.tolist(),
            "ts": fixes.ts_us.astype(np.float64).tolist(),
            "lon": fixes.lon.tolist(),
            "lat": fixes.lat.tolist(),
            "arrive_m": ARRIVE_M,
        },
    ).all()
    changed = {row.id: row for row in rows if row.id is not None}
    for row in changed.values():
        if row.from_status != row.to_status:
            record_change(
                conn,
                resource_id=row.id,
                kind="arrived" if row.to_status == "on_site" else "en_route",
                actor=actor,
                from_status=row.from_status,
                to_status=row.to_status,
                incident_id=row.incident_id,
                task_id=row.task_id,
                note=None if row.to_status == "on_site" else "moving",
            )
    return np.array([bool(row.new) for row in rows], dtype=bool)
