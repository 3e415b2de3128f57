"""The binary COPY payload the write path builds with numpy decodes back to the same rows."""

import struct

import numpy as np
import pytest

from data.writes import ReadingBatch, readings_copy_payload

PG_EPOCH_OFFSET_US = 946_684_800_000_000


def _decode(payload: bytes) -> list[tuple[int, int, float, int]]:
    assert payload.startswith(b"PGCOPY\n\xff\r\n\x00")
    body = payload[19:-2]
    assert payload[-2:] == b"\xff\xff"
    rows, offset = [], 0
    while offset < len(body):
        (fields,) = struct.unpack_from(">h", body, offset)
        assert fields == 4
        offset += 2
        values = []
        for fmt in (">q", ">q", ">d", ">h"):
            (length,) = struct.unpack_from(">i", body, offset)
            offset += 4
            values.append(struct.unpack_from(fmt, body, offset)[0])
            offset += length
        rows.append(tuple(values))
    return rows


def test_payload_round_trip():
    batch = ReadingBatch(
        device_id=np.array([1, 2, 510_000], dtype=np.int64),
        ts_us=np.array([1_764_000_000_000_000, 1_764_000_000_123_456, 946_684_800_000_000]),
        value=np.array([12.5, -3.25, 0.0]),
        quality=np.array([0, 1, 2], dtype=np.int16),
    )
    rows = _decode(readings_copy_payload(batch))
    assert [r[0] for r in rows] == [1, 2, 510_000]
    assert [r[1] + PG_EPOCH_OFFSET_US for r in rows] == batch.ts_us.tolist()
    assert [r[2] for r in rows] == [12.5, -3.25, 0.0]
    assert [r[3] for r in rows] == [0, 1, 2]


def test_batch_rejects_ragged_columns():
    with pytest.raises(ValueError, match="same length"):
        ReadingBatch(
            device_id=np.array([1, 2]),
            ts_us=np.array([1]),
            value=np.array([1.0, 2.0]),
            quality=np.array([0, 0]),
        )


def test_batch_rejects_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        ReadingBatch(
            device_id=np.array([1]),
            ts_us=np.array([1]),
            value=np.array([np.nan]),
            quality=np.array([0]),
        )
