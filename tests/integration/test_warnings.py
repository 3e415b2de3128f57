"""Warning levels on a live city: each district's level from its devices against the rules (equal
to a direct count), the city at its worst district, operators' levels in their scope, logged
and audited, and forged requests refused with nothing changed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from data import access
from data.checks import InvalidQuery
from data.incident_reads import incident_marks
from data.incidents import IncidentActionError
from data.scope import CITY, Scope, create_web_engine, provision_web_role, scoped, web_database_url
from data.warning_reads import warning_levels, warning_rises, warning_rules
from data.warnings import set_warning
from ingest.rules_engine import RulesEngine


@pytest.fixture(scope="module")
def web(live_engine_) -> Iterator[sa.Engine]:
    provision_web_role(live_engine_)
    url = web_database_url(live_engine_.url.render_as_string(hide_password=False))
    engine = create_web_engine(url)
    yield engine
    engine.dispose()


def _ponding(owner: sa.Engine) -> tuple[str, list[int], float]:
    """The district with the most online ponding sensors, three of them, and the alarm line."""
    with owner.connect() as conn:
        district = conn.execute(
            sa.text(
                "SELECT d.district_adcode FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.measurand = 'ponding' AND d.status = 'active'"
                " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
            )
        ).scalar_one()
        rows = conn.execute(
            sa.text(
                "SELECT d.id, t.alarm_max FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.measurand = 'ponding' AND d.status = 'active'"
                "   AND d.district_adcode = :district ORDER BY d.id LIMIT 3"
            ),
            {"district": district},
        ).all()
    assert len(rows) == 3, "the tiny city needs three ponding sensors in a district"
    return district, [row.id for row in rows], float(rows[0].alarm_max)


@contextmanager
def _readings(owner: sa.Engine, devices: list[int], value: float) -> Iterator[None]:
    """The devices' latest reading `value` now, put back as it was afterwards."""
    with owner.begin() as conn:
        saved = conn.execute(
            sa.text("SELECT device_id, ts, value FROM device_latest WHERE device_id = ANY(:ids)"),
            {"ids": devices},
        ).all()
        conn.execute(
            sa.text(
                "INSERT INTO device_latest (device_id, ts, value, quality, level)"
                " SELECT id, now(), :value, 0, 2 FROM unnest(CAST(:ids AS bigint[])) AS id"
                " ON CONFLICT (device_id) DO UPDATE SET ts = now(), value = :value"
            ),
            {"ids": devices, "value": value},
        )
    try:
        yield
    finally:
        with owner.begin() as conn:
            for row in saved:
                conn.execute(
                    sa.text("UPDATE device_latest SET ts = :ts, value = :v WHERE device_id = :id"),
                    {"ts": row.ts, "v": row.value, "id": row.device_id},
                )


def _direct_count(owner: sa.Engine, district: str) -> int:
    """Online ponding sensors of the district beyond their alarm line, counted directly."""
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM device d JOIN device_type t ON t.id = d.type_id"
                " JOIN device_latest l ON l.device_id = d.id"
                " WHERE t.measurand = 'ponding' AND d.status = 'active'"
                "   AND d.district_adcode = :district AND l.value > t.alarm_max"
                "   AND l.ts > now() - greatest(3 * t.interval_s, 600) * interval '1 second'"
            ),
            {"district": district},
        ).scalar_one()


def _evaluate(owner: sa.Engine) -> int:
    return RulesEngine(owner, early=False).run_once(warnings=True, group=False).warnings_changed


def _user(owner: sa.Engine, role: str, districts: list[str] | None = None) -> str:
    name = f"{role[:2]}-{random.randrange(10**8)}"
    access.create_user(
        owner, username=name, role=role, password="warning level pass", districts=districts or []
    )
    return name


