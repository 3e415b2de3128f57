"""The ingest write path: COPY and idempotent insert keep rollups and latest state exact."""

from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from data import writes

pytestmark = pytest.mark.integration


def one(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).one()


def test_rollups_match_raw_readings(engine, seeded):
    raw = one(engine, "SELECT count(*) FROM reading")[0]
    assert raw == seeded.readings > 0
    assert one(engine, "SELECT sum(n_readings) FROM rollup_street_15m")[0] == raw
    assert one(engine, "SELECT sum(n_readings) FROM rollup_district_type_1h")[0] == raw
    assert one(engine, "SELECT sum(n_readings) FROM rollup_district_daily")[0] == raw
    # per street x category x bucket, recomputed from scratch
    differences = one(
        engine,
        """
        WITH truth AS (
            SELECT bucket_15m(r.ts) AS bucket, d.street_code, t.category_code,
                   count(*) AS n,
                   count(*) FILTER (WHERE reading_level(r.value, t.normal_min, t.normal_max,
                                                        t.alarm_min, t.alarm_max) = 2) AS alarms
            FROM reading r JOIN device d ON d.id = r.device_id
            JOIN device_type t ON t.id = d.type_id GROUP BY 1, 2, 3)
        SELECT count(*) FROM truth FULL JOIN rollup_street_15m u
            USING (bucket, street_code, category_code)
        WHERE truth.n IS DISTINCT FROM u.n_readings OR truth.alarms IS DISTINCT FROM u.n_alarm
        """,
    )[0]
    assert differences == 0


def test_latest_state_is_the_newest_reading(engine, seeded):
    wrong = one(
        engine,
        """
        SELECT count(*) FROM (
            SELECT DISTINCT ON (device_id) device_id, ts, value FROM reading
            ORDER BY device_id, ts DESC) newest
        FULL JOIN device_latest l USING (device_id)
        WHERE l.ts IS DISTINCT FROM newest.ts OR l.value IS DISTINCT FROM newest.value
        """,
    )[0]
    assert wrong == 0


def _batch(device_ids, moments, values):
    ts = np.array([int(m.timestamp() * 1_000_000) for m in moments], dtype=np.int64)
    return writes.ReadingBatch(
        device_id=np.array(device_ids, dtype=np.int64),
        ts_us=ts,
        value=np.array(values, dtype=float),
        quality=np.zeros(len(device_ids), dtype=np.int16),
    )


def test_idempotent_insert_counts_each_reading_once(engine, seeded):
    device_id = one(engine, "SELECT min(id) FROM device WHERE status = 'active'")[0]
    when = [datetime(2026, 11, 30, 1, 0, tzinfo=UTC), datetime(2026, 11, 30, 1, 5, tzinfo=UTC)]
    before = one(engine, "SELECT coalesce(sum(n_readings), 0) FROM rollup_district_daily")[0]
    try:
        with engine.begin() as conn:
            assert writes.insert_readings(conn, _batch([device_id] * 2, when, [1.0, 2.0])) == 2
        with engine.begin() as conn:  # resent, plus one new reading
            resent = _batch(
                [device_id] * 3, [*when, datetime(2026, 11, 30, 1, 10, tzinfo=UTC)], [1.0, 2.0, 3.0]
            )
            assert writes.insert_readings(conn, resent) == 1
        after = one(engine, "SELECT sum(n_readings) FROM rollup_district_daily")[0]
        assert after - before == 3
        latest = one(
            engine, "SELECT ts, value FROM device_latest WHERE device_id = :d", d=device_id
        )
        assert latest == (datetime(2026, 11, 30, 1, 10, tzinfo=UTC), 3.0)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM reading WHERE ts >= '2026-11-30'"))
            conn.execute(sa.text("SELECT rebuild_rollups('2026-11-29', '2026-12-02')"))
            conn.execute(
                sa.text(
                    "UPDATE device_latest l SET ts = r.ts, value = r.value, quality = r.quality"
                    " FROM (SELECT DISTINCT ON (device_id) * FROM reading WHERE device_id = :d"
                    "       ORDER BY device_id, ts DESC) r WHERE l.device_id = r.device_id"
                ),
                {"d": device_id},
            )


def test_unknown_device_rejects_the_whole_batch(engine, seeded):
    count_before = one(engine, "SELECT count(*) FROM reading")[0]
    moment = datetime(2026, 11, 24, 3, 0, 30, tzinfo=UTC)
    batch = _batch([1, 999_999_999], [moment, moment], [1.0, 1.0])
    with (
        pytest.raises(psycopg.errors.ForeignKeyViolation, match="unknown device"),
        engine.begin() as conn,
    ):
        writes.copy_readings(conn, batch)
    assert one(engine, "SELECT count(*) FROM reading")[0] == count_before


