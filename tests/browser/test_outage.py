"""The live city end to end in the browser: readings published over MQTT reach the overview's
tiles; PostgreSQL stopped while the app runs turns every panel amber, refuses HTTP batches with
503 (nothing acknowledged is lost), and the app recovers by itself when it returns."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from tests.browser.conftest import LIVE_STALE_SECONDS, open_page, screenshot
from tests.browser.test_dashboard import tile_value, wait_ready
from tests.mqtt_publisher import Publisher

pytestmark = pytest.mark.browser
SOURCE = "test-browser"
TILE = ".os-tile-value[data-key='readings_today']"


def _rows(engine: sa.Engine, count: int, *, offset_ms: int) -> list[dict]:
    """`count` readings stamped now, at each device's last value (no incident raised)."""
    with engine.connect() as conn:
        latest = conn.execute(
            sa.text(
                "SELECT l.device_id, l.value FROM device_latest l"
                " JOIN device d ON d.id = l.device_id WHERE d.status <> 'retired'"
                " ORDER BY l.device_id LIMIT :n"
            ),
            {"n": count},
        ).all()
    now = datetime.now(UTC) - timedelta(milliseconds=offset_ms)
    return [{"device_id": d, "ts": now.isoformat(), "value": v} for d, v in latest]


def _stored(engine: sa.Engine, rows: list[dict]) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM reading r JOIN unnest(CAST(:d AS bigint[]),"
                " CAST(:t AS timestamptz[])) AS k(d, t) ON r.device_id = k.d AND r.ts = k.t"
            ),
            {
                "d": [r["device_id"] for r in rows],
                "t": [datetime.fromisoformat(r["ts"]) for r in rows],
            },
        ).scalar_one()


def _tile(page: Page) -> int:
    return int(tile_value(page, "readings_today").replace(",", ""))


def _wait_tile_at_least(page: Page, least: int, timeout_ms: int) -> None:
    page.wait_for_function(
        "([sel, least]) => Number("
        "document.querySelector(sel).textContent.replace(/,/g, '')) >= least",
        arg=[TILE, least],
        timeout=timeout_ms,
    )


def _post(base: str, token: str, rows: list[dict]) -> tuple[int, dict]:
    request = urllib.request.Request(
        base + "/api/v1/readings",
        data=json.dumps({"readings": rows}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {
            **json.loads(error.read()),
            "retry_after": error.headers.get("Retry-After"),
        }


def test_readings_published_over_mqtt_reach_the_overview_tiles(
    live_server_fast, live_engine, mqtt_broker, mqtt, browser
):
    sender = mqtt.sender(live_engine, source=SOURCE)
    page, log = open_page(browser)
    page.goto(live_server_fast + "/")
    wait_ready(page)
    before = _tile(page)
    rows = _rows(live_engine, 50, offset_ms=0)
    publisher = Publisher(mqtt_broker, sender.credentials)
    started = time.monotonic()
    publisher.publish(sender.topic, json.dumps({"readings": rows}))
    publisher.close()
    _wait_tile_at_least(page, before + len(rows), timeout_ms=15_000)
    seen_after = time.monotonic() - started
    assert _stored(live_engine, rows) == len(rows)
    # MQTT → worker commit → cache → one 2 s refresh tick, with room for a loaded machine
    assert seen_after < 10, seen_after
    page.context.close()
    assert log.errors == []


def test_postgres_stopped_while_the_app_runs(
    live_server_fast, live_engine, mqtt_broker, mqtt, pg_cluster, browser
):
    sender = mqtt.sender(live_engine, source=SOURCE)
    token = sender.token
    pages = {}
    for viewport in ("1920x1080", "3840x2160"):
        page, _log = open_page(browser, viewport)
        page.goto(live_server_fast + "/")
        wait_ready(page)
        pages[viewport] = page
    page = pages["1920x1080"]
    panels = page.locator(".os-panel, .os-vitals").count()
    expect(page.locator(".os-fresh-stale")).to_have_count(0)
    before = _tile(page)

    publisher = Publisher(mqtt_broker, sender.credentials)
    during_outage = _rows(live_engine, 60, offset_ms=5)
    pg_cluster.stop()
    try:
        # acknowledged by the broker while the store is down: must be stored later
        publisher.publish(sender.topic, json.dumps({"readings": during_outage}))
        status, body = _post(live_server_fast, token, during_outage)
        assert status == 503, body
        assert body["error"]["code"] == "unavailable" and body["retry_after"]
        # every panel says its data is delayed, instead of showing it as current
        expect(page.locator(".os-fresh-stale")).to_have_count(
            panels, timeout=(LIVE_STALE_SECONDS + 15) * 1000
        )
        expect(page.locator(".os-fresh-stale").first).to_contain_text("数据延迟")
        expect(page.locator(".os-clock-stale")).to_have_count(1)
        for name, shot in pages.items():
            expect(shot.locator(".os-fresh-stale")).to_have_count(panels, timeout=20_000)
            screenshot(shot, f"outage-overview-{name}")
    finally:
        pg_cluster.ensure_running()
    # back by itself: fresh badges, and the readings acknowledged during the outage arrive
    expect(page.locator(".os-fresh-stale")).to_have_count(0, timeout=60_000)
    _wait_tile_at_least(page, before + len(during_outage), timeout_ms=60_000)
    publisher.close()
    assert _stored(live_engine, during_outage) == len(during_outage)
    status, body = _post(live_server_fast, token, during_outage)
    assert status == 200 and body["duplicate"] == len(during_outage)
    for shot in pages.values():
        shot.context.close()
