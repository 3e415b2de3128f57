"""Incident rules end to end on real PostGIS: readings through the store's trigger into the rule
inbox, the rules engine raising, de-duplicating, escalating and resolving incidents. These are
the threshold and offline rules' alarms; the early-warning kinds are tested in test_foresight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from data import rules_store
from data.ingest_store import PartitionCache, store_readings
from data.rule_types import US, State
from data.writes import ReadingBatch
from ingest.rules_engine import RulesEngine

pytestmark = pytest.mark.integration
PARTITIONS = PartitionCache()


def _device(engine, *, category_in: tuple[str, ...], exclude: tuple[int, ...] = ()) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT d.id, t.normal_min, t.normal_max, t.alarm_max, t.category_code"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.value_kind = 'analog' AND t.alarm_max IS NOT NULL"
                "   AND d.status = 'active' AND t.category_code = ANY(:cats)"
                "   AND NOT (d.id = ANY(:exclude))"
                "   AND NOT EXISTS (SELECT 1 FROM incident i WHERE i.device_id = d.id)"
                " ORDER BY d.id LIMIT 1"
            ),
            {"cats": list(category_in), "exclude": list(exclude)},
        ).one()


def _send(engine, device_id: int, points: list[tuple[datetime, float]]) -> None:
    batch = ReadingBatch(
        device_id=np.full(len(points), device_id, dtype=np.int64),
        ts_us=np.array([round(ts.timestamp() * 1e6) for ts, _ in points], dtype=np.int64),
        value=np.array([value for _, value in points], dtype=float),
        quality=np.zeros(len(points), dtype=np.int16),
    )
    with engine.begin() as conn:
        store_readings(conn, batch, partitions=PARTITIONS)


def _incidents(engine, device_id: int) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT id, rule_code, severity, status, trigger_value, threshold, title_zh,"
                " opened_at, resolved_at FROM incident WHERE device_id = :d AND kind = 'alarm'"
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


def test_a_life_safety_alarm_opens_once_and_resolves_when_clear(live_engine_, rules):
    device = _device(live_engine_, category_in=("flood", "fire", "gas"))
    start = datetime.now(UTC) - timedelta(minutes=20)
    high = device.alarm_max + 0.1 * (device.alarm_max - device.normal_max + 1)
    _send(live_engine_, device.id, [(start, high)])
    report = rules.run_once(offline=False)
    assert report.opened >= 1
    [incident] = _incidents(live_engine_, device.id)
    assert (incident.rule_code, incident.severity, incident.status) == (
        "alarm_high",
        "critical",
        "open",
    )
    assert incident.trigger_value == pytest.approx(high)
    assert incident.threshold == pytest.approx(device.alarm_max)
    assert incident.opened_at == start
    # more alarm readings: still one live incident for this device and rule
    _send(live_engine_, device.id, [(start + timedelta(minutes=k), high) for k in range(1, 4)])
    rules.run_once(offline=False)
    assert len(_incidents(live_engine_, device.id)) == 1
    normal = (device.normal_min + device.normal_max) / 2
    _send(live_engine_, device.id, [(start + timedelta(minutes=5), normal)])
    rules.run_once(offline=False)
    assert _incidents(live_engine_, device.id)[0].status == "open"  # clear for 0 s of 120 s
    _send(live_engine_, device.id, [(start + timedelta(minutes=8), normal)])
    rules.run_once(offline=False)
    [incident] = _incidents(live_engine_, device.id)
    assert incident.status == "resolved"
    assert incident.resolved_at == start + timedelta(minutes=8)
    assert _events(live_engine_, incident.id) == ["opened", "resolved"]


def test_other_categories_need_the_condition_to_last(live_engine_, rules):
    device = _device(live_engine_, category_in=("weather", "environment", "power", "water"))
    start = datetime.now(UTC) - timedelta(minutes=20)
    high = device.alarm_max + 0.1 * (device.alarm_max - device.normal_max + 1)
    _send(live_engine_, device.id, [(start, high), (start + timedelta(seconds=30), high)])
    rules.run_once(offline=False)
    assert _incidents(live_engine_, device.id) == []
    _send(live_engine_, device.id, [(start + timedelta(seconds=70), high)])
    rules.run_once(offline=False)
    [incident] = _incidents(live_engine_, device.id)
    assert (incident.rule_code, incident.severity) == ("alarm_high", "major")
    assert incident.opened_at == start + timedelta(seconds=70)


def test_a_warning_escalates_to_an_alarm_in_the_same_incident(live_engine_, rules):
    device = _device(live_engine_, category_in=("flood", "fire", "gas"))
    start = datetime.now(UTC) - timedelta(minutes=20)
    warn = (device.normal_max + device.alarm_max) / 2
    assert device.normal_max < warn < device.alarm_max
    _send(live_engine_, device.id, [(start + timedelta(minutes=k), warn) for k in range(0, 7)])
    rules.run_once(offline=False)
    [incident] = _incidents(live_engine_, device.id)
    assert (incident.rule_code, incident.severity) == ("warning_high", "minor")
    high = device.alarm_max + 1
    _send(live_engine_, device.id, [(start + timedelta(minutes=8), high)])
    rules.run_once(offline=False)
    [escalated] = _incidents(live_engine_, device.id)
    assert escalated.id == incident.id
    assert (escalated.rule_code, escalated.severity) == ("alarm_high", "critical")
    assert "报警" in escalated.title_zh
    assert _events(live_engine_, incident.id) == ["opened", "escalated"]


def test_a_person_closing_a_live_breach_is_respected_until_it_clears(live_engine_, rules):
    device = _device(live_engine_, category_in=("flood", "fire", "gas"))
    start = datetime.now(UTC) - timedelta(minutes=20)
    high = device.alarm_max + 1
    _send(live_engine_, device.id, [(start, high)])
    rules.run_once(offline=False)
    [incident] = _incidents(live_engine_, device.id)
    with live_engine_.begin() as conn:
        conn.execute(
            sa.text("UPDATE incident SET status = 'resolved', resolved_at = :at WHERE id = :id"),
            {"id": incident.id, "at": start + timedelta(minutes=1)},
        )
    _send(live_engine_, device.id, [(start + timedelta(minutes=2), high)])
    rules.run_once(offline=False)
    assert len(_incidents(live_engine_, device.id)) == 1
    normal = (device.normal_min + device.normal_max) / 2
    _send(
        live_engine_,
        device.id,
        [(start + timedelta(minutes=3), normal), (start + timedelta(minutes=4), high)],
    )
    rules.run_once(offline=False)
    assert [i.status for i in _incidents(live_engine_, device.id)] == ["resolved", "open"]


def _silence(engine, device_ids: list[int], *, hours: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE device_latest SET ts = now() - :age, dirty = true"
                " WHERE device_id = ANY(:ids)"
            ),
            {"age": timedelta(hours=hours), "ids": device_ids},
        )


def test_silent_devices_go_offline_and_come_back(live_engine_, rules):
    device = _device(live_engine_, category_in=("weather", "environment", "power", "water"))
    _silence(live_engine_, [device.id], hours=30)
    report = rules.run_once(offline=True)
    assert report.offline_opened >= 1
    [incident] = [i for i in _incidents(live_engine_, device.id) if i.rule_code == "offline"]
    assert incident.status == "open"
    again = rules.run_once(offline=True)
    assert len([i for i in _incidents(live_engine_, device.id) if i.rule_code == "offline"]) == 1
    assert again.offline_opened == 0
    _send(live_engine_, device.id, [(datetime.now(UTC), device.normal_min)])
    rules.run_once(offline=True)
    [incident] = [i for i in _incidents(live_engine_, device.id) if i.rule_code == "offline"]
    assert incident.status == "resolved"


def test_a_mass_silence_is_held_back_as_an_ingest_outage(live_engine_):
    with live_engine_.connect() as conn:
        ids = list(
            conn.execute(
                sa.text(
                    "SELECT d.id FROM device d JOIN device_latest l ON l.device_id = d.id"
                    " WHERE d.status = 'active' AND NOT EXISTS (SELECT 1 FROM incident i"
                    " WHERE i.device_id = d.id AND i.status <> 'resolved')"
                    " ORDER BY d.id DESC LIMIT 400"
                )
            ).scalars()
        )
    # long enough for every type, even those reporting once a day
    _silence(live_engine_, ids, hours=24 * 20)
    engine = RulesEngine(
        live_engine_, watch_start=datetime.now(UTC) - timedelta(days=30), max_offline_share=0.01
    )
    report = engine.run_once(offline=True)
    assert report.offline_opened == 0
    assert report.offline_held_back >= 400
    # the same silence, watched only from now on, is not offline yet
    fresh = RulesEngine(live_engine_)
    assert fresh.run_once(offline=True).offline_held_back == 0


def test_a_pass_writes_its_states_back_at_once(live_engine_):
    """One call for the pass's devices: states kept or changed are upserted (columns all unset
    included), idle ones removed, other devices' left alone."""
    with live_engine_.connect() as conn:
        ids = (
            conn.execute(
                sa.text(
                    "SELECT id FROM device WHERE id NOT IN (SELECT device_id FROM rule_state)"
                    " ORDER BY id DESC LIMIT 3"
                )
            )
            .scalars()
            .all()
        )
    kept, cleared, bystander = ids
    at = round(datetime.now(UTC).timestamp() * US)
    breach = State(last_ts_us=at, breach_since_us=at - 60 * US)
    with live_engine_.begin() as conn:
        rules_store.save_states(
            conn, states={cleared: {"high": breach}, bystander: {"high": breach, "low": breach}}
        )
        rules_store.save_states(
            conn,
            states={
                # suppressed with nothing else set: every optional column unset
                kept: {"high": State(last_ts_us=at, suppressed=True), "low": breach},
                cleared: {"high": State(last_ts_us=at)},  # idle: the row goes
                bystander: {"low": State(last_ts_us=at + US, breach_since_us=at)},
            },
        )
        rows = conn.execute(
            sa.text(
                "SELECT device_id, rule_code, breach_since IS NOT NULL, clear_since IS NULL,"
                " incident_id IS NULL, suppressed, last_ts FROM rule_state"
                " WHERE device_id = ANY(:ids) ORDER BY device_id, rule_code"
            ),
            {"ids": ids},
        ).all()
        conn.execute(sa.text("DELETE FROM rule_state WHERE device_id = ANY(:ids)"), {"ids": ids})
    moment = datetime.fromtimestamp(at / US, tz=UTC)
    later = datetime.fromtimestamp(at / US + 1, tz=UTC)
    assert [tuple(row) for row in rows] == sorted(
        [
            (kept, "high", False, True, True, True, moment),
            (kept, "low", True, True, True, False, moment),
            (bystander, "high", True, True, True, False, moment),
            (bystander, "low", True, True, True, False, later),
        ]
    )