def _row(owner: sa.Engine, topic: str, district: str) -> sa.Row:
    with owner.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT computed, warning_in_force(w) AS level, override, override_by, why"
                " FROM warning_level w WHERE topic_code = :t AND district_adcode = :d"
            ),
            {"t": topic, "d": district},
        ).one()


@pytest.fixture(scope="module")
def flooded(live_engine_) -> Iterator[dict]:
    """Three of a district's underpasses above their alarm line, and the levels evaluated."""
    district, devices, alarm = _ponding(live_engine_)
    with _readings(live_engine_, devices, alarm + 5):
        _evaluate(live_engine_)
        yield {"district": district, "devices": devices, "alarm": alarm}


def test_a_districts_level_follows_its_devices_and_the_city_its_worst_district(
    live_engine_, flooded
):
    district = flooded["district"]
    count = _direct_count(live_engine_, district)
    assert count >= 3
    row = _row(live_engine_, "flood", district)
    with live_engine_.connect() as conn:
        expected = conn.execute(
            sa.text(
                "SELECT min(level) FROM warning_rule WHERE topic_code = 'flood' AND enabled"
                " AND test = 'beyond_alarm' AND measurands = '{ponding}' AND min_count <= :n"
            ),
            {"n": count},
        ).scalar_one()
    assert row.computed is not None and row.computed <= expected  # other rules may hold too
    assert any(item["count"] == count for item in row.why) or row.computed < expected
    city = _row(live_engine_, "flood", "")
    with live_engine_.connect() as conn:
        worst = conn.execute(
            sa.text(
                "SELECT min(computed) FROM warning_level WHERE topic_code = 'flood'"
                " AND district_adcode <> ''"
            )
        ).scalar_one()
    assert city.computed == worst
    with live_engine_.connect() as conn:
        logged = conn.execute(
            sa.text(
                "SELECT to_level FROM warning_level_change WHERE topic_code = 'flood'"
                " AND district_adcode = :d AND source = 'rules' ORDER BY id DESC LIMIT 1"
            ),
            {"d": district},
        ).scalar_one()
    assert logged == row.level
    # evaluating again changes nothing (and logs nothing)
    assert _evaluate(live_engine_) == 0


def test_a_district_reader_sees_the_city_and_only_their_districts(live_engine_, web, flooded):
    district = flooded["district"]
    other = "310101" if district != "310101" else "310104"
    with scoped(Scope(other)):
        seen = {(w.topic, w.district) for w in warning_levels(web)}
    assert ("flood", "") in seen and ("flood", other) in seen
    assert ("flood", district) not in seen
    with scoped(Scope(CITY)):
        levels = {(w.topic, w.district): w for w in warning_levels(web, topic="flood")}
        rules = warning_rules(web, topic="flood")
    assert levels[("flood", district)].level == _row(live_engine_, "flood", district).level
    assert {w.topic for w in levels.values()} == {"flood"}
    assert rules[0]["level"] == 1 and rules[-1]["level"] == 4


def test_an_operator_sets_the_citys_level_with_a_reason_logged_and_audited(
    live_engine_, web, flooded
):
    operator = _user(live_engine_, "operator")
    with scoped(Scope(CITY, actor=operator)):
        done = set_warning(
            web,
            action="level-2",
            actor=operator,
            note="台风登陆前预置",
            topic="flood",
            district="",
            hours=2,
            address="10.0.0.9",
        )
    assert done == {"level": 2}
    row = _row(live_engine_, "flood", "")
    assert row.level == 2 and row.override == 2 and row.override_by == operator
    # the rules' next pass keeps it (they are not worse than II)
    _evaluate(live_engine_)
    assert _row(live_engine_, "flood", "").level == 2
    with live_engine_.connect() as conn:
        audit = conn.execute(
            sa.text("SELECT action, target, detail FROM audit_log WHERE actor = :a ORDER BY id"),
            {"a": operator},
        ).all()
        log = conn.execute(
            sa.text("SELECT to_level, source, reason FROM warning_level_change WHERE actor = :a"),
            {"a": operator},
        ).all()
    assert [(a.action, a.target) for a in audit] == [("warning-set", "warning:flood:city")]
    assert audit[0].detail["reason"] == "台风登陆前预置" and audit[0].detail["to"] == 2
    assert [(r.to_level, r.source) for r in log] == [(2, "operator")]
    # handed back to the rules
    with scoped(Scope(CITY, actor=operator)):
        back = set_warning(
            web, action="auto", actor=operator, note="解除", topic="flood", district="", hours=2
        )
    assert back["level"] == _row(live_engine_, "flood", "").computed


