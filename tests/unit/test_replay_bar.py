"""The replay bar's parsing and drawing: an instant from the URL (Beijing time unless it says
otherwise, whole seconds), live for the future, refusals for what is not an instant; the bar
says REPLAY only while it replays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from components import ids
from components.replay import (
    SLIDER_MINUTES,
    ReplayLoop,
    page_replay,
    replay_at,
    replay_bar,
    replay_loop,
    stamp,
)
from data.checks import InvalidQuery
from data.clock import CITY_TZ

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=CITY_TZ)


def test_an_instant_is_read_in_beijing_time_to_the_second():
    assert replay_at("2026-12-04T13:05", now=NOW) == datetime(2026, 12, 4, 13, 5, tzinfo=CITY_TZ)
    assert replay_at("2026-12-04 05:05:07.9Z", now=NOW) == datetime(
        2026, 12, 4, 5, 5, 7, tzinfo=UTC
    )
    assert stamp(replay_at("2026-12-04T05:05:07Z", now=NOW)) == "2026-12-04T13:05:07"


@pytest.mark.parametrize("raw", [None, "", "2026-12-04T20:00", "2030-01-01T00:00"])
def test_nothing_asked_or_not_yet_past_is_live(raw):
    assert replay_at(raw, now=NOW) is None


@pytest.mark.parametrize(
    "raw", ["yesterday", "2026-02-30T00:00", "1999-12-31T23:00", 20261204, "9" * 41, ["x"]]
)
def test_what_is_not_an_instant_is_refused(raw):
    with pytest.raises(InvalidQuery):
        replay_at(raw, now=NOW)


def test_the_bar_says_replay_only_while_replaying():
    live = replay_bar(lang="zh", at=None, now=NOW)
    past = replay_bar(lang="en", at=NOW - timedelta(hours=2), now=NOW)
    assert "os-replaying" not in live.className and "os-replaying" in past.className
    stores = [(c.id, c.data) for c in past.children if c.__class__.__name__ == "Store"]
    assert stores == [(ids.REPLAY_AT, "2026-12-04T18:00:00"), (ids.REPLAY_SPEED, 0)]
    slider = next(c for c in past.children if getattr(c, "className", "") == "os-replay-slider")
    assert slider.children.value == -120 and slider.children.min == -SLIDER_MINUTES


def test_an_unreadable_url_time_is_said_and_the_page_stays_live():
    at, bar = page_replay("not-a-time", lang="en")
    note = next(c for c in bar.children if getattr(c, "id", None) == ids.REPLAY_NOTE)
    assert at is None and "Not a time" in note.children and "os-replaying" not in bar.className


def test_a_display_loops_over_a_window_of_the_past():
    loop = replay_loop("2026-12-03T20:00/2026-12-04T02:00", "60", now=NOW)
    assert loop == ReplayLoop(
        start=datetime(2026, 12, 3, 20, tzinfo=CITY_TZ),
        end=datetime(2026, 12, 4, 2, tzinfo=CITY_TZ),
        speed=60,
    )
    # one wall-clock second is a minute of the window; six hours of it take six minutes
    first = loop.instant(NOW)
    assert loop.instant(NOW + timedelta(seconds=1)) - first == timedelta(minutes=1)
    assert loop.instant(NOW + timedelta(minutes=6)) == first
    assert loop.start <= first < loop.end
    assert replay_loop(None, None, now=NOW) is None
    assert replay_loop("2026-12-04T10:00/2026-12-04T11:00", None, now=NOW).speed == 60


@pytest.mark.parametrize(
    ("window", "speed"),
    [
        ("2026-12-04T10:00", None),  # one time
        ("2026-12-04T10:00/2026-12-04T21:00", None),  # not over yet
        ("2026-12-04T10:00/2026-12-04T10:02", None),  # too short
        ("2026-11-01T10:00/2026-12-04T10:00", None),  # too long
        ("2026-12-04T10:00/2026-12-04T11:00", "7"),  # another speed
        ("2026-12-04T10:00/2026-12-04T11:00", "60; drop"),
        ("x/y", None),
    ],
)
def test_a_loop_that_is_not_one_is_refused(window, speed):
    with pytest.raises(InvalidQuery):
        replay_loop(window, speed, now=NOW)


def test_a_replayed_timeline_marks_its_instant_not_now():
    import pandas as pd

    from components.timeline import timeline_figure

    frame = pd.DataFrame(columns=["bucket", "severity", "category", "incidents"])
    end = datetime(2026, 12, 4, 13, 5, tzinfo=CITY_TZ)
    texts = {
        replay: [
            a["text"]
            for a in timeline_figure(
                frame,
                stack="severity",
                lang="en",
                start=end - timedelta(hours=24),
                end=end,
                categories={},
                ahead_end=end + timedelta(hours=3),
                replay=replay,
            )["layout"]["annotations"]
        ]
        for replay in (False, True)
    }
    assert "now" in texts[False] and "replay 13:05" in texts[True]
