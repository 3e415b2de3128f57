"""People and their sessions: users and roles, argon2id passwords, server-side sessions, login
throttling, the one-time administrator setup and the audit log.

Everything here runs on the owner's connection: the web role can read neither password hashes
nor session rows. What a signed-in person may see and do is a `Principal`, derived from the
database at every request, never from anything the browser sends.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Engine

ROLES = ("admin", "operator", "district_manager", "viewer")
# roles whose scope is the whole city unless districts are given (viewers may be bound)
CITY_ROLES = ("admin", "operator")
ACTING_ROLES = ("admin", "operator", "district_manager")
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256
# throttling: this many failures in the window lock the account (or the address) until the
# oldest of them leaves the window
FAILURE_WINDOW = timedelta(minutes=15)
# one client guessing one account; many clients guessing one account (a lock-out needs that
# many failures, not five); one client trying many accounts
MAX_FAILURES_PER_USER_AND_ADDRESS = 5
MAX_FAILURES_PER_USER = 20
MAX_FAILURES_PER_ADDRESS = 20
_VERIFY_SLOTS = threading.BoundedSemaphore(2)
SETUP_CODE_TTL = timedelta(hours=24)
# a session's last_seen_at is written at most this often
TOUCH_EVERY = timedelta(seconds=60)

_SESSION_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")
_DISTRICT_PATTERN = re.compile(r"[0-9]{6}")
# OWASP's argon2id minimum (19 MiB, 2 passes): ~35 ms a check on a loaded 2-core machine, so a
# burst of sign-ins cannot starve the dashboard; the throttle, not the hash, stops guessing online
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# verified against when the username is unknown, so both answers take the same time
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class AccessError(ValueError):
    """A request about users or sessions that cannot be honoured; the message says why."""


class LoginThrottled(AccessError):
    """Too many failed logins for this account or address; `retry_after_s` until the next try."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Principal:
    """A signed-in person as the server sees them: role and districts from the database."""

    user_id: int
    username: str
    display_name: str
    role: str
    districts: tuple[str, ...]

    @property
    def scope(self) -> str:
        """The row-level-security scope: '*' for the city, else the districts ('' = nothing)."""
        if self.role in CITY_ROLES or (self.role == "viewer" and not self.districts):
            return "*"
        return ",".join(self.districts)

    @property
    def sees_city(self) -> bool:
        """Whether the whole city is in scope."""
        return self.scope == "*"

    @property
    def can_act(self) -> bool:
        """Whether this person may acknowledge, assign, note, resolve and reopen incidents."""
        return self.role in ACTING_ROLES and self.scope != ""

    @property
    def is_admin(self) -> bool:
        """Whether this person administers users."""
        return self.role == "admin"

    def allows(self, district: object) -> bool:
        """Whether `district` is inside this person's scope."""
        return isinstance(district, str) and (self.sees_city or district in self.districts)


@dataclass(frozen=True)
class SessionTicket:
    """A new session: the token for the browser's cookie (shown once), its CSRF token, expiry."""

    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSession:
    """A live session found by its token."""

    principal: Principal
    csrf_token: str
    expires_at: datetime


# Passwords and users --------------------------------------------------------------------------


