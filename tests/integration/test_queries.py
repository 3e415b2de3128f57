"""The query layer against the seeded city; expected figures are recomputed from base tables."""

from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from data.areas import cell_metrics, district_metrics, street_metrics
from data.checks import DEVICE_STATES, SEVERITIES, InvalidQuery
from data.devices import area_devices, area_series, device_detail, device_series, type_series
from data.incident_reads import (
    incident_events,
    incident_handling_timeline,
    incident_list,
    incident_timeline,
    live_incident_points,
)
from data.kpis import city_kpis
from data.reference_reads import category_codes
from tests.conftest import SEED_END

pytestmark = pytest.mark.integration
PUDONG = "310115"


def frame(engine, sql, **params):
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def device_states(engine):
    """Every device's state computed in pandas from device, type and latest tables."""
    df = frame(
        engine,
        "SELECT d.id, d.district_adcode, d.street_code, d.status, t.category_code,"
        " t.interval_s, l.ts, l.level FROM device d JOIN device_type t ON t.id = d.type_id"
        " LEFT JOIN device_latest l ON l.device_id = d.id",
    )
    grace = pd.to_timedelta(df["interval_s"].clip(lower=200) * 3, unit="s")
    online = (df["status"] == "active") & df["ts"].notna() & (df["ts"] > SEED_END - grace)
    df["online"] = online
    df["state"] = "normal"
    df.loc[online & (df["level"] == 1), "state"] = "warning"
    df.loc[online & (df["level"] == 2), "state"] = "alarm"
    df.loc[~online, "state"] = "offline"
    df.loc[df["status"] == "maintenance", "state"] = "maintenance"
    return df


def test_city_kpis_match_base_tables(engine, seeded):
    kpis = city_kpis(engine, at=SEED_END)
    states = device_states(engine)
    assert kpis.devices_total == len(states) == seeded.devices
    assert kpis.devices_online == int(states["online"].sum())
    assert 0.9 < kpis.online_rate < 1.0
    assert kpis.devices_alarm == int((states["state"] == "alarm").sum())
    today_start = pd.Timestamp(SEED_END).tz_convert("Asia/Shanghai").normalize()
    readings = frame(engine, "SELECT ts FROM reading")["ts"]
    assert kpis.readings_today == int((readings >= today_start).sum())
    # (households and near-limit devices have weeks of readings before yesterday)
    yesterday = (readings >= today_start - pd.Timedelta(days=1)) & (readings < today_start)
    assert kpis.readings_yesterday == int(yesterday.sum())
    incidents = frame(engine, "SELECT severity, status, opened_at, resolved_at FROM incident")
    live = incidents[incidents["status"] != "resolved"]
    assert kpis.open_by_severity == {
        s: int((live["severity"] == s).sum()) for s in ("critical", "major", "minor")
    }
    assert kpis.open_total > 0
    resolved_today = incidents[incidents["resolved_at"] >= today_start]
    assert kpis.resolved_today == len(resolved_today)
    if len(resolved_today):
        expected = (resolved_today["resolved_at"] - resolved_today["opened_at"]).mean()
        assert kpis.mean_minutes_to_resolve == pytest.approx(expected.total_seconds() / 60)
    assert kpis.status_as_of == SEED_END


def test_category_filter_rescopes_kpis(engine, seeded):
    total = city_kpis(engine, at=SEED_END)
    per_category = [city_kpis(engine, category=c, at=SEED_END) for c in category_codes(engine)]
    assert sum(k.devices_total for k in per_category) == total.devices_total
    assert sum(k.readings_today for k in per_category) == total.readings_today
    assert sum(k.open_total for k in per_category) == total.open_total
    flood = city_kpis(engine, category="flood", at=SEED_END)
    assert 0 < flood.devices_total < total.devices_total


