"""Ingest validation as pure functions: body decoding, timestamps, ranges, per-row reasons."""

from __future__ import annotations

import numpy as np
import pytest

from data.ingest_store import DeviceCatalog, PartitionCache, TokenScope, plausible_range
from ingest.validate import BadRequest, decode_body, parse_timestamp, validate_rows

NOW_US = 1_800_000_000_000_000


def _catalog() -> DeviceCatalog:
    # type 1 analog 0..50 (alarm 80, water), type 2 binary (gas); devices 10 (t1, 310115),
    # 20 (t2, 310115), 30 (t1, retired, 310101)
    low, high = plausible_range(
        value_kind="analog", normal_min=0, normal_max=50, alarm_min=None, alarm_max=80
    )
    return DeviceCatalog(
        ids=np.array([10, 20, 30]),
        type_id=np.array([1, 2, 1]),
        status=np.array([0, 0, 2], dtype=np.int8),
        valid_min=np.array([np.nan, low, 0.0]),
        valid_max=np.array([np.nan, high, 1.0]),
        binary=np.array([False, False, True]),
        district=np.array([310115, 310115, 310101], dtype=np.int32),
        category=("", "water", "gas"),
    )


def _check(rows, **kwargs):
    options = {
        "catalog": _catalog(),
        "code_ids": {"SH-A": 10},
        "now_us": NOW_US,
        "max_future_us": 300_000_000,
        "oldest_us": NOW_US - 86_400_000_000,
        **kwargs,
    }
    return validate_rows(rows, **options)


def test_plausible_range_is_wide_but_not_absurd():
    assert plausible_range(
        value_kind="analog", normal_min=0, normal_max=50, alarm_min=None, alarm_max=80
    ) == (0.0, 480.0)
    low, high = plausible_range(
        value_kind="analog", normal_min=-5, normal_max=38, alarm_min=-10, alarm_max=40
    )
    assert low < -10 and high > 40 and low > -1000 and high < 1000
    assert plausible_range(
        value_kind="binary", normal_min=0, normal_max=0, alarm_min=None, alarm_max=0.5
    ) == (0.0, 1.0)


def test_timestamps_need_a_zone():
    assert parse_timestamp("2027-01-15T16:00:00+08:00") == (NOW_US, None)
    us, error = parse_timestamp("2026-11-25T00:00:00Z")
    assert error is None and us == 1_795_564_800_000_000
    assert parse_timestamp("2026-11-25T00:00:00")[1] == "ts_naive"
    assert parse_timestamp("tomorrow")[1] == "ts_invalid"
    assert parse_timestamp(1_795_564_800)[1] == "ts_invalid"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "empty_body"),
        (b"[", "invalid_json"),
        (b'{"rows": []}', "no_readings"),
        (b'{"readings": 5}', "not_a_list"),
        (b"[]", "no_readings"),
        (b"[1, 2, 3]", "too_many_rows"),
    ],
)
def test_unusable_bodies_are_refused_whole(body, code):
    with pytest.raises(BadRequest) as caught:
        decode_body(body, max_rows=2)
    assert caught.value.code == code


def test_every_row_gets_a_verdict_in_order():
    ts = "2027-01-15T08:00:00Z"
    rows = [
        {"device_id": 10, "ts": "2027-01-15T07:59:00Z", "value": 20},
        {"device_code": "SH-A", "ts": "2027-01-15T07:59:01Z", "value": 20, "quality": "bad"},
        {"device_id": 99, "ts": ts, "value": 1},
        {"device_id": 30, "ts": ts, "value": 1},
        {"device_id": 20, "ts": ts, "value": 0.5},
        {"device_id": 10, "ts": ts, "value": -1},
        {"device_id": 10, "ts": ts, "value": 481},
        {"device_code": "SH-NOPE", "ts": ts, "value": 1},
    ]
    checked = _check(rows)
    assert checked.index.tolist() == [0, 1]
    assert checked.batch.device_id.tolist() == [10, 10]
    assert checked.batch.quality.tolist() == [0, 2]
    codes = {error.index: error.code for error in checked.errors}
    assert codes.get(2) == "unknown_device"
    assert codes.get(3) == "device_retired"
    assert codes.get(4) == "value_not_binary"
    assert codes.get(5) == "value_out_of_range"
    assert codes.get(6) == "value_out_of_range"
    assert codes.get(7) == "unknown_device"
    assert checked.total == len(rows)


def test_token_scope_and_time_window():
    rows = [
        {"device_id": 10, "ts": "2027-01-15T08:00:00Z", "value": 1},
        {"device_id": 20, "ts": "2027-01-15T08:00:00Z", "value": 1},
    ]
    now = NOW_US
    checked = _check(rows, now_us=now, scope=TokenScope(device_id=10), oldest_us=0)
    assert [e.code for e in checked.errors] == ["token_scope"]
    assert checked.errors[0].message == "this token may only send readings for device 10"
    assert checked.index.tolist() == [0]
    future = _check(rows, now_us=0, oldest_us=-(10**18))
    assert {e.code for e in future.errors} == {"ts_future"}
    old = _check(rows, now_us=now * 2, max_future_us=0, oldest_us=now * 2 - 1)
    assert {e.code for e in old.errors} == {"ts_too_old"}


def test_a_token_sends_only_for_its_categories_in_its_districts():
    rows = [
        {"device_id": 10, "ts": "2027-01-15T08:00:00Z", "value": 1},  # water, 310115
        {"device_id": 20, "ts": "2027-01-15T08:00:00Z", "value": 1},  # gas, 310115
        {"device_id": 30, "ts": "2027-01-15T08:00:00Z", "value": 1},  # water, 310101, retired
        {"device_id": 99, "ts": "2027-01-15T08:00:00Z", "value": 1},  # unknown
    ]
    window = {"now_us": NOW_US, "oldest_us": 0}
    water_pudong = TokenScope(categories=("water",), districts=("310115",))
    checked = _check(rows, scope=water_pudong, **window)
    assert checked.index.tolist() == [0]
    assert [(e.index, e.code) for e in checked.errors] == [
        (1, "token_scope"),
        # out of scope comes before retired: a token learns nothing about others' devices
        (2, "token_scope"),
        (3, "unknown_device"),
    ]
    assert checked.errors[0].message == (
        "this token may only send readings for water devices in 310115"
    )
    pudong = _check(rows, scope=TokenScope(districts=("310115",)), **window)
    assert pudong.index.tolist() == [0, 1]
    assert "any device in 310115" in pudong.errors[0].message
    gas = _check(rows, scope=TokenScope(categories=("gas",)), **window)
    assert gas.index.tolist() == [1]
    city = _check(rows, **window)
    assert [e.code for e in city.errors] == ["device_retired", "unknown_device"]


def test_partition_cache_asks_once_per_day():
    class Conn:
        calls = 0

        def execute(self, *_args, **_kwargs):
            Conn.calls += 1
            return self

        def scalar_one(self) -> int:
            return 0

    from datetime import UTC, datetime

    cache = PartitionCache()
    moment = datetime(2026, 11, 25, 3, tzinfo=UTC)
    cache.ensure(Conn(), start=moment, end=moment)
    cache.ensure(Conn(), start=moment, end=moment)
    assert Conn.calls == 1
    # 16:30 UTC is past midnight in Shanghai: a new day, a new partition
    cache.ensure(Conn(), start=moment, end=datetime(2026, 11, 25, 16, 30, tzinfo=UTC))
    assert Conn.calls == 2
