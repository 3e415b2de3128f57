"""Ingest storage: sources and tokens, the device catalogue ingest validates against, idempotent
reading writes that say which rows were new, and dead letters."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.bulk import STATUS_CODES, copy_columns, status_code_sql
from data.engine import psycopg_connection
from data.writes import ReadingBatch, ensure_reading_partitions, readings_copy_payload

SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
RETIRED = STATUS_CODES["retired"]


class TokenError(ValueError):
    """A source or token request that cannot be honoured (unknown source, bad device, no scope)."""


def token_digest(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


# Mosquitto 2's own password form: PBKDF2-SHA512, 12 random salt bytes, 101 rounds ($7$ in
# mosquitto_passwd). A token is 256 random bits, so the few rounds cost an attacker nothing useful.
MQTT_HASH_ROUNDS = 101


def mosquitto_password_hash(password: str, *, salt: bytes | None = None) -> str:
    """`password` as a line of Mosquitto's password file stores it (`$7$rounds$salt$hash`)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, MQTT_HASH_ROUNDS)
    encoded = [base64.b64encode(part).decode("ascii") for part in (salt, digest)]
    return f"$7${MQTT_HASH_ROUNDS}${encoded[0]}${encoded[1]}"


def token_fingerprint(token: str) -> str:
    """The public name of a token in listings: 10 hex digits of its SHA-256."""
    return token_digest(token).hex()[:10]


def mqtt_username(*, source: str, token: str) -> str:
    """A token's MQTT login name; its topic is `<prefix>/<login>/telemetry`."""
    return f"{source}.{token_fingerprint(token)}"


@dataclass(frozen=True)
class TokenScope:
    """What a token may send readings for: one device, or categories × districts (None: all)."""

    device_id: int | None = None
    categories: tuple[str, ...] | None = None
    districts: tuple[str, ...] | None = None

    @property
    def city_wide(self) -> bool:
        """Every device of every category in every district."""
        return self.device_id is None and self.categories is None and self.districts is None

    def describe(self) -> str:
        """In words: "water devices in 310115", "device 1234", "any device in the city"."""
        if self.city_wide:
            return "any device in the city"
        what = "any device" if self.categories is None else "/".join(self.categories) + " devices"
        if self.device_id is not None:
            what = f"device {self.device_id}"
        where = "" if self.districts is None else " in " + ", ".join(self.districts)
        return what + where


@dataclass(frozen=True)
class Principal:
    """Who is pushing readings: a source and what its token may send for."""

    source: str
    scope: TokenScope = TokenScope()
    mqtt_username: str | None = None


@dataclass(frozen=True)
class TokenInfo:
    """A token as `tokens list` shows it (never its secret)."""

    fingerprint: str
    source: str
    label: str
    scope: TokenScope
    created_at: datetime
    revoked_at: datetime | None
    mqtt_username: str | None


def create_token(
    engine: Engine,
    *,
    source: str,
    device_id: int | None = None,
    categories: Sequence[str] | None = None,
    districts: Sequence[str] | None = None,
    city_wide: bool = False,
    label: str = "",
    source_name: str | None = None,
) -> str:
    """A new token for `source` (created if new), bound to a device and/or categories ×
    districts, or to the whole city only when `city_wide` says so; only its SHA-256 and its MQTT
    password hash are stored."""
    if not re.match(SOURCE_PATTERN, source):
        raise TokenError(f"source must match {SOURCE_PATTERN}, not {source!r}")
    scope = TokenScope(
        device_id=device_id,
        categories=tuple(sorted(set(categories))) if categories else None,
        districts=tuple(sorted(set(districts))) if districts else None,
    )
    if scope.city_wide != city_wide:
        raise TokenError(
            "a token with --all may send for any device in the city: it takes no --device, "
            "--category or --district"
            if city_wide
            else "say what the token may send readings for: --device ID, --category and/or "
            "--district, or --all for any device in the city"
        )
    token = "os_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        _check_scope(conn, scope)
        _register_source(conn, source=source, name=source_name)
        conn.execute(
            sa.text(
                "INSERT INTO ingest_token (token_sha256, source_code, device_id, categories,"
                " districts, label, mqtt_username, mqtt_password_hash)"
                " VALUES (:digest, :source, :device, :categories, :districts, :label, :user,"
                " :hash)"
            ),
            {
                "digest": token_digest(token),
                "source": source,
                "device": device_id,
                "categories": list(scope.categories) if scope.categories else None,
                "districts": list(scope.districts) if scope.districts else None,
                "label": label,
                "user": mqtt_username(source=source, token=token),
                "hash": mosquitto_password_hash(token),
            },
        )
    return token


