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

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from config import Settings
from data.engine import BACKGROUND_TIMEOUTS, Timeouts, create_db_engine, embedded_read_url

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

    @property
    def partition(self) -> tuple[str, bool]:
        """What a shared result depends on: the districts, and whether the caller may act (not
        who it is)."""
        return (self.districts, bool(self.actor))


NO_SCOPE = Scope()


def partition_tags(partition: object) -> tuple[str, ...]:
    """What a result shared within `partition` (a Scope.partition) goes out of date with: CITY
    for the city's, else each of its districts; nothing for other partitions (session checks,
    the signed-out scope, which sees nothing)."""
    if not (isinstance(partition, tuple) and partition and isinstance(partition[0], str)):
        return ()
    districts = partition[0]
    if districts == CITY:
        return (CITY,)
    return tuple(sorted({district for district in districts.split(",") if district}))


def district_tags(district: str) -> tuple[str, ...]:
    """The tags to outdate when something in `district` changed: its own, and the city's."""
    return (district, CITY)


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


def create_web_engine(
    url: str, *, pool_size: int = 5, timeouts: Timeouts = BACKGROUND_TIMEOUTS
) -> Engine:
    """An engine for the web role at `url` whose every transaction states the current scope
    (`timeouts`: see create_db_engine)."""
    engine = create_db_engine(url, pool_size=pool_size, timeouts=timeouts)
    event.listen(engine, "begin", _state_scope)
    return engine


def web_url_for(settings: Settings, *, owner_url: str) -> str:
    """The web role's URL: ONESCREEN_WEB_DATABASE_URL, or the web role beside the owner (its
    login provisioned by `db upgrade`, never by a web request)."""
    return settings.web_database_url or web_database_url(owner_url)


def read_url_for(settings: Settings, *, web_url: str) -> str:
    """Where dashboard reads go: the web role on ONESCREEN_READ_DATABASE_URL (a streaming
    replica) when set, otherwise the web role's own URL."""
    chosen = settings.read_database_url or embedded_read_url(settings)
    if not chosen:
        return web_url
    replica = make_url(chosen)
    if replica.username and replica.password:
        return chosen
    # the replica holds the primary's roles, passwords included: log in as the web role there
    url = make_url(web_url).set(host=replica.host, port=replica.port, database=replica.database)
    return url.render_as_string(hide_password=False)
