"""The resource registry (资源): crews, vehicles and facilities, where they are and what they do.

Units are read in the caller's scope (row-level security: a district sees its own units and the
city units lent to it). Units come from the seed or from `cli.py import-units` (CSV or GeoJSON);
a vehicle's position then arrives through the ingest paths (data/unit_positions.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.asof import replaying, source

STATUSES = ("available", "dispatched", "en_route", "on_site", "off_duty")
BUSY = ("dispatched", "en_route", "on_site")
MOBILE = ("crew", "vehicle")
MAX_IMPORT_BYTES = 16 * 1024 * 1024
MAX_IMPORT_UNITS = 200_000
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
# Shanghai with a margin (GCJ-02 degrees): a unit placed outside is a mistake in the file
LON_RANGE = (120.8, 122.3)
LAT_RANGE = (30.6, 31.95)
_UNIT_COLUMNS = (
    "code",
    "kind_code",
    "name_zh",
    "name_en",
    "district_adcode",
    "lent_to",
    "capacity",
    "status",
    "lon",
    "lat",
)


class ResourceError(ValueError):
    """A resource change or import that cannot be made; the message says why (safe to show)."""


@dataclass(frozen=True)
class Kind:
    """A kind of resource and the scenarios (device categories) it serves."""

    code: str
    unit_class: str
    name_zh: str
    name_en: str
    skills: tuple[str, ...]


def kinds(engine: Engine) -> list[Kind]:
    """Every kind of resource, in display order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT code, class AS unit_class, name_zh, name_en, skills FROM resource_kind"
                " ORDER BY sort_order"
            )
        ).all()
    return [Kind(r.code, r.unit_class, r.name_zh, r.name_en, tuple(r.skills)) for r in rows]


_UNITS_SQL = (
    "SELECT r.id, r.code, r.kind_code, k.class AS unit_class, k.name_zh AS kind_zh,"
    " k.name_en AS kind_en, r.name_zh, r.name_en, r.district_adcode, r.lent_to, r.capacity,"
    " r.status, ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, r.fix_at, r.incident_id, r.task_id,"
    " ST_X(r.target) AS target_lon, ST_Y(r.target) AS target_lat, r.dispatched_at, r.eta_at,"
    " r.arrived_at, r.changed_at"
    " FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
)


def units(
    engine: Engine,
    *,
    district: str | None = None,
    skill: str | None = None,
    busy_only: bool = False,
    lent_only: bool = False,
    limit: int = 20_000,
) -> list[dict[str, Any]]:
    """Units in scope (of a district, serving a scenario, only those out on a job, only the
    city's lent out)."""
    where = ["true"]
    if district is not None:
        where.append("(r.district_adcode = :district OR r.lent_to = :district)")
    if lent_only:
        where.append("r.lent_to IS NOT NULL")
    if skill is not None:
        where.append(":skill = ANY(k.skills)")
    if busy_only:
        where.append("r.status IN ('dispatched', 'en_route', 'on_site')")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"{_UNITS_SQL} WHERE {' AND '.join(where)} ORDER BY k.sort_order, r.code"
                " LIMIT :limit"
            ),
            {"district": district, "skill": skill, "limit": limit},
        ).mappings()
        return [dict(row) for row in rows]


def unit(engine: Engine, *, resource_id: int) -> dict[str, Any] | None:
    """One unit in scope, or None."""
    with engine.connect() as conn:
        row = (
            conn.execute(sa.text(f"{_UNITS_SQL} WHERE r.id = :id"), {"id": resource_id})
            .mappings()
            .one_or_none()
        )
    return None if row is None else dict(row)


def status_counts(
    engine: Engine,
    *,
    district: str | None = None,
    skill: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> dict[str, dict[str, int]]:
    """Per kind, how many units in scope are in each status (`replay`: at `at`)."""
    where = ["k.class <> 'facility'"]
    if district is not None:
        where.append("(r.district_adcode = :district OR r.lent_to = :district)")
    if skill is not None:
        where.append(":skill = ANY(k.skills)")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.kind_code, r.status, count(*) AS n"
                f" FROM {source('resource', replaying(at, replay))}"
                " JOIN resource_kind k ON k.code = r.kind_code"
                f" WHERE {' AND '.join(where)} GROUP BY 1, 2"
            ),
            {"district": district, "skill": skill, "at": at},
        ).all()
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row.kind_code, {})[row.status] = int(row.n)
    return counts


