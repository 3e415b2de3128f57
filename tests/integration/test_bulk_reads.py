"""Fixed-width columns by binary COPY (data/bulk.py), against what the same query returns row by
row, and the loaders built on it against their tables."""

import numpy as np
import pytest
import sqlalchemy as sa

from data.bulk import copy_columns
from data.ingest_store import STATUS_CODES, load_device_catalog
from data.live_city import load_live_devices

pytestmark = pytest.mark.integration

SERIES = (
    "SELECT g::int8, (mod(g, 300) - 150)::int2, (g * 7)::int4, g / 3.0::float8, (g / 7.0)::float4"
    " FROM generate_series(1, %s) g ORDER BY g"
)
COLUMNS = (("a", "int8"), ("b", "int2"), ("c", "int4"), ("d", "float8"), ("e", "float4"))


@pytest.mark.parametrize("flush_bytes", [1, 4096, 1 << 25])
def test_columns_match_the_rows_whatever_the_chunking(engine, flush_bytes):
    """Rows cut across the blocks psycopg hands over and across flushes come out whole."""
    with engine.connect() as conn:
        got = copy_columns(
            conn, sql=SERIES, params=(20_011,), columns=COLUMNS, flush_bytes=flush_bytes
        )
        rows = conn.execute(sa.text(SERIES.replace("%s", "20011"))).all()
    assert [got[name].dtype.str for name, _ in COLUMNS] == ["<i8", "<i2", "<i4", "<f8", "<f4"]
    for k, (name, _) in enumerate(COLUMNS):
        expected = np.array([row[k] for row in rows], dtype=got[name].dtype)
        assert np.array_equal(got[name], expected), name


def test_an_empty_result_a_null_or_a_wrong_width_is_refused_or_empty(engine):
    with engine.connect() as conn:
        empty = copy_columns(conn, sql=SERIES, params=(0,), columns=COLUMNS)
        assert {name: (len(a), a.dtype.str) for name, a in empty.items()} == {
            "a": (0, "<i8"),
            "b": (0, "<i2"),
            "c": (0, "<i4"),
            "d": (0, "<f8"),
            "e": (0, "<f4"),
        }
        with pytest.raises(ValueError, match="NULL"):
            copy_columns(
                conn,
                sql="SELECT g::int8, NULLIF(g, 2)::int4 FROM generate_series(1, 3) g",
                columns=(("a", "int8"), ("b", "int4")),
            )
        with pytest.raises(ValueError, match=r"another size|whole row|number of fields"):
            copy_columns(
                conn,
                sql="SELECT g::int8 FROM generate_series(1, 3) g",
                columns=(("a", "int4"),),
            )


ARRAYS = (
    "SELECT g::int8, ARRAY(SELECT (g * 100 + k) / 8.0 FROM generate_series(1, 24) k)::float4[],"
    " ARRAY(SELECT -k::float4 FROM generate_series(1, 3) k)"
    " FROM generate_series(1, %s) g ORDER BY g"
)


@pytest.mark.parametrize("flush_bytes", [1, 1 << 25])
def test_fixed_length_arrays_match_the_rows(engine, flush_bytes):
    """A profile of 24 reals comes out as one row of a (n, 24) array, as the rows hold it."""
    columns = (("g", "int8"), ("profile", "float4[24]"), ("small", "float4[3]"))
    with engine.connect() as conn:
        got = copy_columns(
            conn, sql=ARRAYS, params=(5_003,), columns=columns, flush_bytes=flush_bytes
        )
        rows = conn.execute(sa.text(ARRAYS.replace("%s", "5003"))).all()
        empty = copy_columns(conn, sql=ARRAYS, params=(0,), columns=columns)
    assert got["profile"].shape == (5_003, 24) and got["profile"].dtype.str == "<f4"
    assert np.array_equal(got["profile"], np.array([r[1] for r in rows], np.float32))
    assert np.array_equal(got["small"], np.array([r[2] for r in rows], np.float32))
    assert got["g"].tolist() == [r[0] for r in rows]
    assert empty["profile"].shape == (0, 24)


@pytest.mark.parametrize(
    "array",
    [
        "ARRAY[1, NULL, 3]::float4[]",  # a NULL element
        "ARRAY[1, 2]::float4[]",  # too short
        "ARRAY[1, 2, 3, 4]::float4[]",  # too long
        "ARRAY[[1, 2, 3]]::float4[]",  # two dimensions
        "NULL::float4[]",
    ],
)
def test_an_array_of_another_shape_is_refused(engine, array):
    refused = r"another size|whole row|number of fields"
    with engine.connect() as conn, pytest.raises(ValueError, match=refused):
        copy_columns(
            conn,
            sql=f"SELECT 1::int8, {array} UNION ALL SELECT 2::int8, ARRAY[4, 5, 6]::float4[]",
            columns=(("g", "int8"), ("a", "float4[3]")),
        )
    with pytest.raises(ValueError, match="fixed-width"), engine.connect() as conn:
        copy_columns(conn, sql="SELECT ARRAY[1]::text[]", columns=(("a", "text[]"),))


def test_the_device_loaders_read_every_device_as_the_table_has_it(engine, seeded):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, type_id, district_adcode, street_code, status FROM device ORDER BY id"
            )
        ).all()
    live = load_live_devices(engine)
    catalog = load_device_catalog(engine)
    assert len(rows) > 100
    assert live.device_id.tolist() == catalog.ids.tolist() == [r.id for r in rows]
    assert live.type_id.tolist() == catalog.type_id.tolist() == [r.type_id for r in rows]
    assert live.district_adcode.tolist() == [r.district_adcode for r in rows]
    assert catalog.district.tolist() == [int(r.district_adcode) for r in rows]
    assert live.street_code.tolist() == [r.street_code for r in rows]
    assert live.status.tolist() == [r.status for r in rows]
    assert catalog.status.tolist() == [STATUS_CODES[r.status] for r in rows]
