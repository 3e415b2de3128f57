"""Resources and dispatch on the real PostGIS (revision 0013): the seeded fleet and imports,
suggestions against a brute-force travel time over every unit, who may see and send which unit
(row-level security), two dispatchers racing, a job's whole lifecycle with position fixes through
the ingest paths, and the playbook tasks a raised warning level makes."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from pyproj import Geod

from config import load_settings
from data import access, ingest_store
from data.dispatch import (
    PREFER_LOCAL_RATIO,
    PREFER_LOCAL_S,
    coverage,
    dispatch_unit,
    move_unit,
    release_finished,
    suggest_units,
    units_on_job,
)
from data.incidents import handle_incident
from data.lending import idle_loans, lend_unit, lendable_units, reserve_requests
from data.playbooks import handle_task, progress, task_suggestions, tasks
from data.resources import (
    STATUSES,
    ResourceError,
    import_units,
    status_counts,
    unit_positions,
    units,
)
from data.scope import CITY, Scope, create_web_engine, provision_web_role, scoped, web_database_url
from ingest.validate import message
from tests.integration.conftest import running_mqtt_worker
from tests.mqtt_publisher import Publisher
from web.ingest_api import register_ingest_routes
from web.services import attach

pytestmark = pytest.mark.integration
PUDONG = "310115"
JINGAN = "310106"
PASSWORD = "dispatch test passphrase"
GEOD = Geod(ellps="WGS84")
CSV_HEADER = "code,kind_code,name_zh,name_en,district_adcode,lent_to,capacity,status,lon,lat\n"


# fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def owner(live_engine_) -> sa.Engine:
    """The owner's engine on this module's own city (every test here changes it)."""
    return live_engine_


@pytest.fixture(scope="module")
def web(owner, live_city_url) -> Iterator[sa.Engine]:
    """The web role's engine: every transaction states the current scope and actor."""
    provision_web_role(owner)
    engine = create_web_engine(web_database_url(live_city_url))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def client(owner, live_city_url):
    """A Flask server with only the ingest routes, on this module's city."""
    app = Flask("dispatch-ingest-test")
    services = attach(app, load_settings(DATABASE_URL=live_city_url, ingest_max_rows=500))
    register_ingest_routes(app)
    yield app.test_client()
    services.close()


@pytest.fixture(scope="module")
def token(owner) -> str:
    return ingest_store.create_token(owner, source="test-fleet", city_wide=True, label="tests")


# helpers ----------------------------------------------------------------------------------------


def _manager(owner: sa.Engine, district: str) -> str:
    return access.create_user(
        owner,
        username=f"dm-{secrets.token_hex(4)}",
        role="district_manager",
        password=PASSWORD,
        districts=[district],
    ).username


def _incident(owner: sa.Engine, *, district: str, category: str, salt: str = "") -> int:
    """A fresh open incident of `category` at one of the district's devices of it."""
    with owner.begin() as conn:
        return conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
                " threshold, opened_at, geom)"
                " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
                "   'test-' || md5(random()::text), 'major', 'open', '调度测试', 'Dispatch test',"
                "   1, 0, now() - interval '5 minutes', d.geom"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE d.district_adcode = :district AND t.category_code = :category"
                " ORDER BY md5(d.code || :salt) LIMIT 1 RETURNING id"
            ),
            {"district": district, "category": category, "salt": salt},
        ).scalar_one()


def _unit(
    owner: sa.Engine,
    *,
    skill: str = "flood",
    district: str | None = PUDONG,
    min_metres_from: tuple[int, float] | None = None,
    exclude: tuple[int, ...] = (),
) -> int:
    """An available unit (crew or vehicle) serving `skill` of `district` (None: a city unit)
    that no test has sent or moved yet, optionally at least some metres from an incident."""
    incident, metres = min_metres_from or (0, 0.0)
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT r.id FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
                " LEFT JOIN incident i ON i.id = :incident"
                " WHERE r.status = 'available' AND k.class <> 'facility'"
                "   AND :skill = ANY(k.skills) AND r.lent_to IS NULL"
                "   AND r.district_adcode IS NOT DISTINCT FROM :district"
                "   AND (i.id IS NULL OR ST_Distance(geography(r.geom), geography(i.geom)) > :m)"
                "   AND NOT r.id = ANY(:exclude) AND r.fix_at IS NULL"
                "   AND NOT EXISTS (SELECT 1 FROM resource_event e WHERE e.resource_id = r.id)"
                " ORDER BY r.code LIMIT 1"
            ),
            {
                "skill": skill,
                "district": district,
                "incident": incident,
                "m": metres,
                "exclude": list(exclude),
            },
        ).scalar_one()


def _resource(owner: sa.Engine, resource_id: int) -> sa.RowMapping:
    with owner.connect() as conn:
        return (
            conn.execute(
                sa.text(
                    "SELECT code, status, incident_id, task_id, ST_X(geom) AS lon,"
                    " ST_Y(geom) AS lat, ST_X(target) AS target_lon, ST_Y(target) AS target_lat,"
                    " dispatched_at, eta_at, arrived_at, fix_at, district_adcode, lent_to"
                    " FROM resource WHERE id = :id"
                ),
                {"id": resource_id},
            )
            .mappings()
            .one()
        )


def _resource_events(owner: sa.Engine, resource_id: int) -> list[sa.Row]:
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT kind, actor, from_status, to_status, incident_id, task_id, eta_s, note"
                " FROM resource_event WHERE resource_id = :id ORDER BY id"
            ),
            {"id": resource_id},
        ).all()


def _incident_events(owner: sa.Engine, incident_id: int) -> list[sa.Row]:
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT kind, actor, note FROM incident_event WHERE incident_id = :id ORDER BY id"
            ),
            {"id": incident_id},
        ).all()


def _audit(owner: sa.Engine, action: str, target: str) -> list[dict[str, Any]]:
    return [
        e for e in access.audit_entries(owner, limit=500, action=action) if e["target"] == target
    ]


def _now(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def _post(client, token: str, rows: list[Any]):
    return client.post(
        "/api/v1/readings",
        data=json.dumps({"readings": rows}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def _wait_for(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _raise_level(
    owner: sa.Engine, *, topic: str, district: str, from_level: int | None, to_level: int | None
) -> None:
    """A warning level change, as the rules or an operator log it."""
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO warning_level_change (topic_code, district_adcode, from_level,"
                " to_level, source, actor, reason) VALUES (:topic, :district, :f, :t,"
                " 'operator', 'tester', 'dispatch test')"
            ),
            {"topic": topic, "district": district, "f": from_level, "t": to_level},
        )


def _task_counts(owner: sa.Engine, *, topic: str, district: str) -> dict[tuple[int, str], int]:
    """(level, status) → how many of the district's tasks of `topic`."""
    with owner.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT level, status, count(*) FROM playbook_task"
                " WHERE topic_code = :topic AND district_adcode = :district GROUP BY 1, 2"
            ),
            {"topic": topic, "district": district},
        ).all()
    return {(row[0], row[1]): row[2] for row in rows}


def _expected_tasks(owner: sa.Engine, *, topic: str, district: str, level: int) -> int:
    """How many tasks the playbook's actions of `level` make in `district`, counted directly:
    one per action, or one per target device (at most per_target) for per-target actions."""
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT coalesce(sum(CASE WHEN a.per_target = 0 THEN 1 ELSE least(a.per_target,"
                "  (SELECT count(*) FROM device d JOIN device_type t ON t.id = d.type_id"
                "   JOIN device_latest l ON l.device_id = d.id"
                "   WHERE t.measurand = a.target_measurand AND d.district_adcode = :district"
                "   AND d.status <> 'retired')) END), 0)"
                " FROM playbook_action a WHERE a.topic_code = :topic AND a.level = :level"
            ),
            {"topic": topic, "district": district, "level": level},
        ).scalar_one()


def _open_task(owner: sa.Engine, *, topic: str, district: str, kind: str | None = None) -> int:
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT t.id FROM playbook_task t JOIN playbook_action a ON a.id = t.action_id"
                " WHERE t.topic_code = :topic AND t.district_adcode = :district"
                " AND t.status = 'open'"
                " AND (CAST(:kind AS text) IS NULL OR a.kind_code = :kind)"
                " ORDER BY t.level DESC, a.seq, t.id LIMIT 1"
            ),
            {"topic": topic, "district": district, "kind": kind},
        ).scalar_one()


# the registry -----------------------------------------------------------------------------------


