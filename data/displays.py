"""Video walls and kiosks: read-only display tokens and saved wall playlists.

Walls and kiosks are unattended browsers that open with a display token in their URL; only the
token's SHA-256 is stored, and a 10-hex-digit fingerprint of it names the token in listings.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.ingest_store import token_digest

KINDS = ("wall", "kiosk")
PLAYLIST_METRICS = ("open_incidents", "incidents_per_100km2", "online_rate", "readings_last_hour")
PLAYLIST_NAME_PATTERN = r"[A-Za-z0-9_-]{1,64}"
INTERVAL_RANGE_S = (5, 3600)
ATTENTION_RANGE_S = (5, 3600)
MAX_RELOAD_HOURS = 720.0
MAX_VIEWS_CHARS = 4000
MAX_LABEL_CHARS = 200
# touching at most once a minute keeps a room full of walls from writing on every page load
TOUCH_EVERY_S = 60

# what secrets.token_urlsafe produces, with room for longer tokens; anything else is not a token
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_FINGERPRINT_PATTERN = re.compile(r"[0-9a-f]{10}")
_DISTRICT_PATTERN = re.compile(r"[0-9]{6}")


class DisplayTokenError(ValueError):
    """A display token request that cannot be honoured (bad kind, district or playlist)."""


class PlaylistError(ValueError):
    """A wall playlist that cannot be saved (bad name, range or metric)."""


@dataclass(frozen=True)
class DisplayGrant:
    """What a live display token allows: a wall or kiosk, of one district or the whole city."""

    kind: str
    district: str | None
    playlist: str | None
    label: str
    fingerprint: str


@dataclass(frozen=True)
class Playlist:
    """A saved wall rotation: views in playlist grammar and how the wall rotates and alerts."""

    name: str
    views: str
    interval_s: int
    attention_s: int
    metric: str | None
    sound: bool
    reload_hours: float | None
    updated_at: datetime


def _digest(token: object) -> bytes | None:
    """The stored form of a well-formed token, None for anything that cannot be one."""
    if not isinstance(token, str) or not _TOKEN_PATTERN.fullmatch(token):
        return None
    return token_digest(token)


# Display tokens -------------------------------------------------------------------------------


def create_display_token(
    engine: Engine,
    *,
    kind: str,
    district: str | None = None,
    playlist: str | None = None,
    label: str = "",
) -> str:
    """A new display token (returned once, in plain text); only its digest is stored."""
    if kind not in KINDS:
        raise DisplayTokenError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    _check_label(label, error=DisplayTokenError)
    if district is not None and not (
        isinstance(district, str) and _DISTRICT_PATTERN.fullmatch(district)
    ):
        raise DisplayTokenError(f"district must be a 6-digit adcode, not {district!r}")
    if playlist is not None and not _valid_playlist_name(playlist):
        raise DisplayTokenError(f"no playlist named {playlist!r}")
    token = secrets.token_urlsafe(24)
    with engine.begin() as conn:
        if district is not None:
            known = conn.execute(
                sa.text("SELECT 1 FROM district WHERE adcode = :adcode"), {"adcode": district}
            ).scalar_one_or_none()
            if not known:
                raise DisplayTokenError(f"no district with adcode {district}")
        if playlist is not None:
            # the lock keeps a concurrent delete from failing the insert's foreign key
            found = conn.execute(
                sa.text("SELECT 1 FROM wall_playlist WHERE name = :name FOR KEY SHARE"),
                {"name": playlist},
            ).scalar_one_or_none()
            if not found:
                raise DisplayTokenError(f"no playlist named {playlist!r}")
        conn.execute(
            sa.text(
                "INSERT INTO display_token (token_sha256, kind, district_adcode, playlist, label)"
                " VALUES (:digest, :kind, :district, :playlist, :label)"
            ),
            {
                "digest": token_digest(token),
                "kind": kind,
                "district": district,
                "playlist": playlist,
                "label": label,
            },
        )
    return token


def find_display_grant(engine: Engine, *, token: str) -> DisplayGrant | None:
    """The live token's grant, or None for an unknown, revoked or malformed token."""
    digest = _digest(token)
    if digest is None:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT kind, district_adcode, playlist, label FROM display_token"
                " WHERE token_sha256 = :digest AND revoked_at IS NULL"
            ),
            {"digest": digest},
        ).one_or_none()
    if row is None:
        return None
    return DisplayGrant(
        kind=row.kind,
        district=row.district_adcode,
        playlist=row.playlist,
        label=row.label,
        fingerprint=digest.hex()[:10],
    )


