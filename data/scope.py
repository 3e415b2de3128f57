"""The web's database connection and whom it serves.

The web app reads and writes as role onescreen_web, which owns nothing and is bound by the
row-level-security policies of revision 0004. Every transaction it opens first states the
scope ('*' for the city, or district adcodes) and the acting user, taken from a context
variable the request sets from its server-side session or display token; unset, the policies
show nothing. A query that forgets its district filter therefore still returns only the
caller's districts.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from config import get_settings
from data.engine import create_db_engine, get_engine

log = logging.getLogger(__name__)

WEB_ROLE = "onescreen_web"
CITY = "*"
NOBODY = ""


@dataclass(frozen=True)
class Scope:
    """Whose data a transaction may touch: '*' = the city, else comma-separated adcodes, and
    who acts ('' = read only)."""

    districts: str = NOBODY
    actor: str = ""


NO_SCOPE = Scope()
_current: ContextVar[Scope | None] = ContextVar("onescreen_scope", default=None)


def current_scope() -> Scope:
    """The scope the current request or task runs with."""
    return _current.get() or NO_SCOPE


def set_scope(scope: Scope) -> None:
    """Run the rest of this request (context) with `scope`."""
    _current.set(scope)


@contextmanager
def scoped(scope: Scope) -> Iterator[None]:
    """Run the block with `scope`, then restore the previous one."""
    token = _current.set(scope)
    try:
        yield
    finally:
        _current.reset(token)


def derived_secret(owner_url: str, *, purpose: str) -> str:
    """A secret for `purpose` derived from the owner's credentials: every process that can
    reach the owner's URL agrees on it, and nothing else needs to be stored."""
    # not the database name: the role belongs to the whole server, whichever database serves
    parsed = make_url(owner_url)
    secret = f"{parsed.username}:{parsed.password}@{parsed.host}:{parsed.port}".encode()
    return hmac.new(secret, purpose.encode(), hashlib.sha256).hexdigest()


def web_role_password(owner_url: str) -> str:
    """The web role's password (derived, see `derived_secret`)."""
    return derived_secret(owner_url, purpose=WEB_ROLE)


def web_database_url(owner_url: str) -> str:
    """The owner's URL with the web role's name and derived password."""
    parsed = make_url(owner_url)
    return parsed.set(username=WEB_ROLE, password=web_role_password(owner_url)).render_as_string(
        hide_password=False
    )


def provision_web_role(engine: Engine) -> None:
    """Let the web role log in with its derived password (the owner must hold CREATEROLE; where
    it does not, set ONESCREEN_WEB_DATABASE_URL to a login the administrator made)."""
    url = engine.url.render_as_string(hide_password=False)
    password = web_role_password(url)
    # a utility statement takes no bind parameters; the password is hex digits only
    assert all(c in "0123456789abcdef" for c in password)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER ROLE {WEB_ROLE} LOGIN PASSWORD '{password}'"))


def _state_scope(conn: sa.Connection) -> None:
    scope = current_scope()
    conn.exec_driver_sql(
        "SELECT set_config('onescreen.scope', %(districts)s, true),"
        " set_config('onescreen.actor', %(actor)s, true)",
        {"districts": scope.districts, "actor": scope.actor},
    )


def create_web_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for the web role at `url` whose every transaction states the current scope."""
    engine = create_db_engine(url, pool_size=pool_size)
    event.listen(engine, "begin", _state_scope)
    return engine


def get_web_engine() -> Engine:
    """The process-wide web engine: ONESCREEN_WEB_DATABASE_URL, or the web role beside the
    configured owner (its login provisioned by `db upgrade`)."""
    settings = get_settings()
    if settings.web_database_url:
        return _web_engine(settings.web_database_url, owner_url=None)
    return _web_engine(None, owner_url=get_engine().url.render_as_string(hide_password=False))


def get_read_engine() -> Engine:
    """The engine dashboard reads use: the web role on ONESCREEN_READ_DATABASE_URL (a streaming
    replica) when set, otherwise the web engine itself."""
    settings = get_settings()
    if not settings.read_database_url:
        return get_web_engine()
    web_url = get_web_engine().url.render_as_string(hide_password=False)
    return _read_engine(settings.read_database_url, web_url=web_url)


@lru_cache(maxsize=4)
def _read_engine(read_url: str, *, web_url: str) -> Engine:
    replica = make_url(read_url)
    if replica.username and replica.password:
        return create_web_engine(read_url)
    # the replica holds the primary's roles, passwords included: log in as the web role there
    url = make_url(web_url).set(host=replica.host, port=replica.port, database=replica.database)
    return create_web_engine(url.render_as_string(hide_password=False))


@lru_cache(maxsize=4)
def _web_engine(url: str | None, *, owner_url: str | None) -> Engine:
    # the web role's login is provisioned by `db upgrade` (data.migrate.upgrade), never here:
    # a web request runs no DDL
    if url is not None:
        return create_web_engine(url)
    assert owner_url is not None
    return create_web_engine(web_database_url(owner_url))