def _check_scope(conn: sa.Connection, scope: TokenScope) -> None:
    """Refuse categories, districts or a device the city does not have, or a device outside
    the token's categories and districts."""
    for table, column, wanted in (
        ("device_category", "code", scope.categories),
        ("district", "adcode", scope.districts),
    ):
        if not wanted:
            continue
        known = set(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise TokenError(
                f"no such {table.replace('device_', '')}: {', '.join(unknown)}"
                f" (known: {', '.join(sorted(known))})"
            )
    if scope.device_id is None:
        return
    device = conn.execute(
        sa.text(
            "SELECT t.category_code, d.district_adcode FROM device d"
            " JOIN device_type t ON t.id = d.type_id WHERE d.id = :id"
        ),
        {"id": int(scope.device_id)},
    ).one_or_none()
    if device is None:
        raise TokenError(f"no device with id {scope.device_id}")
    if (scope.categories and device.category_code not in scope.categories) or (
        scope.districts and device.district_adcode not in scope.districts
    ):
        raise TokenError(
            f"device {scope.device_id} is a {device.category_code} device in"
            f" {device.district_adcode}, outside the token's categories and districts"
        )


def revoke_tokens(engine: Engine, *, source: str, fingerprint: str | None = None) -> int:
    """Revoke every live token of a source (or the one with `fingerprint`); returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.text(
                "UPDATE ingest_token SET revoked_at = now()"
                " WHERE source_code = :source AND revoked_at IS NULL"
                " AND (CAST(:fingerprint AS text) IS NULL"
                "      OR left(encode(token_sha256, 'hex'), 10) = :fingerprint)"
            ),
            {"source": source, "fingerprint": fingerprint},
        )
    return int(result.rowcount)


_TOKEN_COLUMNS = (
    "source_code, device_id, categories, districts, mqtt_username, label, created_at,"
    " revoked_at, left(encode(token_sha256, 'hex'), 10) AS fingerprint"
)


def _scope(row: Any) -> TokenScope:
    return TokenScope(
        device_id=row.device_id,
        categories=tuple(row.categories) if row.categories else None,
        districts=tuple(row.districts) if row.districts else None,
    )


def _principal(row: Any) -> Principal:
    return Principal(source=row.source_code, scope=_scope(row), mqtt_username=row.mqtt_username)


def _live_principal(engine: Engine, *, column: str, value: object) -> Principal | None:
    """The principal of the live token whose `column` (a fixed column name) equals `value`."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT {_TOKEN_COLUMNS} FROM ingest_token"
                f" WHERE {column} = :value AND revoked_at IS NULL"
            ),
            {"value": value},
        ).one_or_none()
    return None if row is None else _principal(row)


def find_principal(engine: Engine, *, token: str) -> Principal | None:
    """The live token's principal, or None for an unknown or revoked token."""
    return _live_principal(engine, column="token_sha256", value=token_digest(token))


def principal_for_mqtt_login(engine: Engine, *, username: str) -> Principal | None:
    """The principal of the live token whose MQTT login is `username`, or None."""
    return _live_principal(engine, column="mqtt_username", value=username)


def list_tokens(engine: Engine, *, include_revoked: bool = True) -> list[TokenInfo]:
    """Every token, newest first, without secrets."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT {_TOKEN_COLUMNS} FROM ingest_token"
                " WHERE CAST(:all AS boolean) OR revoked_at IS NULL"
                " ORDER BY created_at DESC, source_code"
            ),
            {"all": include_revoked},
        ).all()
    return [
        TokenInfo(
            fingerprint=row.fingerprint,
            source=row.source_code,
            label=row.label,
            scope=_scope(row),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            mqtt_username=row.mqtt_username,
        )
        for row in rows
    ]


def mqtt_logins(engine: Engine) -> list[tuple[str, str]]:
    """(login, Mosquitto password hash) of every live token that has an MQTT login: what the
    broker's password file is written from."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT mqtt_username, mqtt_password_hash FROM ingest_token"
                " WHERE revoked_at IS NULL AND mqtt_username IS NOT NULL ORDER BY mqtt_username"
            )
        ).all()
    return [(row.mqtt_username, row.mqtt_password_hash) for row in rows]


