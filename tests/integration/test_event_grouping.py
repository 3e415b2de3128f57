"""One event, not a storm of alarms, on the real PostGIS: a storm's incidents grouped by the
rules pass into a few events, the feed's lines, nothing missing, counters untouched, and a
district's reader counting only its own members; an event handled as one, within the
handler's districts, each member's history and one audit line written."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from data import access, migrate
from data.engine import create_db_engine
from data.event_reads import event_list, feed_lines
from data.events import handle_event
from data.incident_reads import incident_list, incident_watch
from data.incidents import IncidentActionError, ensure_default_teams
from data.reference_data import load_reference_data
from data.scope import CITY, Scope, create_web_engine, provision_web_role, scoped, web_database_url
from ingest.rules_engine import RulesEngine
from localservers.base import free_port

pytestmark = pytest.mark.integration
NOW = datetime(2026, 7, 21, 15, 0, tzinfo=UTC)
STORM_ALARMS = 2000


@pytest.fixture(scope="module")
def city_url(pg_cluster) -> Iterator[str]:
    """A database of its own: the reference city (districts, streets, catalogue), no devices."""
    base = pg_cluster.url().rsplit("/", 1)[0]
    name = f"events_{free_port()}"
    admin = create_db_engine(base + "/postgres")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = create_db_engine(f"{base}/{name}")
    migrate.upgrade(engine)
    load_reference_data(engine)
    provision_web_role(engine)
    engine.dispose()
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def owner(city_url) -> Iterator[sa.Engine]:
    engine = create_db_engine(city_url)
    yield engine
    engine.dispose()


def _storm_streets(owner: sa.Engine, *, districts: int) -> list[tuple[str, str]]:
    """(street, district) of a connected patch of streets spanning `districts` districts."""
    with owner.connect() as conn:
        pairs = conn.execute(
            sa.text(
                "SELECT n.street_code, n.neighbour_code, a.district_adcode, b.district_adcode"
                " FROM street_neighbour n JOIN street a ON a.code = n.street_code"
                " JOIN street b ON b.code = n.neighbour_code ORDER BY 1, 2"
            )
        ).all()
    near: dict[str, list[str]] = {}
    district: dict[str, str] = {}
    for street, neighbour, a, b in pairs:
        near.setdefault(street, []).append(neighbour)
        district[street], district[neighbour] = a, b
    # grow a patch from a street on a district border until it covers enough districts
    start = next(s for s, n in near.items() if any(district[x] != district[s] for x in n))
    patch, frontier = [start], [start]
    while len({district[s] for s in patch}) < districts or len(patch) < 12:
        street = frontier.pop(0)
        for neighbour in near[street]:
            if neighbour not in patch:
                patch.append(neighbour)
                frontier.append(neighbour)
    return [(street, district[street]) for street in patch]


def _insert(owner: sa.Engine, rows: list[dict]) -> None:
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO incident (category_code, district_adcode, street_code, rule_code,"
                " severity, status, title_zh, title_en, opened_at, acknowledged_at, resolved_at,"
                " geom)"
                " SELECT :category, :district, :street, 'alarm_high', :severity, :status,"
                "  '测试告警', 'test alarm', :opened, :acknowledged, :resolved, s.label_point"
                " FROM street s WHERE s.code = :street"
            ),
            rows,
        )


def _storm(owner: sa.Engine, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """2,000 flood alarms over 40 minutes in a patch across three districts, and faults
    scattered over the city in other scenarios and places."""
    patch = _storm_streets(owner, districts=3)
    storm = []
    for _ in range(STORM_ALARMS):
        street, district = rng.choice(patch)
        opened = NOW - timedelta(minutes=rng.uniform(1, 40))
        status = rng.choice(["open", "open", "acknowledged", "resolved"])
        storm.append(
            {
                "category": "flood",
                "district": district,
                "street": street,
                "severity": rng.choice(["critical", "major"]),
                "status": status,
                "opened": opened,
                "acknowledged": opened + timedelta(seconds=30) if status != "open" else None,
                "resolved": opened + timedelta(seconds=60) if status == "resolved" else None,
            }
        )
    with owner.connect() as conn:
        others = conn.execute(
            sa.text("SELECT code, district_adcode FROM street WHERE NOT (code = ANY(:p))"),
            {"p": [street for street, _ in patch]},
        ).all()
    faults = [
        {
            "category": rng.choice(["power", "gas", "fire"]),
            "district": district,
            "street": street,
            "severity": "major",
            "status": "open",
            "opened": NOW - timedelta(minutes=rng.uniform(1, 40)),
            "acknowledged": None,
            "resolved": None,
        }
        for street, district in rng.sample(others, 25)
    ]
    return storm, faults


def _counters(owner: sa.Engine) -> list[tuple]:
    with owner.connect() as conn:
        live = conn.execute(sa.text("SELECT * FROM incident_live ORDER BY 1, 2, 3, 4")).all()
        daily = conn.execute(sa.text("SELECT * FROM incident_daily ORDER BY 1, 2, 3, 4, 5")).all()
    return [tuple(row) for row in (*live, *daily)]


@pytest.fixture(scope="module")
def stormed(owner) -> dict:
    """The storm written, and the rules pass (grouping) run over it twice."""
    storm, faults = _storm(owner, random.Random(11))
    _insert(owner, storm + faults)
    before = _counters(owner)
    rules = RulesEngine(owner, early=False, watch_start=NOW - timedelta(hours=1))
    first = rules.run_once(now=NOW, offline=False, group=True)
    again = rules.run_once(now=NOW, offline=False, group=True)
    return {"first": first, "again": again, "before": before, "faults": len(faults)}


def test_a_storm_of_two_thousand_alarms_is_at_most_twenty_lines(owner, stormed):
    assert stormed["first"].events.grouped >= STORM_ALARMS
    assert 1 <= stormed["first"].events.opened <= 20
    assert not stormed["again"].events.changed  # a second pass finds nothing left to do
    with owner.connect() as conn:
        ungrouped = conn.execute(
            sa.text(
                "SELECT count(*) FROM incident WHERE category_code = 'flood' AND group_id IS NULL"
            )
        ).scalar_one()
        grouped_faults = conn.execute(
            sa.text(
                "SELECT count(*) FROM incident"
                " WHERE category_code <> 'flood' AND group_id IS NOT NULL"
            )
        ).scalar_one()
        history = conn.execute(
            sa.text("SELECT count(*) FROM incident_event WHERE kind = 'grouped'")
        ).scalar_one()
    assert ungrouped == 0 and grouped_faults == 0
    assert history == STORM_ALARMS  # each member's history says it joined
    window = {"start": NOW - timedelta(hours=24), "end": NOW + timedelta(minutes=1)}
    with scoped(Scope(CITY)):
        web = create_web_engine(web_database_url(owner.url.render_as_string(hide_password=False)))
        try:
            lines = feed_lines(web, **window, limit=100)
            members = incident_list(web, **window, grouped=True, limit=10_000)
            singles = incident_list(web, **window, grouped=False, limit=10_000)
            everything = incident_list(web, **window, limit=10_000)
        finally:
            web.dispose()
    events = lines[lines["line"] == "event"]
    assert len(events) <= 20
    assert int(events["members"].sum()) == STORM_ALARMS
    assert len(lines[lines["line"] == "incident"]) == stormed["faults"]
    # nothing missing: every incident is a member or a line of its own
    assert set(members["id"]) | set(singles["id"]) == set(everything["id"])
    assert len(members) == STORM_ALARMS
    # what a wall learns of the incidents it waits to show: their status and their event
    watched = [int(i) for i in members["id"][:3]] + [int(i) for i in singles["id"][:2]]
    watch = incident_watch(owner, incident_ids=watched)
    assert [watch[i][1] is not None for i in watched] == [True, True, True, False, False]


def test_grouping_moves_no_counter(owner, stormed):
    assert _counters(owner) == stormed["before"]


def test_a_district_reader_counts_only_its_own_districts_members(owner, stormed):
    window = {"start": NOW - timedelta(hours=24), "end": NOW + timedelta(minutes=1)}
    with owner.connect() as conn:
        by_district = dict(
            conn.execute(
                sa.text(
                    "SELECT district_adcode, count(*) FROM incident"
                    " WHERE group_id IS NOT NULL GROUP BY 1"
                )
            ).all()
        )
    web = create_web_engine(web_database_url(owner.url.render_as_string(hide_password=False)))
    try:
        for district, members in by_district.items():
            with scoped(Scope(district)):
                events = event_list(web, **window)
            assert int(events["members"].sum()) == members
            assert all(names == [names[0]] for names in events["districts_zh"])
        with owner.connect() as conn:
            quiet = conn.execute(
                sa.text("SELECT adcode FROM district WHERE NOT (adcode = ANY(:busy)) LIMIT 1"),
                {"busy": list(by_district)},
            ).scalar_one()
        with scoped(Scope(quiet)):
            assert event_list(web, **window).empty  # a district without members sees no event
    finally:
        web.dispose()


@pytest.fixture(scope="module")
def web(owner) -> Iterator[sa.Engine]:
    """The web role's engine (row-level security applies), with the default teams to assign."""
    ensure_default_teams(owner)
    engine = create_web_engine(web_database_url(owner.url.render_as_string(hide_password=False)))
    yield engine
    engine.dispose()


