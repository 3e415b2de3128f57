"""Early warning end to end on real PostGIS and Mosquitto: a ramp published over MQTT raises a
预警 that says when, updates as readings arrive, and is superseded by the real alarm with its lead
recorded; a stuck sensor and a skewed clock raise device-health incidents; rules list shows
the early-warning rules."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from data.ingest_store import PartitionCache, store_readings
from data.writes import ReadingBatch
from ingest.rules_engine import RulesEngine
from tests.integration.conftest import running_mqtt_worker
from tests.mqtt_publisher import Publisher

pytestmark = pytest.mark.integration
SOURCE = "test-foresight"
PARTITIONS = PartitionCache()


def _device(engine, *, measurand: str, skip: tuple[int, ...] = ()) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT d.id, t.normal_min, t.normal_max, t.alarm_max, t.unit FROM device d"
                " JOIN device_type t ON t.id = d.type_id"
                " WHERE t.measurand = :m AND d.status = 'active' AND NOT (d.id = ANY(:skip))"
                "   AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.device_id = d.id)"
                " ORDER BY d.id LIMIT 1"
            ),
            {"m": measurand, "skip": list(skip)},
        ).one()


def _incidents(engine, device_id: int) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT id, kind, rule_code, status, opened_at, resolved_at, expected_at, detail,"
                " title_zh, title_en, foreseen_by, lead_s FROM incident WHERE device_id = :d"
                " ORDER BY id"
            ),
            {"d": device_id},
        ).all()


def _events(engine, incident_id: int) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT kind FROM incident_event WHERE incident_id = :i ORDER BY at, id"),
                {"i": incident_id},
            ).scalars()
        )


@pytest.fixture(scope="module")
def rules(live_engine_) -> RulesEngine:
    engine = RulesEngine(live_engine_, watch_start=datetime.now(UTC) - timedelta(days=2))
    engine.run_once(offline=False)  # settle what the seed left in the inbox
    return engine


@pytest.fixture(scope="module")
def worker(live_engine_, mqtt):
    """An in-process worker on its own persistent session, and a token to publish with."""
    with running_mqtt_worker(live_engine_, mqtt, source=SOURCE) as consumer:
        yield consumer


def _stored(engine, device_id: int, since: datetime) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM reading WHERE device_id = :d AND ts >= :s"),
            {"d": device_id, "s": since},
        ).scalar_one()


def test_a_ramp_over_mqtt_is_foreseen_then_superseded_by_its_alarm(
    live_engine_, mqtt_broker, worker, rules
):
    device = _device(live_engine_, measurand="ponding")
    limit = device.alarm_max
    # 40 minutes of rising water, one reading every 15 s, ending a little after now
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=38)
    ts = [start + timedelta(seconds=15 * k) for k in range(160)]
    rng = np.random.default_rng(1)
    values = 0.5 + (limit + 2 - 0.5) * np.arange(160) / 160 + rng.normal(0, 0.3, 160)
    alarm_at = ts[int(np.argmax(values >= limit))]
    publisher = Publisher(mqtt_broker, worker.sender.credentials)
    sent = 0
    for minute in range(0, 160, 4):  # a minute of readings a message, a rules pass after each
        rows = [
            {"device_id": device.id, "ts": ts[k].isoformat(), "value": round(float(values[k]), 1)}
            for k in range(minute, min(minute + 4, 160))
        ]
        publisher.publish(worker.sender.topic, json.dumps({"readings": rows}))
        sent += len(rows)
        deadline = time.monotonic() + 10
        while _stored(live_engine_, device.id, start) < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        rules.run_once(offline=False)
    publisher.close()

    incidents = _incidents(live_engine_, device.id)
    [forecast] = [i for i in incidents if i.kind == "forecast"]
    [alarm] = [i for i in incidents if i.kind == "alarm"]
    assert forecast.rule_code == "forecast_high"
    assert "分钟后超过报警值" in forecast.title_zh and "in" in forecast.title_en
    assert forecast.detail["probability"] >= 0.9
    assert forecast.detail["because_zh"] and forecast.detail["because_en"]
    assert forecast.detail["limit"] == pytest.approx(limit)
    # superseded by the real alarm, which records how early it was foreseen
    assert forecast.status == "resolved"
    assert alarm.foreseen_by == forecast.id
    assert alarm.lead_s == pytest.approx((alarm_at - forecast.opened_at).total_seconds(), abs=60)
    assert alarm.lead_s >= 15 * 60
    events = _events(live_engine_, forecast.id)
    assert events[0] == "opened" and "updated" in events and events[-1] == "superseded"
    # the last estimate before the alarm was close to when it came
    assert abs((forecast.expected_at - alarm_at).total_seconds()) <= 5 * 60


def _send(engine, device_id: int, points: list[tuple[datetime, float]]) -> None:
    batch = ReadingBatch(
        device_id=np.full(len(points), device_id, dtype=np.int64),
        ts_us=np.array([round(t.timestamp() * 1e6) for t, _ in points], dtype=np.int64),
        value=np.array([v for _, v in points], dtype=float),
        quality=np.zeros(len(points), dtype=np.int16),
    )
    with engine.begin() as conn:
        store_readings(conn, batch, partitions=PARTITIONS)


def test_a_stuck_sensor_and_a_skewed_clock_open_device_health_incidents(live_engine_, rules):
    stuck = _device(live_engine_, measurand="transformer_load")
    skewed = _device(live_engine_, measurand="transformer_load", skip=(stuck.id,))
    now = datetime.now(UTC).replace(microsecond=0)
    # a load that varies from reading to reading, then the same value four times
    varied = np.round(50 + np.random.default_rng(3).normal(0, 2.5, 20), 1).tolist()
    points = [(now - timedelta(minutes=10 * (23 - k)), v) for k, v in enumerate(varied)]
    points += [(now - timedelta(minutes=10 * (3 - k)), 50.4) for k in range(4)]
    _send(live_engine_, stuck.id, points)
    # readings stamped 40 minutes before they arrive
    _send(live_engine_, skewed.id, [(now - timedelta(minutes=40 + k), 50.0 + k) for k in range(3)])
    rules.run_once(offline=False)
    [health] = [i for i in _incidents(live_engine_, stuck.id) if i.kind == "health"]
    assert health.rule_code == "stuck" and "卡滞" in health.title_zh
    clocks = [i for i in _incidents(live_engine_, skewed.id) if i.kind == "health"]
    assert [i.rule_code for i in clocks] == ["clock"]
    assert "40" in clocks[0].detail["because_zh"] or "41" in clocks[0].detail["because_zh"]
    # alarm figures are not touched by device health
    with live_engine_.connect() as conn:
        kinds = (
            conn.execute(sa.text("SELECT DISTINCT kind FROM incident_live WHERE n > 0"))
            .scalars()
            .all()
        )
    assert "health" in kinds


def test_rules_list_shows_the_early_warning_rules(run):
    code, out, _ = run("rules", "list")
    assert code == 0
    assert "forecast_high" in out and "horizon 60 min" in out and "p ≥ 0.9" in out
    assert "routine" in out and "stuck" in out and "clock" in out


def test_rules_refit_learns_every_device_normal_and_refuses_bad_input(live_engine_, run, capsys):
    code, out, _ = run("rules", "refit", "--days", "3")
    assert code == 0 and "baselines refitted" in out
    with live_engine_.connect() as conn:
        analog = conn.execute(
            sa.text(
                "SELECT count(*) FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE d.status = 'active' AND t.value_kind = 'analog'"
            )
        ).scalar_one()
        rows = conn.execute(
            sa.text("SELECT slots, source, median, spread FROM device_baseline")
        ).all()
    assert len(rows) == analog
    assert {r.slots for r in rows} <= {24, 168}
    assert all(len(r.median) == r.slots and len(r.spread) == r.slots for r in rows)
    assert all(all(x == x for x in r.median) for r in rows)  # no NaN left
    assert {r.source for r in rows} <= {"device", "street", "type"}
    for days, message in (("0", "outside 1-60"), ("lots", "not a whole number")):
        with pytest.raises(SystemExit) as refused:  # argparse refuses it, as in a shell
            run("rules", "refit", "--days", days)
        assert refused.value.code == 2 and message in capsys.readouterr().err


def test_a_refit_in_slices_stores_what_a_whole_city_fit_does(live_engine_):
    """Each device's own normal is fitted a slice of devices at a time (a 10M city at once
    would take tens of gigabytes); the pools it falls back on are the whole city's, so slicing
    changes nothing that is stored, and the old baselines stay readable until the swap."""
    from ingest.refit import refit_baselines

    at = datetime.now(UTC)
    query = sa.text("SELECT device_id, slots, source, median, spread, days FROM device_baseline")

    def stored() -> dict[int, tuple]:
        with live_engine_.connect() as conn:
            return {r.device_id: tuple(r[1:]) for r in conn.execute(query)}

    whole = refit_baselines(live_engine_, days=3, now=at, slice_devices=10**9)
    before = stored()
    sliced = refit_baselines(live_engine_, days=3, now=at, slice_devices=37)
    after = stored()
    assert whole.devices == sliced.devices == len(before) > 37 * 3
    assert sliced.sources == whole.sources and sum(whole.sources.values()) == whole.devices
    assert after == before
    assert {row[1] for row in after.values()} >= {"device"}


def test_the_watch_reads_every_stored_normal_as_stored(live_engine_):
    """The early-warning watch's normals, read a range of devices at a time as one row per
    slot, are the stored arrays: daily and hour-of-week ones, devices without any left unknown."""
    from data.foresight_store import load_normals
    from foresight import watch
    from ingest.refit import refit_baselines

    refit_baselines(live_engine_, days=28)
    with live_engine_.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT device_id, slots, median, spread FROM device_baseline ORDER BY 1")
        ).all()
        ids = np.array(
            conn.execute(sa.text("SELECT id FROM device ORDER BY id")).scalars().all(), np.int64
        )
        week = np.arange(len(ids)) % 3 == 0
        got = load_normals(conn, device_ids=ids, week=week, chunk=37)
    assert {row.slots for row in stored} == {24, 168} and len(ids) > len(stored) > 100
    expected = watch.empty_normals(len(ids))
    weeks: list[tuple[int, list[float], list[float]]] = []
    for row in stored:
        at = np.searchsorted(ids, [row.device_id])
        median = np.array([row.median], np.float32)
        watch.place_normals(expected, at, median, np.array([row.spread], np.float32))
        if row.slots == 168 and week[at[0]]:
            weeks.append((int(at[0]), row.median, row.spread))
    # hour-of-week lines only for the routine devices that learned one (device order)
    assert len(weeks) > 0
    expected = watch.with_weeks(expected, *(np.array([w[i] for w in weeks]) for i in range(3)))
    for name in ("season", "season_spread", "week_row", "week_median", "week_spread"):
        assert np.array_equal(getattr(got, name), getattr(expected, name), equal_nan=True), name
    assert np.isnan(got.season[~np.isin(ids, [row.device_id for row in stored])]).all()


def test_the_watch_is_built_again_only_when_the_devices_or_rules_changed(live_engine_):
    """A 10M city's watch is gigabytes: its periodic check rebuilds it only when the device
    list moved (or the rules, or the baselines)."""
    from data import rules_store
    from data.foresight_store import device_changes
    from ingest.early import EarlyWarning

    early = EarlyWarning(reload_every_s=0)
    with live_engine_.connect() as conn:
        rules = rules_store.load_rules(conn)
        early._refresh(conn, rules)
        first = early.engine
        early._refresh(conn, rules)
        assert early.engine is first is not None
        before = device_changes(conn)
    with live_engine_.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE device SET installed_on = installed_on"
                " WHERE id = (SELECT min(id) FROM device)"
            )
        )
    deadline = time.monotonic() + 10
    with live_engine_.connect() as conn:
        while device_changes(conn) == before and time.monotonic() < deadline:
            conn.rollback()  # a new snapshot of the statistics
            time.sleep(0.2)
        assert device_changes(conn) > before
        early._refresh(conn, rules)
    assert early.engine is not first and early.engine is not None
    assert len(early.engine.spec) == len(first.spec)


def test_a_district_scope_reads_only_its_own_baselines(live_engine_, live_city_url, run):
    from data.scope import Scope, create_web_engine, provision_web_role, scoped, web_database_url

    run("rules", "refit", "--days", "3")
    provision_web_role(live_engine_)
    web = create_web_engine(web_database_url(live_city_url))
    try:
        with live_engine_.connect() as conn:
            pudong_devices = conn.execute(
                sa.text(
                    "SELECT count(*) FROM device_baseline b JOIN device d ON d.id = b.device_id"
                    " WHERE d.district_adcode = '310115'"
                )
            ).scalar_one()
        # a forged request that forgets the district filter still sees only its scope
        with scoped(Scope("310115")), web.connect() as conn:
            seen = conn.execute(sa.text("SELECT count(*) FROM device_baseline")).scalar_one()
        with scoped(Scope()), web.connect() as conn:
            nobody = conn.execute(sa.text("SELECT count(*) FROM device_baseline")).scalar_one()
    finally:
        web.dispose()
    assert seen == pudong_devices > 0
    assert nobody == 0
