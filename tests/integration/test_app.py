"""The Dash app builds, serves its shell, and the overview layout shows the store's figures."""

import dash
import pytest

from config import get_settings
from data.engine import get_engine
from data.queries import city_kpis

pytestmark = pytest.mark.integration


@pytest.fixture
def app(monkeypatch, db_url, seeded):
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    from app import create_app

    yield create_app()
    get_settings.cache_clear()
    get_engine.cache_clear()


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
    assert {"/", "/404"} <= paths


def test_shell_is_served_without_cdn(app):
    response = app.server.test_client().get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "一屏观全城" in html
    assert "unpkg.com" not in html and "cdn." not in html


def test_overview_shows_database_figures(app, engine):
    page = next(p for p in dash.page_registry.values() if p["path"] == "/")
    texts = _texts(page["layout"]())
    kpis = city_kpis(engine)
    assert f"{kpis.devices_total:,}" in texts
    assert str(kpis.open_total) in texts


def test_overview_survives_a_database_outage(app, monkeypatch):
    page = next(p for p in dash.page_registry.values() if p["path"] == "/")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody:x@127.0.0.1:1/none")
    get_settings.cache_clear()
    get_engine.cache_clear()
    texts = _texts(page["layout"]())
    assert any("Data temporarily unavailable" in t for t in texts)
    assert not any("Traceback" in t or "OperationalError" in t for t in texts)
