"""Validation of incoming readings: pure functions from decoded JSON to a columnar batch plus a
reason for every row that cannot be stored."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from data.ingest_store import RETIRED, DeviceCatalog, TokenScope
from data.resources import LAT_RANGE, LON_RANGE
from data.unit_positions import EMPTY_FIXES, FixBatch, UnitCatalog
from data.writes import ReadingBatch

US = 1_000_000
QUALITY_NAMES = {"good": 0, "suspect": 1, "bad": 2}
CITY_WIDE = TokenScope()
# PostgreSQL's bigint; larger ids cannot name a device
MAX_DEVICE_ID = 2**63 - 1


class BadRequest(ValueError):
    """The request as a whole is unusable (not JSON, not a batch, too large); nothing stored."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RowError:
    """Why one row of a batch was rejected."""

    index: int
    code: str
    message: str

    def as_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass
class Validated:
    """Rows that may be stored (with their position in the request) and the rejected ones;
    readings of devices, and position fixes of units (rows naming a unit_code)."""

    total: int
    index: np.ndarray  # int64 positions of the valid reading rows
    batch: ReadingBatch
    errors: list[RowError] = field(default_factory=list)
    fix_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fixes: FixBatch = EMPTY_FIXES


def decode_body(body: bytes, *, max_rows: int) -> list[object]:
    """The list of rows of a request body: `{"readings": [...]}` or a bare list."""
    if not body or not body.strip():
        raise BadRequest("empty_body", 'the request has no body; send {"readings": [...]}')
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("invalid_json", f"the body is not valid JSON: {exc}") from None
    rows = document.get("readings") if isinstance(document, dict) else document
    if isinstance(document, dict) and "readings" not in document:
        raise BadRequest("no_readings", 'the JSON object has no "readings" list')
    if not isinstance(rows, list):
        raise BadRequest("not_a_list", '"readings" must be a list of reading objects')
    if not rows:
        raise BadRequest("no_readings", '"readings" is empty')
    if len(rows) > max_rows:
        raise BadRequest(
            "too_many_rows", f"{len(rows)} readings in one request; at most {max_rows}"
        )
    return rows


def referenced_codes(rows: list[object]) -> list[str]:
    """Device codes the rows name instead of ids (to be resolved before validation)."""
    return [
        row["device_code"]
        for row in rows
        if isinstance(row, dict)
        and "device_id" not in row
        and isinstance(row.get("device_code"), str)
        and 0 < len(row["device_code"]) <= 200
        # PostgreSQL text cannot hold NUL: such a code names no device
        and "\x00" not in row["device_code"]
    ]


def parse_timestamp(text: object) -> tuple[int | None, str | None]:
    """Microseconds since the epoch of an ISO-8601 time with zone, or an error code."""
    if not isinstance(text, str) or len(text) > 64:
        return None, "ts_invalid"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None, "ts_invalid"
    if moment.tzinfo is None:
        return None, "ts_naive"
    return round(moment.timestamp() * US), None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


_MESSAGES = {
    "not_an_object": "a reading must be a JSON object",
    "device_missing": "device_id (integer) or device_code (string) is required",
    "device_invalid": "device_id must be a positive integer",
    "unknown_device": "no such device",
    "device_retired": "the device is retired and takes no readings",
    # the scope's own words are added per token: "…for water devices in 310115"
    "token_scope": "this token may only send readings for its own devices",
    "ts_missing": "ts is required (ISO-8601 with time zone, e.g. 2026-11-25T08:00:00+08:00)",
    "ts_invalid": "ts is not an ISO-8601 time (e.g. 2026-11-25T08:00:00+08:00)",
    "ts_naive": "ts has no time zone; add Z or an offset such as +08:00",
    "ts_future": "ts is too far in the future",
    "ts_too_old": "ts is older than the readings kept",
    "value_missing": "value is required",
    "value_invalid": "value must be a finite number",
    "value_out_of_range": "value is outside what this type of device can report",
    "value_not_binary": "this device reports 0 or 1",
    "quality_invalid": "quality must be 0 (good), 1 (suspect) or 2 (bad)",
    "unknown_unit": "no such unit (crews and vehicles report positions; facilities do not)",
    "unit_scope": "this token may not send positions for this unit",
    "position_invalid": "lon and lat must be numbers: a point in Shanghai (GCJ-02 degrees)",
}