def test_district_metrics_cover_the_city(engine, seeded):
    metrics = district_metrics(engine, at=SEED_END)
    assert len(metrics) == 16
    states = device_states(engine)
    by_district = states.groupby("district_adcode").size()
    for m in metrics:
        assert m.devices_total == by_district.get(m.code, 0), m.code
    assert max(metrics, key=lambda m: m.devices_total).code == PUDONG
    live = frame(engine, "SELECT district_adcode FROM incident WHERE status <> 'resolved'")
    assert sum(m.open_incidents for m in metrics) == len(live)
    hour = frame(
        engine,
        "SELECT count(*) AS n FROM reading WHERE ts >= bucket_15m(:s) AND ts <= :e",
        s=SEED_END - timedelta(hours=1),
        e=SEED_END,
    )["n"][0]
    assert hour > 0
    assert sum(m.readings_last_hour for m in metrics) == hour
    chongming = next(m for m in metrics if m.code == "310151")
    huangpu = next(m for m in metrics if m.code == "310101")
    assert (
        huangpu.devices_total / huangpu.area_km2 > 5 * chongming.devices_total / chongming.area_km2
    )


def test_street_metrics_of_pudong(engine, seeded):
    streets = street_metrics(engine, district=PUDONG, at=SEED_END)
    expected = frame(engine, "SELECT code FROM street WHERE district_adcode = :d", d=PUDONG)
    assert sorted(s.code for s in streets) == sorted(expected["code"])
    assert all(s.approximate for s in streets)
    district = next(m for m in district_metrics(engine, at=SEED_END) if m.code == PUDONG)
    assert sum(s.devices_total for s in streets) == district.devices_total
    assert sum(s.open_incidents for s in streets) == district.open_incidents


def test_cell_metrics_sum_to_district(engine, seeded):
    cells = cell_metrics(engine, district=PUDONG)
    in_grid = frame(
        engine,
        "SELECT count(*) AS n FROM device d JOIN grid_cell g"
        " ON g.cell = d.cell WHERE g.district_adcode = :d",
        d=PUDONG,
    )["n"][0]
    assert cells["devices_total"].sum() == in_grid > 0
    assert cells["cell"].is_unique


def test_area_devices_states(engine, seeded):
    devices = area_devices(engine, district=PUDONG, at=SEED_END)
    states = device_states(engine)
    pudong = states[states["district_adcode"] == PUDONG].set_index("id")
    assert len(devices) == len(pudong)
    merged = devices.set_index("id").join(pudong["state"], rsuffix="_expected")
    assert (merged["state"] == merged["state_expected"]).all()
    assert set(devices["state"]) <= set(DEVICE_STATES)
    assert devices["lon"].between(121.0, 122.2).all()
    assert devices["lat"].between(30.6, 31.9).all()


def test_device_detail_and_series(engine, seeded):
    device_id = int(
        frame(
            engine,
            "SELECT device_id FROM reading GROUP BY device_id ORDER BY count(*) DESC LIMIT 1",
        )["device_id"][0]
    )
    detail = device_detail(engine, device_id=device_id, at=SEED_END)
    assert detail is not None and detail.id == device_id
    assert detail.normal_min <= detail.normal_max
    start, end = SEED_END - timedelta(days=1), SEED_END + timedelta(minutes=1)
    # (the busiest device may be one with weeks of history: the series shows the last day)
    raw = frame(
        engine,
        "SELECT ts, value FROM reading WHERE device_id = :d AND ts >= :s AND ts < :e ORDER BY ts",
        d=device_id,
        s=start,
        e=end,
    )
    series = device_series(engine, device_id=device_id, start=start, end=end)
    assert series["value"].tolist() == raw["value"].tolist()
    hourly = device_series(engine, device_id=device_id, start=start, end=end, bucket_seconds=3600)
    assert hourly["value"].mean() == pytest.approx(
        raw.set_index("ts")["value"].groupby(lambda t: t.floor("h")).mean().mean(), rel=1e-6
    )
    assert device_detail(engine, device_id=10**12) is None


