"""Users, sessions, throttling, first-start setup and row-level security, on the real PostGIS."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from data import access
from data.access import AccessError, LoginThrottled
from data.scope import CITY, Scope, create_web_engine, provision_web_role, scoped, web_database_url

PUDONG = "310115"
HUANGPU = "310101"
PASSWORD = "correct horse battery"


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def web_engine(engine, seeded, db_url) -> Iterator[sa.Engine]:
    """The web role's engine on the seeded test city."""
    provision_web_role(engine)
    web = create_web_engine(web_database_url(db_url))
    yield web
    web.dispose()


def _count(web_engine: sa.Engine, table: str, scope: Scope) -> int:
    with scoped(scope), web_engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# Row-level security ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        "device",
        "incident",
        "incident_event",
        "device_latest",
        "street_status",
        "incident_live",
        "incident_daily",
        "rollup_street_15m",
    ],
)
def test_a_query_that_forgets_the_district_filter_sees_only_the_scope(engine, web_engine, table):
    with engine.connect() as conn:
        total = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    city = _count(web_engine, table, Scope(CITY))
    pudong = _count(web_engine, table, Scope(PUDONG))
    nobody = _count(web_engine, table, Scope())
    assert total > 0
    assert city == total
    assert 0 < pudong < total
    assert nobody == 0  # no scope stated: nothing


def test_pudong_scope_never_returns_another_district(web_engine):
    with scoped(Scope(PUDONG)), web_engine.connect() as conn:
        districts = set(
            conn.execute(sa.text("SELECT DISTINCT district_adcode FROM incident")).scalars()
        )
        # readings reach their district through the device: count readings of other districts
        foreign = conn.execute(
            sa.text(
                "SELECT count(*) FROM reading r"
                " WHERE r.device_id IN (SELECT id FROM device)"
                "   AND r.ts > now() - interval '2 days'"
            )
        ).scalar_one()
        all_readings = conn.execute(
            sa.text("SELECT count(*) FROM reading WHERE ts > now() - interval '2 days'")
        ).scalar_one()
    assert districts == {PUDONG}
    assert all_readings == foreign  # every visible reading belongs to a visible device


def test_the_web_role_cannot_read_secrets_or_partitions_or_write_devices(engine, web_engine):
    with engine.connect() as conn:
        partition = conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'reading' LIMIT 1"
            )
        ).scalar_one()
    for statement in (
        "SELECT password_hash FROM app_user",
        "SELECT * FROM user_session",
        "SELECT * FROM ingest_token",
        f"SELECT count(*) FROM {partition}",
        "UPDATE device SET status = 'retired'",
        "DELETE FROM incident",
        "INSERT INTO app_user (username, role, password_hash) VALUES ('x', 'admin', '$argon2x')",
        "SET ROLE onescreen",
    ):
        with (
            scoped(Scope(CITY, actor="mallory")),
            web_engine.connect() as conn,
            pytest.raises(sa.exc.DBAPIError),
        ):
            conn.execute(sa.text(statement))


def test_incidents_change_only_inside_the_scope_and_with_an_actor(engine, web_engine):
    with engine.connect() as conn:
        other_open, district = conn.execute(
            sa.text(
                "SELECT id, district_adcode FROM incident"
                " WHERE district_adcode <> :pudong AND status = 'open' LIMIT 1"
            ),
            {"pudong": PUDONG},
        ).one()
    update = sa.text(
        "UPDATE incident SET status = 'acknowledged', acknowledged_at = now() WHERE id = :id"
    )
    # another district's manager: the row is invisible, nothing changes
    with scoped(Scope(PUDONG, actor="pudong-manager")), web_engine.begin() as conn:
        assert conn.execute(update, {"id": other_open}).rowcount == 0
    # a reader without an actor: refused too
    with scoped(Scope(CITY)), web_engine.begin() as conn:
        assert conn.execute(update, {"id": other_open}).rowcount == 0
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM incident WHERE id = :id"), {"id": other_open}
        ).scalar_one()
    assert status == "open"
    # an event may be recorded only under the acting name
    with (
        scoped(Scope(district, actor="its-manager")),
        web_engine.connect() as conn,
        pytest.raises(sa.exc.DBAPIError),
    ):
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor)"
                " VALUES (:id, now(), 'note', 'somebody-else')"
            ),
            {"id": other_open},
        )


# Users and passwords --------------------------------------------------------------------------


