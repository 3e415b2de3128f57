"""Who a display is: its token's grant (re-checked on every answer), the view it may show, the
build it runs (a new one makes open displays reload)."""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from dash.exceptions import PreventUpdate

from components import reference
from components.replay import replay_loop
from components.topics import TOPICS
from config import PROJECT_ROOT
from data.checks import InvalidQuery
from data.clock import CITY_TZ
from data.displays import DisplayGrant, find_display_grant
from data.errors import READ_ERRORS, report_failure
from data.scope import CITY, Scope, set_scope
from panels.base import View
from panels.reads import read

log = logging.getLogger(__name__)


@functools.cache
def app_version() -> str:
    """The build this server process runs; a new one after a restart makes open displays reload."""
    digest = hashlib.sha1(usedforsecurity=False)
    for folder in ("assets", "components", "panels", "displays", "pages", "web"):
        for path in sorted((PROJECT_ROOT / folder).glob("*.*")):
            if path.suffix in (".py", ".js", ".css"):
                digest.update(path.name.encode())
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


def grant_for(token: object) -> DisplayGrant | None:
    """The display grant of `token` (re-read at most every second), None if not a valid one."""
    if not isinstance(token, str) or not 8 <= len(token) <= 200:
        return None
    grant = read(find_display_grant, token=token).value
    if grant is not None:
        # a display reads what its token covers, whoever's browser it runs in; read-only
        set_scope(Scope(districts=grant.district or CITY))
    return grant


def checked(config: object) -> tuple[DisplayGrant, str, bool]:
    """Grant, language and masking of a display callback; PreventUpdate when not allowed."""
    if not isinstance(config, dict):
        raise PreventUpdate
    try:
        grant = grant_for(config.get("token"))
    except READ_ERRORS as exc:
        # the store is away: the panels keep what they show and turn stale, nothing is blanked
        report_failure(log, "display: token check failed", exc)
        raise PreventUpdate from None
    if grant is None:
        raise PreventUpdate
    lang = "en" if config.get("lang") == "en" else "zh"
    # a kiosk token always gets kiosk data, whatever the page claims to be
    masked = grant.kind == "kiosk" or config.get("mode") == "kiosk"
    return grant, lang, masked


def view_of(raw: object, grant: DisplayGrant) -> View:
    """A view from the browser, checked against the allow-lists and the token's district."""
    if not isinstance(raw, dict):
        raise PreventUpdate
    district, street, category = raw.get("district"), raw.get("street"), raw.get("category")
    if not all(value is None or isinstance(value, str) for value in (district, street, category)):
        raise PreventUpdate
    if district is not None and district not in reference.districts():
        raise PreventUpdate
    if street is not None and (district is None or street not in reference.streets(district)):
        raise PreventUpdate
    if category is not None and category not in reference.categories():
        raise PreventUpdate
    if grant.district is not None and district != grant.district:
        raise PreventUpdate
    topic = raw.get("topic") is True
    if topic and category not in TOPICS:
        raise PreventUpdate
    return View(district=district, street=street, category=category, topic=topic)


def focus_of(raw: object) -> dict | None:
    """The incident a slot's view draws attention to, if it is a plausible one of ours."""
    focus = raw.get("focus") if isinstance(raw, dict) else None
    if not isinstance(focus, dict):
        return None
    try:
        incident, lon, lat = int(focus["id"]), float(focus["lon"]), float(focus["lat"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    # a marker only where Shanghai is: anything else is not an incident of ours
    if not (120.0 <= lon <= 123.0 and 30.0 <= lat <= 32.5) or incident <= 0:
        return None
    severity = focus.get("severity")
    return {
        "id": incident,
        "lon": lon,
        "lat": lat,
        "severity": severity if severity in ("critical", "major", "minor") else "critical",
        # a 预警 is drawn apart from an alarm (an alarm unless it says so)
        "kind": "forecast" if focus.get("kind") == "forecast" else "alarm",
    }


def replay_instant(config: object) -> datetime | None:
    """The instant a replaying display shows now (None: it shows now); a forged loop is
    refused (PreventUpdate)."""
    raw = config.get("replay") if isinstance(config, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PreventUpdate
    window = f"{raw.get('from')}/{raw.get('to')}"
    now = datetime.now(CITY_TZ)
    try:
        loop = replay_loop(window, raw.get("speed"), now=now)
    except InvalidQuery:
        raise PreventUpdate from None
    return None if loop is None else loop.instant(now)


def replayed(view: View, config: object) -> View:
    """`view` at the instant its display replays (unchanged when it shows now)."""
    return replace(view, at=replay_instant(config))