def test_the_seeded_fleet_has_every_kind_with_valid_statuses(owner):
    with owner.connect() as conn:
        kinds = dict(conn.execute(sa.text("SELECT code, class FROM resource_kind")).all())
        # the seed's units as the seed left them (imports here add units named T-..., and the
        # other tests send units out)
        per_kind = conn.execute(
            sa.text(
                "SELECT kind_code, count(*), count(DISTINCT district_adcode),"
                " array_agg(DISTINCT status) FILTER (WHERE NOT EXISTS (SELECT 1 FROM"
                "  resource_event e WHERE e.resource_id = r.id))"
                " FROM resource r WHERE code NOT LIKE 'T-%' GROUP BY 1"
            )
        ).all()
        districts = conn.execute(sa.text("SELECT count(*) FROM district")).scalar_one()
        city_kinds = set(
            conn.execute(
                sa.text(
                    "SELECT DISTINCT kind_code FROM resource"
                    " WHERE district_adcode IS NULL AND code NOT LIKE 'T-%'"
                )
            ).scalars()
        )
    assert {row[0] for row in per_kind} == set(kinds)
    for kind, _count, homes, statuses in per_kind:
        assert homes == districts, kind  # every district has its own
        assert set(statuses) <= {"available", "off_duty"}, kind  # nobody is out at the start
        if kinds[kind] == "facility":
            assert set(statuses) == {"available"}, kind
    assert city_kinds <= {"pump_truck", "generator_truck"}
    everything = [u for u in units(owner) if not u["code"].startswith("T-")]
    assert {u["status"] for u in everything} <= set(STATUSES)
    assert len(everything) == sum(row[1] for row in per_kind)


def test_status_counts_equal_a_direct_count_without_facilities(owner):
    with owner.connect() as conn:
        direct = conn.execute(
            sa.text(
                "SELECT r.kind_code, r.status, count(*) FROM resource r"
                " JOIN resource_kind k ON k.code = r.kind_code"
                " WHERE k.class <> 'facility' AND (r.district_adcode = :d OR r.lent_to = :d)"
                " GROUP BY 1, 2"
            ),
            {"d": JINGAN},
        ).all()
    expected: dict[str, dict[str, int]] = {}
    for kind, status, n in direct:
        expected.setdefault(kind, {})[status] = n
    counts = status_counts(owner, district=JINGAN)
    assert counts == expected
    assert "shelter" not in counts and "pump_station" not in counts


def test_the_travel_model_covers_every_district_after_upgrade_and_seed(owner):
    # `db upgrade` runs on a new database before the seed loads the districts: revision 0013
    # must not take its rows from `district` (it once did, and a new city had none)
    with owner.connect() as conn:
        missing = conn.execute(
            sa.text(
                "SELECT count(*) FROM district d WHERE NOT EXISTS"
                " (SELECT 1 FROM travel_model tm WHERE tm.district_adcode = d.adcode)"
            )
        ).scalar_one()
        districts = conn.execute(sa.text("SELECT count(*) FROM district")).scalar_one()
    assert (districts, missing) == (16, 0)


def test_import_units_from_csv_adds_them(owner):
    text = CSV_HEADER + (
        "T-CSV-001,pump_truck,测试泵车,Test pump truck,310115,,1200,available,121.55,31.22\n"
        "T-CSV-002,flood_crew,,,310101,,,off_duty,121.48,31.23\n"
        "T-CSV-003,depot,,,,,,,121.40,31.10\n"
    )
    assert import_units(owner, text=text, geojson=False) == 3
    by_code = {u["code"]: u for u in units(owner) if u["code"].startswith("T-CSV-")}
    assert set(by_code) == {"T-CSV-001", "T-CSV-002", "T-CSV-003"}
    pump = by_code["T-CSV-001"]
    assert (pump["kind_code"], pump["name_zh"], pump["district_adcode"], pump["capacity"]) == (
        "pump_truck",
        "测试泵车",
        "310115",
        1200,
    )
    assert (pump["lon"], pump["lat"], pump["status"]) == (121.55, 31.22, "available")
    crew = by_code["T-CSV-002"]
    assert (crew["status"], crew["name_en"], crew["capacity"]) == ("off_duty", "T-CSV-002", None)
    assert by_code["T-CSV-003"]["district_adcode"] is None  # a city depot


def test_import_units_from_geojson_adds_them(owner):
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [121.50, 31.30]},
                "properties": {
                    "code": "T-GJ-001",
                    "kind_code": "generator_truck",
                    "name_zh": "测试发电车",
                    "capacity": 500,
                    "lent_to": "310106",
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [121.45, 31.25]},
                "properties": {
                    "code": "T-GJ-002",
                    "kind_code": "gas_crew",
                    "district_adcode": "310106",
                },
            },
        ],
    }
    assert import_units(owner, text=json.dumps(document), geojson=True) == 2
    by_code = {u["code"]: u for u in units(owner) if u["code"].startswith("T-GJ-")}
    assert by_code["T-GJ-001"]["lent_to"] == "310106"
    assert by_code["T-GJ-001"]["district_adcode"] is None
    assert by_code["T-GJ-001"]["capacity"] == 500
    assert (by_code["T-GJ-002"]["lon"], by_code["T-GJ-002"]["lat"]) == (121.45, 31.25)
    assert by_code["T-GJ-002"]["kind_code"] == "gas_crew"


def _feature(code: str, kind: str, lon: float, lat: float) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"code": code, "kind_code": kind},
    }


BAD_FILES = {
    "unknown kind": (
        CSV_HEADER
        + "T-BAD-1,flood_crew,,,310115,,,,121.5,31.2\n"
        + "T-BAD-2,helicopter,,,310115,,,,121.5,31.2\n",
        False,
        r"^line 3: unknown kind 'helicopter'",
    ),
    "outside Shanghai": (
        CSV_HEADER
        + "T-BAD-1,flood_crew,,,310115,,,,121.5,31.2\n"
        + "T-BAD-2,flood_crew,,,310115,,,,116.40,39.90\n",
        False,
        r"^line 3: lon/lat must be a point in Shanghai",
    ),
    "duplicate code": (
        CSV_HEADER
        + "T-BAD-1,flood_crew,,,310115,,,,121.5,31.2\n"
        + "T-BAD-2,flood_crew,,,310115,,,,121.5,31.2\n"
        + "T-BAD-1,pump_truck,,,310115,,,,121.5,31.2\n",
        False,
        r"T-BAD-1 appears more than once",
    ),
    "bad header": (
        "code,kind,longitude,latitude\nT-BAD-1,flood_crew,121.5,31.2\n",
        False,
        r"^the header lacks kind_code, lat, lon$",
    ),
    "unknown district": (
        CSV_HEADER + "T-BAD-1,flood_crew,,,310999,,,,121.5,31.2\n",
        False,
        r"^line 2: unknown district '310999'",
    ),
    "busy status": (
        CSV_HEADER + "T-BAD-1,flood_crew,,,310115,,,on_site,121.5,31.2\n",
        False,
        r"^line 2: a unit is imported available or off_duty",
    ),
    "invalid JSON": ('{"type": "FeatureCollection", "features": [', True, r"^not valid JSON"),
    "GeoJSON unknown kind": (
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    _feature("T-BAD-1", "flood_crew", 121.5, 31.2),
                    _feature("T-BAD-2", "submarine", 121.5, 31.2),
                ],
            }
        ),
        True,
        r"^feature 1: unknown kind 'submarine'",
    ),
    "GeoJSON outside Shanghai": (
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    _feature("T-BAD-1", "flood_crew", 121.5, 31.2),
                    _feature("T-BAD-2", "flood_crew", 121.5, 39.9),
                ],
            }
        ),
        True,
        r"^feature 1: lon/lat must be a point in Shanghai",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_import_file_is_refused_whole(owner, case):
    text, geojson, reason = BAD_FILES[case]
    with owner.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM resource")).scalar_one()
    with pytest.raises(ResourceError, match=reason):
        import_units(owner, text=text, geojson=geojson)
    with owner.connect() as conn:
        after = conn.execute(sa.text("SELECT count(*) FROM resource")).scalar_one()
        added = conn.execute(
            sa.text("SELECT count(*) FROM resource WHERE code LIKE 'T-BAD-%'")
        ).scalar_one()
    assert (after, added) == (before, 0)


def test_only_city_units_are_lent(owner):
    district_unit = _unit(owner, district=PUDONG)
    code = _resource(owner, district_unit)["code"]
    with pytest.raises(ResourceError, match="only city units"):
        lend_unit(owner, code=code, district=JINGAN, actor="city-op")
    assert _resource(owner, district_unit)["lent_to"] is None


# suggestions ------------------------------------------------------------------------------------