def check_new_password(password: object, *, username: str = "") -> str:
    """`password` if it is acceptable as a new password, else AccessError saying why."""
    if not isinstance(password, str):
        raise AccessError("password must be text")
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AccessError(
            f"password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    if username and username.lower() in password.lower():
        raise AccessError("password must not contain the username")
    if len(set(password)) < 5:
        raise AccessError("password must use at least 5 different characters")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash to store for `password`."""
    return _HASHER.hash(password)


def _check_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
        raise AccessError(
            "username must be 2-64 characters of a-z, 0-9, '.', '_' or '-', starting with a"
            " letter or digit"
        )
    return username


def _check_role_districts(role: object, districts: object) -> tuple[str, ...]:
    if role not in ROLES:
        raise AccessError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not isinstance(districts, list | tuple):
        raise AccessError("districts must be a list of adcodes")
    chosen = tuple(sorted(set(districts)))
    bad = [d for d in chosen if not (isinstance(d, str) and _DISTRICT_PATTERN.fullmatch(d))]
    if bad:
        raise AccessError(f"districts must be 6-digit adcodes, not {bad!r}")
    if role == "district_manager" and not chosen:
        raise AccessError("a district manager needs at least one district")
    if role in CITY_ROLES and chosen:
        raise AccessError(f"the {role} role covers the whole city; give it no districts")
    return chosen


def create_user(
    engine: Engine,
    *,
    username: str,
    role: str,
    password: str,
    districts: list[str] | tuple[str, ...] = (),
    display_name: str = "",
) -> Principal:
    """A new user with an argon2id hash of `password`; AccessError on any bad field."""
    with engine.begin() as conn:
        return _insert_user(
            conn,
            username=username,
            role=role,
            password=password,
            districts=districts,
            display_name=display_name,
        )


def _insert_user(
    conn: sa.Connection,
    *,
    username: str,
    role: str,
    password: str,
    districts: list[str] | tuple[str, ...],
    display_name: str,
) -> Principal:
    username = _check_username(username)
    chosen = _check_role_districts(role, districts)
    check_new_password(password, username=username)
    if not isinstance(display_name, str) or len(display_name) > 100:
        raise AccessError("display name must be text of at most 100 characters")
    _check_districts_exist(conn, chosen)
    user_id = conn.execute(
        sa.text(
            "INSERT INTO app_user (username, display_name, role, password_hash)"
            " VALUES (:username, :display_name, :role, :hash)"
            " ON CONFLICT (username) DO NOTHING RETURNING id"
        ),
        {
            "username": username,
            "display_name": display_name,
            "role": role,
            "hash": hash_password(password),
        },
    ).scalar_one_or_none()
    if user_id is None:
        raise AccessError(f"a user named {username!r} exists already")
    _write_districts(conn, user_id=user_id, districts=chosen)
    return Principal(user_id, username, display_name, role, chosen)


def _check_districts_exist(conn: sa.Connection, districts: tuple[str, ...]) -> None:
    if not districts:
        return
    known = set(
        conn.execute(
            sa.text("SELECT adcode FROM district WHERE adcode = ANY(:codes)"),
            {"codes": list(districts)},
        ).scalars()
    )
    missing = sorted(set(districts) - known)
    if missing:
        raise AccessError(f"no district with adcode {', '.join(missing)}")


def _write_districts(conn: sa.Connection, *, user_id: int, districts: tuple[str, ...]) -> None:
    conn.execute(sa.text("DELETE FROM app_user_district WHERE user_id = :id"), {"id": user_id})
    for district in districts:
        conn.execute(
            sa.text(
                "INSERT INTO app_user_district (user_id, district_adcode) VALUES (:id, :district)"
            ),
            {"id": user_id, "district": district},
        )


def update_user(
    engine: Engine,
    *,
    username: str,
    role: str | None = None,
    districts: list[str] | tuple[str, ...] | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> Principal:
    """Change a user's role, districts, password or disabled state; a new password, a new
    role or scope, or disabling ends the user's sessions."""
    current = find_user(engine, username=username)
    if current is None:
        raise AccessError(f"no user named {username!r}")
    new_role = current.role if role is None else role
    if districts is not None:
        kept = districts
    else:
        # a new role keeps the districts (demoting a district manager to viewer must not widen
        # them to the whole city); only the city roles have none
        kept = () if new_role in CITY_ROLES else current.districts
    new_districts = _check_role_districts(new_role, kept)
    if password is not None:
        check_new_password(password, username=username)
    with engine.begin() as conn:
        _check_districts_exist(conn, new_districts)
        conn.execute(
            sa.text(
                "UPDATE app_user SET role = :role,"
                " password_hash = coalesce(CAST(:hash AS text), password_hash),"
                " password_changed_at = CASE WHEN CAST(:hash AS text) IS NULL"
                "                       THEN password_changed_at"
                "                       ELSE now() END,"
                " disabled_at = CASE WHEN CAST(:disabled AS boolean) IS NULL THEN disabled_at"
                "               WHEN CAST(:disabled AS boolean) THEN coalesce(disabled_at, now())"
                "               ELSE NULL END"
                " WHERE id = :id"
            ),
            {
                "id": current.user_id,
                "role": new_role,
                "hash": hash_password(password) if password is not None else None,
                "disabled": disabled,
            },
        )
        _write_districts(conn, user_id=current.user_id, districts=new_districts)
        conn.execute(
            sa.text(
                "UPDATE user_session SET revoked_at = now()"
                " WHERE user_id = :id AND revoked_at IS NULL"
            ),
            {"id": current.user_id},
        )
    return Principal(current.user_id, username, current.display_name, new_role, new_districts)


def find_user(engine: Engine, *, username: str) -> Principal | None:
    """The user named `username` (enabled or not), None if there is none."""
    if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(f"{_PRINCIPAL_SELECT} WHERE u.username = :username GROUP BY u.id"),
            {"username": username},
        ).one_or_none()
    return _principal(row) if row else None


