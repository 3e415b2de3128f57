"""The Dash app builds, serves its shell, and the overview layout shows the store's figures."""

import dash
import pytest

from components import reference
from tests.conftest import app_on
from tests.dash_client import client_for, request_as, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
def app(db_url, seeded):
    with app_on(db_url) as dash_app:
        yield dash_app


def _texts(component) -> list[str]:
    found = []
    children = getattr(component, "children", None)
    if isinstance(children, str):
        found.append(children)
    elif isinstance(children, list | tuple):
        for child in children:
            found.extend([child] if isinstance(child, str) else _texts(child))
    elif children is not None:
        found.extend(_texts(children))
    return found


def test_pages_are_registered(app):
    paths = {page["path"] for page in dash.page_registry.values()}
    assert {"/", "/404", "/incidents"} <= paths
    templates = {page.get("path_template") for page in dash.page_registry.values()}
    assert {"/district/<adcode>", "/device/<device_id>"} <= templates


def test_shell_is_served_without_cdn(app, engine):
    response = client_for(app, sign_in(engine)).get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "一屏观全城" in html
    assert "unpkg.com" not in html and "cdn." not in html


def test_overview_layout_carries_the_first_map_colours(app, engine):
    from data.areas import district_metrics

    reference.clear()
    page = next(p for p in dash.page_registry.values() if p["path"] == "/")
    with request_as(app):
        layout = page["layout"](lang="en", metric="open_incidents")
    texts = _texts(layout)
    assert "Open incidents" in texts and "OneScreen" in texts
    names = {area.name_en for area in district_metrics(engine)}
    labels = _find(layout, "overview-labels").data["features"]
    assert {f["properties"]["name"] for f in labels} == names
    hideout = _find(layout, "overview-areas").hideout
    assert set(hideout["colors"]) == {area.code for area in district_metrics(engine)}


def _find(component, component_id):
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str):
            found = _find(child, component_id)
            if found is not None:
                return found
    return None


def test_overview_survives_a_database_outage(app):
    page = next(p for p in dash.page_registry.values() if p["path"] == "/")
    # an app of its own whose database is gone (the other app's caches stay out of it)
    with app_on("postgresql://nobody:x@127.0.0.1:1/none") as gone, request_as(gone):
        texts = _texts(page["layout"](lang="en"))
    assert "OneScreen" in texts  # the frame still renders
    assert any("Data temporarily unavailable" in t for t in texts)
    assert not any("Traceback" in t or "OperationalError" in t for t in texts)


def test_a_district_page_announces_its_map_fetches_to_whom_may_see_it(app, engine):
    """The document's Link header names what the map fetches first (so it downloads beside the
    scripts); each answers; nothing for another district's manager, a replay, an unknown
    district or a page without a map."""
    operator = client_for(app, sign_in(engine))
    response = operator.get("/district/310115?category=flood")
    assert response.status_code == 200
    links = [part.split(";")[0].strip(" <>") for part in response.headers["Link"].split(",")]
    assert [link.split("?")[0] for link in links] == [
        "/geo/district/310115/streets.geojson",
        "/geo/district/310115/devices.json",
        "/geo/context.geojson",
    ]
    assert "category=flood" in links[1]
    assert all(
        "rel=preload; as=fetch; crossorigin" in part for part in response.headers["Link"].split(",")
    )
    for link in links:
        assert operator.get(link).status_code == 200, link
    manager = client_for(app, sign_in(engine, role="district_manager", districts=("310104",)))
    assert "Link" not in manager.get("/district/310115").headers
    assert "Link" in manager.get("/district/310104").headers
    for path in ("/district/310115?at=2026-11-24T03:00", "/district/999999", "/", "/incidents"):
        assert "Link" not in operator.get(path).headers, path
    # nothing a forged query could put in the header beyond this site's own paths
    forged = operator.get("/district/310115?category=%0d%0aSet-Cookie:x=1")
    assert "Set-Cookie: x" not in str(forged.headers)