def test_area_and_type_series_from_rollups(engine, seeded):
    start, end = SEED_END - timedelta(hours=6), SEED_END + timedelta(minutes=15)
    series = area_series(engine, start=start, end=end, district=PUDONG)
    truth = frame(
        engine,
        "SELECT count(*) AS n FROM reading r JOIN device d ON d.id = r.device_id"
        " WHERE d.district_adcode = :d AND r.ts >= bucket_15m(:s) AND r.ts < :e",
        d=PUDONG,
        s=start,
        e=end,
    )["n"][0]
    assert series["readings"].sum() == truth
    assert series["bucket"].is_monotonic_increasing
    type_id = int(
        frame(
            engine,
            "SELECT type_id FROM device WHERE district_adcode = :d"
            " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            d=PUDONG,
        )["type_id"][0]
    )
    hourly = type_series(engine, type_id=type_id, start=start, end=end, district=PUDONG)
    raw = frame(
        engine,
        "SELECT avg(value) AS mean, max(value) AS mx FROM reading r"
        " JOIN device d ON d.id = r.device_id WHERE d.type_id = :t AND"
        " d.district_adcode = :d AND r.ts >= bucket_1h(:s) AND r.ts < :e",
        t=type_id,
        d=PUDONG,
        s=start,
        e=end,
    )
    weighted = (hourly["mean"] * hourly["readings"]).sum() / hourly["readings"].sum()
    assert weighted == pytest.approx(float(raw["mean"][0]), rel=1e-9)
    assert hourly["max"].max() == pytest.approx(float(raw["mx"][0]))


def test_incident_timeline_and_list(engine, seeded):
    start, end = SEED_END - timedelta(hours=24), SEED_END + timedelta(seconds=1)
    timeline = incident_timeline(engine, start=start, end=end)
    total = frame(
        engine,
        "SELECT count(*) AS n FROM incident WHERE opened_at >= :s AND opened_at < :e",
        s=start,
        e=end,
    )["n"][0]
    assert timeline["incidents"].sum() == total > 0
    assert set(timeline["severity"]) <= set(SEVERITIES)
    listed = incident_list(engine, start=start, end=end, limit=10_000)
    assert len(listed) == total
    assert listed["opened_at"].is_monotonic_decreasing
    critical = incident_list(engine, start=start, end=end, severities=("critical",))
    assert (critical["severity"] == "critical").all()
    first = int(listed["id"].iloc[-1])
    events = incident_events(engine, incident_id=first)
    assert events["kind"].iloc[0] == "opened"
    assert events["at"].is_monotonic_increasing