def insert_units(conn: sa.Connection, frame: pd.DataFrame) -> int:
    """Add or replace units (by code) from a frame with the import columns; how many."""
    if frame.empty:
        return 0
    records = frame.reindex(columns=list(_UNIT_COLUMNS)).astype(object)
    records = records.mask(records.isna(), None)
    return conn.execute(
        sa.text(
            "INSERT INTO resource (code, kind_code, name_zh, name_en, district_adcode, lent_to,"
            " capacity, status, home, geom)"
            " SELECT u.code, u.kind, u.zh, u.en, u.district, u.lent, u.capacity,"
            "  coalesce(u.status, 'available'), ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326),"
            "  ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)"
            " FROM unnest(CAST(:code AS text[]), CAST(:kind AS text[]), CAST(:zh AS text[]),"
            "  CAST(:en AS text[]), CAST(:district AS text[]), CAST(:lent AS text[]),"
            "  CAST(:capacity AS int[]), CAST(:status AS text[]), CAST(:lon AS float8[]),"
            "  CAST(:lat AS float8[]))"
            "  AS u(code, kind, zh, en, district, lent, capacity, status, lon, lat)"
            " ON CONFLICT (code) DO UPDATE SET kind_code = excluded.kind_code,"
            "  name_zh = excluded.name_zh, name_en = excluded.name_en,"
            "  district_adcode = excluded.district_adcode, lent_to = excluded.lent_to,"
            "  capacity = excluded.capacity, home = excluded.home,"
            "  geom = CASE WHEN resource.fix_at IS NULL THEN excluded.geom ELSE resource.geom END"
        ),
        {
            "code": records["code"].tolist(),
            "kind": records["kind_code"].tolist(),
            "zh": records["name_zh"].tolist(),
            "en": records["name_en"].tolist(),
            "district": records["district_adcode"].tolist(),
            "lent": records["lent_to"].tolist(),
            "capacity": [None if c is None else int(c) for c in records["capacity"]],
            "status": records["status"].tolist(),
            "lon": [float(v) for v in records["lon"]],
            "lat": [float(v) for v in records["lat"]],
        },
    ).rowcount


