"""What walls read: new critical incidents since a mark, area boxes, day windows at midnight."""

from __future__ import annotations

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


def _open(engine: sa.Engine, *, district: str, severity: str, event: bool = True) -> int:
    device = _device(engine, district)
    with engine.begin() as conn:
        incident = conn.execute(
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
        if event:
            conn.execute(
                sa.text(
                    "INSERT INTO incident_event (incident_id, at, kind, actor, to_status)"
                    " VALUES (:id, now(), 'opened', 'test', 'open')"
                ),
                {"id": incident},
            )
    return int(incident)


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


def test_only_new_live_critical_incidents_are_news(live_engine_):
    start = incident_marks(live_engine_)
    critical = _open(live_engine_, district="310104", severity="critical")
    minor = _open(live_engine_, district="310104", severity="minor")
    silent = _open(live_engine_, district="310101", severity="critical", event=False)
    frame, marks = new_critical_incidents(live_engine_, after=start)
    assert sorted(frame["id"]) == sorted([critical, silent])  # inserted without an event too
    assert marks.incident >= max(critical, minor, silent) and marks.event > start.event
    # asked again from the new marks: nothing is news twice
    again, same = new_critical_incidents(live_engine_, after=marks)
    assert again.empty and same == marks
    # a district's wall hears only of its own district
    scoped, _ = new_critical_incidents(live_engine_, after=start, district="310101")
    assert list(scoped["id"]) == [silent]
    # escalated to critical, or reopened: news again; resolved meanwhile: not news
    _event(live_engine_, minor, "escalated", severity="critical")
    _resolve(live_engine_, critical)
    frame, marks2 = new_critical_incidents(live_engine_, after=marks)
    assert list(frame["id"]) == [minor]
    assert set(frame.columns) >= {"district_adcode", "street_code", "lon", "lat", "title_zh"}
    _event(live_engine_, critical, "reopened", status="open")
    with live_engine_.begin() as conn:
        conn.execute(
            sa.text("UPDATE incident SET resolved_at = NULL WHERE id = :id"), {"id": critical}
        )
    frame, _ = new_critical_incidents(live_engine_, after=marks2)
    assert list(frame["id"]) == [critical]
    statuses = incident_statuses(live_engine_, incident_ids=[critical, minor, 10**12])
    assert statuses == {critical: "open", minor: "open"}
    for incident in (critical, minor, silent):
        _resolve(live_engine_, incident)
    assert incident_statuses(live_engine_, incident_ids=[]) == {}


def test_bad_arguments_are_refused_before_sql(live_engine_):
    with pytest.raises(InvalidQuery):
        new_critical_incidents(live_engine_, after=IncidentMarks(0, 0), district="'; drop")
    with pytest.raises(InvalidQuery):
        new_critical_incidents(live_engine_, after=IncidentMarks(0, 0), limit=0)
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