def message(code: str) -> str:
    """The human reason for a row error code."""
    return _MESSAGES[code]


# a row that passed the per-row checks: device id, ts (µs since the epoch), value, quality
_Parsed = tuple[int, int, float, int]


def _device_by_code(code: object, code_ids: dict[str, int]) -> int | str:
    """The id of the device a row names by code, or the error code."""
    if code is None:
        return "device_missing"
    device = code_ids.get(code) if isinstance(code, str) else None
    return "unknown_device" if device is None else device


def _parse_row(row: object, code_ids: dict[str, int]) -> _Parsed | str:
    """One row's fields, or the code of the first thing wrong with it."""
    if not isinstance(row, dict):
        return "not_an_object"
    device = row.get("device_id")
    if device is None:
        device = _device_by_code(row.get("device_code"), code_ids)
        if isinstance(device, str):
            return device
    elif isinstance(device, bool) or not isinstance(device, int) or not 0 < device <= MAX_DEVICE_ID:
        return "device_invalid"
    if "ts" not in row:
        return "ts_missing"
    ts_us, ts_error = parse_timestamp(row["ts"])
    if ts_us is None:
        return ts_error or "ts_invalid"
    measured = _measurement(row)
    if isinstance(measured, str):
        return measured
    return device, ts_us, measured[0], measured[1]


def _measurement(row: dict[str, Any]) -> tuple[float, int] | str:
    """A row's value and quality, or the code of the first thing wrong with them."""
    if "value" not in row:
        return "value_missing"
    value = _number(row["value"])
    if value is None:
        return "value_invalid"
    quality = row.get("quality", 0)
    if isinstance(quality, str):
        quality = QUALITY_NAMES.get(quality)
    if isinstance(quality, bool) or quality not in (0, 1, 2):
        return "quality_invalid"
    return value, quality


def _batch_checks(
    catalog: DeviceCatalog,
    *,
    device_id: np.ndarray,
    ts_us: np.ndarray,
    value: np.ndarray,
    now_us: int,
    max_future_us: int,
    oldest_us: int,
    scope: TokenScope,
) -> list[tuple[str, np.ndarray]]:
    """(error code, failing rows) of each check against the catalog and the clock, in the
    order a person would fix them."""
    position = catalog.lookup(device_id)
    known = position >= 0
    safe = np.where(known, position, 0)
    type_id = np.where(known, catalog.type_id[safe] if len(catalog.ids) else 0, 0)
    return [
        ("unknown_device", ~known),
        # before anything else about the device: a token learns nothing of others' devices
        ("token_scope", known & ~catalog.in_scope(position, scope)),
        (
            "device_retired",
            known & (catalog.status[safe] == RETIRED if len(catalog.ids) else known),
        ),
        ("ts_future", ts_us > now_us + max_future_us),
        ("ts_too_old", ts_us < oldest_us),
        ("value_not_binary", known & catalog.binary[type_id] & (value != 0) & (value != 1)),
        (
            "value_out_of_range",
            known
            & ~catalog.binary[type_id]
            & ((value < catalog.valid_min[type_id]) | (value > catalog.valid_max[type_id])),
        ),
    ]


def _reason(code: str, scope: TokenScope) -> str:
    """The sentence of a row error code; a scope error names what the token may send for."""
    if code == "token_scope":
        return f"this token may only send readings for {scope.describe()}"
    return _MESSAGES[code]


