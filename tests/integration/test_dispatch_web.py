"""Dispatch through the web with forged requests (issue 21): whatever a browser posts, a district
manager sends only their district's units to their district's incidents, a viewer sends nothing,
another district's playbook task is out of reach, and bad ids get a message, never a trace."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import owner_of
from tests.dash_client import post_click, sign_in

PUDONG = "310115"
XUHUI = "310104"
SEND = {"type": "os-dispatch-action", "action": "send"}


@pytest.fixture(scope="module")
def app(live_app):
    return live_app


@pytest.fixture(scope="module")
def owner(app):
    return owner_of(app)


def _incident(owner, district: str) -> int:
    """A new open flood alarm in `district`."""
    with owner.begin() as conn:
        return int(
            conn.execute(
                sa.text(
                    "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                    " street_code, rule_code, severity, status, title_zh, title_en, opened_at,"
                    " geom) SELECT d.id, d.type_id, 'flood', d.district_adcode, d.street_code,"
                    " 'forged-' || md5(random()::text), 'critical', 'open', '伪造测试', 'Forged',"
                    " now(), d.geom FROM device d JOIN device_type t ON t.id = d.type_id"
                    " WHERE d.district_adcode = :d AND t.category_code = 'flood' LIMIT 1"
                    " RETURNING id"
                ),
                {"d": district},
            ).scalar_one()
        )


def _available_unit(owner, district: str) -> int:
    """An available pump truck of `district` nobody has sent yet."""
    with owner.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT id FROM resource r WHERE district_adcode = :d"
                    " AND kind_code = 'pump_truck' AND status = 'available'"
                    " AND NOT EXISTS (SELECT 1 FROM resource_event e WHERE e.resource_id = r.id)"
                    " ORDER BY id LIMIT 1"
                ),
                {"d": district},
            ).scalar_one()
        )


def _status(owner, unit: int) -> str:
    with owner.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT status FROM resource WHERE id = :id"), {"id": unit}
            ).scalar_one()
        )


def _send(app, session, *, incident: object, unit: object, lang: str = "en"):
    values = {"incidents-selected.data": incident, "incidents-dispatch-done.data": 0}
    values["os-lang.data"] = lang
    return post_click(
        app,
        "incidents-dispatch-message.children",
        {**SEND, "unit": unit},
        lambda ident, prop: values.get(f"{ident}.{prop}"),
        session=session,
    )


def test_a_district_manager_sends_their_unit_to_their_incident(app, owner):
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    unit = _available_unit(owner, PUDONG)
    response = _send(app, manager, incident=_incident(owner, PUDONG), unit=unit)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "sent, arriving in" in response.get_data(as_text=True)
    assert _status(owner, unit) == "dispatched"


def test_a_forged_send_of_another_districts_unit_changes_nothing(app, owner):
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    unit = _available_unit(owner, XUHUI)
    response = _send(app, manager, incident=_incident(owner, PUDONG), unit=unit)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "not available" in body
    assert "Traceback" not in body
    assert _status(owner, unit) == "available"


def test_a_forged_send_to_another_districts_incident_changes_nothing(app, owner):
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    unit = _available_unit(owner, PUDONG)
    response = _send(app, manager, incident=_incident(owner, XUHUI), unit=unit)
    assert "no such open incident" in response.get_data(as_text=True)
    assert _status(owner, unit) == "available"


def test_a_viewer_and_a_signed_out_browser_send_nothing(app, owner):
    viewer = sign_in(owner, role="viewer")
    unit = _available_unit(owner, PUDONG)
    incident = _incident(owner, PUDONG)
    response = _send(app, viewer, incident=incident, unit=unit)
    assert response.status_code == 200 and "read-only" in response.get_data(as_text=True).lower()
    anonymous = _send(app, None, incident=incident, unit=unit)
    assert anonymous.status_code in (204, 302, 401, 403)
    assert _status(owner, unit) == "available"


@pytest.mark.parametrize("unit", ["12", -1, 2**70, None, 1.5])
def test_a_forged_unit_id_is_refused_with_a_message(app, owner, unit):
    operator = sign_in(owner, role="operator")
    response = _send(app, operator, incident=_incident(owner, PUDONG), unit=unit)
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "no such unit" in body or "not available" in body
    assert "Traceback" not in body


def test_another_districts_task_cannot_be_completed(app, owner):
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO warning_level_change (topic_code, district_adcode, from_level,"
                " to_level, source, actor) VALUES ('flood', :d, NULL, 4, 'operator', 'test')"
            ),
            {"d": XUHUI},
        )
        task = conn.execute(
            sa.text(
                "SELECT id FROM playbook_task WHERE district_adcode = :d AND status = 'open'"
                " ORDER BY id LIMIT 1"
            ),
            {"d": XUHUI},
        ).scalar_one()
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    values = {"resources-done.data": 0, "os-lang.data": "en"}
    response = post_click(
        app,
        "resources-message.children",
        {"type": "os-task-action", "action": "done", "task": task},
        lambda ident, prop: values.get(f"{ident}.{prop}"),
        session=manager,
    )
    assert response.status_code == 200 and "no such task" in response.get_data(as_text=True)
    with owner.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM playbook_task WHERE id = :id"), {"id": task}
        ).scalar_one()
    assert status == "open"


def _event(owner, *members: int) -> int:
    """An active flood event of `members`."""
    with owner.begin() as conn:
        group = conn.execute(
            sa.text(
                "INSERT INTO incident_group (category_code, opened_at, last_member_at, districts,"
                " streets) SELECT 'flood', min(opened_at), max(opened_at),"
                " array_agg(DISTINCT district_adcode), array_agg(DISTINCT street_code)"
                " FROM incident WHERE id = ANY(:ids) RETURNING id"
            ),
            {"ids": list(members)},
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE incident SET group_id = :g, grouped_at = now() WHERE id = ANY(:ids)"),
            {"g": group, "ids": list(members)},
        )
    return int(group)


def _send_for_event(app, session, *, unit: object, incident: object):
    values = {"incidents-dispatch-done.data": 0, "os-lang.data": "en"}
    return post_click(
        app,
        "incidents-event-dispatch-message.children",
        {"type": "os-event-send", "unit": unit, "incident": incident},
        lambda ident, prop: values.get(f"{ident}.{prop}"),
        session=session,
    )


def test_an_events_units_go_to_its_most_urgent_member_in_scope(app, owner):
    from data.dispatch import event_lead

    first, second = _incident(owner, PUDONG), _incident(owner, PUDONG)
    event = _event(owner, first, second)
    assert event_lead(owner, event_id=event) == first  # the oldest critical
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    unit = _available_unit(owner, PUDONG)
    response = _send_for_event(app, manager, unit=unit, incident=first)
    assert "sent, arriving in" in response.get_data(as_text=True)
    assert _status(owner, unit) == "dispatched"
    # a forged lead in another district: refused, nothing sent
    other = _available_unit(owner, PUDONG)
    forged = _send_for_event(app, manager, unit=other, incident=_incident(owner, XUHUI))
    assert "no such open incident" in forged.get_data(as_text=True)
    assert _status(owner, other) == "available"


# lending the city's reserve from the board ------------------------------------------------------


def _reserve_unit(owner, kind: str = "generator_truck") -> str:
    """A free city reserve unit, lent to nobody."""
    with owner.connect() as conn:
        return str(
            conn.execute(
                sa.text(
                    "SELECT code FROM resource WHERE district_adcode IS NULL AND lent_to IS NULL"
                    " AND status = 'available' AND kind_code = :kind ORDER BY code LIMIT 1"
                ),
                {"kind": kind},
            ).scalar_one()
        )


def _lent_to(owner, code: str) -> str | None:
    with owner.connect() as conn:
        return conn.execute(
            sa.text("SELECT lent_to FROM resource WHERE code = :code"), {"code": code}
        ).scalar_one()


def _lend(app, session, *, unit: object, to: object):
    values = {"resources-done.data": 0, "os-lang.data": "en"}
    return post_click(
        app,
        "resources-message.children",
        {"type": "os-unit-lend", "unit": unit, "to": to},
        lambda ident, prop: values.get(f"{ident}.{prop}"),
        session=session,
    )


def test_the_city_lends_a_reserve_unit_from_the_board_and_takes_it_back(app, owner):
    operator = sign_in(owner, role="operator")
    code = _reserve_unit(owner)
    lent = _lend(app, operator, unit=code, to=PUDONG)
    assert lent.status_code == 200 and "lent to Pudong" in lent.get_data(as_text=True)
    assert _lent_to(owner, code) == PUDONG
    back = _lend(app, operator, unit=code, to="")
    assert "back with the city" in back.get_data(as_text=True)
    assert _lent_to(owner, code) is None


def test_a_district_manager_cannot_lend_or_take_back_with_a_forged_click(app, owner):
    manager = sign_in(owner, role="district_manager", districts=(PUDONG,))
    free, lent = _reserve_unit(owner), _reserve_unit(owner, "pump_truck")
    operator = sign_in(owner, role="operator")
    _lend(app, operator, unit=lent, to=PUDONG)
    try:
        borrowed = _lend(app, manager, unit=free, to=PUDONG).get_data(as_text=True)
        assert "no city unit" in borrowed  # the city's reserve is out of its sight
        returned = _lend(app, manager, unit=lent, to="").get_data(as_text=True)
        assert "only the city" in returned  # the database refuses
        viewer = _lend(app, sign_in(owner, role="viewer"), unit=free, to=PUDONG)
        assert "read-only" in viewer.get_data(as_text=True).lower()
        assert (_lent_to(owner, free), _lent_to(owner, lent)) == (None, PUDONG)
    finally:
        _lend(app, operator, unit=lent, to="")


@pytest.mark.parametrize(
    ("unit", "to"),
    [(12, PUDONG), (None, PUDONG), ("GT-x", 5), ("GT-x", "999999"), ("x" * 300, PUDONG)],
)
def test_a_forged_lend_is_refused_with_a_message(app, owner, unit, to):
    response = _lend(app, sign_in(owner, role="operator"), unit=unit, to=to)
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert "no such unit or district" in body or "no city unit" in body
    assert "Traceback" not in body