def test_forged_warning_requests_are_refused_and_change_nothing(live_engine_, web, flooded):
    district = flooded["district"]
    other = "310101" if district != "310101" else "310104"
    manager = _user(live_engine_, "district_manager", [other])
    operator = _user(live_engine_, "operator")
    ok = {"action": "level-3", "note": "演练", "topic": "flood", "district": other, "hours": 6}
    cases = [
        (Scope(other, actor=manager), {"district": ""}, "may not set"),  # the city's: not his
        (Scope(other, actor=manager), {"district": district}, "no such warning level"),
        (Scope(CITY, actor=operator), {"topic": "flood'; --"}, "short lower-case"),
        (Scope(CITY, actor=operator), {"topic": "nosuch"}, "no such warning level"),
        (Scope(CITY, actor=operator), {"district": "31011"}, "6-digit"),
        (Scope(CITY, actor=operator), {"action": "level-9"}, "choose a warning level"),
        (Scope(CITY, actor=operator), {"note": "  "}, "say why"),
        (Scope(CITY, actor=operator), {"note": "x" * 501}, "longer than"),
        (Scope(CITY, actor=operator), {"hours": 10**6}, "hours"),
        (Scope(CITY, actor=operator), {"hours": "6"}, "hours"),
        (Scope(CITY), {}, "may not set"),  # read only
    ]
    before = _row(live_engine_, "flood", other)
    for scope, forged, message in cases:
        actor = scope.actor or "nobody"
        with scoped(scope), pytest.raises(IncidentActionError, match=message):
            set_warning(web, actor=actor, **{**ok, **forged})
    assert _row(live_engine_, "flood", other) == before
    # his own district he may set
    with scoped(Scope(other, actor=manager)):
        assert set_warning(web, actor=manager, **ok) == {"level": 3}
    assert _row(live_engine_, "flood", other).override == 3


def test_rules_rising_past_an_operators_lowering_end_it(live_engine_, web, flooded):
    district = flooded["district"]
    operator = _user(live_engine_, "operator")
    with scoped(Scope(CITY, actor=operator)):
        set_warning(
            web,
            action="level-0",
            actor=operator,
            note="误报",
            topic="flood",
            district=district,
            hours=6,
        )
    assert _row(live_engine_, "flood", district).level is None
    _evaluate(live_engine_)
    assert _row(live_engine_, "flood", district).override == 0  # same news: the lowering holds
    # three rain gauges at 60 mm/h: worse than the rules said when it was lowered
    with live_engine_.connect() as conn:
        more = list(
            conn.execute(
                sa.text(
                    "SELECT d.id FROM device d JOIN device_type t ON t.id = d.type_id"
                    " WHERE t.measurand IN ('rain_gauge', 'rainfall') AND d.status = 'active'"
                    "   AND d.district_adcode = :d ORDER BY d.id LIMIT 3"
                ),
                {"d": district},
            ).scalars()
        )
    assert len(more) == 3, f"the tiny city needs three rain gauges in {district}"
    with _readings(live_engine_, more, 60.0):
        _evaluate(live_engine_)
        row = _row(live_engine_, "flood", district)
    assert row.override is None and row.level is not None and row.level <= 3