_PRINCIPAL_SELECT = (
    "SELECT u.id, u.username, u.display_name, u.role,"
    " coalesce(array_agg(d.district_adcode ORDER BY d.district_adcode)"
    "          FILTER (WHERE d.district_adcode IS NOT NULL), '{}') AS districts"
    " FROM app_user u LEFT JOIN app_user_district d ON d.user_id = u.id"
)


def _principal(row: Any) -> Principal:
    return Principal(
        user_id=int(row.id),
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        districts=tuple(row.districts),
    )


def list_users(engine: Engine) -> list[dict[str, Any]]:
    """Every user with role, districts, state and when they last used a session."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT u.username, u.display_name, u.role, u.created_at, u.disabled_at,"
                " (SELECT string_agg(district_adcode, ',' ORDER BY district_adcode)"
                "  FROM app_user_district WHERE user_id = u.id) AS districts,"
                " (SELECT max(last_seen_at) FROM user_session WHERE user_id = u.id) AS last_seen"
                " FROM app_user u ORDER BY u.username"
            )
        ).mappings()
        return [dict(row) for row in rows]


def has_admin(engine: Engine) -> bool:
    """Whether an enabled administrator exists."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT EXISTS (SELECT 1 FROM app_user"
                    " WHERE role = 'admin' AND disabled_at IS NULL)"
                )
            ).scalar_one()
        )


# Logging in -----------------------------------------------------------------------------------


def authenticate(
    engine: Engine, *, username: object, password: object, address: str
) -> Principal | None:
    """The enabled user whose password this is, None otherwise; LoginThrottled (before any
    password is checked) after too many recent failures for the account from this address,
    for the account from anywhere, or from this address for any account."""
    name = username.strip().lower() if isinstance(username, str) else ""
    limits = {f"ip:{address[:64]}": MAX_FAILURES_PER_ADDRESS}
    if USERNAME_PATTERN.fullmatch(name):
        limits[f"user:{name}"] = MAX_FAILURES_PER_USER
        limits[f"pair:{name}@{address[:64]}"] = MAX_FAILURES_PER_USER_AND_ADDRESS
    # the attempt counts as a failure until it succeeds: parallel guesses cannot all slip in
    # before the first of them is recorded
    claimed = _claim_attempt(engine, limits=limits)
    row = None
    if len(limits) > 1:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT id, password_hash FROM app_user"
                    " WHERE username = :username AND disabled_at IS NULL"
                ),
                {"username": name},
            ).one_or_none()
    with _VERIFY_SLOTS:  # argon2 takes 19 MiB and a core's worth of time per check
        ok = _verify(row.password_hash if row else _DUMMY_HASH, password) and row is not None
    if not ok or row is None:
        return None
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM login_failure WHERE id = ANY(:ids) OR subject = :pair"),
            {"ids": claimed, "pair": f"pair:{name}@{address[:64]}"},
        )
        if _HASHER.check_needs_rehash(row.password_hash) and isinstance(password, str):
            conn.execute(
                sa.text("UPDATE app_user SET password_hash = :hash WHERE id = :id"),
                {"hash": hash_password(password), "id": row.id},
            )
    return find_user(engine, username=name)