def import_units(engine: Engine, *, text: str, geojson: bool) -> int:
    """Import a CSV (header: the import columns) or GeoJSON (points, the columns as properties)
    file, all or nothing; ResourceError naming the first bad record."""
    if len(text.encode()) > MAX_IMPORT_BYTES:
        raise ResourceError(f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MB")
    records = _geojson_records(text) if geojson else _csv_records(text)
    if not records:
        raise ResourceError("the file holds no units")
    if len(records) > MAX_IMPORT_UNITS:
        raise ResourceError(f"more than {MAX_IMPORT_UNITS} units in one file")
    with engine.begin() as conn:
        known = _known(conn)
        rows = [_checked(record, where=where, known=known) for where, record in records]
        codes = [row["code"] for row in rows]
        if len(set(codes)) != len(codes):
            duplicate = next(code for code in codes if codes.count(code) > 1)
            raise ResourceError(f"unit {duplicate} appears more than once")
        return insert_units(conn, pd.DataFrame(rows, columns=list(_UNIT_COLUMNS)))


def _csv_records(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) per data line of a CSV file."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"code", "kind_code", "lon", "lat"} - set(reader.fieldnames or ())
    if missing:
        raise ResourceError("the header lacks " + ", ".join(sorted(missing)))
    return [(f"line {n}", dict(row)) for n, row in enumerate(reader, start=2)]


def _geojson_records(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) per point feature of a GeoJSON FeatureCollection."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ResourceError(f"not valid JSON: {exc}") from None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise ResourceError("not a GeoJSON FeatureCollection")
    records = []
    for n, feature in enumerate(features):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        properties = feature.get("properties") if isinstance(feature, dict) else None
        where = f"feature {n}"
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            raise ResourceError(f"{where}: a unit is a Point feature")
        coords = geometry.get("coordinates")
        if not isinstance(coords, list) or len(coords) < 2:
            raise ResourceError(f"{where}: the point has no coordinates")
        record = dict(properties) if isinstance(properties, dict) else {}
        record["lon"], record["lat"] = coords[0], coords[1]
        records.append((where, record))
    return records


def _known(conn: sa.Connection) -> dict[str, set[str]]:
    """The kinds and districts a record may name."""
    return {
        "kind": set(conn.execute(sa.text("SELECT code FROM resource_kind")).scalars()),
        "district": set(conn.execute(sa.text("SELECT adcode FROM district")).scalars()),
    }


def _checked(record: dict[str, Any], *, where: str, known: dict[str, set[str]]) -> dict[str, Any]:
    """One import record, checked and typed; ResourceError saying what is wrong and where."""

    def text(name: str) -> str | None:
        value = record.get(name)
        value = value.strip() if isinstance(value, str) else value
        return None if value in (None, "") else str(value)

    code = text("code")
    if code is None or not _CODE.fullmatch(code):
        raise ResourceError(f"{where}: code must be 2-64 of A-Z, a-z, 0-9, '.', '_' or '-'")
    kind = text("kind_code")
    if kind not in known["kind"]:
        raise ResourceError(f"{where}: unknown kind {kind!r}")
    for name in ("district_adcode", "lent_to"):
        if text(name) is not None and text(name) not in known["district"]:
            raise ResourceError(f"{where}: unknown district {text(name)!r}")
    if text("lent_to") is not None and text("district_adcode") is not None:
        raise ResourceError(f"{where}: only city units (no district_adcode) are lent")
    status = text("status") or "available"
    if status not in ("available", "off_duty"):
        raise ResourceError(f"{where}: a unit is imported available or off_duty")
    lon, lat = _number(record.get("lon")), _number(record.get("lat"))
    if (
        lon is None
        or lat is None
        or not (LON_RANGE[0] <= lon <= LON_RANGE[1] and LAT_RANGE[0] <= lat <= LAT_RANGE[1])
    ):
        raise ResourceError(f"{where}: lon/lat must be a point in Shanghai (GCJ-02)")
    capacity = _number(record.get("capacity")) if text("capacity") is not None else None
    if capacity is not None and not (capacity == int(capacity) and 0 <= capacity <= 1_000_000):
        raise ResourceError(f"{where}: capacity must be a whole number from 0 to 1000000")
    names = {n: (text(n) or code)[:100] for n in ("name_zh", "name_en")}
    return {
        "code": code,
        "kind_code": kind,
        **names,
        "district_adcode": text("district_adcode"),
        "lent_to": text("lent_to"),
        "capacity": None if capacity is None else int(capacity),
        "status": status,
        "lon": lon,
        "lat": lat,
    }


def _number(value: object) -> float | None:
    """A finite number from a JSON number or a CSV cell, else None."""
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    if number is None or number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def unit_positions(
    engine: Engine,
    *,
    district: str | None = None,
    skill: str | None = None,
    at: datetime | None = None,
    replay: bool = False,
) -> list[dict[str, Any]]:
    """Units in scope for a map (of a district: its own, those lent to it, and any sent to a
    job in it; serving a scenario): where each is, whether it is parked at home, and where a
    busy one is heading (`replay`: as they were at `at`)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.id, r.code, r.name_zh, r.name_en, r.kind_code, k.class AS unit_class,"
                " r.status, round(ST_X(r.geom)::numeric, 5)::float8 AS lon,"
                " round(ST_Y(r.geom)::numeric, 5)::float8 AS lat,"
                " r.status NOT IN ('dispatched', 'en_route', 'on_site')"
                "   AND ST_DWithin(r.geom, r.home, 0.001) AS parked,"
                " ST_X(r.target) AS target_lon, ST_Y(r.target) AS target_lat, r.eta_at,"
                " r.incident_id, coalesce(i.category_code, t.topic_code) AS job_category"
                f" FROM {source('resource', replaying(at, replay))}"
                " JOIN resource_kind k ON k.code = r.kind_code"
                " LEFT JOIN incident i ON i.id = r.incident_id"
                " LEFT JOIN playbook_task t ON t.id = r.task_id"
                " WHERE (CAST(:district AS text) IS NULL OR :district IN (r.district_adcode,"
                "   r.lent_to, i.district_adcode, t.district_adcode))"
                " AND (CAST(:skill AS text) IS NULL OR :skill = ANY(k.skills))"
                " ORDER BY r.id"
            ),
            {"district": district, "skill": skill, "at": at},
        ).mappings()
        return [dict(row) for row in rows]
