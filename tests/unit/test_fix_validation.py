"""Units' position fixes in an ingest body, validated as pure functions: which unit, whose token,
when, where, and a reason for every row refused."""

from __future__ import annotations

import numpy as np
import pytest

from data.ingest_store import DeviceCatalog, TokenScope
from data.unit_positions import UnitCatalog
from ingest.validate import is_fix, message, validate_fixes, validate_rows

NOW_US = 1_800_000_000_000_000  # 2027-01-15T16:00:00+08:00
NOW = "2027-01-15T16:00:00+08:00"
UNITS = UnitCatalog(
    {"FC-310115-001": (11, "310115"), "FC-310101-001": (12, "310101"), "PT-C": (13, "")}
)
CITY_WIDE = TokenScope()
GOOD = {"unit_code": "FC-310115-001", "ts": NOW, "lon": 121.5, "lat": 31.2}


def _check(rows, scope: TokenScope = CITY_WIDE):
    return validate_fixes(
        rows,
        units=UNITS,
        now_us=NOW_US,
        max_future_us=300_000_000,
        oldest_us=NOW_US - 86_400_000_000,
        scope=scope,
    )


def _codes(rows, scope: TokenScope = CITY_WIDE) -> list[tuple[int, str]]:
    return [(e.index, e.code) for e in _check(rows, scope)[2]]


def test_valid_fixes_come_back_as_columns_with_their_positions():
    rows = [
        {"device_id": 5, "ts": NOW, "value": 1},  # a reading: not a fix
        GOOD,
        {**GOOD, "unit_code": "PT-C", "ts": "2027-01-15T07:59:00Z", "lon": 121, "lat": 31},
    ]
    index, fixes, errors = _check(rows)
    assert errors == []
    assert index.tolist() == [1, 2]
    assert fixes.unit_id.tolist() == [11, 13]
    assert fixes.ts_us.tolist() == [NOW_US, NOW_US - 60_000_000]
    assert fixes.lon.tolist() == [121.5, 121.0] and fixes.lat.tolist() == [31.2, 31.0]
    assert fixes.unit_id.dtype == np.int64 and len(fixes) == 2


def test_a_body_without_fixes_gives_an_empty_batch():
    index, fixes, errors = _check([{"device_id": 5, "ts": NOW, "value": 1}, "text"])
    assert (len(index), len(fixes), errors) == (0, 0, [])


def test_a_fix_is_a_row_naming_a_unit():
    assert is_fix({"unit_code": None})
    assert not is_fix({"device_code": "FC-310115-001"})
    assert not is_fix(["unit_code"])


@pytest.mark.parametrize(
    "change",
    [
        {"unit_code": "NOPE"},
        {"unit_code": None},
        {"unit_code": 11},
        {"unit_code": ["FC-310115-001"]},
    ],
)
def test_unknown_units_are_refused(change):
    assert _codes([{**GOOD, **change}]) == [(0, "unknown_unit")]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ts": None}, "ts_invalid"),
        ({"ts": "yesterday"}, "ts_invalid"),
        ({"ts": "2027-01-15T16:00:00"}, "ts_naive"),
        ({"ts": "2027-01-15T16:06:00+08:00"}, "ts_future"),
        ({"ts": "2027-01-13T16:00:00+08:00"}, "ts_too_old"),
        ({"lon": "121.5"}, "position_invalid"),
        ({"lat": True}, "position_invalid"),
        ({"lon": float("nan")}, "position_invalid"),
        ({"lon": 116.4, "lat": 39.9}, "position_invalid"),
        ({"lat": 30.5}, "position_invalid"),
        ({"lon": 122.31}, "position_invalid"),
    ],
)
def test_bad_times_and_positions_are_refused_with_their_reason(change, code):
    index, fixes, errors = _check([GOOD, {**GOOD, **change}])
    assert [(e.index, e.code, e.message) for e in errors] == [(1, code, message(code))]
    assert index.tolist() == [0] and len(fixes) == 1


def test_missing_fields_are_named():
    assert _codes([{k: v for k, v in GOOD.items() if k != "ts"}]) == [(0, "ts_missing")]
    assert _codes([{k: v for k, v in GOOD.items() if k != "lat"}]) == [(0, "position_invalid")]


def test_the_edges_of_shanghai_are_inside():
    assert _codes([{**GOOD, "lon": 120.8, "lat": 30.6}, {**GOOD, "lon": 122.3, "lat": 31.95}]) == []


def test_a_district_token_moves_only_its_districts_units():
    scope = TokenScope(districts=("310115",))
    rows = [GOOD, {**GOOD, "unit_code": "FC-310101-001"}, {**GOOD, "unit_code": "PT-C"}]
    assert _codes(rows, scope) == [(1, "unit_scope"), (2, "unit_scope")]
    assert _check(rows, scope)[2][0].message == message("unit_scope")


@pytest.mark.parametrize(
    "scope",
    [TokenScope(device_id=5), TokenScope(categories=("flood",)), TokenScope(districts=("310101",))],
)
def test_device_category_and_other_district_tokens_send_no_positions(scope):
    assert _codes([GOOD], scope) == [(0, "unit_scope")]


def test_the_scope_is_checked_before_anything_else_about_the_row():
    row = {**GOOD, "unit_code": "FC-310101-001", "ts": "garbage", "lon": "x"}
    assert _codes([row], TokenScope(districts=("310115",))) == [(0, "unit_scope")]


def test_readings_validation_leaves_fix_rows_alone():
    catalog = DeviceCatalog(
        ids=np.array([5]),
        type_id=np.array([1]),
        status=np.array([0], dtype=np.int8),
        valid_min=np.array([np.nan, 0.0]),
        valid_max=np.array([np.nan, 1.0]),
        binary=np.array([False, True]),
        district=np.array([310115], dtype=np.int32),
        category=("", "gas"),
    )
    rows = [{**GOOD, "ts": "garbage"}, {"device_id": 5, "ts": NOW, "value": 1}]
    checked = validate_rows(
        rows,
        catalog=catalog,
        code_ids={},
        now_us=NOW_US,
        max_future_us=300_000_000,
        oldest_us=NOW_US - 86_400_000_000,
    )
    assert checked.errors == []
    assert checked.index.tolist() == [1]
    assert _codes(rows) == [(0, "ts_invalid")]