def _members(owner: sa.Engine, group_id: int) -> list[sa.Row]:
    with owner.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT id, status, district_adcode, assignee FROM incident"
                    " WHERE group_id = :g ORDER BY id"
                ),
                {"g": group_id},
            ).all()
        )


def _widest_event(owner: sa.Engine) -> int:
    """The active event with members in the most districts."""
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT id FROM incident_group WHERE status = 'active'"
                " ORDER BY cardinality(districts) DESC, id LIMIT 1"
            )
        ).scalar_one()


def _user(owner: sa.Engine, role: str, districts: list[str] | None = None) -> str:
    name = f"{role[:2]}-{random.randrange(10**8)}"
    access.create_user(
        owner, username=name, role=role, password="event handling pass", districts=districts or []
    )
    return name


def test_an_operator_acknowledges_an_event_in_one_action(owner, stormed, web):
    group = _widest_event(owner)
    waiting = [m.id for m in _members(owner, group) if m.status == "open"]
    with owner.connect() as conn:
        counted = conn.execute(sa.text("SELECT sum(acknowledged) FROM incident_daily")).scalar()
    operator = _user(owner, "operator")
    with scoped(Scope(CITY, actor=operator)):
        done = handle_event(
            web, group_id=group, action="acknowledge", actor=operator, note="暴雨，已派员巡查"
        )
        with pytest.raises(IncidentActionError, match="already acknowledged"):
            handle_event(web, group_id=group, action="acknowledge", actor=operator, note="again")
    assert done.changed == len(waiting) > 0 and done.skipped == 0
    assert not [m for m in _members(owner, group) if m.status == "open"]
    with owner.connect() as conn:
        history = conn.execute(
            sa.text(
                "SELECT incident_id, actor, note FROM incident_event"
                " WHERE kind = 'acknowledged' AND incident_id = ANY(:ids)"
            ),
            {"ids": waiting},
        ).all()
        counted_after = conn.execute(
            sa.text("SELECT sum(acknowledged) FROM incident_daily")
        ).scalar()
    assert sorted(row.incident_id for row in history) == waiting  # one line each
    assert {(row.actor, row.note) for row in history} == {
        (operator, f"#{group} · 暴雨，已派员巡查")
    }
    assert (counted_after or 0) - (counted or 0) == len(waiting)  # counted by the trigger
    audit = access.audit_entries(owner, limit=5, action="event-acknowledge")
    assert audit[0]["target"] == f"event:{group}" and audit[0]["actor"] == operator
    assert audit[0]["detail"]["members"] == len(waiting)