def _brute_force(owner: sa.Engine, incident_id: int) -> list[dict[str, Any]]:
    """Every available unit serving the incident's category, with its travel time computed here:
    turnout + geodesic metres × detour / (speed × the kind's ratio), fastest first."""
    with owner.connect() as conn:
        place = conn.execute(
            sa.text(
                "SELECT ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.district_adcode,"
                " i.category_code, tm.detour, tm.speed_kmh FROM incident i"
                " JOIN travel_model tm ON tm.district_adcode = i.district_adcode WHERE i.id = :id"
            ),
            {"id": incident_id},
        ).one()
        candidates = conn.execute(
            sa.text(
                "SELECT r.code, r.district_adcode, r.lent_to, ST_X(r.geom) AS lon,"
                " ST_Y(r.geom) AS lat, k.turnout_s, k.speed_ratio"
                " FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
                " WHERE r.status = 'available' AND k.class <> 'facility'"
                " AND :skill = ANY(k.skills)"
            ),
            {"skill": place.category_code},
        ).all()
    out = []
    for c in candidates:
        _, _, metres = GEOD.inv(c.lon, c.lat, place.lon, place.lat)
        eta = c.turnout_s + metres * place.detour / (place.speed_kmh * c.speed_ratio / 3.6)
        local = place.district_adcode in (c.district_adcode, c.lent_to)
        out.append({"code": c.code, "eta_s": eta, "metres": metres, "local": local})
    return sorted(out, key=lambda c: (c["eta_s"], c["code"]))


def _expected_order(candidates: list[dict[str, Any]], k: int) -> list[str]:
    """Fastest first, except that the fastest local unit within the slack goes first."""
    best = candidates[0]["eta_s"]
    slack = max(PREFER_LOCAL_S, best * PREFER_LOCAL_RATIO)
    local = [c for c in candidates if c["local"] and c["eta_s"] <= best + slack][:1]
    return [c["code"] for c in local + [c for c in candidates if c not in local]][:k]


# (district, category): the core, the suburbs, Chongming island, each kind of skill
SUGGESTION_CASES = [
    ("310101", "flood"),
    ("310101", "gas"),
    ("310106", "elderly"),
    ("310115", "power"),
    ("310115", "water"),
    ("310112", "fire"),
    ("310120", "municipal"),
    ("310151", "traffic"),
    ("310151", "flood"),
]


def test_suggestions_equal_a_brute_force_over_every_available_unit(owner):
    for n, (district, category) in enumerate(SUGGESTION_CASES):
        incident = _incident(owner, district=district, category=category, salt=str(n))
        expected = _brute_force(owner, incident)
        got = suggest_units(owner, incident_id=incident)
        case = f"{district}/{category}"
        assert [s.code for s in got] == _expected_order(expected, 5), case
        eta = {c["code"]: c["eta_s"] for c in expected}
        for s in got:
            assert s.eta_s == pytest.approx(eta[s.code], rel=1e-6, abs=0.01), (case, s.code)
            assert s.local == next(c["local"] for c in expected if c["code"] == s.code)
        fastest = [s for s in got if s.fastest]
        assert [s.code for s in fastest] == [expected[0]["code"]], case
        if got[0].code != expected[0]["code"]:  # a local unit put ahead of a faster outsider
            slack = max(PREFER_LOCAL_S, expected[0]["eta_s"] * PREFER_LOCAL_RATIO)
            assert got[0].local and not fastest[0].local, case
            assert got[0].eta_s <= expected[0]["eta_s"] + slack, case


def _place(owner: sa.Engine, resource_id: int, lon: float, lat: float) -> tuple[float, float]:
    """Put a unit at a point; where it was."""
    with owner.begin() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "UPDATE resource r SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
                    " FROM resource o WHERE o.id = r.id AND r.id = :id"
                    " RETURNING ST_X(o.geom), ST_Y(o.geom)"
                ),
                {"id": resource_id, "lon": lon, "lat": lat},
            ).one()
        )


def test_a_local_unit_nearly_as_fast_goes_ahead_of_a_faster_outsider(owner):
    incident = _incident(owner, district=JINGAN, category="flood", salt="prefer")
    with owner.connect() as conn:
        lon, lat = conn.execute(
            sa.text("SELECT ST_X(geom), ST_Y(geom) FROM incident WHERE id = :id"),
            {"id": incident},
        ).one()
    outsider = _unit(owner, skill="flood", district=PUDONG)
    local = _unit(owner, skill="flood", district=JINGAN)
    # the outsider 10 m away, the local crew about 220 m away: under a minute slower
    saved = [_place(owner, outsider, lon, lat + 0.0001), _place(owner, local, lon, lat + 0.002)]
    try:
        expected = _brute_force(owner, incident)
        got = suggest_units(owner, incident_id=incident)
    finally:
        _place(owner, outsider, *saved[0])
        _place(owner, local, *saved[1])
    codes = {u: _resource(owner, u)["code"] for u in (outsider, local)}
    assert expected[0]["code"] == codes[outsider]
    assert [s.code for s in got] == _expected_order(expected, 5)
    assert (got[0].local, got[0].fastest) == (True, False)
    assert got[0].eta_s <= expected[0]["eta_s"] + PREFER_LOCAL_S
    assert (got[1].code, got[1].fastest, got[1].local) == (codes[outsider], True, False)


def test_coverage_is_the_fastest_unit_of_every_street(owner):
    got = {row["code"]: row for row in coverage(owner, skill="gas", target_s=600)}
    with owner.connect() as conn:
        streets = conn.execute(
            sa.text(
                "SELECT s.code, ST_X(ST_PointOnSurface(s.geom)) AS lon,"
                " ST_Y(ST_PointOnSurface(s.geom)) AS lat, tm.detour, tm.speed_kmh FROM street s"
                " JOIN travel_model tm ON tm.district_adcode = s.district_adcode"
            )
        ).all()
        fleet = conn.execute(
            sa.text(
                "SELECT ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat, k.turnout_s, k.speed_ratio"
                " FROM resource r JOIN resource_kind k ON k.code = r.kind_code"
                " WHERE r.status = 'available' AND k.class <> 'facility'"
                " AND 'gas' = ANY(k.skills)"
            )
        ).all()
    assert set(got) == {s.code for s in streets}
    for s in streets:
        best = min(
            u.turnout_s
            + GEOD.inv(u.lon, u.lat, s.lon, s.lat)[2]
            * s.detour
            / (s.speed_kmh * u.speed_ratio / 3.6)
            for u in fleet
        )
        assert got[s.code]["eta_s"] == pytest.approx(best, rel=1e-6), s.code
        assert got[s.code]["blind"] == (best > 600), s.code


def test_no_suggestions_for_a_resolved_or_unknown_incident(owner):
    incident = _incident(owner, district=PUDONG, category="gas", salt="resolved")
    assert suggest_units(owner, incident_id=incident)
    with owner.begin() as conn:
        conn.execute(
            sa.text("UPDATE incident SET status = 'resolved', resolved_at = now() WHERE id = :id"),
            {"id": incident},
        )
    assert suggest_units(owner, incident_id=incident) == []
    assert suggest_units(owner, incident_id=2**62) == []
    with pytest.raises(ResourceError):
        suggest_units(owner, incident_id=-1)


# who may see and send which unit ----------------------------------------------------------------


def test_a_district_manager_sees_its_units_and_city_units_lent_to_it(owner, web):
    manager = _manager(owner, JINGAN)
    city_unit = _unit(owner, skill="flood", district=None)
    code = _resource(owner, city_unit)["code"]
    lend_unit(owner, code=code, district=JINGAN, actor="city-op")
    try:
        with owner.connect() as conn:
            expected = set(
                conn.execute(
                    sa.text("SELECT id FROM resource WHERE district_adcode = :d OR lent_to = :d"),
                    {"d": JINGAN},
                ).scalars()
            )
        with scoped(Scope(JINGAN, actor=manager)):
            seen = {u["id"] for u in units(web)}
            counted = sum(sum(c.values()) for c in status_counts(web).values())
        assert city_unit in seen
        assert seen == expected
        assert counted == len(
            [u for u in units(owner) if u["id"] in expected and u["unit_class"] != "facility"]
        )
        assert _audit(owner, "unit-lend", f"unit:{code}")[0]["detail"] == {"lent_to": JINGAN}
    finally:
        lend_unit(owner, code=code, district=None, actor="city-op")
    with scoped(Scope(JINGAN, actor=manager)):
        assert city_unit not in {u["id"] for u in units(web)}


def test_a_district_managers_suggestions_are_its_own_units(owner, web):
    manager = _manager(owner, PUDONG)
    incident = _incident(owner, district=PUDONG, category="water", salt="scope")
    with scoped(Scope(PUDONG, actor=manager)):
        got = suggest_units(web, incident_id=incident, k=10)
    in_scope = [c for c in _brute_force(owner, incident) if c["local"]]
    assert [s.code for s in got] == [c["code"] for c in in_scope[:10]]
    assert all(s.local for s in got)


