"""Server-side clustering of device points (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from web.device_layer import (
    DEVICE_ZOOM,
    MAX_POINTS,
    clamp_zoom,
    cluster_features,
    devices_url,
    parse_bbox,
)


@pytest.fixture
def devices() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 20_000
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "lon": 121.5 + rng.random(n) * 0.3,
            "lat": 31.1 + rng.random(n) * 0.2,
            "s": rng.choice([0, 1, 2, 3, 4], size=n, p=[0.001, 0.004, 0.02, 0.005, 0.97]),
        }
    )


def test_clusters_account_for_every_device_and_keep_the_worst_state(devices):
    for zoom in (9, 11, 13):
        features = cluster_features(devices, zoom=zoom, bbox=None)["features"]
        counted = sum(f["properties"].get("n", 1) for f in features)
        assert counted == len(devices)
        worst = min(f["properties"]["s"] for f in features)
        assert worst == devices["s"].min()
    coarse = cluster_features(devices, zoom=9, bbox=None)["features"]
    fine = cluster_features(devices, zoom=13, bbox=None)["features"]
    assert len(coarse) < len(fine) <= 2000


def test_views_are_clustered_inside_their_box_only(devices):
    bbox = (121.55, 31.15, 121.65, 31.20)
    features = cluster_features(devices, zoom=13, bbox=bbox)["features"]
    inside = devices["lon"].between(121.55, 121.65) & devices["lat"].between(31.15, 31.20)
    assert sum(f["properties"].get("n", 1) for f in features) == int(inside.sum())


def test_zoomed_in_views_get_single_devices_inside_the_box(devices):
    bbox = (121.55, 31.15, 121.60, 31.18)
    features = cluster_features(devices, zoom=DEVICE_ZOOM, bbox=bbox)["features"]
    inside = devices[devices["lon"].between(121.55, 121.60) & devices["lat"].between(31.15, 31.18)]
    assert len(features) == min(len(inside), MAX_POINTS)
    assert all(not f["properties"]["cluster"] for f in features)
    ids = {f["properties"]["id"] for f in features}
    assert ids <= set(inside["id"])


def test_bad_view_parameters_are_rejected_or_clamped():
    assert clamp_zoom("abc") == 10 and clamp_zoom(99) == 19 and clamp_zoom(3) == 8
    assert clamp_zoom(float("nan")) == 10 and clamp_zoom(12.75) == 12
    assert parse_bbox(None) is None
    for bad in ("1,2,3", "121.6,31,121.5,31.2", "0,0,1,1", "a,b,c,d"):
        with pytest.raises(ValueError):
            parse_bbox(bad)
    url = devices_url(
        district="310115", category="gas", zoom=16, bounds=[[31.1, 121.5], [31.2, 121.6]], version=5
    )
    assert url == (
        "/geo/district/310115/devices.json?zoom=16&bbox=121.50%2C31.10%2C121.60%2C31.20"
        "&category=gas&v=5"
    )
    # below the view zoom the whole district is clustered: no box in the URL
    whole = devices_url(
        district="310115", category=None, zoom=11, bounds=[[31.1, 121.5], [31.2, 121.6]]
    )
    assert "bbox" not in whole


def test_clusters_carry_the_count_of_each_state(devices):
    """Each cluster's per-state counts add up to its size and, over the view, to the frame's."""
    from components.theme import STATE_RANK

    for zoom in (9, 12):
        features = cluster_features(devices, zoom=zoom, bbox=None)["features"]
        clusters = [f["properties"] for f in features if f["properties"]["cluster"]]
        assert clusters
        totals = [0] * len(STATE_RANK)
        for p in clusters:
            assert len(p["c"]) == len(STATE_RANK) and sum(p["c"]) == p["n"]
            # the worst state is the first with a device in it
            assert p["s"] == next(rank for rank, n in enumerate(p["c"]) if n)
            totals = [a + b for a, b in zip(totals, p["c"], strict=True)]
        singles = [f["properties"]["s"] for f in features if not f["properties"]["cluster"]]
        for s in singles:
            totals[s] += 1
        expected = devices["s"].value_counts()
        assert totals == [int(expected.get(rank, 0)) for rank in range(len(STATE_RANK))]


def test_cells_cluster_by_their_counts_at_their_weighted_centre():
    """Frames of counts by grid cell (the counters): a cluster holds the sum of its cells'
    counts per state, sits at their centre weighted by devices, and a cell of one device is a
    cluster of one (cells do not name their devices); empty cells draw nothing."""
    from components.theme import STATE_RANK

    cells = pd.DataFrame(
        {
            "cell": [1, 2, 3, 4],
            "lon": [121.5000, 121.5010, 121.9, 121.7],
            "lat": [31.2000, 31.2010, 31.0, 31.1],
            **{state: [0, 0, 0, 0] for state in STATE_RANK},
        }
    )
    cells.loc[0, "normal"], cells.loc[0, "alarm"] = 3, 1
    cells.loc[1, "offline"] = 4
    cells.loc[2, "maintenance"] = 1
    features = cluster_features(cells, zoom=10, bbox=None)["features"]
    assert len(features) == 2  # cell 4 is empty
    near = next(f for f in features if f["properties"]["n"] == 8)["properties"]
    assert near["c"] == [1, 0, 0, 4, 0, 3] and near["s"] == 0 and near["cluster"]
    lon = next(f for f in features if f["properties"]["n"] == 8)["geometry"]["coordinates"][0]
    assert lon == pytest.approx((121.5 * 4 + 121.501 * 4) / 8, abs=1e-6)
    lone = next(f for f in features if f["properties"]["n"] == 1)["properties"]
    assert lone["cluster"] and lone["c"][STATE_RANK.index("maintenance")] == 1
    # past the device zoom, a frame of cells still gives clusters, never made-up devices
    fine = cluster_features(cells, zoom=DEVICE_ZOOM, bbox=None)["features"]
    assert all(f["properties"]["cluster"] for f in fine)
    assert sum(f["properties"]["n"] for f in fine) == 9
