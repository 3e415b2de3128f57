"""The incident-marker builder: which incidents become markers, in which order, with what."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from flask import Flask

from components.incident_markers import (
    GROUP_MIN,
    MARKER_PANE,
    MARKER_PANE_Z,
    marker_features,
    marker_layer,
    marker_legend,
)
from components.theme import SEVERITY_COLORS
from config import load_settings
from web.services import attach


def _frame(*rows: tuple[int, str, str, str], street: str = "310101002") -> pd.DataFrame:
    """live_incident_points-shaped rows: (id, severity, status, category), in `street`, each a
    little east of the one before."""
    return pd.DataFrame(
        [
            {
                "id": incident,
                "severity": severity,
                "status": status,
                "category_code": category,
                "title_zh": f"事件{incident}",
                "title_en": f"Incident {incident}",
                "district_adcode": "310101",
                "street_code": street,
                "opened_at": datetime(2026, 1, 1, tzinfo=UTC),
                "lon": 121.4812345678 + 0.001 * n,
                "lat": 31.2398765432,
            }
            for n, (incident, severity, status, category) in enumerate(rows)
        ]
    )


FRAME = _frame(
    (1, "critical", "open", "gas"),
    (2, "major", "acknowledged", "water"),
    (3, "critical", "acknowledged", "elderly"),
    (4, "major", "open", "gas"),
)


def _props(collection: dict) -> list[dict]:
    return [feature["properties"] for feature in collection["features"]]


def test_criticals_are_drawn_last_and_pulse_only_while_open():
    props = _props(marker_features(FRAME, lang="zh", wall=False, masked=False))
    severities = [p["severity"] for p in props]
    # every critical after every major: Leaflet stacks later markers on top
    assert severities == sorted(severities, key=lambda s: s == "critical")
    assert sorted(p["id"] for p in props) == [1, 2, 3, 4]
    pulsing = {p["id"] for p in props if p["pulse"]}
    assert pulsing == {1, 4}


def test_pages_get_a_tooltip_and_a_link_in_their_language_walls_neither():
    zh = {p["id"]: p for p in _props(marker_features(FRAME, lang="zh", wall=False, masked=False))}
    en = {p["id"]: p for p in _props(marker_features(FRAME, lang="en", wall=False, masked=False))}
    assert zh[1]["tip"] == "事件1" and en[1]["tip"] == "Incident 1"
    assert zh[1]["href"] == "/incidents?incident=1"
    assert en[2]["href"].startswith("/incidents?") and "lang=en" in en[2]["href"]
    wall = _props(marker_features(FRAME, lang="zh", wall=True, masked=False))
    assert all("tip" not in p and "href" not in p for p in wall)


def test_kiosks_show_no_incident_about_someone_at_home():
    masked = {p["id"] for p in _props(marker_features(FRAME, lang="zh", wall=True, masked=True))}
    assert masked == {1, 2, 4}


def test_a_streets_many_majors_are_one_group_with_every_member():
    many = [(10 + n, "major", "open" if n % 3 == 0 else "acknowledged", "water") for n in range(7)]
    frame = pd.concat(
        [FRAME, _frame(*many, street="310101013"), _frame((30, "critical", "open", "gas"),
                                                          street="310101013")],
        ignore_index=True,
    )  # fmt: skip
    features = marker_features(frame, lang="en", wall=False, masked=False)["features"]
    groups = [f["properties"] for f in features if "members" in f["properties"]]
    assert len(groups) == 1
    group = groups[0]
    # criticals are never grouped; Huangpu's two majors (fewer than GROUP_MIN) stay single
    assert sorted(p["id"] for f in features if "id" in (p := f["properties"])) == [1, 2, 3, 4, 30]
    assert [m[2] for m in group["members"]] == [row[0] for row in many]
    assert group["count"] == 7 == len(group["members"]) >= GROUP_MIN
    assert group["street"] == "310101013"
    assert group["open"] == sum(m[3] for m in group["members"]) == 3
    assert group["tip"].startswith("7 major alarms (3 not acknowledged)")
    assert group["link"] + "12" == "/incidents?lang=en&incident=12"
    # at the members' mean point, drawn under every critical
    lons = [m[0] for m in group["members"]]
    group_feature = next(f for f in features if "members" in f["properties"])
    assert group_feature["geometry"]["coordinates"][0] == round(sum(lons) / len(lons), 6)
    assert features.index(group_feature) < min(
        i for i, f in enumerate(features) if f["properties"]["severity"] == "critical"
    )
    wall = marker_features(frame, lang="zh", wall=True, masked=False)["features"]
    wall_group = next(f["properties"] for f in wall if "members" in f["properties"])
    assert "tip" not in wall_group and "link" not in wall_group
    assert all(len(m) == 4 for m in wall_group["members"])


def test_points_are_rounded_and_an_empty_frame_is_an_empty_layer():
    features = marker_features(FRAME, lang="zh", wall=False, masked=False)["features"]
    feature = next(f for f in features if f["properties"]["id"] == 1)
    assert feature["geometry"]["coordinates"] == [121.481235, 31.239877]
    empty = marker_features(FRAME.iloc[0:0], lang="zh", wall=False, masked=False)
    assert empty == {"type": "FeatureCollection", "features": []}


def test_the_layer_sits_in_a_pane_above_markers_and_under_tooltips():
    server = Flask(__name__)
    # no tiles configured: the layer needs the app's settings only to know that
    attach(server, load_settings(database_url="postgresql://unused/none", map_tile_url=""))
    with server.app_context():
        pane = marker_layer("m", marker_features(FRAME, lang="zh", wall=False, masked=False))
    assert pane.name == MARKER_PANE
    # Leaflet: overlays 400, markers (labels, device clusters) 600, tooltips 650
    assert 600 < pane.style["zIndex"] == MARKER_PANE_Z < 650
    layer = pane.children
    assert layer.id == "m" and len(layer.data["features"]) == 4
    assert layer.hideout["pane"] == MARKER_PANE


def test_the_legend_names_both_severities_and_what_pulsing_means():
    zh = marker_legend("zh")
    en = marker_legend("en")
    texts_zh = [child.children for row in zh[1:3] for child in row.children]
    assert [row.children[0].style["background"] for row in zh[1:3]] == [
        SEVERITY_COLORS["critical"],
        SEVERITY_COLORS["major"],
    ]
    assert "紧急" in texts_zh and "重要" in texts_zh
    # the group bubble's row
    assert "major" in en[3].children[1].children and zh[3].children[0].children.isdigit()
    assert zh[-1].children != en[-1].children and "acknowledged" in en[-1].children
