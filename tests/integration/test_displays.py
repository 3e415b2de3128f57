"""Display tokens and wall playlists against the real PostGIS: grants, revocation, hostile tokens,
playlist ranges, the quick start's local tokens and the `displays` commands."""

from __future__ import annotations

import json
import stat

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.serve import _local_display_tokens
from data import migrate
from data.displays import (
    DisplayTokenError,
    PlaylistError,
    create_display_token,
    delete_playlist,
    ensure_local_display_tokens,
    find_display_grant,
    get_playlist,
    list_display_tokens,
    list_playlists,
    revoke_display_tokens,
    save_playlist,
    touch_display_token,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(live_engine_):
    return live_engine_


@pytest.fixture(scope="module")
def district(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT min(adcode) FROM district")).scalar_one()


@pytest.fixture(scope="module")
def street(engine, district) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT min(code) FROM street WHERE district_adcode = :d"), {"d": district}
        ).scalar_one()


def _row(engine, fingerprint: str) -> dict:
    return next(r for r in list_display_tokens(engine) if r["fingerprint"] == fingerprint)


# Tokens ---------------------------------------------------------------------------------------


def test_created_token_grants_kind_district_and_playlist(engine, district):
    save_playlist(engine, name="grant-list", views="city,districts")
    token = create_display_token(
        engine, kind="wall", district=district, playlist="grant-list", label="lobby wall"
    )
    grant = find_display_grant(engine, token=token)
    assert grant is not None
    assert (grant.kind, grant.district, grant.playlist, grant.label) == (
        "wall",
        district,
        "grant-list",
        "lobby wall",
    )
    assert len(grant.fingerprint) == 10 and int(grant.fingerprint, 16) >= 0
    city = find_display_grant(engine, token=create_display_token(engine, kind="kiosk"))
    assert city is not None and city.kind == "kiosk" and city.district is None
    assert city.playlist is None and city.label == ""

    listed = _row(engine, grant.fingerprint)
    assert set(listed) == {
        "fingerprint",
        "kind",
        "district",
        "playlist",
        "label",
        "created_at",
        "revoked_at",
        "last_seen_at",
    }
    assert listed["district"] == district and listed["revoked_at"] is None
    assert not any(isinstance(v, bytes | memoryview) for v in listed.values())
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_sha256 FROM display_token")).scalars().all()
    assert all(token.encode() not in bytes(digest) for digest in stored), "only the digest"


NASTY_TOKENS = [
    "",
    " ",
    "x" * 10_000,
    "abc\x00defghijklmnopqrstuvwxyz",
    "\x00" * 32,
    "令牌" * 16,
    "\ud800" * 32,
    "A" * 32,
    "'; DROP TABLE display_token; --",
    "%00%27" * 8,
]


@pytest.mark.parametrize("token", NASTY_TOKENS)
def test_unknown_or_malformed_tokens_grant_nothing(engine, token):
    assert find_display_grant(engine, token=token) is None
    touch_display_token(engine, token=token)
    assert revoke_display_tokens(engine, token=token) == 0


def test_a_real_token_with_extra_characters_grants_nothing(engine):
    token = create_display_token(engine, kind="wall", label="padding")
    for variant in (token + "\n", " " + token, token + "\x00", token[:-1], token.upper()):
        assert find_display_grant(engine, token=variant) is None, repr(variant)
    assert find_display_grant(engine, token=token) is not None


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=st.text(max_size=300))
def test_fuzzed_tokens_never_raise(engine, token):
    assert find_display_grant(engine, token=token) is None
    touch_display_token(engine, token=token)


def test_revoke_by_fingerprint_label_and_token(engine):
    by_fingerprint = create_display_token(engine, kind="wall", label="revoke-fp")
    by_label = [create_display_token(engine, kind="kiosk", label="revoke-label") for _ in range(2)]
    by_token = create_display_token(engine, kind="wall", label="revoke-token")
    bystander = create_display_token(engine, kind="wall", label="revoke-bystander")

    fingerprint = find_display_grant(engine, token=by_fingerprint).fingerprint
    assert revoke_display_tokens(engine, fingerprint=fingerprint.upper()) == 1
    assert find_display_grant(engine, token=by_fingerprint) is None
    assert revoke_display_tokens(engine, label="revoke-label") == 2
    assert all(find_display_grant(engine, token=t) is None for t in by_label)
    assert revoke_display_tokens(engine, token=by_token) == 1
    assert find_display_grant(engine, token=by_token) is None
    assert find_display_grant(engine, token=bystander) is not None

    revoked_at = _row(engine, fingerprint)["revoked_at"]
    assert revoked_at is not None
    assert revoke_display_tokens(engine, fingerprint=fingerprint) == 0
    assert revoke_display_tokens(engine, label="revoke-label") == 0
    assert _row(engine, fingerprint)["revoked_at"] == revoked_at, "revoked once"


