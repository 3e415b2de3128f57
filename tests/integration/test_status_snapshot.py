"""The status snapshot: refresh_status() counts what a plain recount over the devices counts,
after every kind of change, and rewrites only the rows whose counts moved."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from data import migrate

pytestmark = pytest.mark.integration

# the definition of the snapshot, written as plainly as possible: the function must agree with it
RECOUNT = """
WITH s AS (
    SELECT d.street_code, d.district_adcode, d.cell, t.category_code,
           d.status = 'maintenance' AS in_maintenance,
           (d.status = 'active' AND l.ts IS NOT NULL
            AND l.ts > :at - greatest(3 * t.interval_s, 600) * interval '1 second') AS online,
           coalesce(l.level, 0) AS level
    FROM device d
    JOIN device_type t ON t.id = d.type_id
    LEFT JOIN device_latest l ON l.device_id = d.id
    WHERE d.status <> 'retired'
)
SELECT {keys}, count(*), count(*) FILTER (WHERE online),
       count(*) FILTER (WHERE online AND level = 1),
       count(*) FILTER (WHERE online AND level = 2){extra}
FROM s {join}
GROUP BY {keys}
"""
STREET_RECOUNT = RECOUNT.format(
    keys="street_code, category_code, district_adcode",
    extra=", count(*) FILTER (WHERE in_maintenance)",
    join="",
)
CELL_RECOUNT = RECOUNT.format(
    keys="s.cell, s.category_code, g.district_adcode, g.street_code",
    extra="",
    join="JOIN grid_cell g ON g.cell = s.cell",
)


def snapshot(conn: sa.Connection) -> tuple[set, set]:
    streets = conn.execute(
        sa.text(
            "SELECT street_code, category_code, district_adcode, devices_total, devices_online,"
            " devices_warning, devices_alarm, devices_maintenance FROM street_status"
        )
    )
    cells = conn.execute(
        sa.text(
            "SELECT cell, category_code, district_adcode, street_code, devices_total,"
            " devices_online, devices_warning, devices_alarm FROM cell_status"
        )
    )
    return {tuple(row) for row in streets}, {tuple(row) for row in cells}


def recount(conn: sa.Connection, at) -> tuple[set, set]:
    streets = conn.execute(sa.text(STREET_RECOUNT), {"at": at})
    cells = conn.execute(sa.text(CELL_RECOUNT), {"at": at})
    return {tuple(row) for row in streets}, {tuple(row) for row in cells}


def refresh(conn: sa.Connection, at) -> int:
    return conn.execute(sa.text("SELECT refresh_status(:at)"), {"at": at}).scalar_one()


def test_snapshot_matches_a_recount_after_every_kind_of_change(engine, seeded):
    at = seeded.end
    with engine.connect() as conn, conn.begin() as outer:
        refresh(conn, at)
        streets, cells = snapshot(conn)
        assert (streets, cells) == recount(conn, at)
        assert len(cells) > 100 and sum(row[4] for row in cells) > 0
        # time passes: devices drop offline; some alarm, one goes into maintenance, one is
        # retired, one moves to another street and cell, one reports for the first time
        later = at + timedelta(minutes=20)
        ids = conn.execute(sa.text("SELECT id FROM device ORDER BY id LIMIT 6")).scalars().all()
        conn.execute(
            sa.text(
                "UPDATE device_latest SET level = 2, ts = :later, dirty = true"
                " WHERE device_id = :id"
            ),
            {"later": later, "id": ids[0]},
        )
        conn.execute(
            sa.text(
                "UPDATE device_latest SET level = 1, ts = :later, dirty = true"
                " WHERE device_id = :id"
            ),
            {"later": later, "id": ids[1]},
        )
        conn.execute(
            sa.text("UPDATE device SET status = 'maintenance' WHERE id = :id"), {"id": ids[2]}
        )
        conn.execute(sa.text("UPDATE device SET status = 'retired' WHERE id = :id"), {"id": ids[3]})
        _move_to_another_street(conn, ids[4])
        conn.execute(sa.text("DELETE FROM device_latest WHERE device_id = :id"), {"id": ids[5]})
        # and a whole street's devices retire: its rows must leave the snapshot
        gone_street = conn.execute(
            sa.text("SELECT street_code FROM device ORDER BY id DESC LIMIT 1")
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE device SET status = 'retired' WHERE street_code = :s"),
            {"s": gone_street},
        )
        devices = refresh(conn, later)
        assert (streets_after := snapshot(conn)) == recount(conn, later)
        assert streets_after != (streets, cells)
        assert not any(row[0] == gone_street for row in streets_after[0])
        assert (
            devices
            == conn.execute(
                sa.text("SELECT count(*) FROM device WHERE status <> 'retired'")
            ).scalar_one()
        )
        outer.rollback()


CHURN_READINGS = """
INSERT INTO reading (device_id, ts, value, quality)
SELECT d.id, :at - random() * interval '6 minutes',
       -- about a third outside the normal range, so levels move both ways
       CASE WHEN random() < 0.35 THEN coalesce(t.alarm_max, t.normal_max) + 1
            ELSE (t.normal_min + t.normal_max) / 2 END,
       0
