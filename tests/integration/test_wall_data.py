"""What walls read: new critical incidents since a mark, area boxes, day windows at midnight."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import sqlalchemy as sa

from data.checks import InvalidQuery
from data.incident_reads import (
    IncidentMarks,
    incident_marks,
    incident_statuses,
    new_critical_incidents,
)
from data.ingest_store import PartitionCache, store_readings
from data.kpis import area_kpis
from data.reference_reads import area_bounds
from data.writes import ReadingBatch

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _device(engine: sa.Engine, district: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT d.id FROM device d WHERE d.district_adcode = :district"
                " AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.device_id = d.id"
                "   AND i.status <> 'resolved') ORDER BY d.id LIMIT 1"
            ),
            {"district": district},
        ).scalar_one()


def _insert(conn: sa.Connection, device: int, severity: str = "critical") -> int:
    """Insert an open incident of `severity` on `device` in `conn`'s transaction; its id."""
    return int(
        conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, title_zh, title_en, opened_at, geom)"
                " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
                " 'wall_data_test', :severity, '测试', 'test', now(), d.geom"
                " FROM device d JOIN device_type t ON t.id = d.type_id WHERE d.id = :device"
                " RETURNING id"
            ),
            {"device": device, "severity": severity},
        ).scalar_one()
    )


def _open(engine: sa.Engine, *, district: str, severity: str, event: bool = True) -> int:
    device = _device(engine, district)
    with engine.begin() as conn:
        incident = _insert(conn, device, severity)
        if event:
            conn.execute(
                sa.text(
                    "INSERT INTO incident_event (incident_id, at, kind, actor, to_status)"
                    " VALUES (:id, now(), 'opened', 'test', 'open')"
                ),
                {"id": incident},
            )
    return incident


def _event(engine: sa.Engine, incident: int, kind: str, **changes: str) -> None:
    with engine.begin() as conn:
        if changes:
            sets = ", ".join(f"{column} = :{column}" for column in changes)
            conn.execute(
                sa.text(f"UPDATE incident SET {sets} WHERE id = :id"), {"id": incident, **changes}
            )
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor)"
                " VALUES (:id, now(), :kind, 'test')"
            ),
            {"id": incident, "kind": kind},
        )


def _resolve(engine: sa.Engine, incident: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE incident SET status = 'resolved', acknowledged_at = now(),"
                " resolved_at = now() WHERE id = :id"
            ),
            {"id": incident},
        )


def _told(
    engine: sa.Engine, *, after: IncidentMarks, until: set[int], district: str | None = None
) -> tuple[list[int], IncidentMarks]:
    """Ask for news from `after` until every id of `until` has been told (a transaction still
    open elsewhere in the cluster delays news, never loses it): the ids told, in order."""
    told: list[int] = []
    deadline = time.monotonic() + 15
    while True:
        frame, after = new_critical_incidents(engine, after=after, district=district)
        told += [int(i) for i in frame["id"]]
        if until <= set(told) or time.monotonic() > deadline:
            return told, after
        time.sleep(0.2)


def test_only_new_live_critical_incidents_are_news(live_engine_):
    start = incident_marks(live_engine_)
    critical = _open(live_engine_, district="310104", severity="critical")
    minor = _open(live_engine_, district="310104", severity="minor")
    silent = _open(live_engine_, district="310101", severity="critical", event=False)
    told, marks = _told(live_engine_, after=start, until={critical, silent})
    assert sorted(told) == sorted([critical, silent])  # inserted without an event too
    assert marks.settled > start.settled
    # asked again from the new marks: nothing is news twice
    again, _ = new_critical_incidents(live_engine_, after=marks)
    assert again.empty
    # a district's wall hears only of its own district
    scoped, _ = _told(live_engine_, after=start, until={silent}, district="310101")
    assert scoped == [silent]
    # escalated to critical, or reopened: news again; resolved meanwhile: not news
    _event(live_engine_, minor, "escalated", severity="critical")
    _resolve(live_engine_, critical)
    told, marks2 = _told(live_engine_, after=marks, until={minor})
    assert told == [minor]
    _event(live_engine_, critical, "reopened", status="open")
    with live_engine_.begin() as conn:
        conn.execute(
            sa.text("UPDATE incident SET resolved_at = NULL WHERE id = :id"), {"id": critical}
        )
    told, _ = _told(live_engine_, after=marks2, until={critical})
    assert told == [critical]
    statuses = incident_statuses(live_engine_, incident_ids=[critical, minor, 10**12])
    assert statuses == {critical: "open", minor: "open"}
    for incident in (critical, minor, silent):
        _resolve(live_engine_, incident)
    assert incident_statuses(live_engine_, incident_ids=[]) == {}