def test_a_district_manager_assigns_only_their_districts_members(owner, stormed, web):
    group = _widest_event(owner)
    members = _members(owner, group)
    districts = sorted({m.district_adcode for m in members})
    assert len(districts) >= 2
    mine, other = districts[0], districts[1]
    live = [m.id for m in members if m.status != "resolved"]
    live_mine = [m.id for m in members if m.status != "resolved" and m.district_adcode == mine]
    manager = _user(owner, "district_manager", [mine])
    with scoped(Scope(mine, actor=manager)):
        with pytest.raises(IncidentActionError, match="cannot take"):
            handle_event(
                web, group_id=group, action="assign", actor=manager, assignee=f"team:ops-{other}"
            )
        done = handle_event(
            web, group_id=group, action="assign", actor=manager, assignee=f"team:ops-{mine}"
        )
    # the others' districts are out of reach: not changed, and not even counted as skipped
    assert (done.changed, done.skipped, done.districts) == (len(live_mine), 0, (mine,))
    after = {m.id: m.assignee for m in _members(owner, group)}
    assert {i for i in live if after[i] == f"team:ops-{mine}"} == set(live_mine)
    operator = _user(owner, "operator")
    with scoped(Scope(CITY, actor=operator)):
        city = handle_event(
            web, group_id=group, action="assign", actor=operator, assignee=f"team:ops-{other}"
        )
        noted = handle_event(web, group_id=group, action="note", actor=operator, note="水泵已到")
    live_other = [i for i in live if i not in live_mine and _district(members, i) == other]
    assert (city.changed, city.skipped) == (len(live_other), len(live) - len(live_other))
    assert noted.changed == len(live)