def test_partitions_follow_shanghai_days(engine, seeded):
    with engine.begin() as conn:
        created = writes.ensure_reading_partitions(
            conn,
            start=datetime(2027, 1, 1, 15, 59, tzinfo=UTC),  # 23:59 on Jan 1st in Shanghai
            end=datetime(2027, 1, 1, 16, 0, tzinfo=UTC),  # midnight Jan 2nd in Shanghai
        )
        assert created == 2
        bounds = conn.execute(
            sa.text(
                "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c"
                " WHERE c.relname = 'reading_p20270102'"
            )
        ).scalar_one()
        assert "2027-01-01 16:00:00+00" in bounds
        conn.execute(sa.text("DROP TABLE reading_p20270101, reading_p20270102"))


def test_retention_drops_old_partitions(engine, seeded):
    with engine.begin() as conn:
        writes.ensure_reading_partitions(
            conn, start=datetime(2020, 1, 1, 4, tzinfo=UTC), end=datetime(2020, 1, 1, 5, tzinfo=UTC)
        )
    dropped = writes.apply_retention(
        engine, today=datetime(2026, 11, 24).date(), reading_days=35, rollup_days=400
    )
    assert dropped == ["reading_p20200101"]
    assert one(engine, "SELECT count(*) FROM reading")[0] == seeded.readings


def test_incident_lifecycle_is_enforced(engine, seeded):
    with engine.begin() as conn:
        incident_id = conn.execute(
            sa.text("SELECT id FROM incident WHERE status = 'resolved' LIMIT 1")
        ).scalar_one()
    with (
        pytest.raises(sa.exc.DBAPIError, match="cannot go from resolved to acknowledged"),
        engine.begin() as conn,
    ):
        conn.execute(
            sa.text(
                "UPDATE incident SET status = 'acknowledged', acknowledged_at = resolved_at"
                " WHERE id = :id"
            ),
            {"id": incident_id},
        )


def _counters_match(engine):
    live = one(
        engine,
        """
        SELECT count(*) FROM (
            SELECT coalesce(street_code, '') AS street_code, category_code, severity,
                   count(*) AS n FROM incident WHERE status <> 'resolved' GROUP BY 1, 2, 3) t
        FULL JOIN (SELECT * FROM incident_live WHERE n <> 0) c
            USING (street_code, category_code, severity)
        WHERE t.n IS DISTINCT FROM c.n""",
    )[0]
    daily = one(
        engine,
        """
        WITH o AS (SELECT city_day(opened_at) AS day, district_adcode, category_code, severity,
                          count(*) AS opened FROM incident GROUP BY 1, 2, 3, 4),
             r AS (SELECT city_day(resolved_at) AS day, district_adcode, category_code, severity,
                          count(*) AS resolved,
                          sum(extract(epoch FROM resolved_at - opened_at)) AS secs
                   FROM incident WHERE status = 'resolved' GROUP BY 1, 2, 3, 4)
        SELECT count(*) FROM (SELECT * FROM incident_daily WHERE opened <> 0 OR resolved <> 0) c
        FULL JOIN (SELECT * FROM o FULL JOIN r USING (day, district_adcode, category_code,
                                                      severity)) t
            USING (day, district_adcode, category_code, severity)
        WHERE coalesce(t.opened, 0) <> c.opened OR coalesce(t.resolved, 0) <> c.resolved
           OR abs(coalesce(t.secs, 0) - c.resolve_seconds) > 1e-6
           OR c.day IS NULL""",
    )[0]
    return live == 0 and daily == 0


def test_incident_counters_follow_the_lifecycle(engine, seeded):
    assert _counters_match(engine)
    with engine.begin() as conn:
        incident_id = conn.execute(
            sa.text("SELECT id FROM incident WHERE status = 'open' ORDER BY id LIMIT 1")
        ).scalar_one()
    steps = [
        "UPDATE incident SET status = 'acknowledged', acknowledged_at = opened_at"
        " + interval '3 minutes' WHERE id = :id",
        "UPDATE incident SET status = 'resolved', resolved_at = opened_at + interval '1 hour'"
        " WHERE id = :id",
        "UPDATE incident SET status = 'open' WHERE id = :id",  # reopened
    ]
    try:
        for step in steps:
            with engine.begin() as conn:
                conn.execute(sa.text(step), {"id": incident_id})
            assert _counters_match(engine), step
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE incident SET status = 'open', acknowledged_at = NULL WHERE id = :id"
                ),
                {"id": incident_id},
            )


def test_bulk_loader_rejects_unknown_devices(engine, seeded):
    count_before = one(engine, "SELECT count(*) FROM reading")[0]
    moment = datetime(2026, 11, 24, 3, 0, 30, tzinfo=UTC)
    batch = _batch([1, 999_999_999], [moment, moment], [1.0, 1.0])
    with pytest.raises(writes.UnknownDevices, match="999999999"), engine.begin() as conn:
        writes.bulk_copy_readings(conn, batch)
    assert one(engine, "SELECT count(*) FROM reading")[0] == count_before
