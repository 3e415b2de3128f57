"""回放 on the real PostGIS: the live city is run step by step (the simulator's readings and unit
fixes through the ingest store, the rules pass, the status snapshot), what the screens read is
recorded at several instants, and reading those instants again later gives exactly the same;
the history is written as changes (with a full frame each day and when the changes outgrow one),
retained like readings, and read within the reader's districts only."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from data import catalog, writes
from data.areas import AreaMetric, cell_metrics, district_metrics, street_metrics
from data.asof import replay_window
from data.clock import database_now
from data.event_reads import feed_lines
from data.incident_reads import live_incident_points
from data.ingest_store import PartitionCache, store_readings
from data.kpis import area_kpis
from data.live_city import load_live_devices, offline_device_ids
from data.resources import status_counts, unit_positions
from data.scope import Scope, create_web_engine, provision_web_role, scoped, web_database_url
from data.topic_reads import beyond_lines, measurands_now
from data.unit_positions import load_unit_catalog, store_fixes
from data.warning_reads import warning_levels
from ingest.rules_engine import RulesEngine
from simulator.fleet import Fleet, fix_batch
from simulator.live import LiveCity, LiveConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]
US = 1_000_000
STEPS = 6


@pytest.fixture(scope="module")
def owner(live_engine_) -> sa.Engine:
    """The owner's engine on this module's own city (the tests here change it)."""
    return live_engine_


def _district(owner: sa.Engine) -> str:
    """The district with the most devices."""
    with owner.connect() as conn:
        return conn.execute(
            sa.text("SELECT district_adcode FROM device GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).scalar_one()


def _colours(areas: list[AreaMetric]) -> list[AreaMetric]:
    """Areas without their readings of the last hour: the 15-minute rollups a replay counts
    them from cannot tell which of the quarter's readings had arrived by the instant."""
    return [replace(area, readings_last_hour=0) for area in areas]


def _screens(engine: sa.Engine, district: str, at: datetime | None) -> tuple[datetime, dict]:
    """What the overview, a district page and the flood scenario read (now, or replaying `at`)."""
    when: dict[str, Any] = {} if at is None else {"at": at, "replay": True}
    kpis = area_kpis(engine, **when)
    moment = kpis.at
    end = moment + timedelta(minutes=1)
    feed = feed_lines(engine, start=end - timedelta(hours=24), end=end, **when)
    units = unit_positions(engine, **when)
    return moment, {
        "tiles": (
            kpis.devices_total,
            kpis.devices_online,
            kpis.devices_warning,
            kpis.devices_alarm,
            kpis.open_by_severity,
            kpis.opened_today,
            kpis.resolved_today,
            kpis.forecasts_open,
            kpis.forecast_next,
            kpis.health_open,
            kpis.status_as_of,
            # the tile shows whole minutes
            None if kpis.mean_minutes_to_resolve is None else round(kpis.mean_minutes_to_resolve),
        ),
        "district_tiles": area_kpis(engine, district=district, **when).open_by_severity,
        "district_colours": _colours(district_metrics(engine, **when)),
        "street_colours": _colours(street_metrics(engine, district=district, **when)),
        "cells": cell_metrics(engine, district=district, **when).to_dict("records"),
        "feed": feed[["line", "id", "status", "severity"]].to_dict("records"),
        "markers": live_incident_points(engine, **when)[["id", "status", "severity"]].to_dict(
            "records"
        ),
        "levels": [(w.topic, w.district, w.level) for w in warning_levels(engine, **when)],
        "units": [(u["id"], u["status"], u["lon"], u["lat"], u["incident_id"]) for u in units],
        "unit_counts": status_counts(engine, **when),
        "flood": measurands_now(engine, measurands=("water_level",), **when),
        "flood_points": [
            p["id"] for p in beyond_lines(engine, measurands=("water_level",), **when)
        ],
    }


def _run_city(owner: sa.Engine, district: str) -> list[tuple[datetime, dict]]:
    """Step the live city (a storm under way, a duty officer sending units) and record what the
    screens read after each step."""
    now_s = database_now(owner).timestamp()
    city = LiveCity(
        load_live_devices(owner),
        catalog.load_device_types(),
        replace(LiveConfig(rate=400, seed=3), storm_now=True, first_ramp_s=0),
        start_us=int(now_s * US),
        offline_ids=offline_device_ids(owner),
    )
    fleet = Fleet(owner, duty_officer=True, seed=3)
    rules = RulesEngine(owner, offline_every_s=0, group_every_s=0, warning_every_s=0)
    partitions = PartitionCache()
    units = load_unit_catalog(owner).units
    recorded = []
    for _ in range(STEPS):
        now = database_now(owner)
        due = city.step(int(now.timestamp() * US))
        # every reading arrives as it is taken: stamped with the step's instant (a reading due
        # a moment earlier would, like a late one, be in the replay of a moment it had not yet
        # reached the live screens: replay shows events when they happened)
        on_time = replace(due, ts_us=np.full(len(due), int(now.timestamp() * US)))
        with owner.begin() as conn:
            store_readings(conn, on_time, partitions=partitions)
            store_fixes(conn, fix_batch(fleet.step(now.timestamp()), units=units))
        rules.run_once(now=now)
        writes.refresh_status(owner)
        # distinct instants, and a pause so the next step's changes come after them
        time.sleep(1.2)
        recorded.append(_screens(owner, district, None))
        time.sleep(1.2)
    return recorded


