"""What a shared panel answer is keyed by (pure functions; the sharing itself is tested in
tests/integration/test_production_serving.py)."""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime, timedelta

from dash._utils import to_json
from flask import Flask, g, request

from data.scope import Scope, current_scope, set_scope
from panels.reads import asof_payload
from web.shared_answers import aged, answer_key, carried, first_output, pace_every


def refresh_body(tick: int | None = 7, category: str | None = "flood") -> dict:
    return {
        "output": '..district-tiles.children...{"panel":"district-tiles","type":"os-asof"}.data..',
        "outputs": [{"id": "district-tiles", "property": "children"}],
        "inputs": [
            {"id": "category", "property": "value", "value": category},
            {"id": "street", "property": "data", "value": None},
            {"id": "os-refresh", "property": "n_intervals", "value": tick},
        ],
        "state": [
            {"id": "district-state", "property": "data", "value": {"district": "310115"}},
            {"id": "os-lang", "property": "data", "value": "zh"},
        ],
        "changedPropIds": ["os-refresh.n_intervals"],
    }


def test_the_first_output_names_the_callback():
    assert first_output(refresh_body()["output"]) == "district-tiles.children"
    assert first_output("overview-areas.hideout") == "overview-areas.hideout"
    assert first_output(None) is None and first_output(["x"]) is None and first_output("") is None


def test_browsers_at_different_ticks_share_an_answer():
    assert answer_key(refresh_body(tick=7)) == answer_key(refresh_body(tick=9000))


def test_but_a_first_tick_and_a_later_one_do_not():
    assert answer_key(refresh_body(tick=None)) != answer_key(refresh_body(tick=1))


def test_every_input_state_and_trigger_counts():
    base = answer_key(refresh_body())
    assert answer_key(refresh_body(category="fire")) != base
    other_district = copy.deepcopy(refresh_body())
    other_district["state"][0]["value"] = {"district": "310101"}
    assert answer_key(other_district) != base
    english = copy.deepcopy(refresh_body())
    english["state"][1]["value"] = "en"
    assert answer_key(english) != base
    by_category = copy.deepcopy(refresh_body())
    by_category["changedPropIds"] = ["category.value"]
    assert answer_key(by_category) != base


def test_odd_bodies_still_get_a_key():
    assert answer_key({"output": 3, "inputs": "x", "state": None})
    assert answer_key({}) == answer_key({"changedPropIds": None})


def test_the_shared_answers_are_those_the_panel_definitions_declare():
    from app import create_app
    from panels.place import SHARED_OUTPUTS

    app = create_app()
    app._setup_server()  # Dash collects the pages' callbacks on the first request
    # every page placement of a live panel, and the device layer's URL, answers for everyone
    assert SHARED_OUTPUTS.issuperset(
        {
            "overview-areas.hideout",
            "overview-tiles.children",
            "overview-timeline-box.children",
            "overview-feed.children",
            "district-areas.hideout",
            "district-tiles.children",
            "district-timeline-box.children",
            "district-feed.children",
            "district-markers.data",
            "district-units.data",
            "district-devices.url",
        }
    )
    # a district's incidents and units are the same whichever street (and, for the incidents,
    # category) its viewer picked: those answers do not take them, so every view shares them
    follows = {
        first_output(key): {
            choice
            for item in spec["inputs"]
            for choice in ("category", "street")
            if f'"key":"{choice}"' in str(item["id"])
        }
        for key, spec in app.callback_map.items()
    }
    assert follows["district-markers.data"] == set()
    assert follows["district-units.data"] == {"category"}
    assert follows["district-feed.children"] == {"category", "street"}
    # each names the first output of a callback the app really has
    firsts = {first_output(key) for key in app.callback_map}
    assert firsts >= SHARED_OUTPUTS
    # acting, navigation and display callbacks are never shared
    assert not any(name.startswith(("incidents-", "wall-", "os-url")) for name in SHARED_OUTPUTS)


def answer(*moments: datetime, at: datetime) -> bytes:
    """A Dash answer with one as-of stamp per moment, rendered at `at`, beside look-alikes."""
    from data.cache import Cached

    stamps = {
        f"asof-{n}": {"data": asof_payload(Cached(value=None, as_of=moment), at=at)}
        for n, moment in enumerate(moments)
    }
    table = {"rows": [{"age": "3 分钟", "at": 5}], "figure": {"age": 4}}
    return to_json({"multi": True, "response": {**stamps, "queue": table}}).encode()


def test_an_answer_sent_late_carries_its_stamps_true_ages():
    rendered = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    data = answer(rendered - timedelta(seconds=2), rendered - timedelta(seconds=7.5), at=rendered)
    sent_at = (rendered + timedelta(seconds=6.25)).timestamp() * 1000
    rendered_ms = rendered.timestamp() * 1000
    sent = json.loads(aged(data, now_ms=sent_at, rendered_ms=rendered_ms))["response"]
    assert [sent[f"asof-{n}"]["data"]["age"] for n in range(2)] == [8.25, 13.75]
    # the stamps' instants and clocks stay; nothing that merely looks like an age moves
    before = json.loads(data)["response"]
    assert sent["asof-0"]["data"]["at"] == before["asof-0"]["data"]["at"]
    assert sent["asof-1"]["data"]["clock"] == before["asof-1"]["data"]["clock"]
    assert sent["queue"] == before["queue"]
    # a clock behind the stamp's never makes it younger than it was rendered
    late_clock = aged(data, now_ms=rendered_ms - 60_000, rendered_ms=rendered_ms - 120_000)
    assert json.loads(late_clock)["response"]["asof-1"]["data"]["age"] == 7.5
    # an answer sent as soon as it was rendered is sent as it is
    assert aged(data, now_ms=rendered_ms + 20, rendered_ms=rendered_ms) is data


def test_pages_are_paced_only_where_their_badges_stay_within_the_stale_mark():
    assert pace_every(refresh_s=5, stale_s=15) == 2
    assert pace_every(refresh_s=8, stale_s=30) == 2
    assert pace_every(refresh_s=2, stale_s=5) == 1


def test_a_carried_job_runs_elsewhere_with_its_request_scope_and_signed_in_person():
    app = Flask("carried")
    scope = Scope(districts="310115", actor="manager")
    seen: list = []

    def job() -> None:
        seen.append((request.path, request.get_json(), current_scope()))
        seen.append((g.get("principal"), g.get("inflight")))

    with app.test_request_context("/_dash-update-component", method="POST", json={"x": 1}):
        set_scope(scope)
        g.principal = "the manager"
        g.inflight = ("key", "ticket")  # the request's own: released by its teardown, once
        carried_job = carried(job)
    # the request has ended; the job still sees it, on another thread, with a g of its own
    thread = threading.Thread(target=carried_job)
    thread.start()
    thread.join()
    assert seen == [("/_dash-update-component", {"x": 1}, scope), ("the manager", None)]