@pytest.mark.parametrize(
    ("selectors", "message"),
    [
        ({}, "exactly one"),
        ({"label": "a", "fingerprint": "0123456789"}, "exactly one"),
        ({"fingerprint": "xyz"}, "10 hex digits"),
        ({"fingerprint": "0123456789ab"}, "10 hex digits"),
        ({"label": ""}, "must not be empty"),
        ({"label": "a\x00b"}, "label"),
    ],
)
def test_revoke_needs_one_sensible_selector(engine, selectors, message):
    with pytest.raises(DisplayTokenError, match=message):
        revoke_display_tokens(engine, **selectors)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"kind": "tv"}, "kind must be one of"),
        ({"kind": "wall", "district": "999999"}, "no district with adcode 999999"),
        ({"kind": "wall", "district": "31011"}, "6-digit adcode"),
        ({"kind": "wall", "district": "31O115"}, "6-digit adcode"),
        ({"kind": "wall", "district": "310115\x00"}, "6-digit adcode"),
        ({"kind": "wall", "playlist": "no-such-playlist"}, "no playlist named"),
        ({"kind": "wall", "playlist": "bad name"}, "no playlist named"),
        ({"kind": "kiosk", "label": "x" * 201}, "label"),
    ],
)
def test_bad_token_requests_are_refused(engine, request_, message):
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM display_token")).scalar_one()
    with pytest.raises(DisplayTokenError, match=message):
        create_display_token(engine, **request_)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM display_token")).scalar_one() == before


def test_touch_records_last_seen_at_most_once_a_minute(engine):
    token = create_display_token(engine, kind="wall", label="touch")
    fingerprint = find_display_grant(engine, token=token).fingerprint
    assert _row(engine, fingerprint)["last_seen_at"] is None
    touch_display_token(engine, token=token)
    first = _row(engine, fingerprint)["last_seen_at"]
    assert first is not None
    touch_display_token(engine, token=token)
    assert _row(engine, fingerprint)["last_seen_at"] == first
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE display_token SET last_seen_at = last_seen_at - interval '2 minutes'"
                " WHERE left(encode(token_sha256, 'hex'), 10) = :fp"
            ),
            {"fp": fingerprint},
        )
    shifted = _row(engine, fingerprint)["last_seen_at"]
    touch_display_token(engine, token=token)
    assert _row(engine, fingerprint)["last_seen_at"] >= first > shifted


# Playlists ------------------------------------------------------------------------------------


def test_playlist_save_update_get_list_delete(engine):
    saved = save_playlist(engine, name="Lobby_1", views=" city,districts ")
    assert (saved.views, saved.interval_s, saved.attention_s) == ("city,districts", 30, 60)
    assert (saved.metric, saved.sound, saved.reload_hours) == (None, False, None)
    assert get_playlist(engine, name="Lobby_1") == saved

    updated = save_playlist(
        engine,
        name="Lobby_1",
        views="310115:flood,fire",
        interval_s=5,
        attention_s=3600,
        metric="online_rate",
        sound=True,
        reload_hours=12.5,
    )
    assert updated.updated_at >= saved.updated_at
    assert (updated.views, updated.interval_s, updated.attention_s) == (
        "310115:flood,fire",
        5,
        3600,
    )
    assert (updated.metric, updated.sound, updated.reload_hours) == ("online_rate", True, 12.5)
    assert get_playlist(engine, name="Lobby_1") == updated
    assert save_playlist(engine, name="Lobby_1", views="city", reload_hours=0).reload_hours is None
    assert "Lobby_1" in [p.name for p in list_playlists(engine)]
    names = [p.name for p in list_playlists(engine)]
    assert names == sorted(names)

    assert delete_playlist(engine, name="Lobby_1") is True
    assert delete_playlist(engine, name="Lobby_1") is False
    assert get_playlist(engine, name="Lobby_1") is None


