"""The map context: loaded with the reference data, served by box/district/zoom, replaced by
`import-context` (good and bad files), bad requests refused."""

import json

import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import shape

from data import migrate
from data.context_data import load_context_if_empty
from tests.conftest import app_on, cli_runner
from web.context import context_url

pytestmark = pytest.mark.integration

HUANGPU_BOX = "121.46,31.20,121.52,31.26"


@pytest.fixture(scope="module")
def client(db_url, seeded):
    with app_on(db_url) as app:
        yield app.server.test_client()


def _get(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/geo+json"
    return json.loads(response.data)["features"]


def _kinds(features):
    return {f["properties"]["kind"] for f in features}


def test_city_context_has_water_river_and_metro_but_no_stations(client, engine):
    features = _get(client, context_url())
    assert {"water", "coast", "river", "metro_line"} <= _kinds(features)
    assert "metro_station" not in _kinds(features)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*) FROM map_context WHERE kind <> 'metro_station'")
        ).scalar_one()
    assert len(features) == stored
    lines = [f for f in features if f["properties"]["kind"] == "metro_line"]
    assert all(f["properties"]["color"].startswith("#") for f in lines)
    river = next(f for f in features if f["properties"]["kind"] == "river")
    assert river["properties"]["name_zh"] == "黄浦江"


def test_district_context_has_its_stations_only(client, engine):
    features = _get(client, context_url(district="310101"))
    stations = [f for f in features if f["properties"]["kind"] == "metro_station"]
    with engine.connect() as conn:
        box = shapely.from_wkb(
            conn.execute(
                sa.text(
                    "SELECT ST_AsBinary(ST_Expand(ST_Envelope(geom), 0.05)) FROM district"
                    " WHERE adcode = '310101'"
                )
            ).scalar_one()
        )
        expected = conn.execute(
            sa.text(
                "SELECT count(*) FROM map_context m, district d WHERE d.adcode = '310101'"
                " AND m.kind = 'metro_station'"
                " AND m.geom && ST_Expand(ST_Envelope(d.geom), 0.05)"
            )
        ).scalar_one()
    assert len(stations) == expected > 20
    assert all(box.contains(shape(f["geometry"])) for f in stations)
    assert "南京东路" in {f["properties"]["name_zh"] for f in stations}
    assert {"river", "metro_line"} <= _kinds(features)


def test_bbox_and_zoom_filter(client):
    near = _get(client, f"/geo/context.geojson?bbox={HUANGPU_BOX}&zoom=14")
    far = _get(client, f"/geo/context.geojson?bbox={HUANGPU_BOX}&zoom=10")
    box = shapely.box(*(float(v) for v in HUANGPU_BOX.split(",")))
    assert near and all(shape(f["geometry"]).envelope.intersects(box) for f in near)
    assert "metro_station" in _kinds(near) and "metro_station" not in _kinds(far)

    # further out, lines are simplified to about a pixel
    def points(features):
        return sum(
            shapely.get_num_coordinates(shape(f["geometry"]))
            for f in features
            if f["properties"]["kind"] == "metro_line"
        )

    assert points(far) < points(near)


def test_bad_requests_are_refused_clearly(client):
    for url, status, message in [
        ("/geo/context.geojson?zoom=99", 400, "zoom must be a whole number"),
        ("/geo/context.geojson?bbox=a,b,c,d", 400, "bbox must be west,south,east,north"),
        ("/geo/context.geojson?district=310101&bbox=1,2,3,4", 400, "not both"),
        ("/geo/context.geojson?district=999999", 404, "unknown district"),
        ("/geo/context.geojson?format=pbf", 400, "unknown parameter"),
    ]:
        response = client.get(url)
        assert response.status_code == status, url
        assert message in response.get_json()["error"]


def test_etag_revalidation(client):
    first = client.get(context_url())
    again = client.get(context_url(), headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


@pytest.fixture
def context_db(scratch_db, monkeypatch):
    """A database of its own with the bundled context, and the CLI pointed at it."""
    migrate.upgrade(scratch_db)
    assert load_context_if_empty(scratch_db) > 400
    assert load_context_if_empty(scratch_db) == 0
    monkeypatch.setenv("DATABASE_URL", scratch_db.url.render_as_string(hide_password=False))
    return scratch_db


def _stored(engine):
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT kind, name_zh, source FROM map_context ORDER BY id")
        ).all()


def _write(path, features):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def test_import_context_replaces_the_layer(context_db, tmp_path, capsys):
    run = cli_runner(capsys)
    creek = {
        "type": "Feature",
        "properties": {"waterway": "river", "name": "苏州河", "name:en": "Suzhou Creek"},
        "geometry": {"type": "LineString", "coordinates": [[121.40, 31.23], [121.48, 31.245]]},
    }
    ring = {
        "type": "Feature",
        "properties": {"highway": "motorway", "name": "内环高架路"},
        "geometry": {"type": "LineString", "coordinates": [[121.45, 31.20], [121.46, 31.25]]},
    }
    shop = {
        "type": "Feature",
        "properties": {"shop": "bakery"},
        "geometry": {"type": "Point", "coordinates": [121.47, 31.23]},
    }
    code, out, err = run("import-context", _write(tmp_path / "osm.geojson", [creek, ring, shop]))
    assert code == 0, err
    assert "2 feature(s) stored, 1 of no context kind skipped" in out
    assert [(k, n) for k, n, _ in _stored(context_db)] == [
        ("river", "苏州河"),
        ("road", "内环高架路"),
    ]
    assert {s for *_, s in _stored(context_db)} == {"import:osm.geojson"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "not a readable GeoJSON file"),
        ('{"type": "FeatureCollection", "features": []}', "no context features"),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {"railway": "subway"},
                            "geometry": {"type": "Point", "coordinates": [121.4, 31.2]},
                        }
                    ],
                }
            ),
            "feature 1 (metro_line): a Point",
        ),
    ],
)
def test_import_context_refuses_bad_files_and_keeps_the_layer(
    context_db, tmp_path, capsys, content, message
):
    run = cli_runner(capsys)
    before = _stored(context_db)
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    code, _, err = run("import-context", str(path))
    assert code == 2 and message in err
    assert _stored(context_db) == before


def test_import_context_wrong_datum_is_refused(context_db, tmp_path, capsys):
    run = cli_runner(capsys)
    far = {
        "type": "Feature",
        "properties": {"waterway": "river"},
        # lat/lon swapped: nowhere near Shanghai
        "geometry": {"type": "LineString", "coordinates": [[31.23, 121.40], [31.245, 121.48]]},
    }
    code, _, err = run("import-context", _write(tmp_path / "swapped.geojson", [far]))
    assert code == 2 and "no feature lies in or near Shanghai" in err
    code, _, err = run("import-context", str(tmp_path / "missing.geojson"))
    assert code == 2 and "not a readable GeoJSON file" in err
