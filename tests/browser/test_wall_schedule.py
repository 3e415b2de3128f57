"""The wall's schedule (`window.onescreen.wall.step`, a pure function) run in Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import open_page

VIEWS = [
    {"district": None, "street": None, "category": None, "key": "city"},
    {"district": "310115", "street": None, "category": None, "key": "310115"},
    {"district": "310104", "street": None, "category": None, "key": "310104"},
]
SECOND = 1000
BASE = {
    "views": VIEWS,
    "mode": "wall",
    "intervalMs": 30 * SECOND,
    "attentionMs": 20 * SECOND,
    "idleMs": 60 * SECOND,
    "alerts": [],
    "statuses": {},
    "lastTouch": None,
    "goto": None,
    "revoked": False,
}
INCIDENT = {"id": 7, "district": "310101", "street": "310101002", "lon": 121.48, "lat": 31.23}


@pytest.fixture(scope="module")
def schedule(live_server, browser) -> Iterator[Page]:
    """A page with the wall script loaded (every page carries the assets)."""
    page, _log = open_page(browser)
    page.goto(live_server + "/")
    page.wait_for_function("() => window.onescreen && window.onescreen.wall")
    yield page
    page.context.close()


class Run:
    """Feeds inputs to `step` one call at a time, as the 1 s clock does."""

    def __init__(self, page: Page, views: list[dict] = VIEWS, **inputs: object) -> None:
        self.page = page
        self.inputs = {**BASE, "views": views, **inputs}
        self.state = page.evaluate(
            "([views]) => window.onescreen.wall.initialState(views, 0)", [views]
        )

    def step(self, now_s: float, *, ready: tuple[bool, bool] = (True, True), **inputs) -> dict:
        payload = {
            **self.inputs,
            **inputs,
            "now": now_s * SECOND,
            "ready": {"a": ready[0], "b": ready[1]},
        }
        self.state = self.page.evaluate(
            "([s, inp]) => window.onescreen.wall.step(s, inp)", [self.state, payload]
        )
        return self.state

    @property
    def shown(self) -> str:
        return self.state["slots"][self.state["active"]]["key"]

    @property
    def hidden(self) -> str:
        other = "b" if self.state["active"] == "a" else "a"
        return self.state["slots"][other]["key"]


def test_a_view_is_shown_for_its_interval_and_only_once_ready(schedule):
    run = Run(schedule)
    assert (run.shown, run.hidden) == ("city", "310115")
    run.step(10)
    assert run.shown == "city"  # not yet its time
    run.step(31, ready=(True, False))
    assert run.shown == "city"  # its time, but the next view is still loading
    run.step(33)
    assert run.shown == "310115" and run.state["idx"] == 1 and run.state["flips"] == 1
    run.step(34)
    assert run.hidden == "310104"  # the freed slot starts loading the one after
    run.step(64)
    run.step(65)
    assert run.shown == "310104"
    run.step(66)
    run.step(96)
    assert run.shown == "city" and run.state["idx"] == 0  # and round again


def test_a_single_view_playlist_never_switches(schedule):
    run = Run(schedule, views=VIEWS[:1])
    for second in range(0, 200, 7):
        run.step(second)
    assert run.state["flips"] == 0 and run.shown == "city"


def test_a_critical_incident_interrupts_then_the_interrupted_view_resumes(schedule):
    run = Run(schedule)
    run.step(1)
    run.step(31)
    assert run.shown == "310115"
    run.step(40, alerts=[INCIDENT])
    assert run.hidden == "focus:7" and run.shown == "310115"  # loading the incident's street
    run.step(41, ready=(False, False))
    assert run.state["phase"] == "rotate"  # never shown before its map is there
    run.step(42)
    assert run.shown == "focus:7" and run.state["phase"] == "attention"
    assert run.state["attention"]["until"] == 62 * SECOND
    run.step(43, alerts=[INCIDENT])  # the same incident reported again is not queued twice
    assert run.state["queue"] == []
    assert run.hidden == "310115"  # preparing the way back
    run.step(61)
    assert run.state["phase"] == "attention"
    run.step(62)
    assert run.state["phase"] == "rotate" and run.shown == "310115" and run.state["idx"] == 1
    # reopened later, the server reports it again: it is news again
    run.step(90, alerts=[INCIDENT])
    run.step(91)
    assert run.state["phase"] == "attention" and run.state["attentions"] == 2


def test_an_acknowledged_incident_gives_the_screen_back_early(schedule):
    run = Run(schedule)
    run.step(1, alerts=[INCIDENT])
    run.step(2)
    assert run.state["phase"] == "attention"
    run.step(3, statuses={"7": "open"})
    assert run.state["phase"] == "attention"
    run.step(5, statuses={"7": "acknowledged"})
    assert run.state["phase"] == "rotate" and run.shown == "city"


def test_a_storm_of_incidents_is_bounded(schedule):
    run = Run(schedule)
    storm = [{**INCIDENT, "id": i} for i in range(100, 110)]
    run.step(1, alerts=storm)
    # the three newest wait their turn, the other seven are counted for the card
    assert [i["id"] for i in run.state["queue"]] == [107, 108, 109]
    assert run.state["overflow"] == 7
    shown = []
    second = 2
    while run.state["attentions"] < 3 or run.state["phase"] == "attention":
        run.step(second)
        if run.state["phase"] == "attention":
            shown.append(run.state["attention"]["incident"]["id"])
        second += 1
        assert second < 200
    assert sorted(set(shown)) == [107, 108, 109]
    end = second
    # then the rotation has the screen for at least one alert's length before the next
    run.step(end + 1, alerts=[{**INCIDENT, "id": 200}])
    run.step(end + 2)
    assert run.state["phase"] == "rotate"
    run.step(end + 21)
    run.step(end + 22)
    assert run.state["phase"] == "attention"


def test_an_event_takes_the_wall_once_however_many_of_its_criticals_come(schedule):
    run = Run(schedule)
    storm = [{**INCIDENT, "id": i, "group": 5} for i in range(300, 340)]
    run.step(1, alerts=storm)
    assert [i["id"] for i in run.state["queue"]] == [300]  # one event, one attention
    # criticals that opened before the rules grouped them fold in once the wall learns it
    run.step(2)
    assert run.state["phase"] == "attention" and run.state["attention"]["incident"]["id"] == 300
    ungrouped = [{**INCIDENT, "id": i} for i in (400, 401, 402)]
    run.step(3, alerts=ungrouped)
    assert len(run.state["queue"]) == 3
    run.step(4, groups={"400": 5, "401": 5, "402": 6})
    assert [i["id"] for i in run.state["queue"]] == [402]  # event 6 is news; event 5 is shown
    second, shown = 5, [300]
    while second < 120:
        run.step(second)
        incident = (run.state.get("attention") or {}).get("incident") or {}
        if run.state["phase"] == "attention" and incident.get("id") != shown[-1]:
            shown.append(incident["id"])
        second += 1
    assert shown == [300, 402]
    # later criticals of an event already shown wait no more
    run.step(130, alerts=[{**INCIDENT, "id": 500, "group": 5}])
    assert run.state["queue"] == []


def test_the_kiosk_follows_touch_then_returns_to_its_loop(schedule):
    run = Run(schedule, mode="kiosk")
    xuhui = {"district": "310104", "street": None, "category": None, "key": "310104"}
    run.step(1)
    assert run.state["phase"] == "rotate"
    run.step(5, lastTouch=4500, goto=xuhui)
    assert run.state["phase"] == "explore" and run.hidden == "310104"
    run.step(6, lastTouch=4500)
    assert run.shown == "310104"
    run.step(50, lastTouch=4500)
    assert run.state["phase"] == "explore" and run.shown == "310104"  # no rotation meanwhile
    run.step(65, lastTouch=4500)  # a minute without a touch
    assert run.state["phase"] == "rotate" and run.hidden == "city"
    run.step(66, lastTouch=4500)
    assert run.shown == "city" and run.state["returning"] is False
    # kiosks never interrupt for incidents
    run.step(67, lastTouch=4500, alerts=[INCIDENT])
    assert run.state["queue"] == [] and run.state["phase"] == "rotate"


def test_a_revoked_token_stops_the_schedule(schedule):
    run = Run(schedule)
    run.step(1, revoked=True)
    assert run.state["revoked"] is True
