"""The one ingest path HTTP and MQTT share: authenticate, validate, store idempotently, keep what
was rejected as a dead letter, and say per row what happened."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from redis import Redis
from sqlalchemy.engine import Engine

from data import ingest_store
from data.cache import TtlCache
from data.ingest_store import DeviceCatalog, PartitionCache, Principal
from data.unit_positions import FixBatch, UnitCatalog, load_unit_catalog, store_fixes
from data.writes import ReadingBatch
from ingest.validate import (
    BadRequest,
    RowError,
    Validated,
    decode_body,
    is_fix,
    referenced_codes,
    validate_fixes,
    validate_rows,
)
from serving.events import announce_new_data

log = logging.getLogger(__name__)

US = 1_000_000
TOKEN_TTL_S = 30
CATALOG_TTL_S = 300
# readings naming devices the catalogue lacks re-read it, at most this often
CATALOG_EARLY_S = 5
STORED, DUPLICATE, REJECTED = "stored", "duplicate", "rejected"


@dataclass
class IngestResult:
    """What became of each row of one request or message."""

    total: int
    status: list[str]
    errors: list[RowError] = field(default_factory=list)

    @property
    def stored(self) -> int:
        """Rows stored now."""
        return self.status.count(STORED)

    @property
    def duplicate(self) -> int:
        """Rows the store already had (same device and time)."""
        return self.status.count(DUPLICATE)

    @property
    def rejected(self) -> int:
        """Rows refused, each with a reason in `errors`."""
        return self.status.count(REJECTED)

    def as_dict(self) -> dict[str, object]:
        """The JSON answer: counts, a status per row, and a reason per rejected row."""
        return {
            "total": self.total,
            "stored": self.stored,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "status": self.status,
            "errors": [error.as_dict() for error in self.errors],
        }


@dataclass(frozen=True)
class Message:
    """One MQTT message as received."""

    topic: str
    payload: bytes


@dataclass
class MessageOutcome:
    """A message's fate: stored rows (result) or dead-lettered whole (reason)."""

    message: Message
    result: IngestResult | None = None
    reason: str | None = None


