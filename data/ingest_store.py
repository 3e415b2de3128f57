"""Ingest storage: sources and tokens, the device catalogue ingest validates against, idempotent
reading writes that say which rows were new, and dead letters."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.engine import psycopg_connection
from data.writes import ReadingBatch, ensure_reading_partitions, readings_copy_payload

SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
STATUS_CODES = {"active": 0, "maintenance": 1, "retired": 2}
RETIRED = STATUS_CODES["retired"]


class TokenError(ValueError):
    """A source or token request that cannot be honoured (unknown source, bad device)."""


def token_digest(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class Principal:
    """Who is pushing readings: a source, optionally limited to one device."""

    source: str
    device_id: int | None = None


def create_token(
    engine: Engine,
    *,
    source: str,
    device_id: int | None = None,
    label: str = "",
    source_name: str | None = None,
) -> str:
    """A new token for `source` (created if new); only its digest is stored."""
    if not re.match(SOURCE_PATTERN, source):
        raise TokenError(f"source must match {SOURCE_PATTERN}, not {source!r}")
    token = "os_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        _register_source(conn, source=source, name=source_name)
        if device_id is not None:
            known = conn.execute(
                sa.text("SELECT 1 FROM device WHERE id = :id"), {"id": int(device_id)}
            ).scalar_one_or_none()
            if not known:
                raise TokenError(f"no device with id {device_id}")
        conn.execute(
            sa.text(
                "INSERT INTO ingest_token (token_sha256, source_code, device_id, label)"
                " VALUES (:digest, :source, :device, :label)"
            ),
            {"digest": token_digest(token), "source": source, "device": device_id, "label": label},
        )
    return token


def revoke_tokens(engine: Engine, *, source: str) -> int:
    """Revoke every live token of a source; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.text(
                "UPDATE ingest_token SET revoked_at = now()"
                " WHERE source_code = :source AND revoked_at IS NULL"
            ),
            {"source": source},
        )
    return int(result.rowcount)


def find_principal(engine: Engine, *, token: str) -> Principal | None:
    """The live token's principal, or None for an unknown or revoked token."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT source_code, device_id FROM ingest_token"
                " WHERE token_sha256 = :digest AND revoked_at IS NULL"
            ),
            {"digest": token_digest(token)},
        ).one_or_none()
    return None if row is None else Principal(source=row.source_code, device_id=row.device_id)


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
    """Every device's type and status, and every type's plausible range, as sorted arrays."""

    ids: np.ndarray  # int64, sorted
    type_id: np.ndarray  # int64
    status: np.ndarray  # int8, STATUS_CODES
    valid_min: np.ndarray  # by type id
    valid_max: np.ndarray
    binary: np.ndarray  # bool by type id

    def lookup(self, device_ids: np.ndarray) -> np.ndarray:
        """Positions of `device_ids` in the catalogue, -1 where unknown."""
        if len(self.ids) == 0:
            return np.full(len(device_ids), -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, device_ids)
        pos = np.minimum(pos, len(self.ids) - 1)
        return np.where(self.ids[pos] == device_ids, pos, -1)


def load_device_catalog(engine: Engine) -> DeviceCatalog:
    """The catalogue ingest validates readings against."""
    with engine.connect() as conn:
        types = conn.execute(
            sa.text(
                "SELECT id, value_kind, normal_min, normal_max, alarm_min, alarm_max,"
                " valid_min, valid_max FROM device_type"
            )
        ).all()
        devices = conn.execute(sa.text("SELECT id, type_id, status FROM device ORDER BY id")).all()
    size = max((t.id for t in types), default=0) + 1
    valid_min = np.full(size, np.nan)
    valid_max = np.full(size, np.nan)
    binary = np.zeros(size, dtype=bool)
    for t in types:
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
    ids = np.fromiter((d.id for d in devices), dtype=np.int64, count=len(devices))
    return DeviceCatalog(
        ids=ids,
        type_id=np.fromiter((d.type_id for d in devices), dtype=np.int64, count=len(devices)),
        status=np.fromiter(
            (STATUS_CODES.get(d.status, RETIRED) for d in devices),
            dtype=np.int8,
            count=len(devices),
        ),
        valid_min=valid_min,
        valid_max=valid_max,
        binary=binary,
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


def ingest_health(engine: Engine) -> dict[str, Any]:
    """Newest reading and its age, dead letters of the last hour, rule backlog."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT (SELECT max(ts) FROM device_latest) AS newest,"
                " now() AS now,"
                " (SELECT count(*) FROM dead_letter WHERE last_seen_at > now() - interval '1 hour')"
                "   AS dead_letters_1h,"
                " (SELECT count(*) FROM rule_inbox) AS rules_backlog"
            )
        ).one()
    age = (row.now - row.newest).total_seconds() if row.newest else None
    return {
        "newest_reading": row.newest.isoformat() if row.newest else None,
        "newest_reading_age_s": None if age is None else round(age, 1),
        "dead_letters_1h": int(row.dead_letters_1h),
        "rules_backlog": int(row.rules_backlog),
    }
