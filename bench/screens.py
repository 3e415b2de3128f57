"""Screenshot tour: every page and every wall shape, in Chinese and English, of a live demo city.

    python -m bench.screens [--out artifacts/screenshots/tour] [--reuse] [--only PREFIX]
        [--database-url URL] [--settle 6]

Seeds the demo city ending now into its own database on the bench cluster
(ONESCREEN_DATA_DIR/bench-pg, database onescreen_screens) unless --reuse finds it seeded; opens
a critical gas-leak incident in 南京东路 (Huangpu, a sliver at city zoom) so the pictures show
one, and a rainstorm's flood alarms in Xuhui that the rules fold into one event; serves it with
the simulator streaming; then photographs, in zh and en:
- the pages (overview, Pudong, Huangpu, incidents, a gas detector, the 404) at 1920×1080,
  2560×1440 and 3840×2160, signed in as an operator, and the incidents page as Pudong's manager;
- the wall at 1920×1080, 2560×1440, 3840×2160, 3840×1080, 5760×1080 and 1080×1920;
- the kiosk at 1920×1080 and 1080×1920.
A picture that times out is reported and the tour goes on. Prints one line per file written.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa
from playwright.sync_api import Browser, sync_playwright

from bench.harness import ROOT, launch_chromium, serving
from bench.wall_soak import open_critical_incident, open_storm, prepare_database
from components.topics import TOPICS
from config import get_settings
from data import access
from data.displays import create_display_token
from data.engine import create_db_engine
from localservers.base import free_port
from web.session import CSRF_COOKIE, SESSION_COOKIE

DATABASE = "onescreen_screens"
PAGE_SIZES = ((1920, 1080), (2560, 1440), (3840, 2160))
WALL_SIZES = ((1920, 1080), (2560, 1440), (3840, 2160), (3840, 1080), (5760, 1080), (1080, 1920))
KIOSK_SIZES = ((1920, 1080), (1080, 1920))
LANGS = ("zh", "en")
PASSWORD = "screen tour passphrase"
WALL_READY = ".os-tile-value"


@dataclass(frozen=True)
class Shot:
    """One picture: a file name stem, a path with its query, a viewport and who looks."""

    name: str
    path: str
    size: tuple[int, int]
    user: str | None = "tour-operator"
    wait: str = ".leaflet-container, .os-incidents, .js-plotly-plot"


def gas_device(engine: sa.Engine) -> int:
    """A gas detector of Huangpu, for the device page."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT d.id FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.category_code = 'gas' AND d.district_adcode = '310101'"
                " ORDER BY d.id LIMIT 1"
            )
        ).scalar_one()


def sessions(engine: sa.Engine) -> dict[str, access.SessionTicket]:
    """An operator and Pudong's manager, each with a session (created if missing)."""
    people = {"tour-operator": ("operator", ()), "tour-pudong": ("district_manager", ("310115",))}
    tickets = {}
    for username, (role, districts) in people.items():
        user = access.find_user(engine, username=username)
        if user is None:
            user = access.create_user(
                engine, username=username, role=role, password=PASSWORD, districts=districts
            )
        tickets[username] = access.open_session(engine, principal=user, lifetime=timedelta(hours=2))
    return tickets