def test_a_district_manager_cannot_dispatch_another_districts_unit(owner, web):
    manager = _manager(owner, JINGAN)
    incident = _incident(owner, district=JINGAN, category="flood", salt="foreign")
    foreign = _unit(owner, skill="flood", district=PUDONG)
    with scoped(Scope(JINGAN, actor=manager)), pytest.raises(ResourceError):
        dispatch_unit(web, resource_id=foreign, actor=manager, incident_id=incident)
    assert _resource(owner, foreign)["status"] == "available"
    assert _resource_events(owner, foreign) == []
    assert _incident_events(owner, incident) == []
    own = _unit(owner, skill="flood", district=JINGAN)
    with scoped(Scope(JINGAN, actor=manager)):  # its own unit: sent
        dispatch_unit(web, resource_id=own, actor=manager, incident_id=incident)
    assert _resource(owner, own)["status"] == "dispatched"


def test_a_district_manager_may_dispatch_a_city_unit_lent_to_it(owner, web):
    manager = _manager(owner, JINGAN)
    incident = _incident(owner, district=JINGAN, category="flood", salt="lent")
    city_unit = _unit(owner, skill="flood", district=None)
    code = _resource(owner, city_unit)["code"]
    with scoped(Scope(JINGAN, actor=manager)), pytest.raises(ResourceError):
        dispatch_unit(web, resource_id=city_unit, actor=manager, incident_id=incident)
    lend_unit(owner, code=code, district=JINGAN, actor="city-op")
    with scoped(Scope(JINGAN, actor=manager)):
        sent = dispatch_unit(web, resource_id=city_unit, actor=manager, incident_id=incident)
        assert move_unit(web, resource_id=city_unit, action="release", actor=manager) == "available"
    lend_unit(owner, code=code, district=None, actor="city-op")
    assert sent["code"] == code
    # the loan and its end are in the unit's history too
    assert [e.kind for e in _resource_events(owner, city_unit)] == [
        "lent",
        "dispatched",
        "released",
        "lent",
    ]


def test_a_read_only_scope_cannot_dispatch_or_move_units(owner, web):
    incident = _incident(owner, district=PUDONG, category="flood", salt="readonly")
    unit = _unit(owner, skill="flood", district=PUDONG)
    for districts in (CITY, PUDONG):
        with scoped(Scope(districts)):
            assert unit in {u["id"] for u in units(web)}  # it may look
            with pytest.raises(ResourceError):
                dispatch_unit(web, resource_id=unit, actor="", incident_id=incident)
            with pytest.raises(ResourceError):
                move_unit(web, resource_id=unit, action="off_duty", actor="")
    assert _resource(owner, unit)["status"] == "available"
    assert _resource_events(owner, unit) == []
    manager = _manager(owner, PUDONG)
    with scoped(Scope(PUDONG, actor=manager)):  # the same with someone acting: sent
        dispatch_unit(web, resource_id=unit, actor=manager, incident_id=incident)
    assert [e.actor for e in _resource_events(owner, unit)] == [manager]


def test_a_district_manager_sees_and_handles_only_its_tasks(owner, web):
    manager = _manager(owner, PUDONG)
    for district in (PUDONG, JINGAN):
        _raise_level(owner, topic="power", district=district, from_level=None, to_level=3)
    foreign = _open_task(owner, topic="power", district=JINGAN)
    with scoped(Scope(PUDONG, actor=manager)):
        seen = tasks(web, topic="power")
        with pytest.raises(ResourceError, match="no such task"):
            handle_task(web, task_id=foreign, action="done", actor=manager, note="not mine")
    with scoped(Scope(PUDONG)):  # read only
        own = _open_task(owner, topic="power", district=PUDONG)
        with pytest.raises(ResourceError):
            handle_task(web, task_id=own, action="done", actor="", note="")
    assert seen and {t["district_adcode"] for t in seen} == {PUDONG}
    assert len(seen) == sum(_task_counts(owner, topic="power", district=PUDONG).values())
    with owner.connect() as conn:
        statuses = (
            conn.execute(
                sa.text("SELECT status FROM playbook_task WHERE id IN (:a, :b) ORDER BY id"),
                {"a": foreign, "b": own},
            )
            .scalars()
            .all()
        )
    assert statuses == ["open", "open"]


# two dispatchers --------------------------------------------------------------------------------


def test_two_dispatchers_racing_for_one_unit_one_wins(owner, web):
    first = _incident(owner, district=PUDONG, category="flood", salt="race-1")
    second = _incident(owner, district=PUDONG, category="flood", salt="race-2")
    unit = _unit(owner, skill="flood", district=PUDONG)
    outcomes: dict[str, Any] = {}

    def send(actor: str, incident: int) -> None:
        with scoped(Scope(CITY, actor=actor)):
            try:
                outcomes[actor] = dispatch_unit(
                    web, resource_id=unit, actor=actor, incident_id=incident
                )
            except ResourceError as exc:
                outcomes[actor] = exc

    threads = [
        threading.Thread(target=send, args=("op-a", first)),
        threading.Thread(target=send, args=("op-b", second)),
    ]
    # hold the unit's row so both dispatchers are inside their UPDATE at once, then let go
    with owner.connect() as blocker:
        blocker.execute(sa.text("SELECT 1 FROM resource WHERE id = :id FOR UPDATE"), {"id": unit})
        for thread in threads:
            thread.start()

        def both_waiting() -> bool:
            with owner.connect() as conn:
                return (
                    conn.execute(
                        sa.text(
                            "SELECT count(DISTINCT l.pid) FROM pg_locks l"
                            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted"
                            " AND a.datname = current_database()"
                            " AND a.usename = 'onescreen_web'"
                        )
                    ).scalar_one()
                    >= 2
                )

        _wait_for(both_waiting, timeout_s=20, what="both dispatchers to wait for the unit")
        blocker.rollback()
    for thread in threads:
        thread.join(20)
    winners = {a: o for a, o in outcomes.items() if isinstance(o, dict)}
    losers = {a: o for a, o in outcomes.items() if isinstance(o, ResourceError)}
    assert len(winners) == 1 and len(losers) == 1, outcomes
    winner = next(iter(winners))
    events = _resource_events(owner, unit)
    assert [(e.kind, e.actor) for e in events] == [("dispatched", winner)]
    won_incident = {"op-a": first, "op-b": second}[winner]
    assert _resource(owner, unit)["incident_id"] == won_incident
    assert [e.kind for e in _incident_events(owner, first + second - won_incident)] == []


# a job's lifecycle ------------------------------------------------------------------------------


def test_dispatch_writes_the_units_and_incidents_history_and_the_audit(owner, web):
    manager = _manager(owner, PUDONG)
    incident = _incident(owner, district=PUDONG, category="flood", salt="history")
    unit = _unit(owner, skill="flood", district=PUDONG, min_metres_from=(incident, 1000))
    code = _resource(owner, unit)["code"]
    expected_eta = next(c["eta_s"] for c in _brute_force(owner, incident) if c["code"] == code)
    with scoped(Scope(PUDONG, actor=manager)):
        sent = dispatch_unit(
            web, resource_id=unit, actor=manager, incident_id=incident, address="10.0.0.9"
        )
        on_job = units_on_job(web, incident_id=incident)
    assert sent["code"] == code and sent["eta_s"] == round(expected_eta)
    row = _resource(owner, unit)
    assert (row["status"], row["incident_id"]) == ("dispatched", incident)
    assert (row["eta_at"] - row["dispatched_at"]).total_seconds() == pytest.approx(
        expected_eta, abs=0.01
    )
    assert [u["id"] for u in on_job] == [unit]
    assert on_job[0]["metres_left"] > 1000
    events = _resource_events(owner, unit)
    assert [
        (e.kind, e.actor, e.from_status, e.to_status, e.incident_id, e.eta_s) for e in events
    ] == [("dispatched", manager, "available", "dispatched", incident, round(expected_eta))]
    history = _incident_events(owner, incident)
    assert [(e.kind, e.actor) for e in history] == [("dispatched", manager)]
    assert code in history[0].note
    audit = _audit(owner, "unit-dispatch", f"unit:{code}")
    assert len(audit) == 1
    assert (audit[0]["actor"], audit[0]["ip"], audit[0]["district_adcode"]) == (
        manager,
        "10.0.0.9",
        PUDONG,
    )
    assert audit[0]["detail"]["incident"] == incident
    with scoped(Scope(PUDONG, actor=manager)), pytest.raises(ResourceError, match="not available"):
        dispatch_unit(web, resource_id=unit, actor=manager, incident_id=incident)