def test_an_incident_committed_after_a_later_one_is_still_news(live_engine_):
    """Ids are handed out before commit: the older id committing last is not skipped."""
    start = incident_marks(live_engine_)
    slow = live_engine_.connect()
    try:
        # the slow transaction takes its id first and commits last, as a long rules pass does
        slow_id = _insert(slow, _device(live_engine_, "310105"))
        quick = _open(live_engine_, district="310106", severity="critical")
        assert quick > slow_id
        early, marks = new_critical_incidents(live_engine_, after=start)
        # the quick one waits for the slow transaction: told later, never lost
        assert quick not in set(early["id"])
        slow.commit()
    finally:
        slow.close()
    told, marks = _told(live_engine_, after=marks, until={slow_id, quick})
    assert sorted(told) == sorted([slow_id, quick])
    again, _ = new_critical_incidents(live_engine_, after=marks)
    assert again.empty
    for incident in (slow_id, quick):
        _resolve(live_engine_, incident)


def test_bad_arguments_are_refused_before_sql(live_engine_):
    with pytest.raises(InvalidQuery):
        new_critical_incidents(live_engine_, after=IncidentMarks(0), district="'; drop")
    with pytest.raises(InvalidQuery):
        new_critical_incidents(live_engine_, after=IncidentMarks(0), limit=0)
    with pytest.raises(InvalidQuery):
        area_bounds(live_engine_, district="31011")


def test_area_boxes_contain_their_areas(live_engine_):
    boxes = area_bounds(live_engine_)
    assert len(boxes) == 17 and "city" in boxes
    (south, west), (north, east) = boxes["city"]
    for code, ((s, w), (n, e)) in boxes.items():
        assert south <= s < n <= north and west <= w < e <= east, code
    pudong = area_bounds(live_engine_, district="310115")
    assert pudong and all(
        boxes["310115"][0][0] - 1e-4 <= s and n <= boxes["310115"][1][0] + 1e-4
        for (s, _), (n, _) in pudong.values()
    )


def test_the_day_rolls_over_at_shanghai_midnight(live_engine_):
    """Walls show "today" figures for weeks: at midnight today's readings become yesterday's."""
    with live_engine_.connect() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
        devices = conn.execute(sa.text("SELECT id FROM device ORDER BY id LIMIT 50")).scalars()
        devices = np.asarray(list(devices), dtype=np.int64)
    midnight = datetime.combine(now.astimezone(SHANGHAI).date(), datetime.min.time(), SHANGHAI)
    # 50 readings 20 s before midnight, 30 readings 10 s after, through the ingest write path
    stamps = [
        (midnight - timedelta(seconds=20), devices),
        (midnight + timedelta(seconds=10), devices[:30]),
    ]
    with live_engine_.begin() as conn:
        for moment, ids in stamps:
            batch = ReadingBatch(
                device_id=ids,
                ts_us=np.full(len(ids), int(moment.timestamp() * 1_000_000), dtype=np.int64),
                value=np.ones(len(ids)),
                quality=np.zeros(len(ids), dtype=np.int16),
            )
            store_readings(conn, batch, partitions=PartitionCache())
    before = area_kpis(live_engine_, at=midnight - timedelta(seconds=5))
    after = area_kpis(live_engine_, at=midnight + timedelta(seconds=15))
    # the day before midnight holds the 50 readings and whatever the seed wrote that day (the
    # devices that learn a baseline get weeks of history)
    with live_engine_.connect() as conn:
        that_day = conn.execute(
            sa.text("SELECT count(*) FROM reading WHERE ts >= :start AND ts < :end"),
            {"start": midnight - timedelta(days=1), "end": midnight},
        ).scalar_one()
    assert that_day >= 50
    assert before.readings_today == that_day
    assert after.readings_yesterday == that_day
    assert after.readings_today >= 30