def validate_rows(
    rows: list[object],
    *,
    catalog: DeviceCatalog,
    code_ids: dict[str, int],
    now_us: int,
    max_future_us: int,
    oldest_us: int,
    scope: TokenScope = CITY_WIDE,
) -> Validated:
    """Check every row; the valid ones come back as a batch, the others with a reason each
    (a row outside the token's scope says what the token may send for)."""
    errors: list[RowError] = []
    keep_index: list[int] = []
    device_ids: list[int] = []
    stamps: list[int] = []
    values: list[float] = []
    qualities: list[int] = []
    for row_index, row in enumerate(rows):
        if is_fix(row):  # validated by validate_fixes
            continue
        parsed = _parse_row(row, code_ids)
        if isinstance(parsed, str):
            errors.append(RowError(row_index, parsed, _MESSAGES[parsed]))
            continue
        keep_index.append(row_index)
        device_ids.append(parsed[0])
        stamps.append(parsed[1])
        values.append(parsed[2])
        qualities.append(parsed[3])
    index = np.array(keep_index, dtype=np.int64)
    device_id = np.array(device_ids, dtype=np.int64)
    ts_us = np.array(stamps, dtype=np.int64)
    value = np.array(values, dtype=np.float64)
    quality = np.array(qualities, dtype=np.int16)
    checks = _batch_checks(
        catalog,
        device_id=device_id,
        ts_us=ts_us,
        value=value,
        now_us=now_us,
        max_future_us=max_future_us,
        oldest_us=oldest_us,
        scope=scope,
    )
    # the first failing check names the reason
    bad = np.zeros(len(index), dtype=np.bool_)
    for code, failing in checks:
        newly = failing & ~bad
        reason = _reason(code, scope)
        for position in np.flatnonzero(newly):
            errors.append(RowError(int(index[position]), code, reason))
        bad |= newly
    good = ~bad
    errors.sort(key=lambda error: error.index)
    return Validated(
        total=len(rows),
        index=index[good],
        batch=ReadingBatch(
            device_id=device_id[good], ts_us=ts_us[good], value=value[good], quality=quality[good]
        ),
        errors=errors,
    )


def is_fix(row: object) -> bool:
    """A row that reports a unit's position rather than a device's reading."""
    return isinstance(row, dict) and "unit_code" in row


def _fix_position(row: dict[str, Any]) -> tuple[float, float] | None:
    """A fix's lon/lat when both are numbers inside Shanghai."""
    lon, lat = _number(row.get("lon")), _number(row.get("lat"))
    if isinstance(row.get("lon"), bool) or isinstance(row.get("lat"), bool):
        return None
    if lon is None or lat is None:
        return None
    if not (LON_RANGE[0] <= lon <= LON_RANGE[1] and LAT_RANGE[0] <= lat <= LAT_RANGE[1]):
        return None
    return lon, lat


def _parse_fix(
    row: dict[str, Any], *, units: UnitCatalog, scope: TokenScope, window: tuple[int, int]
) -> tuple[int, int, float, float] | str:
    """One fix's unit id, time and position, or the code of the first thing wrong with it."""
    code = row.get("unit_code")
    unit = units.units.get(code) if isinstance(code, str) else None
    if unit is None:
        return "unknown_unit"
    # a device's or a category's token says nothing about units; a district's covers its own
    if (
        scope.device_id is not None
        or scope.categories is not None
        or (scope.districts is not None and unit[1] not in scope.districts)
    ):
        return "unit_scope"
    if "ts" not in row:
        return "ts_missing"
    ts_us, ts_error = parse_timestamp(row["ts"])
    if ts_us is None:
        return ts_error or "ts_invalid"
    if ts_us > window[1]:
        return "ts_future"
    if ts_us < window[0]:
        return "ts_too_old"
    position = _fix_position(row)
    if position is None:
        return "position_invalid"
    return unit[0], ts_us, position[0], position[1]


def validate_fixes(
    rows: list[object],
    *,
    units: UnitCatalog,
    now_us: int,
    max_future_us: int,
    oldest_us: int,
    scope: TokenScope = CITY_WIDE,
) -> tuple[np.ndarray, FixBatch, list[RowError]]:
    """The position rows of a request: positions of the valid ones, the fixes, the errors."""
    keep: list[int] = []
    parsed_rows: list[tuple[int, int, float, float]] = []
    errors: list[RowError] = []
    for row_index, row in enumerate(rows):
        if not is_fix(row):
            continue
        assert isinstance(row, dict)
        parsed = _parse_fix(
            row, units=units, scope=scope, window=(oldest_us, now_us + max_future_us)
        )
        if isinstance(parsed, str):
            errors.append(RowError(row_index, parsed, _MESSAGES[parsed]))
            continue
        keep.append(row_index)
        parsed_rows.append(parsed)
    columns: list[tuple[Any, ...]] = (
        list(zip(*parsed_rows, strict=True)) if parsed_rows else [(), (), (), ()]
    )
    return (
        np.array(keep, dtype=np.int64),
        FixBatch(
            unit_id=np.array(columns[0], dtype=np.int64),
            ts_us=np.array(columns[1], dtype=np.int64),
            lon=np.array(columns[2], dtype=np.float64),
            lat=np.array(columns[3], dtype=np.float64),
        ),
        errors,
    )