def test_replayed_instants_read_exactly_what_the_screens_showed(owner):
    district = _district(owner)
    recorded = _run_city(owner, district)
    busy = {k: len({repr(r[k]) for _, r in recorded}) for k in recorded[0][1]}
    # the city moved between the instants: the comparison is not of a frozen city
    assert busy["tiles"] > 1 and busy["units"] > 1, busy
    assert any(r["feed"] for _, r in recorded) and any(r["markers"] for _, r in recorded)
    for moment, live in recorded:
        _, past = _screens(owner, district, moment)
        for key, value in live.items():
            assert past[key] == value, f"{key} at {moment:%H:%M:%S}"
    # a replay before any history says nothing rather than today's figures
    window = replay_window(owner)
    assert window.earliest is not None and window.earliest <= recorded[0][0]
    before = area_kpis(owner, at=window.earliest - timedelta(seconds=1), replay=True)
    assert before.devices_total == 0 and before.status_as_of is None


def test_a_frame_rebuilt_from_the_readings_counts_what_the_live_refresh_counted(owner):
    at = database_now(owner)
    writes.refresh_status(owner, at=at)
    rebuilt = at + timedelta(microseconds=1)
    with owner.begin() as conn:
        conn.execute(sa.text("SELECT status_frame_from_readings(:at)"), {"at": rebuilt})
    columns = "street_code, category_code, devices_total, devices_online, devices_warning"
    with owner.connect() as conn:
        live = set(conn.execute(sa.text(f"SELECT {columns}, devices_alarm FROM street_status")))
        frame = set(
            conn.execute(
                sa.text(f"SELECT {columns}, devices_alarm FROM status_history WHERE at = :at"),
                {"at": rebuilt},
            )
        )
        cells = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM cell_status),"
                " (SELECT count(*) FROM cell_status_history WHERE at = :at)"
            ),
            {"at": rebuilt},
        ).one()
    assert live and frame == live
    assert cells[0] == cells[1] > 0


def _history_rows(owner: sa.Engine) -> tuple[int, int]:
    with owner.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM status_history")).scalar_one(),
            conn.execute(sa.text("SELECT count(*) FROM cell_status_history")).scalar_one(),
        )


def _refresh(owner: sa.Engine, at: datetime) -> tuple[bool, int, int, int]:
    """A status refresh at `at`: whether it wrote a full frame, the history rows it wrote
    (streets, cells), and the changes since the last frame before it."""
    before = _history_rows(owner)
    with owner.connect() as conn:
        pending = conn.execute(
            sa.text(
                "SELECT coalesce(sum(changes), 0) FROM status_refresh"
                " WHERE at > (SELECT max(at) FROM status_refresh WHERE keyframe)"
            )
        ).scalar_one()
    writes.refresh_status(owner, at=at)
    after = _history_rows(owner)
    with owner.connect() as conn:
        frame = conn.execute(
            sa.text("SELECT keyframe FROM status_refresh WHERE at = :at"), {"at": at}
        ).scalar_one()
    return frame, after[0] - before[0], after[1] - before[1], int(pending)


def _keys(owner: sa.Engine) -> tuple[int, int]:
    with owner.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM street_status")).scalar_one(),
            conn.execute(sa.text("SELECT count(*) FROM cell_status")).scalar_one(),
        )


def _set_status(owner: sa.Engine, *, ids: list[int], status: str) -> None:
    with owner.begin() as conn:
        conn.execute(
            sa.text("UPDATE device SET status = :s WHERE id = ANY(:ids)"), {"s": status, "ids": ids}
        )


