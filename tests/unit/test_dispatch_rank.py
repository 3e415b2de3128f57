"""Which units to suggest, as a pure function: fastest first, a local unit nearly as fast ahead."""

from __future__ import annotations

from typing import Any

from data.dispatch import PREFER_LOCAL_RATIO, PREFER_LOCAL_S, rank

HOME = "310115"


def _candidate(
    code: str, eta_s: float, *, district: str | None = "310101", lent_to: str | None = None
) -> dict[str, Any]:
    return {
        "id": abs(hash(code)) % 10**9 + 1,
        "code": code,
        "name_zh": f"{code} 号",
        "name_en": code,
        "kind_code": "flood_crew",
        "kind_zh": "防汛抢险队",
        "kind_en": "Flood crew",
        "district_adcode": district,
        "lent_to": lent_to,
        "lon": 121.5,
        "lat": 31.2,
        "metres": eta_s * 3,
        "eta_s": eta_s,
    }


def _codes(candidates: list[dict[str, Any]], k: int = 5) -> list[str]:
    return [s.code for s in rank(candidates, district=HOME, k=k)]


def test_no_candidates_no_suggestions():
    assert rank([], district=HOME, k=5) == []


def test_fastest_first_ties_by_code_and_at_most_k():
    candidates = [_candidate(c, eta) for c, eta in [("B", 300), ("A", 300), ("C", 100), ("D", 900)]]
    assert _codes(candidates, k=3) == ["C", "A", "B"]
    suggestions = rank(candidates, district=HOME, k=3)
    assert [s.fastest for s in suggestions] == [True, False, False]
    assert not any(s.local for s in suggestions)


def test_a_local_unit_within_the_slack_goes_first_and_the_fastest_stays_marked():
    candidates = [
        _candidate("OUT-1", 400),
        _candidate("OUT-2", 450),
        _candidate("LOCAL", 400 + PREFER_LOCAL_S, district=HOME),
    ]
    suggestions = rank(candidates, district=HOME, k=5)
    assert [s.code for s in suggestions] == ["LOCAL", "OUT-1", "OUT-2"]
    assert [(s.local, s.fastest) for s in suggestions] == [
        (True, False),
        (False, True),
        (False, False),
    ]


def test_a_local_unit_beyond_the_slack_keeps_its_place():
    candidates = [
        _candidate("OUT-1", 400),
        _candidate("LOCAL", 400 + PREFER_LOCAL_S + 1, district=HOME),
        _candidate("OUT-2", 500),
    ]
    assert _codes(candidates) == ["OUT-1", "OUT-2", "LOCAL"]


def test_on_a_long_trip_the_slack_is_a_share_of_the_fastest():
    best = 3000.0
    slack = best * PREFER_LOCAL_RATIO
    assert slack > PREFER_LOCAL_S
    near = [_candidate("OUT", best), _candidate("LOCAL", best + slack - 1, district=HOME)]
    far = [_candidate("OUT", best), _candidate("LOCAL", best + slack + 1, district=HOME)]
    assert _codes(near) == ["LOCAL", "OUT"]
    assert _codes(far) == ["OUT", "LOCAL"]


def test_a_city_unit_lent_to_the_district_counts_as_local():
    candidates = [_candidate("OUT", 200), _candidate("LENT", 250, district=None, lent_to=HOME)]
    suggestions = rank(candidates, district=HOME, k=5)
    assert [(s.code, s.local) for s in suggestions] == [("LENT", True), ("OUT", False)]


def test_only_the_fastest_close_local_unit_moves_ahead():
    candidates = [
        _candidate("OUT-1", 100),
        _candidate("LOCAL-B", 180, district=HOME),
        _candidate("OUT-2", 150),
        _candidate("LOCAL-A", 170, district=HOME),
    ]
    assert _codes(candidates) == ["LOCAL-A", "OUT-1", "OUT-2", "LOCAL-B"]


def test_a_local_unit_already_fastest_is_first_once():
    candidates = [_candidate("LOCAL", 100, district=HOME), _candidate("OUT", 110)]
    suggestions = rank(candidates, district=HOME, k=5)
    assert [(s.code, s.local, s.fastest) for s in suggestions] == [
        ("LOCAL", True, True),
        ("OUT", False, False),
    ]


def test_the_moved_local_unit_is_kept_when_k_cuts_the_list():
    candidates = [_candidate(f"OUT-{n}", 100 + n) for n in range(5)]
    candidates.append(_candidate("LOCAL", 200, district=HOME))
    assert _codes(candidates, k=2) == ["LOCAL", "OUT-0"]


def test_suggestions_carry_the_candidates_numbers():
    (suggestion,) = rank([_candidate("A", 321.5)], district=HOME, k=1)
    assert (suggestion.eta_s, suggestion.metres, suggestion.kind_code) == (
        321.5,
        964.5,
        "flood_crew",
    )
    assert isinstance(suggestion.resource_id, int) and isinstance(suggestion.lon, float)