def test_rules_list_shows_the_warning_rules_as_stored(live_engine_, run):
    code, out, _ = run("rules", "list")
    assert code == 0 and "warning levels" in out
    with live_engine_.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM warning_rule")).scalar_one()
    lines = [line for line in out.splitlines() if line.startswith(("flood ", "power ", "gas "))]
    assert stored > 0
    assert any("beyond_alarm ponding x3" in line and " IV " in line for line in lines), lines
    assert any("live critical alarms x2 per street within 3600 s" in line for line in lines), lines


def test_a_rise_is_told_to_walls_once_and_only_of_their_place(live_engine_, web, flooded):
    district = flooded["district"]
    operator = _user(live_engine_, "operator")
    start = incident_marks(live_engine_)
    with scoped(Scope(CITY, actor=operator)):
        set_warning(
            web, action="level-1", actor=operator, note="演练", topic="gas", district="", hours=2
        )
        set_warning(
            web,
            action="level-2",
            actor=operator,
            note="演练",
            topic="gas",
            district=district,
            hours=2,
        )
    marks = incident_marks(live_engine_)
    with scoped(Scope(CITY)):
        city = warning_rises(web, after=start.settled, before=marks.settled)
        again = warning_rises(web, after=marks.settled, before=incident_marks(web).settled)
    assert [(r["topic_code"], r["to_level"]) for r in city] == [("gas", 1)]
    assert again == []  # told once
    with scoped(Scope(district)):
        own = warning_rises(web, after=start.settled, before=marks.settled, district=district)
    assert [(r["topic_code"], r["district_adcode"], r["to_level"]) for r in own] == [
        ("gas", district, 2)
    ]
    other = "310101" if district != "310101" else "310104"
    with scoped(Scope(other)):  # RLS: another district's wall learns nothing of it
        assert (
            warning_rises(web, after=start.settled, before=marks.settled, district=district) == []
        )
    with pytest.raises(InvalidQuery):
        warning_rises(web, after=-1, before=marks.settled)
    with pytest.raises(InvalidQuery):
        warning_rises(web, after=0, before=marks.settled, district="'; drop")
    # a lowering is no news
    lowered = incident_marks(live_engine_)
    with scoped(Scope(CITY, actor=operator)):
        for place in ("", district):
            set_warning(
                web,
                action="auto",
                actor=operator,
                note="解除",
                topic="gas",
                district=place,
                hours=2,
            )
    with scoped(Scope(CITY)):
        assert warning_rises(web, after=lowered.settled, before=incident_marks(web).settled) == []


def test_a_place_rule_counts_one_street_not_faults_scattered_over_a_district(live_engine_):
    with live_engine_.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.id, d.district_adcode, d.street_code FROM device d"
                " JOIN device_type t ON t.id = d.type_id"
                " WHERE t.measurand = 'outage' AND d.status = 'active'"
                " ORDER BY d.district_adcode, d.street_code, d.id"
            )
        ).all()
    by_street: dict[tuple[str, str], list[int]] = {}
    for device, district, street in rows:
        by_street.setdefault((district, street), []).append(device)
    one = next(((place, ids) for place, ids in by_street.items() if len(ids) >= 3), None)
    assert one is not None, "the tiny city needs a street with three outage monitors"
    (district, _street), ids = one
    others = [
        devices[0]
        for (other_district, _), devices in by_street.items()
        if other_district == district and devices[0] != ids[0]
    ]
    assert len(others) >= 2, f"the tiny city needs outage monitors in three streets of {district}"
    # three monitors off in three streets: a fault each, no warning
    with _readings(live_engine_, [ids[0], *others[:2]], 1.0):
        _evaluate(live_engine_)
        assert _row(live_engine_, "power", district).computed is None
    with _readings(live_engine_, ids[:3], 1.0):  # three off in one street: a feeder is down
        _evaluate(live_engine_)
        row = _row(live_engine_, "power", district)
    assert row.computed == 4 and "in one street" in row.why[0]["en"]
