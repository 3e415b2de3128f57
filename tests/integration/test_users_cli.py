"""The `users` command line: create, update, list, the one-time setup link and the audit log."""

from __future__ import annotations

import io
import re
import secrets
from datetime import timedelta

import pytest

from data import access
from data.engine import create_db_engine

pytestmark = pytest.mark.integration
PASSWORD = "command line passphrase"


@pytest.fixture
def owner(live_city_url):
    engine = create_db_engine(live_city_url)
    yield engine
    engine.dispose()


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text + "\n"))


def test_users_create_update_list_and_audit(run, owner, monkeypatch):
    name = f"dm-{secrets.token_hex(3)}"
    _stdin(monkeypatch, PASSWORD)
    code, out, _ = run(
        "users", "create", name, "--role", "district_manager", "--districts", "310115",
        "--display-name", "浦东值班", "--password-stdin",
    )  # fmt: skip
    assert code == 0 and "created district_manager" in out and "310115" in out
    assert access.authenticate(owner, username=name, password=PASSWORD, address="127.0.0.9")
    ticket = access.open_session(
        owner, principal=access.find_user(owner, username=name), lifetime=timedelta(hours=1)
    )
    code, out, _ = run("users", "update", name, "--districts", "310115,310101")
    assert code == 0 and "sessions have ended" in out
    user = access.find_user(owner, username=name)
    assert user.districts == ("310101", "310115")
    assert access.find_session(owner, token=ticket.token, idle_timeout=timedelta(hours=1)) is None
    code, out, _ = run("users", "update", name, "--disable")
    assert code == 0
    assert access.authenticate(owner, username=name, password=PASSWORD, address="127.0.0.9") is None
    code, out, _ = run("users", "list")
    line = next(row for row in out.splitlines() if row.startswith(name))
    assert "district_manager" in line and "310101,310115" in line and "disabled" in line
    code, out, _ = run("users", "audit", "--limit", "20")
    assert re.search(rf"cli\s+user-created\s+user:{name}", out)
    assert re.search(rf"cli\s+user-updated\s+user:{name}", out)
    assert PASSWORD not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "create", "Bad Name", "--role", "viewer"), "username"),
        (("users", "create", "ok-name", "--role", "district_manager"), "at least one district"),
        (("users", "create", "ok-name2", "--role", "admin", "--districts", "310115"), "whole city"),
        (("users", "create", "ok-name3", "--role", "viewer", "--districts", "999999"), "999999"),
        (("users", "update", "nobody-here", "--role", "viewer"), "no user"),
    ],
)
def test_users_errors_exit_2_with_one_line(run, monkeypatch, args, message):
    _stdin(monkeypatch, PASSWORD)
    code, _, err = run(*args, "--password-stdin") if args[1] == "create" else run(*args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_weak_password_is_refused(run, monkeypatch):
    _stdin(monkeypatch, "short")
    code, _, err = run("users", "create", "weak-one", "--role", "viewer", "--password-stdin")
    assert code == 2 and "12" in err


def test_setup_code_only_while_there_is_no_administrator(run, owner):
    has_admin = access.has_admin(owner)
    code, out, err = run("users", "setup-code", "--base-url", "https://ops.example")
    if has_admin:
        assert code == 2 and "exists already" in err
    else:
        assert code == 0 and re.search(r"https://ops\.example/setup\?code=[\w-]{20,}", out)
    access.create_user(
        owner, username=f"admin-{secrets.token_hex(3)}", role="admin", password=PASSWORD
    )
    code, _, err = run("users", "setup-code")
    assert code == 2 and "exists already" in err