@pytest.mark.parametrize("name", ["", "bad name", "x" * 65, "a\x00", "'; DROP TABLE x; --", "é"])
def test_impossible_playlist_names_are_absent_not_errors(engine, name):
    assert get_playlist(engine, name=name) is None
    assert delete_playlist(engine, name=name) is False
    with pytest.raises(PlaylistError, match="playlist name"):
        save_playlist(engine, name=name, views="city")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"views": ""}, "views must not be empty"),
        ({"views": "  "}, "views must not be empty"),
        ({"views": "city," * 1000}, "at most 4000"),
        ({"interval_s": 4}, "interval must be a whole number of seconds from 5 to 3600"),
        ({"interval_s": 3601}, "interval"),
        ({"interval_s": 7.5}, "interval"),
        ({"interval_s": True}, "interval"),
        ({"attention_s": 0}, "attention"),
        ({"attention_s": 3601}, "attention"),
        ({"metric": "bogus"}, "metric must be one of"),
        ({"reload_hours": -1}, "reload hours"),
        ({"reload_hours": 720.5}, "reload hours"),
        ({"reload_hours": float("nan")}, "reload hours"),
        ({"reload_hours": float("inf")}, "reload hours"),
    ],
)
def test_playlist_ranges_are_checked_before_the_database(engine, fields, message):
    with pytest.raises(PlaylistError, match=message):
        save_playlist(engine, **{"name": "range-check", "views": "city", **fields})
    assert get_playlist(engine, name="range-check") is None


def test_deleting_a_playlist_keeps_its_tokens_without_it(engine):
    save_playlist(engine, name="doomed", views="city")
    token = create_display_token(engine, kind="wall", playlist="doomed", label="doomed wall")
    assert find_display_grant(engine, token=token).playlist == "doomed"
    assert delete_playlist(engine, name="doomed")
    grant = find_display_grant(engine, token=token)
    assert grant is not None and grant.playlist is None


# The quick start's local tokens ---------------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_tokens_are_created_private_and_reused(engine, tmp_path):
    state_file = tmp_path / "data" / "nested" / "display-tokens.json"
    tokens = ensure_local_display_tokens(engine, state_file=state_file)
    assert set(tokens) == {"wall", "kiosk"}
    assert json.loads(state_file.read_text()) == tokens
    assert _mode(state_file) == 0o600
    for kind, token in tokens.items():
        grant = find_display_grant(engine, token=token)
        assert grant.kind == kind and grant.district is None
        assert grant.label == f"local serve ({kind})"
    assert ensure_local_display_tokens(engine, state_file=state_file) == tokens

    state_file.chmod(0o644)
    assert ensure_local_display_tokens(engine, state_file=state_file) == tokens
    assert _mode(state_file) == 0o600


def test_a_revoked_local_token_is_replaced(engine, tmp_path):
    state_file = tmp_path / "display-tokens.json"
    first = ensure_local_display_tokens(engine, state_file=state_file)
    revoke_display_tokens(engine, token=first["wall"])
    second = ensure_local_display_tokens(engine, state_file=state_file)
    assert second["wall"] != first["wall"] and second["kiosk"] == first["kiosk"]
    assert find_display_grant(engine, token=second["wall"]).kind == "wall"
    assert json.loads(state_file.read_text()) == second
    assert _mode(state_file) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"wall": 42, "kiosk": null}',
        b'{"wall": "", "kiosk": "\\u0000"}',
        b"",
    ],
)
def test_a_corrupt_state_file_is_recreated(engine, tmp_path, content):
    state_file = tmp_path / "display-tokens.json"
    state_file.write_bytes(content)
    tokens = ensure_local_display_tokens(engine, state_file=state_file)
    assert json.loads(state_file.read_text()) == tokens
    assert all(find_display_grant(engine, token=t).kind == k for k, t in tokens.items())
    assert _mode(state_file) == 0o600


def test_local_tokens_of_the_wrong_kind_or_scope_are_not_reused(engine, tmp_path, district):
    state_file = tmp_path / "display-tokens.json"
    kiosk = create_display_token(engine, kind="kiosk")
    scoped = create_display_token(engine, kind="kiosk", district=district)
    state_file.write_text(json.dumps({"wall": kiosk, "kiosk": scoped}))
    tokens = ensure_local_display_tokens(engine, state_file=state_file)
    assert tokens["wall"] != kiosk and tokens["kiosk"] != scoped


# Command line ---------------------------------------------------------------------------------


def test_cli_token_create_list_revoke(run, engine, district):
    code, out, _ = run(
        "displays",
        "tokens",
        "create",
        "--kind",
        "kiosk",
        "--district",
        district,
        "--label",
        "cli kiosk",
        "--base-url",
        "https://wall.example/",
    )
    assert code == 0
    comment, token, url = out.strip().splitlines()
    assert comment.startswith("#") and "shown only once" in comment
    assert url == f"https://wall.example/kiosk?token={token}"
    grant = find_display_grant(engine, token=token)
    assert grant.kind == "kiosk" and grant.district == district and grant.label == "cli kiosk"

    code, out, _ = run("displays", "tokens", "create", "--kind", "wall")
    assert code == 0
    assert out.strip().splitlines()[2].startswith("http://127.0.0.1:8050/wall?token=")

    code, out, _ = run("displays", "tokens", "list")
    assert code == 0 and grant.fingerprint in out and "cli kiosk" in out and token not in out

    code, out, _ = run("displays", "tokens", "revoke", "--fingerprint", grant.fingerprint)
    assert code == 0 and "revoked 1" in out
    assert find_display_grant(engine, token=token) is None

    wall = create_display_token(engine, kind="wall", label="cli revoke")
    assert run("displays", "tokens", "revoke", "--label", "cli revoke")[1].startswith("revoked 1")
    assert find_display_grant(engine, token=wall) is None
    other = create_display_token(engine, kind="wall")
    assert run("displays", "tokens", "revoke", f"--token={other}")[1].startswith("revoked 1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "wall", "--district", "999999"], "no district with adcode 999999"),
        (["--kind", "wall", "--playlist", "missing"], "no playlist named 'missing'"),
    ],
)
def test_cli_token_errors_exit_2(run, args, message):
    code, out, err = run("displays", "tokens", "create", *args)
    assert code == 2 and message in err and out == ""