def test_fixes_move_a_sent_unit_en_route_then_on_site_and_release_ends_the_job(
    owner, web, client, token
):
    manager = _manager(owner, PUDONG)
    incident = _incident(owner, district=PUDONG, category="flood", salt="lifecycle")
    unit = _unit(owner, skill="flood", district=PUDONG, min_metres_from=(incident, 2000))
    code = _resource(owner, unit)["code"]
    with scoped(Scope(PUDONG, actor=manager)):
        dispatch_unit(web, resource_id=unit, actor=manager, incident_id=incident)
    row = _resource(owner, unit)
    target = (row["target_lon"], row["target_lat"])
    halfway = ((row["lon"] + target[0]) / 2, (row["lat"] + target[1]) / 2)
    moving = _post(
        client, token, [{"unit_code": code, "ts": _now(-20), "lon": halfway[0], "lat": halfway[1]}]
    )
    assert moving.status_code == 200, moving.get_json()
    assert moving.get_json()["status"] == ["stored"]
    row = _resource(owner, unit)
    assert row["status"] == "en_route"
    assert (row["lon"], row["lat"]) == pytest.approx(halfway)
    arrive_ts = _now(-10)
    # about 55 m north of the incident: inside the arrival radius
    arriving = _post(
        client,
        token,
        [{"unit_code": code, "ts": arrive_ts, "lon": target[0], "lat": target[1] + 0.0005}],
    )
    assert arriving.get_json()["status"] == ["stored"]
    row = _resource(owner, unit)
    assert row["status"] == "on_site"
    assert row["arrived_at"] == datetime.fromisoformat(arrive_ts)
    with scoped(Scope(PUDONG, actor=manager)):
        assert move_unit(web, resource_id=unit, action="release", actor=manager) == "available"
    row = _resource(owner, unit)
    assert row["status"] == "available"
    assert [
        row[k] for k in ("incident_id", "target_lon", "dispatched_at", "eta_at", "arrived_at")
    ] == [None] * 5
    assert [(e.kind, e.actor, e.to_status) for e in _resource_events(owner, unit)] == [
        ("dispatched", manager, "dispatched"),
        ("en_route", "gps", "en_route"),
        ("arrived", "gps", "on_site"),
        ("released", manager, "available"),
    ]
    assert [(e.kind, e.actor) for e in _incident_events(owner, incident)] == [
        ("dispatched", manager),
        ("arrived", "gps"),
        ("released", manager),
    ]
    assert len(_audit(owner, "unit-release", f"unit:{code}")) == 1


def test_a_fix_far_from_the_target_does_not_arrive(owner, client, token):
    incident = _incident(owner, district=PUDONG, category="gas", salt="far")
    unit = _unit(owner, skill="gas", district=PUDONG, min_metres_from=(incident, 2000))
    dispatch_unit(owner, resource_id=unit, actor="city-op", incident_id=incident)
    row = _resource(owner, unit)
    # about 330 m south of the incident: close, but not there
    response = _post(
        client,
        token,
        [
            {
                "unit_code": row["code"],
                "ts": _now(-5),
                "lon": row["target_lon"],
                "lat": row["target_lat"] - 0.003,
            }
        ],
    )
    assert response.get_json()["status"] == ["stored"]
    assert _resource(owner, unit)["status"] == "en_route"
    assert move_unit(owner, resource_id=unit, action="arrive", actor="city-op") == "on_site"
    assert [e.kind for e in _incident_events(owner, incident)] == ["dispatched", "arrived"]


def test_units_move_only_as_their_status_allows(owner):
    unit = _unit(owner, skill="water", district=JINGAN)
    for action in ("arrive", "release", "on_duty"):
        with pytest.raises(ResourceError, match="cannot"):
            move_unit(owner, resource_id=unit, action=action, actor="city-op")
    with pytest.raises(ResourceError, match="unknown unit action"):
        move_unit(owner, resource_id=unit, action="teleport", actor="city-op")
    assert move_unit(owner, resource_id=unit, action="off_duty", actor="city-op") == "off_duty"
    incident = _incident(owner, district=JINGAN, category="water", salt="offduty")
    with pytest.raises(ResourceError, match="not available"):
        dispatch_unit(owner, resource_id=unit, actor="city-op", incident_id=incident)
    assert move_unit(owner, resource_id=unit, action="on_duty", actor="city-op") == "available"
    assert [(e.kind, e.from_status, e.to_status) for e in _resource_events(owner, unit)] == [
        ("status", "available", "off_duty"),
        ("status", "off_duty", "available"),
    ]


def test_release_finished_returns_the_units_of_resolved_incidents(owner, web):
    done = _incident(owner, district=JINGAN, category="flood", salt="finished")
    still_open = _incident(owner, district=JINGAN, category="flood", salt="unfinished")
    first = _unit(owner, skill="flood", district=JINGAN)
    second = _unit(owner, skill="flood", district=JINGAN, exclude=(first,))
    third = _unit(owner, skill="flood", district=JINGAN, exclude=(first, second))
    for unit, incident in ((first, done), (second, done), (third, still_open)):
        dispatch_unit(owner, resource_id=unit, actor="city-op", incident_id=incident)
    move_unit(owner, resource_id=second, action="arrive", actor="city-op")
    with scoped(Scope(CITY, actor="city-op")):
        handle_incident(web, incident_id=done, action="resolve", actor="city-op", note="drained")
    with owner.begin() as conn:
        released = release_finished(conn, actor="rules")
    assert released == 2
    assert [_resource(owner, u)["status"] for u in (first, second, third)] == [
        "available",
        "available",
        "dispatched",
    ]
    assert _resource(owner, first)["incident_id"] is None
    last = _resource_events(owner, second)[-1]
    assert (last.kind, last.actor, last.from_status, last.incident_id, last.note) == (
        "released",
        "rules",
        "on_site",
        done,
        "job closed",
    )
    assert [e.kind for e in _incident_events(owner, done)].count("released") == 2
    with owner.begin() as conn:
        assert release_finished(conn, actor="rules") == 0


# position fixes through the ingest paths --------------------------------------------------------


def test_fixes_are_stored_and_a_resent_fix_is_a_duplicate(owner, client, token):
    unit = _unit(owner, skill="power", district=JINGAN)
    row = _resource(owner, unit)
    ts = _now(-30)
    fix = {"unit_code": row["code"], "ts": ts, "lon": row["lon"] + 0.001, "lat": row["lat"]}
    first = _post(client, token, [fix])
    assert (first.status_code, first.get_json()["status"]) == (200, ["stored"])
    again = _post(client, token, [fix])
    assert again.status_code == 200
    assert (again.get_json()["status"], again.get_json()["stored"]) == (["duplicate"], 0)
    older = _post(client, token, [{**fix, "ts": _now(-60), "lon": row["lon"] + 0.002}])
    assert older.get_json()["status"] == ["duplicate"]
    moved = _resource(owner, unit)
    assert (moved["lon"], moved["fix_at"]) == (
        pytest.approx(row["lon"] + 0.001),
        datetime.fromisoformat(ts),
    )
    assert moved["status"] == "available"
    assert _resource_events(owner, unit) == []  # an idle unit's drive is no event


def test_bad_fixes_are_rejected_with_reasons_and_kept_as_a_dead_letter(owner, client, token):
    unit = _unit(owner, skill="power", district=PUDONG)
    code = _resource(owner, unit)["code"]
    with owner.connect() as conn:
        facility = conn.execute(
            sa.text("SELECT code FROM resource WHERE kind_code = 'pump_station' LIMIT 1")
        ).scalar_one()
    good = {"unit_code": code, "ts": _now(-5), "lon": 121.5, "lat": 31.2}
    rows = [
        {**good, "unit_code": "NO-SUCH-UNIT"},
        {**good, "unit_code": facility},
        {**good, "lon": 116.40, "lat": 39.90},
        {k: v for k, v in good.items() if k != "ts"},
        {**good, "ts": "2026-11-25T08:00:00"},
        {**good, "ts": _now(3600)},
        {**good, "lon": "121.5"},
        {**good, "lat": True},
        {**good, "unit_code": 12345},
    ]
    response = _post(client, token, rows)
    assert response.status_code == 422
    body = response.get_json()
    assert body["status"] == ["rejected"] * len(rows)
    codes = [
        "unknown_unit",
        "unknown_unit",
        "position_invalid",
        "ts_missing",
        "ts_naive",
        "ts_future",
        "position_invalid",
        "position_invalid",
        "unknown_unit",
    ]
    assert body["errors"] == [
        {"index": i, "code": c, "message": message(c)} for i, c in enumerate(codes)
    ]
    assert _resource(owner, unit)["fix_at"] is None
    with owner.connect() as conn:
        rejected = conn.execute(
            sa.text(
                "SELECT rejected FROM dead_letter WHERE channel = 'http'"
                " AND rejected @> CAST(:codes AS jsonb)"
                " ORDER BY id DESC LIMIT 1"
            ),
            {"codes": json.dumps([{"code": "ts_naive", "index": 4}])},
        ).scalar_one()
    assert [r["code"] for r in rejected] == codes