def test_users_are_created_with_argon2id_and_checked_fields(engine, seeded):
    name = _name("dm")
    user = access.create_user(
        engine, username=name, role="district_manager", password=PASSWORD, districts=[PUDONG]
    )
    assert user.scope == PUDONG and user.can_act and not user.sees_city
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT password_hash FROM app_user WHERE username = :u"), {"u": name}
        ).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    bad = [
        {"username": "Bad Name", "role": "viewer", "password": PASSWORD},
        {"username": _name("x"), "role": "root", "password": PASSWORD},
        {"username": _name("x"), "role": "viewer", "password": "short"},
        {"username": _name("x"), "role": "viewer", "password": "aaaaaaaaaaaaaaaa"},
        {"username": _name("x"), "role": "district_manager", "password": PASSWORD},
        {"username": _name("x"), "role": "admin", "password": PASSWORD, "districts": [PUDONG]},
        {"username": _name("x"), "role": "viewer", "password": PASSWORD, "districts": ["999999"]},
        {"username": _name("x"), "role": "viewer", "password": PASSWORD, "districts": ["1; --"]},
        {"username": name, "role": "viewer", "password": PASSWORD},  # exists
    ]
    for fields in bad:
        with pytest.raises(AccessError):
            access.create_user(engine, **fields)


def test_login_checks_the_password_and_throttles_guessing(engine, seeded):
    name = _name("op")
    access.create_user(engine, username=name, role="operator", password=PASSWORD)
    address = f"10.0.0.{secrets.randbelow(250)}"
    assert access.authenticate(engine, username=name, password=PASSWORD, address=address)
    assert access.authenticate(engine, username=name, password="wrong", address=address) is None
    assert access.authenticate(engine, username="nobody", password="x", address=address) is None
    for _ in range(access.MAX_FAILURES_PER_USER_AND_ADDRESS - 1):
        access.authenticate(engine, username=name, password="guess", address=address)
    # locked for this client now, even with the right password, and it says for how long
    with pytest.raises(LoginThrottled) as caught:
        access.authenticate(
            engine, username=f" {name.upper()} ", password=PASSWORD, address=address
        )
    assert 0 < caught.value.retry_after_s <= 15 * 60 + 1
    # a guesser cannot lock the owner out from elsewhere with five tries
    assert access.authenticate(engine, username=name, password=PASSWORD, address="10.9.9.9")
    # but many clients guessing one account lock it everywhere
    for i in range(access.MAX_FAILURES_PER_USER):
        try:
            access.authenticate(engine, username=name, password="guess", address=f"10.7.0.{i}")
        except LoginThrottled:
            break
    with pytest.raises(LoginThrottled):
        access.authenticate(engine, username=name, password=PASSWORD, address="10.9.9.10")


def test_parallel_guesses_cannot_outrun_the_throttle(engine, seeded):
    from concurrent.futures import ThreadPoolExecutor

    name = _name("target")
    access.create_user(engine, username=name, role="operator", password=PASSWORD)

    def guess(i: int) -> str:
        try:
            access.authenticate(engine, username=name, password=f"guess{i}", address="10.5.5.5")
        except LoginThrottled:
            return "throttled"
        return "checked"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(guess, range(24)))
    assert outcomes.count("checked") == access.MAX_FAILURES_PER_USER_AND_ADDRESS
    assert outcomes.count("throttled") == 24 - access.MAX_FAILURES_PER_USER_AND_ADDRESS


def test_demoting_a_district_manager_keeps_the_districts(engine, seeded):
    name = _name("dm")
    access.create_user(
        engine, username=name, role="district_manager", password=PASSWORD, districts=[PUDONG]
    )
    viewer = access.update_user(engine, username=name, role="viewer")
    assert viewer.districts == (PUDONG,) and viewer.scope == PUDONG and not viewer.sees_city
    operator = access.update_user(engine, username=name, role="operator")
    assert operator.sees_city and operator.districts == ()


def test_an_address_guessing_many_accounts_is_throttled(engine, seeded):
    address = f"192.0.2.{secrets.randbelow(250)}"
    for i in range(access.MAX_FAILURES_PER_ADDRESS):
        access.authenticate(engine, username=f"spray{i}", password="guess", address=address)
    with pytest.raises(LoginThrottled):
        access.authenticate(engine, username="spray-next", password="guess", address=address)


