"""回放 through the web with forged requests: the panels of a page read the instant its store
holds (and refuse one that is not an instant without a trace), the bar's callback says what it
could not read, a past instant is never a stranger's district, and a replayed district map's
device clusters are the grid counters as they stood."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from components import ids
from data.clock import CITY_TZ, database_now
from tests.dash_client import client_for, post_callback, sign_in

PUDONG = "310115"
XUHUI = "310104"


def _tiles(live_app, session, *, at: object, district: str | None = None):
    """The overview's (or a district page's) tiles callback, with `at` in the replay store."""
    page = "overview" if district is None else "district"

    def value_of(ident, prop):
        if ident == ids.REPLAY_AT:
            return at
        if ident == ids.DISTRICT_STATE:
            return {"district": district}
        return {"os-lang": "en"}.get(ident if isinstance(ident, str) else "", None)

    return post_callback(live_app, f"{page}-tiles.children", value_of, session=session)


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_a_past_instant_is_read_and_said(live_app, live_owner):
    operator = sign_in(live_owner, role="operator")
    past = (database_now(live_owner) - timedelta(hours=2)).astimezone(CITY_TZ)
    response = _tiles(live_app, operator, at=past.strftime("%Y-%m-%dT%H:%M:%S"))
    assert response.status_code == 200, _text(response)
    live = _tiles(live_app, operator, at=None)
    assert live.status_code == 200
    then, now = (r.json["response"]["overview-tiles"]["children"] for r in (response, live))
    assert then != now


@pytest.mark.parametrize(
    "forged",
    [
        "yesterday",
        "2026-13-40T99:00",
        "x" * 500,
        12345,
        ["2026-12-01T00:00"],
        {"at": 1},
        "1999-01-01",
    ],
)
def test_a_forged_instant_is_refused_without_a_trace(live_app, live_owner, forged):
    operator = sign_in(live_owner, role="operator")
    response = _tiles(live_app, operator, at=forged)
    assert response.status_code == 204, _text(response)
    assert "Traceback" not in _text(response)


def test_a_future_instant_is_live(live_app, live_owner):
    operator = sign_in(live_owner, role="operator")
    later = (datetime.now(CITY_TZ) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    replayed, live = (_tiles(live_app, operator, at=at).json["response"] for at in (later, None))
    assert replayed["overview-tiles"] == live["overview-tiles"]


def test_a_district_manager_cannot_replay_another_district(live_app, live_owner):
    manager = sign_in(live_owner, role="district_manager", districts=(PUDONG,))
    past = (datetime.now(CITY_TZ) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    mine = _tiles(live_app, manager, at=past, district=PUDONG)
    assert mine.status_code == 200, _text(mine)
    theirs = _tiles(live_app, manager, at=past, district=XUHUI)
    assert theirs.status_code == 204, _text(theirs)


def _choose(live_app, session, *, trigger: str, back: object = 0, typed: object = None):
    """The bar's callback as the browser posts it when the slider or the typed time changed."""
    values = {
        (ids.REPLAY_SLIDER, "value"): back,
        (ids.REPLAY_INPUT, "value"): typed,
        (ids.LANG, "data"): "en",
    }
    return post_callback(
        live_app,
        f"{ids.REPLAY_NOTE}.children",
        lambda ident, prop: values.get((ident, prop)),
        session=session,
        changed=f"{trigger}.value",
    )


def test_the_bar_says_what_it_could_not_read(live_app, live_owner):
    operator = sign_in(live_owner, role="operator")
    typed = _choose(live_app, operator, trigger=ids.REPLAY_INPUT, typed="next tuesday")
    assert typed.status_code == 200, _text(typed)
    assert "Not a time" in _text(typed)
    slid = _choose(live_app, operator, trigger=ids.REPLAY_SLIDER, back=-(10**9))
    assert "Not a time" in _text(slid)
    good = _choose(live_app, operator, trigger=ids.REPLAY_SLIDER, back=-90)
    assert good.status_code == 200
    body = good.json["response"]
    store = json.dumps(ids.REPLAY_AT, sort_keys=True, separators=(",", ":"))
    at = datetime.fromisoformat(body[store]["data"]).replace(tzinfo=CITY_TZ)
    assert abs((datetime.now(CITY_TZ) - at) - timedelta(minutes=90)) < timedelta(minutes=1)


def test_a_replayed_district_map_clusters_the_counters_then(live_app, live_owner):
    operator = sign_in(live_owner, role="operator")
    client = client_for(live_app, operator)
    live = client.get(f"/geo/district/{PUDONG}/devices.json?zoom=11")
    at = database_now(live_owner) - timedelta(minutes=20)
    stamp = at.astimezone(CITY_TZ).strftime("%Y-%m-%dT%H:%M:%S")
    replay = client.get(f"/geo/district/{PUDONG}/devices.json?zoom=16&at={stamp}")
    assert live.status_code == replay.status_code == 200
    features = replay.json["features"]
    # past devices are clusters at every zoom (counts by cell, not devices) …
    assert features and all(f["properties"]["cluster"] for f in features)
    # … adding up to the district's cells then
    with live_owner.connect() as conn:
        then = conn.execute(
            sa.text(
                "SELECT coalesce(sum(devices_total), 0), coalesce(sum(devices_alarm), 0)"
                " FROM cell_status_at(:at, :d)"
            ),
            {"at": at, "d": PUDONG},
        ).one()
    assert sum(f["properties"]["n"] for f in features) == then[0] > 0
    assert sum(f["properties"]["c"][0] for f in features) == then[1]
    # a time that is not one is refused plainly; another district's past is not shown
    bad = client.get(f"/geo/district/{PUDONG}/devices.json?zoom=11&at=yesterday")
    assert bad.status_code == 400 and "Traceback" not in bad.get_data(as_text=True)
    manager = client_for(live_app, sign_in(live_owner, role="district_manager", districts=(XUHUI,)))
    assert manager.get(f"/geo/district/{PUDONG}/devices.json?zoom=11&at={stamp}").status_code == 403