RAW_TIMELINE = """
    SELECT date_bin(:bucket * interval '1 minute', opened_at,
                    timestamptz '2000-01-01 00:00:00+08') AS bucket,
           severity, category_code AS category, count(*) AS incidents
    FROM incident
    WHERE opened_at >= :s AND opened_at < :e AND kind = 'alarm'
      AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def _timelines_agree(engine, *, start, end, bucket, district=None) -> int:
    counted = incident_timeline(
        engine, start=start, end=end, bucket_minutes=bucket, district=district
    ).reset_index(drop=True)
    raw = frame(engine, RAW_TIMELINE, s=start, e=end, bucket=bucket, district=district)
    raw = raw.astype({"incidents": "int64"})
    assert counted["bucket"].tolist() == raw["bucket"].tolist(), (start, end, bucket)
    assert counted[["severity", "category", "incidents"]].values.tolist() == (
        raw[["severity", "category", "incidents"]].values.tolist()
    ), (start, end, bucket, district)
    return int(raw["incidents"].sum())


def test_the_timeline_from_its_counters_equals_the_incidents_themselves(engine, seeded):
    """Windows that start and end off the quarter-hour, every bucket size, a district; then
    after incidents are opened, raised in severity, moved and deleted (rolled back)."""
    odd = timedelta(minutes=7, seconds=13)
    windows = [
        (SEED_END - timedelta(hours=24) + odd, SEED_END - odd),
        (SEED_END - timedelta(hours=6), SEED_END + timedelta(seconds=1)),
        (SEED_END - timedelta(minutes=40) - odd, SEED_END - timedelta(minutes=31)),
    ]
    total = 0
    for start, end in windows:
        for bucket in (15, 60, 180, 1440):
            total += _timelines_agree(engine, start=start, end=end, bucket=bucket)
        _timelines_agree(engine, start=start, end=end, bucket=60, district=PUDONG)
    assert total > 0
    start, end = windows[0]
    with engine.connect() as conn, conn.begin() as outer:
        ids = (
            conn.execute(
                sa.text(
                    "SELECT id FROM incident WHERE kind = 'alarm' AND opened_at >= :s"
                    " AND opened_at < :e ORDER BY id LIMIT 3"
                ),
                {"s": start, "e": end},
            )
            .scalars()
            .all()
        )
        conn.execute(
            sa.text("UPDATE incident SET severity = 'critical' WHERE id = :id"), {"id": ids[0]}
        )
        conn.execute(
            sa.text(
                "UPDATE incident SET opened_at = opened_at - interval '3 hours' WHERE id = :id"
            ),
            {"id": ids[1]},
        )
        conn.execute(sa.text("DELETE FROM incident_event WHERE incident_id = :id"), {"id": ids[2]})
        conn.execute(sa.text("DELETE FROM incident WHERE id = :id"), {"id": ids[2]})
        conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, status, title_zh, title_en, opened_at, geom,"
                " kind)"
                " SELECT device_id, type_id, category_code, district_adcode, street_code,"
                " 'timeline-test', 'major', 'open', title_zh, title_en, :at, geom, kind"
                " FROM incident WHERE id = :id"
            ),
            {"at": SEED_END - timedelta(hours=2), "id": ids[0]},
        )

        # the counters are what this transaction sees: read through it
        for bucket in (15, 60):
            _timelines_agree(_Through(conn), start=start, end=end, bucket=bucket)
        outer.rollback()


RAW_HANDLING = """
    SELECT date_bin(:bucket * interval '1 minute', e.at, timestamptz '2000-01-01 00:00:00+08')
               AS bucket, e.kind, count(*) AS events
    FROM incident_event e JOIN incident i ON i.id = e.incident_id
    WHERE e.at >= :s AND e.at < :e AND e.kind IN ('acknowledged', 'resolved', 'reopened')
      AND i.kind = 'alarm' AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)
    GROUP BY 1, 2 ORDER BY 1, 2