def tour(engine: sa.Engine) -> list[Shot]:
    """Every picture of the tour, in zh and en."""
    wall = create_display_token(engine, kind="wall", label="screen tour wall")
    kiosk = create_display_token(engine, kind="kiosk", label="screen tour kiosk")
    device = gas_device(engine)
    shots: list[Shot] = []
    for lang in LANGS:
        pages = {
            "overview": "/",
            "pudong": "/district/310115",
            "huangpu": "/district/310101",
            "incidents": "/incidents",
            "device": f"/device/{device}",
            # a district's board as the city's duty desk sees it: the reserve it may lend
            "resources": "/resources?topic=flood&district=310115",
            "notfound": "/no-such-page",
        }
        for size in PAGE_SIZES:
            for name, path in pages.items():
                wait = "body" if name == "notfound" else Shot.wait
                query = f"{'&' if '?' in path else '?'}lang={lang}"
                shots.append(Shot(f"{name}-{lang}", f"{path}{query}", size, wait=wait))
        # the six scenario views (专题), at a wall's two commonest page sizes
        for size in (PAGE_SIZES[0], PAGE_SIZES[-1]):
            for topic in TOPICS:
                shots.append(Shot(f"topic-{topic}-{lang}", f"/topic/{topic}?lang={lang}", size))
        manager = Shot(f"incidents-manager-{lang}", f"/incidents?lang={lang}", (3840, 2160))
        shots.append(Shot(manager.name, manager.path, manager.size, "tour-pudong"))
        wall_query = urlencode({"token": wall, "views": "city", "lang": lang})
        for size in WALL_SIZES:
            shots.append(Shot(f"wall-{lang}", f"/wall?{wall_query}", size, None, WALL_READY))
        topic_query = urlencode({"token": wall, "views": "topic:flood", "lang": lang})
        for size in (WALL_SIZES[0], WALL_SIZES[-2]):
            shots.append(Shot(f"wall-topic-{lang}", f"/wall?{topic_query}", size, None, WALL_READY))
        kiosk_query = urlencode({"token": kiosk, "views": "city", "lang": lang})
        for size in KIOSK_SIZES:
            shots.append(Shot(f"kiosk-{lang}", f"/kiosk?{kiosk_query}", size, None, WALL_READY))
    return shots


def take(browser: Browser, base: str, shot: Shot, tickets: dict, *, out: Path, settle_s: float):
    """Photograph one shot into `out`; returns the file written."""
    width, height = shot.size
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    try:
        if shot.user is not None:
            ticket = tickets[shot.user]
            context.add_cookies(
                [
                    {"name": SESSION_COOKIE, "value": ticket.token, "url": base},
                    {"name": CSRF_COOKIE, "value": ticket.csrf_token, "url": base},
                ]
            )
        page = context.new_page()
        page.goto(base + shot.path, wait_until="networkidle", timeout=60_000)
        page.locator(shot.wait).first.wait_for(timeout=30_000)
        page.wait_for_timeout(settle_s * 1000)  # live panels, map tiles and fits settle
        path = out / f"{shot.name}-{width}x{height}.png"
        page.screenshot(path=str(path))
        return path
    finally:
        context.close()


def main() -> int:
    """Take the tour; exit 1 if any picture failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="artifacts/screenshots/tour", help="folder for the files")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--database-url", help="use this database instead of the bench cluster")
    parser.add_argument("--only", default="", help="only shots whose name starts with this")
    parser.add_argument("--settle", type=float, default=6, help="seconds to wait before a shot")
    args = parser.parse_args()
    if args.settle < 0 or args.settle > 120:
        parser.error("--settle must be between 0 and 120 seconds")
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    url = prepare_database(scale="demo", reuse=args.reuse, database_url=args.database_url)
    engine = create_db_engine(url)
    open_critical_incident(engine, district="310101")
    # a rainstorm in Xuhui that the rules fold into one event (the feed's and wall's event line)
    open_storm(engine, district="310104")
    tickets = sessions(engine)
    shots = [shot for shot in tour(engine) if shot.name.startswith(args.only)]
    env = {
        "DATABASE_URL": url,
        "ONESCREEN_MQTT_CLIENT_ID": f"screens-{free_port()}",
        "ONESCREEN_LOG_LEVEL": "WARNING",
        "ONESCREEN_SIMULATE": "true",
    }
    failed = 0
    log_path = get_settings().data_dir / "bench-screens-serve.log"
    with serving(env, log_path=log_path) as base, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for shot in shots:
            started = time.perf_counter()
            try:
                path = take(browser, base, shot, tickets, out=out, settle_s=args.settle)
                took = time.perf_counter() - started
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                print(f"{shown}  {took:.1f} s", flush=True)
            except Exception as error:  # a timed-out picture: say so and go on with the tour
                failed += 1
                print(f"FAILED {shot.name} {shot.size}: {str(error).splitlines()[0]}", flush=True)
        browser.close()
    engine.dispose()
    print(f"{len(shots) - failed} of {len(shots)} pictures in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