FROM device d JOIN device_type t ON t.id = d.type_id
WHERE random() < :share
"""


def test_incremental_passes_equal_a_recount_under_churn(engine, seeded):
    """Readings through the trigger (levels up and down, silent devices coming back), time
    passing (devices lapsing offline), devices changing status, place and type, a refresh back
    in time: after every pass the counters equal a full recount, and a pass looked at the
    devices that changed rather than all of them."""
    at = seeded.end
    with engine.connect() as conn, conn.begin() as outer:
        conn.execute(sa.text("SELECT setseed(0.23)"))
        total = conn.execute(sa.text("SELECT count(*) FROM device")).scalar_one()
        refresh(conn, at)
        looked_at = []
        for step in range(1, 7):
            at = seeded.end + timedelta(minutes=7 * step)
            conn.execute(sa.text("SELECT ensure_reading_partitions(:at, :at)"), {"at": at})
            conn.execute(sa.text(CHURN_READINGS), {"at": at, "share": 0.04})
            _change_devices(conn, step)
            refresh(conn, at)
            looked_at.append(
                conn.execute(sa.text("SELECT count(*) FROM pg_temp.status_candidates")).scalar_one()
            )
            assert snapshot(conn) == recount(conn, at), f"pass {step}"
        # a backlog (every window lapsed after an hour without passes) is worked off a batch
        # a pass: each pass looks at no more than its batch, and the counters arrive at a recount
        later = at + timedelta(hours=1)
        passes = 0
        while snapshot(conn) != recount(conn, later):
            conn.execute(sa.text("SELECT refresh_status(:at, 40)"), {"at": later})
            batch = conn.execute(sa.text("SELECT count(*) FROM pg_temp.status_candidates"))
            assert batch.scalar_one() <= 2 * 40
            passes += 1
            assert passes < total
        assert passes > 3
        # back in time: counted again from every device
        earlier = seeded.end + timedelta(minutes=10)
        refresh(conn, earlier)
        assert snapshot(conn) == recount(conn, earlier)
        outer.rollback()
    assert max(looked_at) < total / 2, looked_at
    assert min(looked_at) > 0


def _change_devices(conn: sa.Connection, step: int) -> None:
    """Devices change the way operators change them: maintenance in and out, a retirement, a
    move to another street and cell, a new type."""
    ids = (
        conn.execute(
            sa.text("SELECT id FROM device ORDER BY id OFFSET :o LIMIT 4"), {"o": 10 * step}
        )
        .scalars()
        .all()
    )
    conn.execute(sa.text("UPDATE device SET status = 'maintenance' WHERE id = :id"), {"id": ids[0]})
    conn.execute(
        sa.text("UPDATE device SET status = 'active' WHERE status = 'maintenance' AND id < :id"),
        {"id": ids[0]},
    )
    conn.execute(sa.text("UPDATE device SET status = 'retired' WHERE id = :id"), {"id": ids[1]})
    _move_to_another_street(conn, ids[2])
    conn.execute(
        sa.text(
            "UPDATE device SET type_id = (SELECT t.id FROM device_type t"
            "  WHERE t.category_code <> (SELECT category_code FROM device_type"
            "   WHERE id = device.type_id) ORDER BY t.id LIMIT 1) WHERE id = :id"
        ),
        {"id": ids[3]},
    )


def _move_to_another_street(conn: sa.Connection, device_id: int) -> None:
    """Move a device to another street and its cell (those of the newest device elsewhere)."""
    conn.execute(
        sa.text(
            "UPDATE device SET (street_code, district_adcode, cell) ="
            " (SELECT street_code, district_adcode, cell FROM device"
            "  WHERE street_code <> (SELECT street_code FROM device WHERE id = :id)"
            "  AND cell IS NOT NULL ORDER BY id DESC LIMIT 1) WHERE id = :id"
        ),
        {"id": device_id},
    )


def test_unchanged_counts_are_not_rewritten(engine, seeded):
    with engine.connect() as conn, conn.begin() as outer:
        refresh(conn, seeded.end)
        # a row written again gets a new place in the table (ctid), even in one transaction
        first = dict(
            conn.execute(sa.text("SELECT cell || category_code, ctid::text FROM cell_status")).all()
        )
        one = conn.execute(sa.text("SELECT id FROM device ORDER BY id LIMIT 1")).scalar_one()
        conn.execute(
            sa.text("UPDATE device_latest SET level = 2, dirty = true WHERE device_id = :id"),
            {"id": one},
        )
        refresh(conn, seeded.end)
        second = dict(
            conn.execute(sa.text("SELECT cell || category_code, ctid::text FROM cell_status")).all()
        )
        rewritten = {key for key, place in second.items() if first.get(key) != place}
        outer.rollback()
    # one device changed level: at most its cell's row is written again, not the 100s of others
    assert len(first) > 100
    assert len(rewritten) <= 1


def test_status_revision_migrates_down_and_up(scratch_db):
    migrate.upgrade(scratch_db)
    migrate.downgrade(scratch_db, revision="0004")
    assert migrate.current_revision(scratch_db) == "0004"
    with scratch_db.connect() as conn:
        source = conn.execute(
            sa.text("SELECT prosrc FROM pg_proc WHERE proname = 'refresh_status'")
        )
        assert "status_now" in source.scalar_one()
    migrate.upgrade(scratch_db)
    with scratch_db.connect() as conn:
        source = conn.execute(
            sa.text("SELECT prosrc FROM pg_proc WHERE proname = 'refresh_status'")
        )
        # the head's refresh counts what changed (revision 0015); the full recount stays in
        # count_status, which the rebuilt frames of a seeded day use
        assert "status_candidates" in source.scalar_one()
        counting = conn.execute(
            sa.text("SELECT prosrc FROM pg_proc WHERE proname = 'count_status'")
        )
        assert "GROUPING SETS" in counting.scalar_one()