def test_a_fix_repeated_or_overtaken_in_one_body_is_a_duplicate(owner, client, token):
    unit = _unit(owner, skill="environment", district=JINGAN)
    row = _resource(owner, unit)
    fix = {"unit_code": row["code"], "ts": _now(-50), "lon": row["lon"], "lat": row["lat"] + 0.001}
    # as a resend inside one body (or one MQTT batch) is, like a repeated reading's key
    assert _post(client, token, [fix, fix]).get_json()["status"] == ["stored", "duplicate"]
    newer = {**fix, "ts": _now(-30), "lat": row["lat"] + 0.002}
    older = {**fix, "ts": _now(-40), "lat": row["lat"] + 0.003}
    # the older fix moves nothing, as it would (duplicate) if it came alone afterwards
    assert _post(client, token, [newer, older]).get_json()["status"] == ["stored", "duplicate"]
    assert _resource(owner, unit)["lat"] == pytest.approx(row["lat"] + 0.002)


def test_a_district_token_moves_only_its_districts_units(owner, client):
    district_token = ingest_store.create_token(owner, source="test-fleet", districts=[PUDONG])
    own = _unit(owner, skill="traffic", district=PUDONG)
    other = _unit(owner, skill="traffic", district=JINGAN)
    city = _unit(owner, skill="flood", district=None)
    before = {u: _resource(owner, u) for u in (other, city)}
    rows = [
        {"unit_code": _resource(owner, u)["code"], "ts": _now(-15), "lon": 121.51, "lat": 31.21}
        for u in (own, other, city)
    ]
    response = _post(client, district_token, rows)
    assert response.status_code == 207
    body = response.get_json()
    assert body["status"] == ["stored", "rejected", "rejected"]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (1, "unit_scope"),
        (2, "unit_scope"),
    ]
    assert body["errors"][0]["message"] == message("unit_scope")
    assert (_resource(owner, own)["lon"], _resource(owner, own)["lat"]) == (121.51, 31.21)
    assert {u: _resource(owner, u) for u in (other, city)} == before


def test_a_body_of_readings_and_fixes_gets_statuses_in_request_order(owner, client, token):
    with owner.connect() as conn:
        device = conn.execute(
            sa.text(
                "SELECT d.id, t.normal_min, t.normal_max FROM device d"
                " JOIN device_type t ON t.id = d.type_id"
                " WHERE t.value_kind = 'analog' AND d.status = 'active' AND t.normal_min >= 0"
                " ORDER BY d.id LIMIT 1"
            )
        ).one()
    first = _unit(owner, skill="gas", district=JINGAN)
    second = _unit(owner, skill="gas", district=JINGAN, exclude=(first,))
    value = (device.normal_min + device.normal_max) / 2
    rows = [
        {"device_id": device.id, "ts": _now(-40), "value": value},
        {
            "unit_code": _resource(owner, first)["code"],
            "ts": _now(-40),
            "lon": 121.45,
            "lat": 31.23,
        },
        {"unit_code": "NO-SUCH-UNIT", "ts": _now(-40), "lon": 121.45, "lat": 31.23},
        {"device_id": 99_999_999, "ts": _now(-40), "value": 1},
        {
            "unit_code": _resource(owner, second)["code"],
            "ts": _now(-40),
            "lon": 121.46,
            "lat": 31.24,
        },
        {"device_id": device.id, "ts": _now(-39), "value": value},
    ]
    response = _post(client, token, rows)
    assert response.status_code == 207
    body = response.get_json()
    assert body["status"] == ["stored", "stored", "rejected", "rejected", "stored", "stored"]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (2, "unknown_unit"),
        (3, "unknown_device"),
    ]
    assert (body["stored"], body["rejected"]) == (4, 2)
    again = _post(client, token, rows).get_json()
    assert again["status"] == [
        "duplicate",
        "duplicate",
        "rejected",
        "rejected",
        "duplicate",
        "duplicate",
    ]


def test_fixes_over_mqtt_are_stored_once(owner, mqtt):
    unit = _unit(owner, skill="municipal", district=JINGAN)
    code = _resource(owner, unit)["code"]
    ts = _now(-10)
    fix = json.dumps({"readings": [{"unit_code": code, "ts": ts, "lon": 121.44, "lat": 31.22}]})
    with running_mqtt_worker(owner, mqtt, source="test-fleet-mqtt") as worker:
        publisher = Publisher(mqtt.url, worker.sender.credentials)
        try:
            publisher.publish(worker.sender.topic, fix)
            _wait_for(
                lambda: _resource(owner, unit)["fix_at"] == datetime.fromisoformat(ts),
                timeout_s=20,
                what="the fix to be stored",
            )
            publisher.publish(worker.sender.topic, fix)
            _wait_for(lambda: worker.stats.duplicate >= 1, timeout_s=20, what="the duplicate")
            bad = json.dumps(
                {"readings": [{"unit_code": "NO-SUCH-UNIT", "ts": ts, "lon": 121.4, "lat": 31.2}]}
            )
            publisher.publish(worker.sender.topic, bad)
            _wait_for(lambda: worker.stats.rejected_rows >= 1, timeout_s=20, what="the rejection")
        finally:
            publisher.close()
    assert worker.stats.stored == 1
    row = _resource(owner, unit)
    assert (row["lon"], row["lat"]) == (121.44, 31.22)
    with owner.connect() as conn:
        rejected = conn.execute(
            sa.text(
                "SELECT rejected FROM dead_letter WHERE channel = 'mqtt' AND topic = :topic"
                " ORDER BY id DESC LIMIT 1"
            ),
            {"topic": worker.sender.topic},
        ).scalar_one()
    assert [r["code"] for r in rejected] == ["unknown_unit"]


# playbooks --------------------------------------------------------------------------------------


def test_raising_flood_to_3_makes_the_level_4_and_3_tasks_once(owner):
    district = PUDONG
    _raise_level(owner, topic="flood", district=district, from_level=None, to_level=3)
    expected = {
        (4, "open"): _expected_tasks(owner, topic="flood", district=district, level=4),
        (3, "open"): _expected_tasks(owner, topic="flood", district=district, level=3),
    }
    assert expected[(4, "open")] >= 3 and expected[(3, "open")] >= 3
    assert _task_counts(owner, topic="flood", district=district) == expected
    # the rules confirming the level again (or a second raise to it) adds nothing
    _raise_level(owner, topic="flood", district=district, from_level=4, to_level=3)
    assert _task_counts(owner, topic="flood", district=district) == expected
    audit = [
        e
        for e in access.audit_entries(owner, limit=500, action="playbook-tasks")
        if e["target"] == "topic:flood" and e["district_adcode"] == district
    ]
    assert len(audit) == 1
    assert audit[0]["actor"] == "playbook"
    assert audit[0]["detail"] == {
        "level": 3,
        "from": None,
        "created": expected[(4, "open")] + expected[(3, "open")],
        "cancelled": 0,
    }


def test_per_target_tasks_go_to_the_devices_most_at_risk(owner):
    district = "310114"
    _raise_level(owner, topic="flood", district=district, from_level=None, to_level=4)
    with owner.connect() as conn:
        targets = (
            conn.execute(
                sa.text(
                    "SELECT l.value FROM playbook_task t"
                    " JOIN playbook_action a ON a.id = t.action_id"
                    " JOIN device_latest l ON l.device_id = t.target_device_id"
                    " WHERE t.district_adcode = :d AND a.topic_code = 'flood' AND a.level = 4"
                    " AND a.seq = 1 AND t.status = 'open'"
                ),
                {"d": district},
            )
            .scalars()
            .all()
        )
        ponding = (
            conn.execute(
                sa.text(
                    "SELECT l.value FROM device d JOIN device_type t ON t.id = d.type_id"
                    " JOIN device_latest l ON l.device_id = d.id WHERE t.measurand = 'ponding'"
                    " AND d.district_adcode = :d AND d.status <> 'retired' ORDER BY l.value DESC"
                ),
                {"d": district},
            )
            .scalars()
            .all()
        )
    assert targets
    assert sorted(targets, reverse=True) == ponding[: min(5, len(ponding))]