def touch_display_token(engine: Engine, *, token: str) -> None:
    """Record that the token's display was seen now (at most one write a minute)."""
    digest = _digest(token)
    if digest is None:
        return
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE display_token SET last_seen_at = now()"
                " WHERE token_sha256 = :digest AND revoked_at IS NULL"
                "   AND (last_seen_at IS NULL"
                "        OR last_seen_at < now() - make_interval(secs => :every))"
            ),
            {"digest": digest, "every": TOUCH_EVERY_S},
        )


def revoke_display_tokens(
    engine: Engine,
    *,
    token: str | None = None,
    fingerprint: str | None = None,
    label: str | None = None,
) -> int:
    """Revoke the live tokens matching exactly one selector; returns how many."""
    chosen = [s for s in (token, fingerprint, label) if s is not None]
    if len(chosen) != 1:
        raise DisplayTokenError("give exactly one of token, fingerprint or label")
    params: dict[str, str | bytes]
    if token is not None:
        digest = _digest(token)
        if digest is None:
            return 0
        where, params = "token_sha256 = :digest", {"digest": digest}
    elif fingerprint is not None:
        fingerprint = fingerprint.strip().lower()
        if not _FINGERPRINT_PATTERN.fullmatch(fingerprint):
            raise DisplayTokenError(
                f"a fingerprint is 10 hex digits (see `displays tokens list`), not {fingerprint!r}"
            )
        where = "left(encode(token_sha256, 'hex'), 10) = :fingerprint"
        params = {"fingerprint": fingerprint}
    else:
        label = str(label)
        if not label:
            # an empty label would revoke every unlabelled token at once
            raise DisplayTokenError("label must not be empty")
        _check_label(label, error=DisplayTokenError)
        where, params = "label = :label", {"label": label}
    with engine.begin() as conn:
        result = conn.execute(
            sa.text(
                f"UPDATE display_token SET revoked_at = now() WHERE {where} AND revoked_at IS NULL"
            ),
            params,
        )
    return int(result.rowcount)