def test_history_is_written_as_changes_with_full_frames_when_due(owner):
    with owner.connect() as conn:
        active = list(
            conn.execute(sa.text("SELECT id FROM device WHERE status = 'active'")).scalars()
        )
    at = database_now(owner) + timedelta(minutes=1)
    _refresh(owner, at)
    # nothing moved: nothing written
    assert _refresh(owner, at + timedelta(seconds=15))[1:3] == (0, 0)
    _set_status(owner, ids=active[:1], status="retired")
    try:
        # one device gone: its street's and its cell's counts
        assert _refresh(owner, at + timedelta(seconds=30))[:3] == (False, 1, 1)
        # every device away and back: every key with devices online moved, twice
        _set_status(owner, ids=active[1:], status="maintenance")
        _refresh(owner, at + timedelta(seconds=45))
        _set_status(owner, ids=active[1:], status="active")
        _refresh(owner, at + timedelta(seconds=60))
        # a full frame once the changes since the last one have outgrown it
        frame, streets, cells, pending = _refresh(owner, at + timedelta(seconds=75))
        keys = _keys(owner)
        assert frame == (pending >= sum(keys)) and pending > 0
        if frame:
            assert (streets, cells) == keys
    finally:
        _set_status(owner, ids=active[:1], status="active")
    # and at the first refresh of each city day
    with owner.connect() as conn:
        tomorrow = conn.execute(
            sa.text("SELECT city_midnight(city_day(CAST(:at AS timestamptz)) + 1)"), {"at": at}
        ).scalar_one()
    frame, streets, cells, _ = _refresh(owner, tomorrow + timedelta(seconds=1))
    assert frame and (streets, cells) == _keys(owner)


def test_history_is_dropped_with_the_readings_it_was_made_from(owner):
    with owner.connect() as conn:
        kept = conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'status_history'::regclass"
            )
        ).scalars()
        days = sorted(name[-8:] for name in kept)
    assert days, "the refreshes made day partitions"
    last = datetime.strptime(days[-1], "%Y%m%d").date()
    dropped = writes.apply_retention(
        owner, today=last + timedelta(days=1), reading_days=1, rollup_days=400
    )
    assert {f"status_history_p{d}" for d in days} <= set(dropped)
    assert {f"cell_status_history_p{d}" for d in days} <= set(dropped)
    assert _history_rows(owner) == (0, 0)


def test_a_district_reader_replays_only_their_district(owner, live_city_url):
    provision_web_role(owner)
    web = create_web_engine(web_database_url(live_city_url))
    district = _district(owner)
    at = database_now(owner)
    writes.refresh_status(owner, at=at)
    try:
        with scoped(Scope(district)):
            mine = district_metrics(web, at=at, replay=True)
            kpis = area_kpis(web, at=at, replay=True)
            theirs = cell_metrics(
                web, district="310101" if district != "310101" else "310104", at=at, replay=True
            )
        everyone = area_kpis(owner, district=district, at=at, replay=True)
    finally:
        web.dispose()
    assert {m.code for m in mine if m.devices_total} == {district}
    assert kpis.devices_total == everyone.devices_total > 0
    assert theirs.empty


def test_an_incident_replays_with_the_status_and_severity_it_had(owner):
    opened = database_now(owner) - timedelta(minutes=30)
    with owner.begin() as conn:
        incident = conn.execute(
            sa.text(
                "SELECT id FROM incident WHERE kind = 'alarm' AND status = 'open'"
                " ORDER BY id LIMIT 1"
            )
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE incident SET opened_at = :at, severity = 'minor' WHERE id = :id"),
            {"at": opened, "id": incident},
        )
        conn.execute(
            sa.text("DELETE FROM incident_event WHERE incident_id = :id"), {"id": incident}
        )
        for minutes, kind, status, severity in (
            (0, "opened", "open", None),
            (5, "escalated", "open", "critical"),
            (10, "acknowledged", "acknowledged", None),
            (15, "resolved", "resolved", None),
            (20, "reopened", "open", None),
        ):
            if severity:
                conn.execute(
                    sa.text("UPDATE incident SET severity = :s WHERE id = :id"),
                    {"s": severity, "id": incident},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO incident_event (incident_id, at, kind, actor, to_status)"
                    " VALUES (:id, :at, :kind, 'test', :status)"
                ),
                {
                    "id": incident,
                    "at": opened + timedelta(minutes=minutes),
                    "kind": kind,
                    "status": status,
                },
            )

    def state(minutes: float) -> tuple[str, str] | None:
        with owner.connect() as conn:
            row = conn.execute(
                sa.text("SELECT status, severity FROM incidents_at(:at) WHERE id = :id"),
                {"at": opened + timedelta(minutes=minutes), "id": incident},
            ).one_or_none()
        return None if row is None else (row.status, row.severity)

    assert state(-1) is None
    assert state(1) == ("open", "minor")
    assert state(6) == ("open", "critical")
    assert state(11) == ("acknowledged", "critical")
    assert state(16) is None  # resolved then
    assert state(21) == ("open", "critical")