"""


def _handling_agrees(engine, *, start, end, bucket, district=None) -> int:
    counted = incident_handling_timeline(
        engine, start=start, end=end, bucket_minutes=bucket, district=district
    ).reset_index(drop=True)
    raw = frame(engine, RAW_HANDLING, s=start, e=end, bucket=bucket, district=district)
    assert counted.values.tolist() == raw.astype({"events": "int64"}).values.tolist(), (
        start,
        end,
        bucket,
        district,
    )
    return int(raw["events"].sum())


def test_the_handling_lines_from_their_counters_equal_the_events_themselves(engine, seeded):
    """Off-quarter windows, bucket sizes and a district; then, in a transaction rolled back,
    after events are recorded and deleted and incidents moved and deleted."""
    odd = timedelta(minutes=7, seconds=13)
    start, end = SEED_END - timedelta(hours=24) + odd, SEED_END - odd
    total = sum(
        _handling_agrees(engine, start=start, end=end, bucket=bucket) for bucket in (15, 60, 1440)
    )
    assert total > 0
    assert _handling_agrees(engine, start=start, end=end, bucket=60, district=PUDONG) > 0
    with engine.connect() as conn, conn.begin() as outer:
        ids = (
            conn.execute(
                sa.text(
                    "SELECT DISTINCT incident_id FROM incident_event WHERE kind = 'resolved'"
                    " AND at >= :s AND at < :e ORDER BY 1 LIMIT 3"
                ),
                {"s": start, "e": end},
            )
            .scalars()
            .all()
        )
        moved, deleted, trimmed = ids
        conn.execute(
            sa.text(
                "UPDATE incident SET street_code = NULL, category_code = 'power',"
                " district_adcode = CASE WHEN district_adcode = :d THEN '310101' ELSE :d END"
                " WHERE id = :id"
            ),
            {"id": moved, "d": PUDONG},
        )
        conn.execute(sa.text("DELETE FROM incident WHERE id = :id"), {"id": deleted})
        conn.execute(
            sa.text("DELETE FROM incident_event WHERE incident_id = :id AND kind = 'resolved'"),
            {"id": trimmed},
        )
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor)"
                " SELECT id, :at, k.kind, 'test' FROM incident CROSS JOIN"
                " (VALUES ('acknowledged'), ('resolved'), ('reopened'), ('note')) k(kind)"
                " WHERE id = :id"
            ),
            {"id": trimmed, "at": end - timedelta(minutes=20)},
        )
        for bucket in (15, 60):
            _handling_agrees(_Through(conn), start=start, end=end, bucket=bucket)
        _handling_agrees(_Through(conn), start=start, end=end, bucket=60, district=PUDONG)
        outer.rollback()


class _Through:
    """An engine stand-in whose connections are `conn` (the caller's transaction)."""

    def __init__(self, conn):
        self.conn = conn

    def connect(self):
        return _Borrowed(self.conn)


class _Borrowed:
    """A connection lent to a read function as if from an engine (the caller's transaction)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        return False


def test_the_incident_queue_puts_the_most_urgent_first(engine, seeded):
    start, end = SEED_END - timedelta(days=30), SEED_END + timedelta(seconds=1)
    queue = incident_list(engine, start=start, end=end, order_by="priority", limit=10_000)
    # the rule, written out again: live before resolved; then severity; unacknowledged above
    # acknowledged; the longest waiting first; resolved ones newest first
    severity = {"critical": 3, "major": 2, "minor": 1}

    def key(row) -> tuple:
        if row.status == "resolved":
            return (1, 0, 0, -row.opened_at.timestamp(), -row.id)
        unacknowledged = row.status == "open"
        waited = row.opened_at.timestamp()
        return (0, -severity[row.severity], not unacknowledged, waited, -row.id)

    rows = list(queue.itertuples())
    assert len({(r.severity, r.status) for r in rows}) >= 3, "too little variety to test"
    assert [r.id for r in rows] == [r.id for r in sorted(rows, key=key)]
    reverse = incident_list(
        engine, start=start, end=end, order_by="priority", descending=False, limit=10_000
    )
    assert reverse["status"].iloc[0] == "resolved" and queue["status"].iloc[-1] == "resolved"


def test_live_incident_points_are_every_live_critical_and_major_alarm(engine, seeded):
    # issue 19: the map markers, recomputed from the incident table
    live = frame(
        engine,
        "SELECT id, severity, district_adcode FROM incident WHERE status <> 'resolved'"
        " AND severity IN ('critical', 'major') AND kind IN ('alarm', 'anomaly')",
    )
    points = live_incident_points(engine)
    assert set(points["id"]) == set(live["id"]) and len(points) == len(live) > 0
    assert points["lon"].notna().all() and points["lat"].notna().all()
    # criticals first, so a truncated list keeps them
    ranks = points["severity"].map({"critical": 0, "major": 1})
    assert ranks.is_monotonic_increasing
    district = str(live["district_adcode"].iloc[0])
    scoped = live_incident_points(engine, district=district)
    assert set(scoped["id"]) == set(live.loc[live["district_adcode"] == district, "id"])
    assert len(live_incident_points(engine, limit=1)) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda e: live_incident_points(e, limit=0),
        lambda e: live_incident_points(e, district="310101' --"),
        lambda e: street_metrics(e, district="31011"),
        lambda e: street_metrics(e, district="310115' OR 1=1 --"),
        lambda e: city_kpis(e, category="Flood; DROP TABLE device"),
        lambda e: area_devices(e),
        lambda e: device_detail(e, device_id=-1),
        lambda e: incident_timeline(e, start=SEED_END, end=SEED_END - timedelta(hours=1)),
        lambda e: incident_list(
            e, start=SEED_END - timedelta(hours=1), end=SEED_END, statuses=("closed",)
        ),
    ],
)
def test_bad_arguments_are_refused_before_sql(engine, seeded, call):
    with pytest.raises(InvalidQuery):
        call(engine)
