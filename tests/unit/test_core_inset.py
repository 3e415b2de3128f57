"""The 中心城区 inset: which labels it carries, and when it shows."""

from __future__ import annotations

from components.choropleth import CORE_DISTRICTS, choropleth
from components.core_inset import inset_class
from tests.unit.test_dashboard_builders import area


def test_the_seven_central_districts_are_labelled_for_the_inset_and_no_other():
    codes = [*CORE_DISTRICTS, "310112", "310115", "310151"]
    result = choropleth(
        [area(code, area_km2=60.6 if code == "310110" else 500.0) for code in codes],
        metric="open_incidents",
        lang="zh",
        drill=False,
    )
    core = {f["properties"]["code"] for f in result.labels["features"] if f["properties"]["core"]}
    assert core == set(CORE_DISTRICTS)
    # every label keeps its figure: none is reduced to a bare name any more
    assert all(f["properties"]["value"] for f in result.labels["features"])


def test_the_inset_shows_only_over_the_citys_districts():
    city = choropleth(
        [area(code) for code in CORE_DISTRICTS], metric="open_incidents", lang="en", drill=False
    )
    assert inset_class(city.labels) == "os-core-inset"
    streets = choropleth(
        [area("310101001")], metric="open_incidents", lang="en", drill=False, with_labels=False
    )
    assert "os-core-inset-off" in inset_class(streets.labels)
    assert "os-core-inset-off" in inset_class(None)
