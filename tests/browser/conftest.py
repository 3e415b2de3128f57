"""Browser fixtures: a live OneScreen server on a free port over a freshly seeded database,
and Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from bench.harness import launch_chromium, serving
from config import CHROMIUM
from data import access
from data.access import SessionTicket
from data.engine import create_db_engine
from data.writes import ReadingBatch, insert_readings
from localservers.base import free_port
from tests.conftest import seeded_database
from web.session import CSRF_COOKIE, SESSION_COOKIE

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
VIEWPORTS = {"1920x1080": (1920, 1080), "3840x2160": (3840, 2160)}
# A loaded 2-core CI machine can take longer than the default 5 s for a callback round trip.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def live_db_url(pg_cluster) -> Iterator[str]:
    """A database of its own, seeded with the tiny city ending now (so it looks live)."""
    with seeded_database(pg_cluster, prefix="browser", random_seed=11) as url:
        yield url


@pytest.fixture(scope="session")
def live_engine(live_db_url: str) -> Iterator[sa.Engine]:
    """Engine on the live server's database, to compare pages with the store."""
    engine = create_db_engine(live_db_url)
    yield engine
    engine.dispose()


def _mqtt_env(mqtt, db_url: str, name: str) -> dict[str, str]:
    """The session broker, and an ingest login of its own for the server's worker (in its
    environment, as serve gives it), known to the broker with the live city's tokens."""
    login = mqtt.ingest_login(name)
    engine = create_db_engine(db_url)
    mqtt.sync(engine)
    engine.dispose()
    return {
        "ONESCREEN_MQTT_URL": mqtt.url,
        "ONESCREEN_MQTT_USERNAME": login.username,
        "ONESCREEN_MQTT_PASSWORD": login.password,
    }


@pytest.fixture(scope="session")
def live_server(live_db_url: str, mqtt, tmp_path_factory) -> Iterator[str]:
    """`cli.py serve` on a free port, pages never refreshing by themselves; yields its base URL."""
    yield from _serve(
        live_db_url,
        tmp_path_factory.mktemp("server"),
        {
            "ONESCREEN_UI_REFRESH_SECONDS": "3600",
            "ONESCREEN_UI_STALE_SECONDS": "7200",
            **_mqtt_env(mqtt, live_db_url, "browser-live"),
        },
    )


# the live tests' server: pages refresh every LIVE_REFRESH_SECONDS, go stale after LIVE_STALE
LIVE_REFRESH_SECONDS = 2
LIVE_STALE_SECONDS = 5


@pytest.fixture(scope="session")
def live_server_fast(live_db_url: str, mqtt, tmp_path_factory) -> Iterator[str]:
    """A second server over the same database whose pages refresh every 2 s, stale after 5 s."""
    yield from _serve(
        live_db_url,
        tmp_path_factory.mktemp("server-fast"),
        {
            "ONESCREEN_UI_REFRESH_SECONDS": str(LIVE_REFRESH_SECONDS),
            "ONESCREEN_UI_STALE_SECONDS": str(LIVE_STALE_SECONDS),
            **_mqtt_env(mqtt, live_db_url, "browser-live-fast"),
        },
    )


def _serve(db_url: str, directory: Path, settings: dict[str, str]) -> Iterator[str]:
    """Run `cli.py serve` with `settings` until the generator is closed; yields its base URL."""
    port = free_port()
    log_path = directory / "serve.log"
    env = {
        "DATABASE_URL": db_url,
        "ONESCREEN_LOG_LEVEL": "WARNING",
        # the tests publish what they need; each server's ingest worker has its own session
        "ONESCREEN_SIMULATE": "false",
        "ONESCREEN_MQTT_CLIENT_ID": f"browser-{port}",
        # gunicorn workers and a Redis of this server's own, as in production
        "ONESCREEN_WEB_WORKERS": "2",
        "ONESCREEN_REDIS_PORT": str(free_port()),
        **settings,
    }
    with serving(env, log_path=log_path, port=port, timeout_s=60) as base:
        yield base
    server_log = log_path.read_text()
    # a traceback in the server log means some request failed unseen by the browser
    assert "Traceback" not in server_log, server_log[-5000:]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the Debian package."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps.sh")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class ConsoleLog:
    """Console errors and uncaught page errors seen by a page."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"pageerror: {error}")


# people the browser tests sign in as: name → (role, districts)
USERS = {
    "admin": ("admin", ()),
    "operator": ("operator", ()),
    "pudong": ("district_manager", ("310115",)),
    "viewer": ("viewer", ()),
}
USER_PASSWORD = "browser tests passphrase"
_SESSIONS: dict[str, SessionTicket] = {}


@pytest.fixture(scope="session", autouse=True)
def browser_users(live_db_url: str) -> dict[str, SessionTicket]:
    """The USERS in the live database, each with an open session the pages sign in with."""
    engine = create_db_engine(live_db_url)
    try:
        for username, (role, districts) in USERS.items():
            user = access.create_user(
                engine,
                username=username,
                role=role,
                password=USER_PASSWORD,
                districts=districts,
            )
            _SESSIONS[username] = access.open_session(
                engine, principal=user, lifetime=timedelta(hours=6)
            )
    finally:
        engine.dispose()
    return _SESSIONS


def sign_in_context(context: BrowserContext, user: str) -> None:
    """Give `context` the cookies of `user`'s session (valid on every local port)."""
    ticket = _SESSIONS[user]
    context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": ticket.token,
                "domain": "127.0.0.1",
                "path": "/",
                "httpOnly": True,
                "sameSite": "Lax",
            },
            {
                "name": CSRF_COOKIE,
                "value": ticket.csrf_token,
                "domain": "127.0.0.1",
                "path": "/",
                "sameSite": "Strict",
            },
        ]
    )