def _verify(stored_hash: str, password: object) -> bool:
    if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD_CHARS:
        # hash anyway so a malformed answer takes as long as a wrong one
        password = "\0"
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _claim_attempt(engine: Engine, *, limits: dict[str, int]) -> list[int]:
    """Record one attempt against every subject (ids returned) unless a subject has reached its
    limit within the window: then LoginThrottled with the wait until its oldest failure expires."""
    with engine.begin() as conn:
        for subject in sorted(limits):  # one order: concurrent claims cannot deadlock
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": subject})
        conn.execute(
            sa.text("DELETE FROM login_failure WHERE at < now() - :window"),
            {"window": FAILURE_WINDOW},
        )
        rows = conn.execute(
            sa.text(
                "SELECT subject, count(*) AS n,"
                " extract(epoch FROM min(at) + :window - now()) AS wait_s"
                " FROM login_failure WHERE subject = ANY(:subjects) GROUP BY subject"
            ),
            {"subjects": list(limits), "window": FAILURE_WINDOW},
        ).all()
        waits = [int(row.wait_s) + 1 for row in rows if row.n >= limits[row.subject]]
        if waits:
            raise LoginThrottled(max(1, max(waits)))
        return [
            conn.execute(
                sa.text("INSERT INTO login_failure (subject) VALUES (:subject) RETURNING id"),
                {"subject": subject},
            ).scalar_one()
            for subject in limits
        ]


# Sessions -------------------------------------------------------------------------------------


def _session_digest(token: object) -> bytes | None:
    if not isinstance(token, str) or not _SESSION_TOKEN_PATTERN.fullmatch(token):
        return None
    return hashlib.sha256(token.encode()).digest()


def open_session(
    engine: Engine,
    *,
    principal: Principal,
    lifetime: timedelta,
    address: str = "",
    user_agent: str = "",
) -> SessionTicket:
    """A new session for `principal`, valid for `lifetime` unless idle or revoked before."""
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        expires_at = conn.execute(
            sa.text(
                "INSERT INTO user_session"
                " (id_sha256, user_id, csrf_token, expires_at, ip, user_agent)"
                " VALUES (:digest, :user_id, :csrf, now() + :lifetime, :ip, :agent)"
                " RETURNING expires_at"
            ),
            {
                "digest": _session_digest(token),
                "user_id": principal.user_id,
                "csrf": csrf_token,
                "lifetime": lifetime,
                "ip": address[:64],
                "agent": user_agent[:300],
            },
        ).scalar_one()
    return SessionTicket(token=token, csrf_token=csrf_token, expires_at=expires_at)


def find_session(engine: Engine, *, token: object, idle_timeout: timedelta) -> ActiveSession | None:
    """The live session of `token`: not expired, revoked or idle longer than `idle_timeout`,
    of an enabled user; None otherwise. Notes the visit (at most once a minute)."""
    digest = _session_digest(token)
    if digest is None:
        return None
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT u.id, u.username, u.display_name, u.role, s.csrf_token, s.expires_at,"
                " s.last_seen_at < now() - :touch AS stale,"
                " coalesce(array_agg(d.district_adcode ORDER BY d.district_adcode)"
                "          FILTER (WHERE d.district_adcode IS NOT NULL), '{}') AS districts"
                " FROM user_session s JOIN app_user u ON u.id = s.user_id"
                " LEFT JOIN app_user_district d ON d.user_id = u.id"
                " WHERE s.id_sha256 = :digest AND s.revoked_at IS NULL"
                "   AND s.expires_at > now() AND s.last_seen_at > now() - :idle"
                "   AND u.disabled_at IS NULL"
                " GROUP BY u.id, s.id_sha256"
            ),
            {"digest": digest, "idle": idle_timeout, "touch": TOUCH_EVERY},
        ).one_or_none()
        if row is not None and row.stale:
            conn.execute(
                sa.text("UPDATE user_session SET last_seen_at = now() WHERE id_sha256 = :digest"),
                {"digest": digest},
            )
    if row is None:
        return None
    return ActiveSession(
        principal=_principal(row), csrf_token=row.csrf_token, expires_at=row.expires_at
    )


def close_session(engine: Engine, *, token: object) -> bool:
    """End the session of `token` (logout); whether there was a live one."""
    digest = _session_digest(token)
    if digest is None:
        return False
    with engine.begin() as conn:
        result = conn.execute(
            sa.text(
                "UPDATE user_session SET revoked_at = now()"
                " WHERE id_sha256 = :digest AND revoked_at IS NULL"
            ),
            {"digest": digest},
        )
    return result.rowcount > 0


