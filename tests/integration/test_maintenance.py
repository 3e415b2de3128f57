"""Background maintenance: the status snapshot follows time, retention drops old partitions."""

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from data import writes
from ingest.maintenance import start_maintenance

pytestmark = pytest.mark.integration


def test_refresher_updates_the_snapshot(engine, seeded):
    with engine.connect() as conn:
        before = conn.execute(
            sa.text("SELECT updated_at FROM app_meta WHERE key = 'status_as_of'")
        ).scalar_one()
    with engine.begin() as conn:  # an old partition that retention must remove
        writes.ensure_reading_partitions(
            conn,
            start=datetime(2021, 3, 1, 4, tzinfo=UTC),
            end=datetime(2021, 3, 1, 5, tzinfo=UTC),
        )
    maintenance = start_maintenance(engine, status_interval_s=5, refit_every_s=None)
    try:
        # the snapshot commits before retention runs: wait for both, not just the first
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                updated = conn.execute(
                    sa.text("SELECT updated_at FROM app_meta WHERE key = 'status_as_of'")
                ).scalar_one()
                old = conn.execute(sa.text("SELECT to_regclass('reading_p20210301')")).scalar()
            if updated > before and old is None:
                break
            time.sleep(0.2)
        assert updated > before
        assert old is None, "retention left the 2021 partition in place"
        # "now" is long after the seeded window ended: only devices with long heartbeats, whose
        # last reading is still younger than three intervals, can count as online
        # one snapshot for both reads, so a refresh in between cannot mix two versions
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            online = conn.execute(sa.text("SELECT sum(devices_online) FROM street_status")).scalar()
            expected = conn.execute(
                sa.text(
                    "SELECT count(*) FROM device d JOIN device_type t ON t.id = d.type_id"
                    " JOIN device_latest l ON l.device_id = d.id WHERE d.status = 'active'"
                    " AND l.ts > (SELECT (value #>> '{}')::timestamptz FROM app_meta"
                    "             WHERE key = 'status_as_of')"
                    "     - greatest(3 * t.interval_s, 600) * interval '1 second'"
                )
            ).scalar()
        assert online == expected < seeded.devices * 0.9
    finally:
        maintenance.stop()
        assert not maintenance.thread.is_alive()
        with engine.begin() as conn:  # put the snapshot back at the seed's end for other tests
            conn.execute(sa.text("SELECT refresh_status(:at)"), {"at": seeded.end})