def open_page(
    browser: Browser, viewport: str = "1920x1080", *, user: str | None = "operator"
) -> tuple[Page, ConsoleLog]:
    """A fresh page at a viewport, signed in as `user` (None: nobody), recording console
    errors."""
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    if user is not None:
        sign_in_context(context, user)
    page = context.new_page()
    page.set_default_timeout(20_000)
    log = ConsoleLog()
    page.on("console", log.on_console)
    page.on("pageerror", log.on_page_error)
    return page, log


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, ConsoleLog]]:
    """A 1920×1080 page; the test fails if the page logged errors."""
    page, log = open_page(browser)
    yield page, log
    page.context.close()
    assert log.errors == [], log.errors


def screenshot(page: Page, name: str) -> Path:
    """Save a full-viewport screenshot under artifacts/screenshots (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 0, "height": 0}
    path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path))
    return path


def set_warning_in_form(page, option: str, reason: str) -> None:
    """Choose `option` in a scenario view's warning-level form, give `reason`, submit."""
    page.locator(".os-warn-pick .Select-control").click()
    page.locator(".os-warn-pick .VirtualizedSelectOption", has_text=option).click()
    page.locator("#warn-reason").fill(reason)
    page.locator("#warn-set").click()


# every Leaflet map fitted to its box, no zoom or pan running, no label pass queued, and the
# labels where they were at the last poll: a loaded machine takes longer than any fixed wait
_MAPS_SETTLED_JS = """() => {
  const maps = ((window.onescreen || {}).core || {}).maps || [];
  const busy = maps.some((m) => {
    const box = m.getContainer();
    const size = m.getSize();
    return m._animatingZoom || m._osDeclutter || (m._panAnim && m._panAnim._inProgress)
      || (box.offsetWidth && (size.x !== box.clientWidth || size.y !== box.clientHeight));
  });
  const now = [...document.querySelectorAll('.os-map-label')].map((el) => {
    const r = el.getBoundingClientRect();
    return [r.left, r.top, r.width].map(Math.round).join(',');
  }).join(';');
  const same = !busy && now === window.__osLabelsAt;
  window.__osLabelsAt = busy ? null : now;
  return same;
}"""


def wait_maps_settled(page: Page, *, timeout: float = 20_000) -> None:
    """Until every map has been fitted and its labels set apart, and they stay put."""
    page.evaluate("() => { window.__osLabelsAt = null; }")
    page.wait_for_function(_MAPS_SETTLED_JS, polling=400, timeout=timeout)


def write_readings_now(engine: sa.Engine, *, values: dict[int, float]) -> int:
    """Readings stamped now, a value for each device, on the online path (the seeded city ends
    when the session starts: a test that needs a device reporting makes it report)."""
    with engine.begin() as conn:
        now_us = conn.execute(
            sa.text("SELECT (extract(epoch FROM now()) * 1000000)::bigint")
        ).scalar_one()
        batch = ReadingBatch(
            device_id=np.array(list(values), dtype=np.int64),
            ts_us=np.full(len(values), now_us, dtype=np.int64),
            value=np.array(list(values.values()), dtype=np.float64),
            quality=np.zeros(len(values), dtype=np.int16),
        )
        return insert_readings(conn, batch)


def open_incident(
    engine: sa.Engine,
    *,
    district: str,
    category: str | None = None,
    severity: str = "major",
    title: tuple[str, str] = ("浏览器测试事件", "Browser test incident"),
) -> int:
    """A new open incident in `district` (on a device of `category`, if given) with its opening
    event, as the rules engine makes them."""
    with engine.begin() as conn:
        incident = conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
                " threshold, opened_at, geom)"
                " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
                "   'browser-' || md5(random()::text), :severity, 'open', :zh, :en, 1, 0,"
                "   now() - interval '5 minutes', d.geom"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE d.district_adcode = :district"
                "   AND (CAST(:category AS text) IS NULL OR t.category_code = :category)"
                " ORDER BY random() LIMIT 1 RETURNING id"
            ),
            {
                "district": district,
                "category": category,
                "severity": severity,
                "zh": title[0],
                "en": title[1],
            },
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor, to_status)"
                " SELECT id, opened_at, 'opened', 'rules', 'open' FROM incident WHERE id = :id"
            ),
            {"id": incident},
        )
    return int(incident)