def test_cli_revoke_errors_exit_2(run):
    code, _, err = run("displays", "tokens", "revoke", "--fingerprint", "nothex")
    assert code == 2 and "10 hex digits" in err
    with pytest.raises(SystemExit) as exited:
        run("displays", "tokens", "revoke")
    assert exited.value.code == 2


def test_cli_playlists(run, engine, district, street):
    views = f"city,districts,{district}:flood,{street},fire"
    code, out, err = run(
        "displays",
        "playlists",
        "save",
        "cli-lobby",
        "--views",
        views,
        "--interval",
        "20",
        "--attention",
        "90",
        "--metric",
        "online_rate",
        "--sound",
        "--reload-hours",
        "6",
    )
    assert code == 0, err
    playlist = get_playlist(engine, name="cli-lobby")
    assert playlist.views == views and (playlist.interval_s, playlist.attention_s) == (20, 90)
    assert (playlist.metric, playlist.sound, playlist.reload_hours) == ("online_rate", True, 6.0)

    code, out, _ = run("displays", "playlists", "list")
    assert code == 0 and "cli-lobby" in out and views in out

    code, out, _ = run("displays", "tokens", "create", "--kind", "wall", "--playlist", "cli-lobby")
    assert code == 0 and "playlist 'cli-lobby'" in out

    code, out, _ = run("displays", "playlists", "delete", "cli-lobby")
    assert code == 0 and get_playlist(engine, name="cli-lobby") is None
    code, _, err = run("displays", "playlists", "delete", "cli-lobby")
    assert code == 2 and "no playlist named 'cli-lobby'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad-views", "--views", "city,atlantis,310115:unicorns"], "atlantis, 310115:unicorns"),
        (["bad-views", "--views", " , ,"], "not understood"),
        (["bad name", "--views", "city"], "playlist name"),
        (["bad-interval", "--views", "city", "--interval", "2"], "interval"),
        (["bad-reload", "--views", "city", "--reload-hours", "9999"], "reload hours"),
    ],
)
def test_cli_playlist_errors_exit_2(run, engine, args, message):
    code, out, err = run("displays", "playlists", "save", *args)
    assert code == 2 and message in err and out == ""
    assert get_playlist(engine, name=args[0]) is None


def test_cli_help_for_display_commands(run):
    for args in (
        ["displays", "--help"],
        ["displays", "tokens", "create", "--help"],
        ["displays", "tokens", "revoke", "--help"],
        ["displays", "playlists", "save", "--help"],
    ):
        with pytest.raises(SystemExit) as exited:
            run(*args)
        assert exited.value.code == 0


# Migration ------------------------------------------------------------------------------------


def test_display_tables_migrate_down_and_up(scratch_db):
    migrate.upgrade(scratch_db)
    assert migrate.current_revision(scratch_db) == migrate.head_revision()
    migrate.downgrade(scratch_db, revision="0002")
    assert migrate.current_revision(scratch_db) == "0002"
    with scratch_db.connect() as conn:
        left = conn.execute(
            sa.text("SELECT to_regclass('display_token'), to_regclass('wall_playlist')")
        ).one()
    assert tuple(left) == (None, None)
    migrate.upgrade(scratch_db)
    assert migrate.current_revision(scratch_db) == migrate.head_revision()


def test_serve_starts_without_display_tokens_when_the_database_fails(capsys, tmp_path):
    from types import SimpleNamespace

    from data.engine import create_db_engine

    broken = create_db_engine("postgresql://nobody:wrong@127.0.0.1:1/none")
    settings_ = SimpleNamespace(data_dir=tmp_path)
    assert _local_display_tokens(broken, settings_) == {}
    err = capsys.readouterr().err
    assert err.startswith("warning: no wall/kiosk tokens") and err.count("\n") == 1
    broken.dispose()