def purge_sessions(engine: Engine, *, older_than: timedelta = timedelta(days=30)) -> int:
    """Forget sessions that ended more than `older_than` ago; how many."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.text(
                "DELETE FROM user_session"
                " WHERE coalesce(revoked_at, expires_at) < now() - :older_than"
            ),
            {"older_than": older_than},
        )
    return result.rowcount


# First start ----------------------------------------------------------------------------------


def issue_setup_code(engine: Engine) -> str | None:
    """A one-time code to create the first administrator (valid 24 h, replacing any earlier
    one), or None when an administrator exists already."""
    if has_admin(engine):
        return None
    code = secrets.token_urlsafe(18)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO app_meta (key, value, updated_at)"
                " VALUES ('admin_setup', CAST(:value AS jsonb), now())"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at"
            ),
            {
                "value": json.dumps(
                    {"sha256": hashlib.sha256(code.encode()).hexdigest(), "ttl_s": 86400}
                )
            },
        )
    return code


def complete_setup(
    engine: Engine, *, code: object, username: str, password: str, display_name: str = ""
) -> Principal:
    """Create the first administrator with the one-time setup code; the code is then spent."""
    if not isinstance(code, str) or not 8 <= len(code) <= 64:
        raise AccessError("the setup code is not valid")
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "SELECT value, updated_at + make_interval(secs => (value->>'ttl_s')::int) > now()"
                " AS live FROM app_meta WHERE key = 'admin_setup' FOR UPDATE"
            )
        ).one_or_none()
        expected = row.value.get("sha256") if row else None
        given = hashlib.sha256(code.encode()).hexdigest()
        if (
            row is None
            or not expected
            or not row.live
            or not secrets.compare_digest(expected, given)
        ):
            raise AccessError("the setup code is not valid (or has expired or been used)")
        # one transaction: a refused password leaves the code usable for the next try
        admin = _insert_user(
            conn,
            username=username,
            role="admin",
            password=password,
            districts=(),
            display_name=display_name,
        )
        conn.execute(sa.text("DELETE FROM app_meta WHERE key = 'admin_setup'"))
    return admin


# Audit ----------------------------------------------------------------------------------------


def record_audit(
    engine: Engine,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    district: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one line to the audit log."""
    with engine.begin() as conn:
        write_audit(
            conn,
            actor=actor,
            action=action,
            target=target,
            district=district,
            address=address,
            detail=detail,
        )


def record_throttled(engine: Engine, *, actor: str, address: str, retry_after_s: int) -> None:
    """Audit a refused (throttled) sign-in, at most once a minute per account and address, so a
    client hammering the form cannot grow the log without bound."""
    with engine.begin() as conn:
        recent = conn.execute(
            sa.text(
                "SELECT 1 FROM audit_log WHERE action = 'login-throttled' AND actor = :actor"
                " AND ip = :ip AND at > now() - interval '1 minute' LIMIT 1"
            ),
            {"actor": actor[:100], "ip": address[:64]},
        ).scalar_one_or_none()
        if recent is None:
            write_audit(
                conn,
                actor=actor,
                action="login-throttled",
                address=address,
                detail={"retry_after_s": retry_after_s},
            )


def write_audit(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    district: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one line to the audit log inside the caller's transaction."""
    conn.execute(
        sa.text(
            "INSERT INTO audit_log (actor, action, target, district_adcode, ip, detail)"
            " VALUES (:actor, :action, :target, :district, :ip, CAST(:detail AS jsonb))"
        ),
        {
            "actor": actor[:100],
            "action": action[:64],
            "target": target[:200] if target else None,
            "district": district,
            "ip": address[:64] if address else None,
            "detail": json.dumps(detail or {}, default=str),
        },
    )


def audit_entries(
    engine: Engine, *, limit: int = 100, action: str | None = None
) -> list[dict[str, Any]]:
    """The newest audit lines (optionally of one action), newest first."""
    if not 1 <= limit <= 10_000:
        raise AccessError("limit must be between 1 and 10000")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT at, actor, action, target, district_adcode, ip, detail FROM audit_log"
                " WHERE CAST(:action AS text) IS NULL OR action = :action"
                " ORDER BY id DESC LIMIT :limit"
            ),
            {"action": action, "limit": limit},
        ).mappings()
        return [dict(row) for row in rows]
