"""Incident handling on the real PostGIS: the whole lifecycle with its history, counters and
audit, and who may do what (row-level security decides, whatever the caller claims)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from data import access
from data.engine import create_db_engine
from data.incidents import IncidentActionError, assignees, ensure_default_teams, handle_incident
from data.scope import CITY, Scope, create_web_engine, provision_web_role, scoped, web_database_url

pytestmark = pytest.mark.integration
PUDONG = "310115"
PASSWORD = "incident handling passphrase"


@pytest.fixture(scope="module")
def engine(live_city_url) -> Iterator[sa.Engine]:
    """The owner's engine on a city of this module's own: handling changes what others count."""
    owner = create_db_engine(live_city_url)
    yield owner
    owner.dispose()


@pytest.fixture(scope="module")
def web_engine(engine, live_city_url) -> Iterator[sa.Engine]:
    provision_web_role(engine)
    ensure_default_teams(engine)
    web = create_web_engine(web_database_url(live_city_url))
    yield web
    web.dispose()


def _open_incident(engine: sa.Engine, *, district: str) -> int:
    """A fresh open incident in `district` (on a device without a live one)."""
    with engine.begin() as conn:
        return conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
                " threshold, opened_at, geom)"
                " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
                "   'test-' || md5(random()::text), 'major', 'open', '测试事件', 'Test incident',"
                "   1, 0, now() - interval '10 minutes', d.geom"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE d.district_adcode = :district ORDER BY random() LIMIT 1"
                " RETURNING id"
            ),
            {"district": district},
        ).scalar_one()


def _other_district(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT district_adcode FROM device WHERE district_adcode <> :p"
                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ),
            {"p": PUDONG},
        ).scalar_one()


def _status(engine: sa.Engine, incident_id: int) -> tuple:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                sa.text(
                    "SELECT status, assignee, acknowledged_at IS NOT NULL,"
                    " resolved_at IS NOT NULL FROM incident WHERE id = :id"
                ),
                {"id": incident_id},
            ).one()
        )


def _manager(engine: sa.Engine, district: str) -> access.Principal:
    return access.create_user(
        engine,
        username=f"dm-{secrets.token_hex(4)}",
        role="district_manager",
        password=PASSWORD,
        districts=[district],
    )


def test_an_incident_goes_open_acknowledged_assigned_resolved_reopened(engine, web_engine):
    incident = _open_incident(engine, district=PUDONG)
    manager = _manager(engine, PUDONG)
    with engine.connect() as conn:
        acknowledged_before = conn.execute(
            sa.text("SELECT coalesce(sum(acknowledged), 0) FROM incident_daily")
        ).scalar_one()
    steps = [
        ("acknowledge", "到场核实", None, ("acknowledged", None, True, False)),
        ("assign", "", f"team:ops-{PUDONG}", ("acknowledged", f"team:ops-{PUDONG}", True, False)),
        ("note", "已关阀，等待抢修", None, ("acknowledged", f"team:ops-{PUDONG}", True, False)),
        ("resolve", "管道已修复", None, ("resolved", f"team:ops-{PUDONG}", True, True)),
        ("reopen", "复查仍有泄漏", None, ("open", f"team:ops-{PUDONG}", True, False)),
    ]
    with scoped(Scope(PUDONG, actor=manager.username)):
        for action, note, assignee, expected in steps:
            handle_incident(
                web_engine,
                incident_id=incident,
                action=action,
                actor=manager.username,
                note=note,
                assignee=assignee,
                address="10.1.2.3",
            )
            assert _status(engine, incident) == expected, action
    with engine.connect() as conn:
        history = conn.execute(
            sa.text(
                "SELECT kind, actor, from_status, to_status, note, assignee FROM incident_event"
                " WHERE incident_id = :id ORDER BY id"
            ),
            {"id": incident},
        ).all()
        acknowledged_after = conn.execute(
            sa.text("SELECT coalesce(sum(acknowledged), 0) FROM incident_daily")
        ).scalar_one()
    assert [row.kind for row in history] == [
        "acknowledged",
        "assigned",
        "note",
        "resolved",
        "reopened",
    ]
    assert {row.actor for row in history} == {manager.username}
    assert history[1].assignee == f"team:ops-{PUDONG}" and history[4].note == "复查仍有泄漏"
    assert acknowledged_after == acknowledged_before + 1  # counted once, by the trigger
    audit = [
        entry
        for entry in access.audit_entries(engine, limit=50)
        if entry["target"] == f"incident:{incident}"
    ]
    assert {entry["action"] for entry in audit} == {f"incident-{action}" for action, *_ in steps}
    assert all(e["actor"] == manager.username and e["ip"] == "10.1.2.3" for e in audit)


def test_a_district_manager_cannot_touch_another_districts_incident(engine, web_engine):
    other = _other_district(engine)
    incident = _open_incident(engine, district=other)
    manager = _manager(engine, PUDONG)
    with scoped(Scope(PUDONG, actor=manager.username)):
        for action in ("acknowledge", "note", "resolve"):
            with pytest.raises(IncidentActionError, match="no such incident"):
                handle_incident(
                    web_engine,
                    incident_id=incident,
                    action=action,
                    actor=manager.username,
                    note="not mine",
                )
    assert _status(engine, incident) == ("open", None, False, False)
    with engine.connect() as conn:
        events = conn.execute(
            sa.text("SELECT count(*) FROM incident_event WHERE incident_id = :id"),
            {"id": incident},
        ).scalar_one()
    assert events == 0


def test_readers_and_impostors_cannot_act(engine, web_engine):
    incident = _open_incident(engine, district=PUDONG)
    # a read-only scope (a viewer, a wall): the row is visible but nothing changes
    with scoped(Scope(CITY)):
        with pytest.raises(IncidentActionError):
            handle_incident(
                web_engine, incident_id=incident, action="acknowledge", actor="", note="x"
            )
        with pytest.raises((IncidentActionError, sa.exc.DBAPIError)):
            handle_incident(web_engine, incident_id=incident, action="note", actor="", note="x")
    # acting under another name than the session's is refused by the database
    with (
        scoped(Scope(CITY, actor="operator-a")),
        pytest.raises(sa.exc.DBAPIError),
    ):
        handle_incident(
            web_engine, incident_id=incident, action="note", actor="operator-b", note="x"
        )
    assert _status(engine, incident) == ("open", None, False, False)


def test_bad_actions_notes_and_assignees_are_refused_with_reasons(engine, web_engine):
    incident = _open_incident(engine, district=PUDONG)
    other = _other_district(engine)
    stranger = _manager(engine, other)
    with scoped(Scope(CITY, actor="city-op")):
        cases = [
            ({"action": "explode", "note": "x"}, "unknown action"),
            ({"action": "acknowledge", "note": "  "}, "comment is required"),
            ({"action": "resolve", "note": "x" * 2001}, "longer than"),
            ({"action": "reopen", "note": "x"}, "cannot reopen"),
            ({"action": "assign", "assignee": "team:nope"}, "cannot take"),
            ({"action": "assign", "assignee": f"user:{stranger.username}"}, "cannot take"),
            ({"action": "assign", "assignee": f"team:ops-{other}"}, "cannot take"),
            ({"action": "assign", "assignee": "user:x'; DROP TABLE incident;--"}, "choose"),
        ]
        for fields, message in cases:
            with pytest.raises(IncidentActionError, match=message):
                handle_incident(web_engine, incident_id=incident, actor="city-op", **fields)
        for bad_id in (0, -1, 2**64, "1", None):
            with pytest.raises(IncidentActionError, match="no such incident"):
                handle_incident(
                    web_engine, incident_id=bad_id, action="note", actor="city-op", note="x"
                )
        choices = {a.key for a in assignees(web_engine, district=PUDONG)}
    assert f"team:ops-{PUDONG}" in choices and f"team:ops-{other}" not in choices
    assert f"user:{stranger.username}" not in choices
    assert _status(engine, incident) == ("open", None, False, False)


def test_mean_times_to_acknowledge_and_resolve_follow_the_handling(engine, web_engine):
    from data.kpis import area_kpis

    incident = _open_incident(engine, district=PUDONG)
    with scoped(Scope(CITY, actor="city-op")):
        for action in ("acknowledge", "resolve"):
            handle_incident(
                web_engine, incident_id=incident, action=action, actor="city-op", note="ok"
            )
    kpis = area_kpis(engine, district=PUDONG)
    with engine.connect() as conn:
        mtta, mttr = conn.execute(
            sa.text(
                "SELECT avg(extract(epoch FROM acknowledged_at - opened_at) / 60)"
                "         FILTER (WHERE city_day(acknowledged_at) = city_day(now())),"
                "       avg(extract(epoch FROM resolved_at - opened_at) / 60)"
                "         FILTER (WHERE city_day(resolved_at) = city_day(now()))"
                " FROM incident WHERE district_adcode = :d"
            ),
            {"d": PUDONG},
        ).one()
    assert mtta is not None
    assert kpis.mean_minutes_to_acknowledge == pytest.approx(float(mtta), rel=1e-6)
    assert kpis.mean_minutes_to_resolve == pytest.approx(float(mttr), rel=1e-6)
