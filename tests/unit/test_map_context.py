"""The map context layer without a database: the bundled file, OSM tag parsing, datum, params."""

import numpy as np
import pytest
import shapely

from data import geo
from data.context_data import (
    BUNDLED,
    REGION,
    ContextImportError,
    parse_features,
    read_context_file,
)
from web.context import _parse, context_url


def _feature(props, geometry):
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _line(*coords):
    return {"type": "LineString", "coordinates": [list(c) for c in coords]}


BUND = (121.4906, 31.2400)


def test_bundled_context_is_small_real_and_in_shanghai():
    assert BUNDLED.stat().st_size < 400_000
    features, skipped = read_context_file(BUNDLED)
    assert skipped == 0
    kinds = {}
    for f in features:
        kinds.setdefault(f.kind, []).append(f)
        assert f.geom.intersects(REGION) and f.source
    assert {"water", "coast", "river", "metro_line", "metro_station"} <= set(kinds)
    # OSM's Shanghai Metro as the source holds it: lines 1-18, each in its own colour
    assert sorted(int(f.ref) for f in kinds["metro_line"]) == list(range(1, 19))
    assert len({f.color for f in kinds["metro_line"]}) == 18
    assert len(kinds["metro_station"]) > 400
    names = {f.name_zh for f in kinds["metro_station"]}
    assert {"人民广场", "陆家嘴", "南京东路"} <= names
    river = kinds["river"][0]
    assert river.name_zh == "黄浦江"
    # the river (OSM) runs between the stations (OSM) of the Bund side and of Lujiazui
    station = {f.name_zh: f.geom for f in kinds["metro_station"]}
    crossing = shapely.LineString([station["南京东路"], station["陆家嘴"]])
    assert crossing.intersects(river.geom)
    assert not shapely.LineString([station["南京东路"], station["人民广场"]]).intersects(river.geom)
    # every source credited: OSM (ODbL) or Natural Earth
    assert {f.source for f in features} == {
        "© OpenStreetMap contributors (ODbL)",
        "Natural Earth (public domain)",
    }


def test_osm_tags_become_kinds_and_unknown_features_are_skipped():
    collection = {
        "type": "FeatureCollection",
        "features": [
            _feature(
                {"waterway": "river", "name": "苏州河", "name:en": "Suzhou Creek"},
                _line((121.40, 31.23), (121.48, 31.245)),
            ),
            _feature(
                {"highway": "motorway", "name": "内环高架路", "ref": "S20"},
                _line((121.45, 31.20), (121.46, 31.25)),
            ),
            _feature(
                {"railway": "subway", "colour": "E4002B", "ref": "1"},
                _line((121.47, 31.23), (121.47, 31.25)),
            ),
            _feature(
                {"railway": "station", "station": "subway", "name": "人民广场"},
                {"type": "Point", "coordinates": [121.4753, 31.2330]},
            ),
            _feature({"building": "yes"}, {"type": "Point", "coordinates": [121.47, 31.23]}),
        ],
    }
    features, skipped = parse_features(collection, datum="wgs84", source="test")
    assert skipped == 1
    by_kind = {f.kind: f for f in features}
    assert set(by_kind) == {"river", "road", "metro_line", "metro_station"}
    assert by_kind["river"].name_zh == "苏州河" and by_kind["river"].name_en == "Suzhou Creek"
    assert by_kind["road"].ref == "S20"
    assert by_kind["metro_line"].color == "#e4002b"


def test_gcj02_files_are_converted_to_wgs84():
    lon, lat = geo.wgs84_to_gcj02(np.array([BUND[0]]), np.array([BUND[1]]))
    collection = {
        "type": "FeatureCollection",
        "features": [
            _feature(
                {"kind": "metro_station", "name_zh": "x"},
                {"type": "Point", "coordinates": [lon[0], lat[0]]},
            )
        ],
    }
    (gcj,), _ = parse_features(collection, datum="gcj02", source="t")
    (wgs,), _ = parse_features(collection, datum="wgs84", source="t")
    # back on the WGS-84 point to well under a metre; read as WGS-84 it is ~500 m off
    assert gcj.geom.distance(shapely.Point(BUND)) < 1e-5
    assert wgs.geom.distance(shapely.Point(BUND)) > 0.003


@pytest.mark.parametrize(
    ("collection", "message"),
    [
        ([], "not a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "no context features"),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    _feature({"railway": "subway"}, {"type": "Point", "coordinates": [121.4, 31.2]})
                ],
            },
            "feature 1 (metro_line): a Point, expected LineString or MultiLineString",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    _feature({"waterway": "river"}, {"type": "LineString", "coordinates": "x"})
                ],
            },
            "feature 1 (river): bad geometry",
        ),
        (
            {
                "type": "FeatureCollection",
                "features": [_feature({"waterway": "river"}, _line((2.35, 48.85), (2.36, 48.86)))],
            },
            "no feature lies in or near Shanghai",
        ),
    ],
)
def test_bad_collections_are_refused_with_the_reason(collection, message):
    with pytest.raises(ContextImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_features(collection, datum="wgs84", source="t")


def test_bad_datum_and_unreadable_file(tmp_path):
    with pytest.raises(ContextImportError, match="datum must be wgs84 or gcj02"):
        parse_features({"features": []}, datum="bd09", source="t")
    path = tmp_path / "x.geojson"
    path.write_text("{not json")
    with pytest.raises(ContextImportError, match="not a readable GeoJSON file"):
        read_context_file(path)


def test_query_parameters_are_checked():
    assert _parse({}) == (None, None, 10)
    assert _parse({"bbox": "121.4,31.1,121.6,31.3", "zoom": "14"}) == (
        (121.4, 31.1, 121.6, 31.3),
        None,
        14,
    )
    assert _parse({"district": "310101", "zoom": "13"}) == (None, "310101", 13)
    for args, message in [
        ({"zoom": "7"}, "zoom must be a whole number from 8 to 18"),
        ({"zoom": "abc"}, "zoom must be"),
        ({"bbox": "1,2,3"}, "bbox must be west,south,east,north"),
        ({"bbox": "121.6,31.1,121.4,31.3"}, "west < east"),
        ({"bbox": "1,2,3,4", "district": "310101"}, "bbox or district, not both"),
        ({"district": "31'; drop"}, "district must be a 6-digit adcode"),
        ({"callback": "x"}, "unknown parameter 'callback'"),
    ]:
        found = _parse(args)
        assert isinstance(found, str) and message in found, (args, found)


def test_context_urls():
    assert context_url() == "/geo/context.geojson?zoom=10"
    assert context_url(detail=True) == "/geo/context.geojson?zoom=13"
    assert context_url(district="310115") == "/geo/context.geojson?district=310115&zoom=13"
    # what the maps ask for is what the endpoint accepts
    for url in (context_url(), context_url(district="310115")):
        query = dict(part.split("=") for part in url.split("?")[1].split("&"))
        assert not isinstance(_parse(query), str)