class Ingestor:
    """Shared by the HTTP API and the MQTT worker; thread-safe."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_rows: int = 10_000,
        max_future_s: float = 300,
        retention_days: int = 35,
        topic_prefix: str = "onescreen",
        redis: Redis | None = None,
    ) -> None:
        self.engine = engine
        # where stored batches are announced to the web workers (None: no Redis)
        self.redis = redis
        self.max_rows = max_rows
        self.max_future_us = int(max_future_s * US)
        self.max_age_us = int(max(retention_days - 1, 1) * 86400 * US)
        self.topic_prefix = topic_prefix
        self.partitions = PartitionCache()
        # a revoked token stops within TOKEN_TTL_S (on MQTT the broker stops it at once)
        self._tokens = TtlCache(ttl_seconds=TOKEN_TTL_S, max_entries=10_000)
        self._logins = TtlCache(ttl_seconds=TOKEN_TTL_S, max_entries=10_000)
        self._catalog = TtlCache(ttl_seconds=CATALOG_TTL_S, max_entries=1)
        self._units = TtlCache(ttl_seconds=CATALOG_TTL_S, max_entries=1)

    # who -------------------------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal | None:
        """The token's principal, or None for an unknown or revoked one."""
        return self._tokens.get(ingest_store.find_principal, engine=self.engine, token=token).value

    def principal_for_topic(self, topic: str) -> Principal | None:
        """The live token a topic `<prefix>/<mqtt login>/telemetry` belongs to, if any. The
        broker lets only that login publish there (its ACL), so the topic names the sender."""
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self.topic_prefix or parts[2] != "telemetry":
            return None
        return self._logins.get(
            ingest_store.principal_for_mqtt_login, engine=self.engine, username=parts[1]
        ).value

    # what ------------------------------------------------------------------------------------

    def catalog(self, device_ids: np.ndarray | None = None) -> DeviceCatalog:
        """The device catalogue; re-read early when readings name devices it does not know."""
        cached = self._catalog.get(ingest_store.load_device_catalog, engine=self.engine)
        unknown = device_ids is not None and (cached.value.lookup(device_ids) < 0).any()
        age_s = (datetime.now(UTC) - cached.as_of).total_seconds()
        if unknown and age_s > CATALOG_EARLY_S:
            self._catalog.clear()
            cached = self._catalog.get(ingest_store.load_device_catalog, engine=self.engine)
        return cached.value

    def validate(self, rows: list[object], *, principal: Principal) -> Validated:
        """Validate decoded rows for `principal`."""
        ids = np.array(
            [r["device_id"] for r in rows if isinstance(r, dict) and _int_like(r.get("device_id"))],
            dtype=np.int64,
        )
        codes = referenced_codes(rows)
        code_ids = ingest_store.device_ids_for_codes(self.engine, codes=codes) if codes else {}
        now_us = int(time.time() * US)
        window = {"now_us": now_us, "max_future_us": self.max_future_us}
        checked = validate_rows(
            rows,
            catalog=self.catalog(
                np.concatenate([ids, np.array(list(code_ids.values()), np.int64)])
            ),
            code_ids=code_ids,
            oldest_us=now_us - self.max_age_us,
            scope=principal.scope,
            **window,
        )
        if any(is_fix(row) for row in rows):
            checked.fix_index, checked.fixes, errors = validate_fixes(
                rows,
                units=self.unit_catalog(rows),
                oldest_us=now_us - self.max_age_us,
                scope=principal.scope,
                **window,
            )
            checked.errors = sorted(checked.errors + errors, key=lambda error: error.index)
        return checked

    def unit_catalog(self, rows: list[object]) -> UnitCatalog:
        """The units that report positions; re-read early when a row names one it lacks."""
        cached = self._units.get(load_unit_catalog, engine=self.engine)
        named = {row.get("unit_code") for row in rows if isinstance(row, dict)}
        age_s = (datetime.now(UTC) - cached.as_of).total_seconds()
        if not named <= set(cached.value.units) and age_s > CATALOG_EARLY_S:
            self._units.clear()
            cached = self._units.get(load_unit_catalog, engine=self.engine)
        return cached.value

    def ingest_body(self, body: bytes, *, principal: Principal) -> IngestResult:
        """An HTTP request body: decode (BadRequest if unusable), validate, store; one commit."""
        rows = decode_body(body, max_rows=self.max_rows)
        checked = self.validate(rows, principal=principal)
        with self.engine.begin() as conn:
            stored = ingest_store.store_readings(conn, checked.batch, partitions=self.partitions)
            moved = store_fixes(conn, checked.fixes)
            if checked.errors:
                ingest_store.record_dead_letter(
                    conn,
                    channel="http",
                    source=principal.source,
                    topic="",
                    reason=f"{len(checked.errors)} of {checked.total} rows rejected",
                    payload=body,
                    rejected=[error.as_dict() for error in checked.errors],
                )
        if len(checked.batch) or moved.any():
            announce_new_data(source="ingest-http", client=self.redis)
        return _result(
            checked.total,
            np.concatenate([checked.index, checked.fix_index]),
            np.concatenate([stored, moved]),
            checked.errors,
        )

    def ingest_messages(self, messages: Sequence[Message]) -> list[MessageOutcome]:
        """MQTT messages stored together in one transaction; unusable ones become dead letters.

        Returns only after the commit, so the caller may acknowledge every message then.
        """
        outcomes: list[MessageOutcome] = []
        parts: list[tuple[MessageOutcome, str, Validated]] = []  # (outcome, source, rows)
        for message in messages:
            outcome = MessageOutcome(message=message)
            outcomes.append(outcome)
            principal = self.principal_for_topic(message.topic)
            if principal is None:
                outcome.reason = (
                    "unknown or revoked token: the topic is not <prefix>/<MQTT login of a live"
                    f" token>/telemetry: {message.topic}"
                )
                continue
            try:
                rows = decode_body(message.payload, max_rows=self.max_rows)
            except BadRequest as exc:
                outcome.reason = exc.message
                continue
            parts.append((outcome, principal.source, self.validate(rows, principal=principal)))
        batch = ReadingBatch(
            device_id=np.concatenate(
                [p[2].batch.device_id for p in parts] or [np.zeros(0, np.int64)]
            ),
            ts_us=np.concatenate([p[2].batch.ts_us for p in parts] or [np.zeros(0, np.int64)]),
            value=np.concatenate([p[2].batch.value for p in parts] or [np.zeros(0)]),
            quality=np.concatenate([p[2].batch.quality for p in parts] or [np.zeros(0, np.int16)]),
        )
        fixes = FixBatch.joined([checked.fixes for _, _, checked in parts])
        with self.engine.begin() as conn:
            stored = ingest_store.store_readings(conn, batch, partitions=self.partitions)
            moved = store_fixes(conn, fixes)
            offset = fix_offset = 0
            for outcome, _source, checked in parts:
                count, fix_count = len(checked.batch), len(checked.fixes)
                outcome.result = _result(
                    checked.total,
                    np.concatenate([checked.index, checked.fix_index]),
                    np.concatenate(
                        [
                            stored[offset : offset + count],
                            moved[fix_offset : fix_offset + fix_count],
                        ]
                    ),
                    checked.errors,
                )
                offset += count
                fix_offset += fix_count
            # dead letters in the order the messages came
            sources = {id(outcome): source for outcome, source, _ in parts}
            for outcome in outcomes:
                if outcome.reason is not None:
                    reason, rejected = outcome.reason, []
                elif outcome.result is not None and outcome.result.errors:
                    errors = outcome.result.errors
                    reason = f"{len(errors)} of {outcome.result.total} rows rejected"
                    rejected = [error.as_dict() for error in errors]
                else:
                    continue
                ingest_store.record_dead_letter(
                    conn,
                    channel="mqtt",
                    source=sources.get(id(outcome)),
                    topic=outcome.message.topic,
                    reason=reason,
                    payload=outcome.message.payload,
                    rejected=rejected,
                )
        if len(batch) or moved.any():
            announce_new_data(source="ingest-mqtt", client=self.redis)
        return outcomes


def _int_like(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _result(
    total: int, index: np.ndarray, stored: np.ndarray, errors: list[RowError]
) -> IngestResult:
    status = [REJECTED] * total
    for position, new in zip(index.tolist(), stored.tolist(), strict=True):
        status[position] = STORED if new else DUPLICATE
    return IngestResult(total=total, status=status, errors=errors)