def test_lowering_to_4_cancels_the_level_3_tasks(owner):
    district = "310113"
    _raise_level(owner, topic="flood", district=district, from_level=None, to_level=3)
    before = _task_counts(owner, topic="flood", district=district)
    _raise_level(owner, topic="flood", district=district, from_level=3, to_level=4)
    after = _task_counts(owner, topic="flood", district=district)
    assert after == {(4, "open"): before[(4, "open")], (3, "cancelled"): before[(3, "open")]}
    with owner.connect() as conn:
        who = conn.execute(
            sa.text(
                "SELECT DISTINCT done_by, note FROM playbook_task WHERE district_adcode = :d"
                " AND status = 'cancelled'"
            ),
            {"d": district},
        ).all()
    assert who == [("playbook", "warning lowered")]
    audit = [
        e
        for e in access.audit_entries(owner, limit=500, action="playbook-tasks")
        if e["district_adcode"] == district
    ]
    assert audit[0]["detail"]["cancelled"] == before[(3, "open")]
    assert audit[0]["detail"]["created"] == 0


def test_lowering_the_level_does_not_recreate_tasks_already_done(owner):
    district = "310112"
    _raise_level(owner, topic="flood", district=district, from_level=None, to_level=3)
    with owner.begin() as conn:
        done = conn.execute(
            sa.text(
                "UPDATE playbook_task SET status = 'done', done_at = now(), done_by = 'crew'"
                " WHERE district_adcode = :d AND topic_code = 'flood' AND level = 4"
            ),
            {"d": district},
        ).rowcount
    _raise_level(owner, topic="flood", district=district, from_level=3, to_level=4)
    counts = _task_counts(owner, topic="flood", district=district)
    # a fall only cancels: the level-IV actions were done and no new ones appear
    assert counts.get((4, "done")) == done
    assert counts.get((4, "open"), 0) == 0


def test_a_task_is_done_reopened_and_handed_over_with_audit(owner, web):
    district = "310117"
    manager = _manager(owner, district)
    _raise_level(owner, topic="weather", district=district, from_level=None, to_level=4)
    task = _open_task(owner, topic="weather", district=district)
    with scoped(Scope(district, actor=manager)):
        assert (
            handle_task(web, task_id=task, action="done", actor=manager, note="checked") == "done"
        )
        with pytest.raises(ResourceError, match="a task that is done"):
            handle_task(web, task_id=task, action="done", actor=manager)
        assert handle_task(web, task_id=task, action="reopen", actor=manager) == "open"
        with pytest.raises(ResourceError, match="cannot reopen"):
            handle_task(web, task_id=task, action="reopen", actor=manager)
        assert (
            handle_task(web, task_id=task, action="owner", actor=manager, owner="team:city-flood")
            == "open"
        )
        with pytest.raises(ResourceError, match="cannot take"):
            handle_task(web, task_id=task, action="owner", actor=manager, owner="team:nobody")
        with pytest.raises(ResourceError, match="unknown task action"):
            handle_task(web, task_id=task, action="explode", actor=manager)
    with owner.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT status, owner, done_at, done_by, note FROM playbook_task WHERE id = :id"
            ),
            {"id": task},
        ).one()
    assert tuple(row) == ("open", "team:city-flood", None, None, "checked")
    trail = [
        (e["action"], e["actor"], e["detail"]["to"])
        for e in reversed(access.audit_entries(owner, limit=500))
        if e["target"] == f"task:{task}"
    ]
    assert trail == [
        ("task-done", manager, "done"),
        ("task-reopen", manager, "open"),
        ("task-owner", manager, "open"),
    ]


def test_progress_counts_done_open_and_overdue_tasks(owner):
    district = "310105"
    _raise_level(owner, topic="water", district=district, from_level=None, to_level=3)
    total = _expected_tasks(owner, topic="water", district=district, level=4) + _expected_tasks(
        owner, topic="water", district=district, level=3
    )
    first = _open_task(owner, topic="water", district=district)
    handle_task(owner, task_id=first, action="done", actor="city-op")
    second = _open_task(owner, topic="water", district=district)
    handle_task(owner, task_id=second, action="cancel", actor="city-op")
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE playbook_task SET due_at = now() - interval '1 minute' WHERE id = ("
                " SELECT id FROM playbook_task WHERE district_adcode = :d AND topic_code = 'water'"
                " AND status = 'open' ORDER BY id LIMIT 1)"
            ),
            {"d": district},
        )
    assert progress(owner, district=district) == {
        "water": {"done": 1, "open": total - 2, "overdue": 1, "total": total - 1}
    }


def test_reopening_a_task_whose_action_is_open_again_is_refused_with_a_reason(owner, web):
    district = "310120"
    manager = _manager(owner, district)
    _raise_level(owner, topic="flood", district=district, from_level=None, to_level=3)
    _raise_level(owner, topic="flood", district=district, from_level=3, to_level=4)
    _raise_level(owner, topic="flood", district=district, from_level=4, to_level=3)
    with owner.connect() as conn:
        cancelled = conn.execute(
            sa.text(
                "SELECT id FROM playbook_task WHERE district_adcode = :d AND topic_code = 'flood'"
                " AND status = 'cancelled' ORDER BY id LIMIT 1"
            ),
            {"d": district},
        ).scalar_one()
    # the level-III tasks were made again: reopening an old one would make two of one action
    with scoped(Scope(district, actor=manager)), pytest.raises(ResourceError):
        handle_task(web, task_id=cancelled, action="reopen", actor=manager)
    counts = _task_counts(owner, topic="flood", district=district)
    assert counts[(3, "cancelled")] == counts[(3, "open")]


def test_a_unit_is_sent_to_a_task_and_released_when_it_is_done(owner, web):
    district = "310112"
    manager = _manager(owner, district)
    _raise_level(owner, topic="gas", district=district, from_level=None, to_level=4)
    task = _open_task(owner, topic="gas", district=district, kind="gas_crew")
    with scoped(Scope(district, actor=manager)):
        suggested = task_suggestions(web, task_id=task)
        assert suggested and {s.kind_code for s in suggested} == {"gas_crew"}
        unit = suggested[0].resource_id
        dispatch_unit(web, resource_id=unit, actor=manager, task_id=task)
        assert [u["id"] for u in units_on_job(web, task_id=task)] == [unit]
        listed = next(t for t in tasks(web, topic="gas") if t["id"] == task)
        assert listed["units"] == 1
        handle_task(web, task_id=task, action="done", actor=manager)
    row = _resource(owner, unit)
    assert (row["status"], row["task_id"], row["incident_id"]) == ("dispatched", task, None)
    with owner.begin() as conn:
        assert release_finished(conn, actor="rules") == 1
    assert _resource(owner, unit)["status"] == "available"
    assert [(e.kind, e.task_id) for e in _resource_events(owner, unit)] == [
        ("dispatched", task),
        ("released", task),
    ]


def test_a_rules_pass_returns_the_units_of_a_resolved_incident_to_service(owner, web):
    from ingest.rules_engine import RulesEngine

    incident = _incident(owner, district=JINGAN, category="flood", salt="rules-pass")
    unit = _unit(owner, skill="flood", district=JINGAN)
    dispatch_unit(owner, resource_id=unit, actor="city-op", incident_id=incident)
    RulesEngine(owner).run_once(offline=False, group=True, warnings=False)
    assert _resource(owner, unit)["status"] == "dispatched"  # its incident is still open
    with scoped(Scope(CITY, actor="city-op")):
        handle_incident(web, incident_id=incident, action="resolve", actor="city-op", note="done")
    RulesEngine(owner).run_once(offline=False, group=True, warnings=False)
    assert _resource(owner, unit)["status"] == "available"
    assert _resource_events(owner, unit)[-1].actor == "system:rules"


# lending the city's reserve ---------------------------------------------------------------------


def _lender(owner: sa.Engine) -> str:
    return access.create_user(
        owner, username=f"city-{secrets.token_hex(4)}", role="operator", password=PASSWORD
    ).username


def _lent(owner: sa.Engine, code: str) -> tuple[str | None, str | None]:
    with owner.connect() as conn:
        row = conn.execute(
            sa.text("SELECT lent_to, lent_by FROM resource WHERE code = :code"), {"code": code}
        ).one()
    return row.lent_to, row.lent_by