def _district(members: list[sa.Row], incident_id: int) -> str:
    return next(m.district_adcode for m in members if m.id == incident_id)


def test_forged_event_requests_are_refused(owner, stormed, web):
    group = _widest_event(owner)
    busy = {m.district_adcode for m in _members(owner, group)}
    with owner.connect() as conn:
        quiet = conn.execute(
            sa.text("SELECT adcode FROM district WHERE NOT (adcode = ANY(:busy)) LIMIT 1"),
            {"busy": sorted(busy)},
        ).scalar_one()
    before = _members(owner, group)
    stranger = _user(owner, "district_manager", [quiet])
    refusals = [
        (Scope(quiet, actor=stranger), {"group_id": group}, "no such event"),
        (Scope(CITY, actor=stranger), {"group_id": 0}, "no such event"),
        (Scope(CITY, actor=stranger), {"group_id": str(group)}, "no such event"),
        (Scope(CITY, actor=stranger), {"group_id": 2**63}, "no such event"),
        (Scope(CITY, actor=stranger), {"group_id": group, "action": "resolve"}, "unknown action"),
        (Scope(CITY, actor=stranger), {"group_id": group, "note": " "}, "comment is required"),
        (Scope(CITY, actor=stranger), {"group_id": group, "note": "x" * 2001}, "longer than"),
        (Scope(CITY), {"group_id": group, "action": "note"}, "may not change"),
    ]
    for scope, forged, message in refusals:
        request = {"action": "acknowledge", "note": "forged", **forged}
        with scoped(scope), pytest.raises(IncidentActionError, match=message):
            handle_event(web, actor=stranger, **request)
    assert _members(owner, group) == before  # nothing changed by any of them


def test_an_events_live_early_warnings_are_counted_with_their_soonest_breach(owner, stormed):
    window = {"start": NOW - timedelta(hours=24), "end": NOW + timedelta(minutes=1)}
    group = int(event_list(owner, **window).sort_values("live").iloc[-1]["id"])
    breaches = [NOW + timedelta(minutes=m) for m in (30, 12, 20)]
    with owner.begin() as conn:
        ids = (
            conn.execute(
                sa.text(
                    "SELECT id FROM incident WHERE group_id = :g AND status <> 'resolved'"
                    " ORDER BY id LIMIT 4"
                ),
                {"g": group},
            )
            .scalars()
            .all()
        )
        # three of its live members become 预警, the fourth stays an alarm
        for incident, at in zip(ids[:3], breaches, strict=True):
            conn.execute(
                sa.text("UPDATE incident SET kind = 'forecast', expected_at = :at WHERE id = :id"),
                {"at": at, "id": incident},
            )
    try:
        event = event_list(owner, group_id=group, **window).iloc[0]
        assert int(event["forecasts"]) == 3
        assert event["next_breach"] == NOW + timedelta(minutes=12)
        others = event_list(owner, **window)
        assert int(others.loc[others["id"] != group, "forecasts"].sum()) == 0
    finally:
        with owner.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE incident SET kind = 'alarm', expected_at = NULL WHERE id = ANY(:i)"
                ),
                {"i": list(ids[:3])},
            )


def test_an_event_with_no_live_member_closes_after_its_gap(owner, stormed):
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE incident SET status = 'resolved', resolved_at = :at,"
                " acknowledged_at = coalesce(acknowledged_at, :at)"
                " WHERE group_id IS NOT NULL AND status <> 'resolved'"
            ),
            {"at": NOW + timedelta(minutes=5)},
        )
    rules = RulesEngine(owner, early=False, watch_start=NOW)
    soon = rules.run_once(now=NOW + timedelta(minutes=10), offline=False, group=True)
    assert soon.events.closed == 0  # quiet, but not yet for the gap
    later = rules.run_once(now=NOW + timedelta(hours=2), offline=False, group=True)
    assert later.events.closed == stormed["first"].events.opened
    with owner.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM incident_group WHERE status = 'active'")
            ).scalar_one()
            == 0
        )