def ensure_local_token(engine: Engine, *, state_file: Path, source: str, label: str) -> str:
    """A city-wide token for a process OneScreen runs itself (the simulator of `serve`), kept in
    `state_file` (mode 0600) and reused while it is live; never passed on a command line."""
    from data.displays import write_private

    try:
        token = state_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    principal = find_principal(engine, token=token) if token else None
    if (
        principal is None
        or principal.source != source
        or not principal.scope.city_wide
        or principal.mqtt_username is None
    ):
        token = create_token(engine, source=source, city_wide=True, label=label)
        write_private(state_file, token + "\n")
    return token


def source_exists(engine: Engine, *, source: str) -> bool:
    """True when `source` is a registered ingest source."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT 1 FROM ingest_source WHERE code = :code"), {"code": source}
            ).scalar_one_or_none()
        )


def ensure_source(engine: Engine, *, source: str, name: str | None = None) -> None:
    """Register `source` if it is not yet known."""
    if not re.match(SOURCE_PATTERN, source):
        raise TokenError(f"source must match {SOURCE_PATTERN}, not {source!r}")
    with engine.begin() as conn:
        _register_source(conn, source=source, name=name)


def _register_source(conn: sa.Connection, *, source: str, name: str | None) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO ingest_source (code, name) VALUES (:code, :name)"
            " ON CONFLICT (code) DO NOTHING"
        ),
        {"code": source, "name": name or source},
    )


# Device catalogue -----------------------------------------------------------------------------


def plausible_range(
    *,
    value_kind: str,
    normal_min: float,
    normal_max: float,
    alarm_min: float | None,
    alarm_max: float | None,
) -> tuple[float, float]:
    """Values a sensor of this type can physically report: far beyond its alarm limits, never
    below zero for a quantity whose normal range is non-negative."""
    if value_kind == "binary":
        return 0.0, 1.0
    low = min(normal_min, alarm_min if alarm_min is not None else normal_min)
    high = max(normal_max, alarm_max if alarm_max is not None else normal_max)
    span = max(high - low, abs(high), abs(low), 1.0)
    return (0.0 if normal_min >= 0 else low - 5 * span), high + 5 * span


@dataclass(frozen=True)
class DeviceCatalog:
    """Every device's type, status and district, and every type's plausible range and category,
    as sorted arrays."""

    ids: np.ndarray  # int64, sorted
    type_id: np.ndarray  # int64
    status: np.ndarray  # int8, STATUS_CODES
    valid_min: np.ndarray  # by type id
    valid_max: np.ndarray
    binary: np.ndarray  # bool by type id
    # the device's district adcode as a number (310115), and each type's category code
    district: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    category: tuple[str, ...] = ()  # by type id ("" for no type)

    def lookup(self, device_ids: np.ndarray) -> np.ndarray:
        """Positions of `device_ids` in the catalogue, -1 where unknown."""
        if len(self.ids) == 0:
            return np.full(len(device_ids), -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, device_ids)
        pos = np.minimum(pos, len(self.ids) - 1)
        return np.where(self.ids[pos] == device_ids, pos, -1)

    def in_scope(self, position: np.ndarray, scope: TokenScope) -> np.ndarray:
        """Per catalogue position (-1: unknown, never in scope), whether `scope` covers it."""
        inside = position >= 0
        if scope.city_wide or len(self.ids) == 0:
            return inside
        safe = np.where(inside, position, 0)
        if scope.device_id is not None:
            inside &= self.ids[safe] == scope.device_id
        if scope.categories is not None:
            allowed = np.array([code in scope.categories for code in self.category], np.bool_)
            inside &= allowed[self.type_id[safe]]
        if scope.districts is not None:
            adcodes = np.array([int(code) for code in scope.districts], np.int32)
            inside &= np.isin(self.district[safe], adcodes)
        return inside


def load_device_catalog(engine: Engine) -> DeviceCatalog:
    """The catalogue ingest validates readings against."""
    with engine.connect() as conn:
        types = conn.execute(
            sa.text(
                "SELECT id, category_code, value_kind, normal_min, normal_max, alarm_min,"
                " alarm_max, valid_min, valid_max FROM device_type"
            )
        ).all()
        ids, type_id, status, district = _device_columns(conn)
    size = max((t.id for t in types), default=0) + 1
    valid_min = np.full(size, np.nan)
    valid_max = np.full(size, np.nan)
    binary = np.zeros(size, dtype=bool)
    category = [""] * size
    for t in types:
        category[t.id] = t.category_code
        low, high = plausible_range(
            value_kind=t.value_kind,
            normal_min=t.normal_min,
            normal_max=t.normal_max,
            alarm_min=t.alarm_min,
            alarm_max=t.alarm_max,
        )
        valid_min[t.id] = low if t.valid_min is None else t.valid_min
        valid_max[t.id] = high if t.valid_max is None else t.valid_max
        binary[t.id] = t.value_kind == "binary"
    return DeviceCatalog(
        ids=ids,
        type_id=type_id,
        status=status,
        valid_min=valid_min,
        valid_max=valid_max,
        binary=binary,
        district=district,
        category=tuple(category),
    )


def _device_columns(conn: sa.Connection) -> tuple[np.ndarray, ...]:
    """Every device's id, type, status code and district as arrays, sorted by id (a binary
    COPY: no Python object per device)."""
    rows = copy_columns(
        conn,
        sql=f"SELECT id, type_id, {status_code_sql()},"
        " district_adcode::int4 FROM device ORDER BY id",
        columns=(("id", "int8"), ("type", "int2"), ("status", "int2"), ("district", "int4")),
    )
    return (
        rows["id"],
        rows["type"].astype(np.int64),
        rows["status"].astype(np.int8),
        rows["district"],
    )


def device_ids_for_codes(engine: Engine, *, codes: Sequence[str]) -> dict[str, int]:
    """Device ids of the given device codes (unknown codes are absent)."""
    if not codes:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT code, id FROM device WHERE code = ANY(:codes)"),
            {"codes": list(set(codes))},
        ).all()
    return {row.code: int(row.id) for row in rows}


# Writes ------------------------------------------------------------------------------------------


class PartitionCache:
    """Days whose reading partition is known to exist, so a batch takes the partition lock
    (which serialises writers until commit) only when it reaches a new day."""

    def __init__(self) -> None:
        self._days: set[date] = set()

    def ensure(self, conn: sa.Connection, *, start: datetime, end: datetime) -> None:
        """Create the partitions [start, end] needs unless this process has seen them."""
        days = _city_days(start, end)
        if days <= self._days:
            return
        ensure_reading_partitions(conn, start=start, end=end)
        self._days |= days

    def forget(self) -> None:
        """Forget what is known (after retention dropped partitions)."""
        self._days.clear()


def _city_days(start: datetime, end: datetime) -> set[date]:
    first = (start + timedelta(hours=8)).date()
    last = (end + timedelta(hours=8)).date()
    return {first + timedelta(days=k) for k in range((last - first).days + 1)}


_INCOMING = "ingest_incoming"


def store_readings(
    conn: sa.Connection, batch: ReadingBatch, *, partitions: PartitionCache
) -> np.ndarray:
    """Insert a batch idempotently; True per row that was new, False for one already stored.

    The rows travel as one binary COPY into a session temp table, then one INSERT … ON CONFLICT
    DO NOTHING moves them, so the reading trigger sees the batch once.
    """
    if len(batch) == 0:
        return np.zeros(0, dtype=bool)
    start, end = batch.time_range()
    partitions.ensure(conn, start=start, end=end)
    cursor = psycopg_connection(conn).cursor()
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_INCOMING}"
        " (device_id bigint, ts timestamptz, value float8, quality int2) ON COMMIT DELETE ROWS"
    )
    with cursor.copy(
        f"COPY {_INCOMING} (device_id, ts, value, quality) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(readings_copy_payload(batch))
    cursor.execute(
        "INSERT INTO reading (device_id, ts, value, quality)"
        f" SELECT device_id, ts, value, quality FROM {_INCOMING}"
        " ON CONFLICT (device_id, ts) DO NOTHING"
        " RETURNING device_id, (extract(epoch FROM ts) * 1000000)::bigint"
    )
    inserted = cursor.fetchall()
    # ON COMMIT empties it too, but a transaction may store several batches
    cursor.execute(f"DELETE FROM {_INCOMING}")
    if not inserted:
        return np.zeros(len(batch), dtype=bool)
    key = np.dtype([("device", np.int64), ("ts", np.int64)])
    keys = np.empty(len(batch), dtype=key)
    keys["device"], keys["ts"] = batch.device_id, batch.ts_us
    new_keys = np.sort(np.array([tuple(row) for row in inserted], dtype=key))
    found = np.searchsorted(new_keys, keys)
    inserted_now: npt.NDArray[np.bool_] = new_keys[np.minimum(found, len(new_keys) - 1)] == keys
    # a key repeated inside one batch is stored once: only its first occurrence counts as new
    first = np.zeros(len(batch), dtype=np.bool_)
    first[np.unique(keys, return_index=True)[1]] = True
    return inserted_now & first


def record_dead_letter(
    conn: sa.Connection,
    *,
    channel: str,
    source: str | None,
    topic: str,
    reason: str,
    payload: bytes,
    rejected: Iterable[dict[str, Any]] = (),
) -> None:
    """Keep what could not be stored, with why; the same message again only bumps its count."""
    conn.execute(
        sa.text(
            "INSERT INTO dead_letter"
            " (channel, source_code, topic, reason, rejected, payload, payload_sha256)"
            " VALUES (:channel, :source, :topic, :reason, CAST(:rejected AS jsonb), :payload,"
            " :digest)"
            " ON CONFLICT (channel, topic, payload_sha256) DO UPDATE SET"
            " times = dead_letter.times + 1, last_seen_at = now()"
        ),
        {
            "channel": channel,
            "source": source,
            "topic": topic,
            "reason": reason[:2000],
            "rejected": json.dumps(list(rejected), ensure_ascii=False),
            "payload": payload,
            "digest": hashlib.sha256(payload).digest(),
        },
    )


def dead_letters(engine: Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters (without payloads), for the CLI and tests."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, received_at, times, channel, source_code, topic, reason, rejected,"
                " length(payload) AS payload_bytes FROM dead_letter ORDER BY id DESC LIMIT :n"
            ),
            {"n": int(limit)},
        ).mappings()
        return [dict(row) for row in rows]


def ingest_health(engine: Engine, *, recent_s: float = 120.0) -> dict[str, Any]:
    """Newest reading and its age, dead letters of the last hour, rule backlog. The newest is
    looked for in the last `recent_s` first (a few index pages), then in the newest quarter hour
    that has readings."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                # the last minutes through the time index (revision 0016); after a longer
                # silence, the newest quarter hour with readings (its rollup row) and its readings
                "SELECT coalesce("
                "  (SELECT max(ts) FROM reading WHERE ts > now() - make_interval(secs => :recent)),"
                "  (SELECT max(ts) FROM reading"
                "   WHERE ts >= (SELECT max(bucket) FROM rollup_street_15m))) AS newest,"
                " now() AS now,"
                " (SELECT count(*) FROM dead_letter WHERE last_seen_at > now() - interval '1 hour')"
                "   AS dead_letters_1h,"
                " (SELECT count(*) FROM rule_inbox) AS rules_backlog"
            ),
            {"recent": float(recent_s)},
        ).one()
    age = (row.now - row.newest).total_seconds() if row.newest else None
    return {
        "newest_reading": row.newest.isoformat() if row.newest else None,
        "newest_reading_age_s": None if age is None else round(age, 1),
        "dead_letters_1h": int(row.dead_letters_1h),
        "rules_backlog": int(row.rules_backlog),
    }
