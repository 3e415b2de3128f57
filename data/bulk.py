"""Fixed-width columns read by binary COPY: no Python object per row, so reading the whole
device table of a 10M city costs its arrays, not gigabytes of rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

# the SQL types a column may have, as big-endian numpy types (a binary COPY's byte order)
_TYPES = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float4": ">f4", "float8": ">f8"}
_HEADER_BYTES = 19  # signature, flags, header extension length (always 0 from PostgreSQL)
_TRAILER_BYTES = 2  # a field count of −1
FLUSH_BYTES = 1 << 25  # convert the rows received so far every 32 MB


# a device's status as the number the loaders read it as (a CASE in their SQL)
STATUS_CODES = {"active": 0, "maintenance": 1, "retired": 2}


def status_code_sql(column: str = "status") -> str:
    """SQL turning `column` into its STATUS_CODES number (an unknown status counts as retired)."""
    cases = " ".join(f"WHEN '{name}' THEN {code}" for name, code in STATUS_CODES.items())
    return f"(CASE {column} {cases} ELSE {STATUS_CODES['retired']} END)::int2"


def _field(name: str, kind: str, k: int) -> tuple[list[tuple[Any, ...]], int]:
    """The numpy layout of column `k` (its length word first) and the length it must carry: a
    scalar of _TYPES, or `float4[n]`, a one-dimensional array of exactly n non-NULL reals."""
    if kind in _TYPES:
        return [(f"_length{k}", ">i4"), (name, _TYPES[kind])], np.dtype(_TYPES[kind]).itemsize
    if not (kind.startswith("float4[") and kind.endswith("]") and kind[7:-1].isdigit()):
        raise ValueError(f"column {name}: no fixed-width reading of SQL type {kind!r}")
    n = int(kind[7:-1])
    # ndim, has-NULLs flag, element type, then the one dimension's size and lower bound
    element = np.dtype([("length", ">i4"), ("value", ">f4")])
    layout = [(f"_length{k}", ">i4"), (f"_array{k}", ">i4", (5,)), (name, element, (n,))]
    return layout, 20 + element.itemsize * n


def copy_columns(
    conn: sa.Connection,
    *,
    sql: str,
    columns: Sequence[tuple[str, str]],
    params: tuple[object, ...] = (),
    flush_bytes: int = FLUSH_BYTES,
) -> dict[str, np.ndarray]:
    """The rows of `sql` (psycopg placeholders) as one native array per column; `columns` names
    each result column and its SQL type (see _field). No column may be NULL."""
    layout: list[tuple[Any, ...]] = [("fields", ">i2")]
    lengths = []
    for k, (name, kind) in enumerate(columns):
        field, length = _field(name, kind, k)
        layout += field
        lengths.append(length)
    row = np.dtype(layout)
    parts: list[dict[str, np.ndarray]] = []
    pending = bytearray()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as copy:
        for block in copy:
            pending += block
            if len(pending) >= flush_bytes:
                parts.append(
                    _take(pending, row=row, columns=columns, lengths=lengths, skip=_skip(parts))
                )
    if pending:
        del pending[len(pending) - _TRAILER_BYTES :]
        parts.append(_take(pending, row=row, columns=columns, lengths=lengths, skip=_skip(parts)))
        if pending:
            raise ValueError(f"{len(pending)} bytes after the last whole row of a binary COPY")
    if not parts:
        empty = np.zeros(0, dtype=row)
        return {name: _native(empty, name, kind) for name, kind in columns}
    return {name: np.concatenate([part[name] for part in parts]) for name, _ in columns}


def _native(rows: np.ndarray, name: str, kind: str) -> np.ndarray:
    """Column `name` of `rows` in native byte order (an array column: n values per row)."""
    if kind in _TYPES:
        return rows[name].astype(_TYPES[kind][1:])
    return rows[name]["value"].astype(np.float32)


def _skip(parts: list[dict[str, np.ndarray]]) -> int:
    """Bytes before the first row: the header, in front of the first part only."""
    return 0 if parts else _HEADER_BYTES


def _bad_arrays(rows: np.ndarray, name: str, k: int) -> bool:
    """Whether any array of column `name` (k) is not one-dimensional, of its length, NULL-free
    (a right length in bytes can still hide another shape)."""
    shape = rows[f"_array{k}"]
    n = rows.dtype[name].shape[0]
    return bool(
        (shape[:, 0] != 1).any()
        or (shape[:, 1] != 0).any()
        or (shape[:, 3] != n).any()
        or (rows[name]["length"] != 4).any()
    )


def _take(
    pending: bytearray,
    *,
    row: np.dtype,
    columns: Sequence[tuple[str, str]],
    lengths: Sequence[int],
    skip: int,
) -> dict[str, np.ndarray]:
    """The whole rows at the front of `pending` (after `skip` bytes) as native arrays, removed
    from it."""
    start = skip
    count = (len(pending) - start) // row.itemsize
    rows = np.frombuffer(pending, dtype=row, count=count, offset=start)
    if count and (rows["fields"] != len(columns)).any():
        raise ValueError("a binary COPY row has an unexpected number of fields")
    for k, (name, kind) in enumerate(columns):
        wrong = count and (rows[f"_length{k}"] != lengths[k]).any()
        if not wrong and count and kind not in _TYPES:
            wrong = _bad_arrays(rows, name, k)
        if wrong:
            raise ValueError(f"column {name} has a NULL or a value of another size")
    out = {name: _native(rows, name, kind) for name, kind in columns}
    del rows  # the view must go before the buffer shrinks
    del pending[: start + count * row.itemsize]
    return out