def list_display_tokens(engine: Engine) -> list[dict[str, Any]]:
    """Every display token, oldest first, named by fingerprint (never the digest)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT left(encode(token_sha256, 'hex'), 10) AS fingerprint, kind,"
                " district_adcode AS district, playlist, label, created_at, revoked_at,"
                " last_seen_at"
                " FROM display_token ORDER BY created_at, fingerprint"
            )
        ).mappings()
        return [dict(row) for row in rows]


def ensure_local_display_tokens(engine: Engine, *, state_file: Path) -> dict[str, str]:
    """A whole-city wall and kiosk token for the developer quick start, kept in `state_file`
    (mode 0600) and reused while still valid."""
    stored: dict[str, str] = {}
    try:
        loaded = json.loads(state_file.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            stored = {k: v for k, v in loaded.items() if k in KINDS and isinstance(v, str)}
    except (OSError, UnicodeDecodeError, ValueError):
        stored = {}  # missing or corrupt: new tokens replace it
    tokens: dict[str, str] = {}
    for kind in KINDS:
        token = stored.get(kind)
        grant = find_display_grant(engine, token=token) if token else None
        if token and grant is not None and grant.kind == kind and grant.district is None:
            tokens[kind] = token
        else:
            tokens[kind] = create_display_token(engine, kind=kind, label=f"local serve ({kind})")
    if tokens != stored or not _private(state_file):
        write_private(state_file, json.dumps(tokens, indent=2) + "\n")
    return tokens


def _private(path: Path) -> bool:
    try:
        return path.stat().st_mode & 0o777 == 0o600
    except OSError:
        return False


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    # created 0600 from the start: the tokens are never readable by others, even briefly
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _check_label(label: object, *, error: type[ValueError]) -> None:
    if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS or "\x00" in label:
        raise error(f"label must be text of at most {MAX_LABEL_CHARS} characters")


# Wall playlists -------------------------------------------------------------------------------


def _valid_playlist_name(name: object) -> bool:
    return isinstance(name, str) and re.fullmatch(PLAYLIST_NAME_PATTERN, name) is not None


def _playlist(row: sa.Row[Any]) -> Playlist:
    return Playlist(
        name=row.name,
        views=row.views,
        interval_s=int(row.interval_s),
        attention_s=int(row.attention_s),
        metric=row.metric,
        sound=bool(row.sound),
        reload_hours=None if row.reload_hours is None else float(row.reload_hours),
        updated_at=row.updated_at,
    )


def _check_seconds(value: object, *, name: str, bounds: tuple[int, int]) -> int:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PlaylistError(f"{name} must be a whole number of seconds from {low} to {high}")
    return value


_PLAYLIST_COLUMNS = "name, views, interval_s, attention_s, metric, sound, reload_hours, updated_at"


def save_playlist(
    engine: Engine,
    *,
    name: str,
    views: str,
    interval_s: int = 30,
    attention_s: int = 60,
    metric: str | None = None,
    sound: bool = False,
    reload_hours: float | None = None,
) -> Playlist:
    """Create or replace the playlist `name` (0 reload hours means never, like None)."""
    if not _valid_playlist_name(name):
        raise PlaylistError(
            f"a playlist name is 1-64 letters, digits, '_' or '-', not {str(name)[:80]!r}"
        )
    if not isinstance(views, str) or not views.strip():
        raise PlaylistError("views must not be empty")
    views = views.strip()
    if len(views) > MAX_VIEWS_CHARS or "\x00" in views:
        raise PlaylistError(f"views must be text of at most {MAX_VIEWS_CHARS} characters")
    interval_s = _check_seconds(interval_s, name="interval", bounds=INTERVAL_RANGE_S)
    attention_s = _check_seconds(attention_s, name="attention", bounds=ATTENTION_RANGE_S)
    if metric is not None and metric not in PLAYLIST_METRICS:
        raise PlaylistError(f"metric must be one of {', '.join(PLAYLIST_METRICS)}, not {metric!r}")
    if reload_hours is not None:
        if isinstance(reload_hours, bool) or not isinstance(reload_hours, int | float):
            raise PlaylistError("reload hours must be a number")
        if not math.isfinite(reload_hours) or not 0 <= reload_hours <= MAX_RELOAD_HOURS:
            raise PlaylistError(
                f"reload hours must be above 0 and at most {MAX_RELOAD_HOURS:g} (0: never)"
            )
        reload_hours = float(reload_hours) or None
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(
                "INSERT INTO wall_playlist"
                " (name, views, interval_s, attention_s, metric, sound, reload_hours)"
                " VALUES (:name, :views, :interval_s, :attention_s, :metric, :sound, :reload)"
                " ON CONFLICT (name) DO UPDATE SET views = EXCLUDED.views,"
                "  interval_s = EXCLUDED.interval_s, attention_s = EXCLUDED.attention_s,"
                "  metric = EXCLUDED.metric, sound = EXCLUDED.sound,"
                "  reload_hours = EXCLUDED.reload_hours, updated_at = now()"
                f" RETURNING {_PLAYLIST_COLUMNS}"
            ),
            {
                "name": name,
                "views": views,
                "interval_s": interval_s,
                "attention_s": attention_s,
                "metric": metric,
                "sound": bool(sound),
                "reload": reload_hours,
            },
        ).one()
    return _playlist(row)


def get_playlist(engine: Engine, *, name: str) -> Playlist | None:
    """The saved playlist `name`, or None (also for a name no playlist could have)."""
    if not _valid_playlist_name(name):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(f"SELECT {_PLAYLIST_COLUMNS} FROM wall_playlist WHERE name = :name"),
            {"name": name},
        ).one_or_none()
    return None if row is None else _playlist(row)


def list_playlists(engine: Engine) -> list[Playlist]:
    """Every saved playlist, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT {_PLAYLIST_COLUMNS} FROM wall_playlist ORDER BY name")
        ).all()
    return [_playlist(row) for row in rows]


def delete_playlist(engine: Engine, *, name: str) -> bool:
    """Delete the playlist `name` (tokens using it fall back to their URL); False if unknown."""
    if not _valid_playlist_name(name):
        return False
    with engine.begin() as conn:
        result = conn.execute(
            sa.text("DELETE FROM wall_playlist WHERE name = :name"), {"name": name}
        )
    return bool(result.rowcount)