def test_sessions_expire_idle_and_end_on_logout_disable_or_password_change(engine, seeded):
    name = _name("viewer")
    user = access.create_user(
        engine, username=name, role="viewer", password=PASSWORD, districts=[HUANGPU]
    )
    ticket = access.open_session(engine, principal=user, lifetime=timedelta(hours=1))
    found = access.find_session(engine, token=ticket.token, idle_timeout=timedelta(minutes=5))
    assert found and found.principal.scope == HUANGPU and found.csrf_token == ticket.csrf_token
    assert not found.principal.can_act
    altered = ticket.token[:-1] + ("B" if ticket.token.endswith("A") else "A")
    for token in (None, "", "x" * 500, altered, ["list"]):
        assert access.find_session(engine, token=token, idle_timeout=timedelta(hours=1)) is None
    # idle: last seen longer ago than the idle timeout
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE user_session SET last_seen_at = now() - interval '10 minutes'"
                " WHERE user_id = :id"
            ),
            {"id": user.user_id},
        )
    assert (
        access.find_session(engine, token=ticket.token, idle_timeout=timedelta(minutes=5)) is None
    )
    # expired
    short = access.open_session(engine, principal=user, lifetime=timedelta(seconds=-1))
    assert access.find_session(engine, token=short.token, idle_timeout=timedelta(hours=1)) is None
    # logout
    live = access.open_session(engine, principal=user, lifetime=timedelta(hours=1))
    assert access.close_session(engine, token=live.token)
    assert access.find_session(engine, token=live.token, idle_timeout=timedelta(hours=1)) is None
    # a password change ends every session
    other = access.open_session(engine, principal=user, lifetime=timedelta(hours=1))
    access.update_user(engine, username=name, password="another good passphrase")
    assert access.find_session(engine, token=other.token, idle_timeout=timedelta(hours=1)) is None


def test_first_administrator_needs_the_one_time_code(scratch_db):
    from data import migrate

    migrate.upgrade(scratch_db)
    code = access.issue_setup_code(scratch_db)
    assert code
    with pytest.raises(AccessError):
        access.complete_setup(
            scratch_db, code="wrong-code-123", username="admin", password=PASSWORD
        )
    # a refused password does not spend the code
    with pytest.raises(AccessError):
        access.complete_setup(scratch_db, code=code, username="admin", password="short")
    admin = access.complete_setup(scratch_db, code=code, username="admin", password=PASSWORD)
    assert admin.is_admin and access.has_admin(scratch_db)
    with pytest.raises(AccessError):  # spent
        access.complete_setup(scratch_db, code=code, username="admin2", password=PASSWORD)
    assert access.issue_setup_code(scratch_db) is None  # an administrator exists


def test_the_audit_log_keeps_who_did_what(engine, seeded):
    action = f"test-{secrets.token_hex(3)}"
    access.record_audit(engine, actor="alice", action=action, target="incident:1", address="::1")
    entries = access.audit_entries(engine, action=action)
    assert [(e["actor"], e["target"], e["ip"]) for e in entries] == [("alice", "incident:1", "::1")]


def test_access_migration_goes_down_and_up(scratch_db):
    from data import migrate

    migrate.upgrade(scratch_db)
    migrate.downgrade(scratch_db, revision="0003")
    with scratch_db.connect() as conn:
        gone = conn.execute(
            sa.text("SELECT to_regclass('app_user'), to_regclass('audit_log')")
        ).one()
        secured = conn.execute(
            sa.text("SELECT count(*) FROM pg_class WHERE relrowsecurity AND relkind IN ('r', 'p')")
        ).scalar_one()
    assert tuple(gone) == (None, None) and secured == 0
    migrate.upgrade(scratch_db)
    with scratch_db.connect() as conn:
        secured = conn.execute(
            sa.text("SELECT count(*) FROM pg_class WHERE relrowsecurity AND relkind IN ('r', 'p')")
        ).scalar_one()
    # device_baseline joined in revision 0006, incident_group in 0009, warning levels in 0011,
    # units, their history and playbook tasks in 0013, the replay history (status by street and
    # cell, units' tracks) in 0014, each device's counted state and the incident counters in 0015,
    # the handling counters in 0017
    assert secured == 26


def test_ended_sessions_are_forgotten_after_30_days(engine, seeded):
    user = access.create_user(engine, username=_name("old"), role="viewer", password=PASSWORD)
    ancient = access.open_session(engine, principal=user, lifetime=timedelta(days=-31))
    live = access.open_session(engine, principal=user, lifetime=timedelta(hours=1))
    assert access.purge_sessions(engine) >= 1
    with engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM user_session WHERE user_id = :id"), {"id": user.user_id}
        ).scalar_one()
    assert left == 1
    assert access.find_session(engine, token=live.token, idle_timeout=timedelta(hours=1))
    assert access.find_session(engine, token=ancient.token, idle_timeout=timedelta(hours=1)) is None