def test_the_city_lends_a_reserve_unit_from_the_web_and_takes_it_back(owner, web):
    city_op, manager = _lender(owner), _manager(owner, JINGAN)
    with scoped(Scope(CITY, actor=city_op)):
        offered = lendable_units(web, district=JINGAN, skill="flood", limit=50)
    with owner.connect() as conn:  # every free reserve unit serving floods, nearest first
        expected = conn.execute(
            sa.text(
                "SELECT r.code FROM resource r JOIN resource_kind k ON k.code = r.kind_code,"
                " district d WHERE d.adcode = :d AND r.district_adcode IS NULL"
                " AND r.lent_to IS NULL AND r.status = 'available' AND 'flood' = ANY(k.skills)"
                " ORDER BY ST_Distance(geography(r.geom), geography(d.label_point)), r.code"
            ),
            {"d": JINGAN},
        ).scalars()
        assert [u["code"] for u in offered] == list(expected)[:50]
    assert offered and [u["metres"] for u in offered] == sorted(u["metres"] for u in offered)
    code = offered[0]["code"]
    assert _resource(owner, _unit_id(owner, code))["district_adcode"] is None
    with scoped(Scope(CITY, actor=city_op)):
        loan = lend_unit(web, code=code, district=JINGAN, actor=city_op, address="10.0.0.9")
    assert (loan.code, loan.lent_to) == (code, JINGAN)
    assert _lent(owner, code) == (JINGAN, city_op)
    with scoped(Scope(JINGAN, actor=manager)):
        assert code in {u["code"] for u in units(web)}
    with scoped(Scope(CITY, actor=city_op)):
        assert code not in {u["code"] for u in lendable_units(web, district=JINGAN, limit=500)}
        assert lend_unit(web, code=code, district=None, actor=city_op).lent_to is None
    assert _lent(owner, code) == (None, None)
    with scoped(Scope(JINGAN, actor=manager)):
        assert code not in {u["code"] for u in units(web)}
    trail = _audit(owner, "unit-lend", f"unit:{code}")
    assert [(e["actor"], e["detail"]) for e in trail[:2]] == [
        (city_op, {"lent_to": None}),
        (city_op, {"lent_to": JINGAN}),
    ]
    assert trail[1]["ip"] == "10.0.0.9"


def _unit_id(owner: sa.Engine, code: str) -> int:
    with owner.connect() as conn:
        return conn.execute(
            sa.text("SELECT id FROM resource WHERE code = :code"), {"code": code}
        ).scalar_one()


def test_a_district_manager_can_neither_lend_nor_take_back(owner, web):
    manager = _manager(owner, JINGAN)
    lent = _resource(owner, _unit(owner, skill="flood", district=None))["code"]
    free = _resource(owner, _unit(owner, skill="power", district=None))["code"]
    lend_unit(owner, code=lent, district=JINGAN, actor="city-op")
    before = len(access.audit_entries(owner, limit=10_000, action="unit-lend"))
    try:
        with scoped(Scope(JINGAN, actor=manager)):
            with pytest.raises(ResourceError, match="only the city"):  # the database refuses
                lend_unit(web, code=lent, district=None, actor=manager)
            with pytest.raises(ResourceError, match="lent to 310106"):  # not elsewhere either
                lend_unit(web, code=lent, district=PUDONG, actor=manager)
            with pytest.raises(ResourceError, match="no city unit"):  # out of its sight
                lend_unit(web, code=free, district=JINGAN, actor=manager)
        with scoped(Scope(CITY, actor="")), pytest.raises(ResourceError, match="may not"):
            lend_unit(web, code=free, district=JINGAN, actor="viewer")  # a read-only city
        # a manager of both districts, moving the loan by a statement of its own: the database
        # refuses it, not only lend_unit
        both = Scope(f"{JINGAN},{PUDONG}", actor=manager)
        with scoped(both), web.begin() as conn, pytest.raises(sa.exc.ProgrammingError):
            conn.execute(
                sa.text("UPDATE resource SET lent_to = :d WHERE code = :code"),
                {"d": PUDONG, "code": lent},
            )
        assert (_lent(owner, lent)[0], _lent(owner, free)[0]) == (JINGAN, None)
        assert len(access.audit_entries(owner, limit=10_000, action="unit-lend")) == before
    finally:
        lend_unit(owner, code=lent, district=None, actor="city-op")


def test_a_unit_on_a_job_or_lent_elsewhere_is_not_lent(owner, web):
    city_op = _lender(owner)
    unit = _unit(owner, skill="flood", district=None)
    code = _resource(owner, unit)["code"]
    incident = _incident(owner, district=JINGAN, category="flood", salt="lend-busy")
    dispatch_unit(owner, resource_id=unit, actor="city-op", incident_id=incident)
    with scoped(Scope(CITY, actor=city_op)):
        with pytest.raises(ResourceError, match="out on a job"):
            lend_unit(web, code=code, district=JINGAN, actor=city_op)
        move_unit(web, resource_id=unit, action="release", actor=city_op)
        lend_unit(web, code=code, district=JINGAN, actor=city_op)
        with pytest.raises(ResourceError, match="lent to 310106"):
            lend_unit(web, code=code, district=PUDONG, actor=city_op)
        lend_unit(web, code=code, district=JINGAN, actor=city_op)  # again: no change, no harm
        lend_unit(web, code=code, district=None, actor=city_op)
    assert _lent(owner, code) == (None, None)
    with pytest.raises(ResourceError, match="unknown district"):
        lend_unit(owner, code=code, district="310199", actor="city-op")
    district_unit = _resource(owner, _unit(owner, skill="flood", district=PUDONG))["code"]
    with pytest.raises(ResourceError, match="no city unit"):
        lend_unit(owner, code=district_unit, district=JINGAN, actor="city-op")
    with owner.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # the store holds it too
        conn.execute(
            sa.text("UPDATE resource SET lent_to = :d WHERE code = :code"),
            {"d": JINGAN, "code": district_unit},
        )


def test_a_district_unit_with_a_lender_is_refused_at_import(owner):
    text = CSV_HEADER + "T-LEND-1,pump_truck,泵车,Pump,310115,310106,500,available,121.5,31.2\n"
    with pytest.raises(ResourceError, match="only city units"):
        import_units(owner, text=text, geojson=False)


def test_the_duty_officer_lends_the_nearest_reserve_where_a_playbook_calls_for_it(owner):
    district = "310118"
    # power at level III calls for generator trucks (one task, at the district's label point)
    _raise_level(owner, topic="power", district=district, from_level=None, to_level=3)
    _open_task(owner, topic="power", district=district, kind="generator_truck")
    answer = reserve_requests(owner, limit=50)
    code = {d: c for c, d in answer}[district]
    with owner.connect() as conn:
        by_distance = conn.execute(
            sa.text(
                "SELECT r.code FROM resource r, district d WHERE d.adcode = :d"
                " AND r.district_adcode IS NULL AND r.lent_to IS NULL"
                " AND r.status = 'available' AND r.kind_code = 'generator_truck'"
                " ORDER BY ST_Distance(geography(r.geom), geography(d.label_point)), r.code"
            ),
            {"d": district},
        ).scalars()
        # the nearest, unless a district before it in the answer took that one
        taken_before = {c for c, d in answer if d < district}
        nearest = next(c for c in by_distance if c not in taken_before)
    assert code == nearest
    assert len({c for c, _d in answer}) == len(answer)  # no unit lent twice
    lend_unit(owner, code=code, district=district, actor="simulator:duty")
    assert district not in {d for _c, d in reserve_requests(owner, limit=50)}
    assert code not in idle_loans(owner, lent_by="simulator:duty")  # still called for
    _raise_level(owner, topic="power", district=district, from_level=3, to_level=None)
    assert code in idle_loans(owner, lent_by="simulator:duty")
    assert code not in idle_loans(owner, lent_by="someone-else")  # a person's loan is theirs
    lend_unit(owner, code=code, district=None, actor="simulator:duty")
    assert code not in idle_loans(owner, lent_by="simulator:duty")


def _database_now(owner: sa.Engine) -> datetime:
    with owner.connect() as conn:
        return conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()


def test_a_replay_shows_a_districts_loans_as_they_were(owner):
    unit = _unit(owner, skill="power", district=None)
    code = _resource(owner, unit)["code"]

    def held_by(district: str, at: datetime) -> bool:
        shown = unit_positions(owner, district=district, at=at, replay=True)
        return unit in {u["id"] for u in shown}

    before = _database_now(owner)
    time.sleep(0.05)
    lend_unit(owner, code=code, district=JINGAN, actor="city-op")
    time.sleep(0.05)
    lent_to_jingan = _database_now(owner)
    time.sleep(0.05)
    lend_unit(owner, code=code, district=None, actor="city-op")
    lend_unit(owner, code=code, district=PUDONG, actor="city-op")
    time.sleep(0.05)
    lent_to_pudong = _database_now(owner)
    try:
        assert [e.kind for e in _resource_events(owner, unit)] == ["lent"] * 3
        assert (held_by(JINGAN, before), held_by(PUDONG, before)) == (False, False)
        assert (held_by(JINGAN, lent_to_jingan), held_by(PUDONG, lent_to_jingan)) == (True, False)
        assert (held_by(JINGAN, lent_to_pudong), held_by(PUDONG, lent_to_pudong)) == (False, True)
        # live, the same as the last replayed instant
        live = {u["id"] for u in unit_positions(owner, district=PUDONG)}
        assert unit in live
    finally:
        lend_unit(owner, code=code, district=None, actor="city-op")
