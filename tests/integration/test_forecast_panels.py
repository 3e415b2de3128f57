"""预警 and device health in the panels' reads: counted apart from alarm figures, per area, on
device markers and ahead on the timeline, through row-level security as the web reads them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from data.areas import district_metrics, street_metrics
from data.clock import database_now
from data.devices import area_devices
from data.engine import create_db_engine
from data.forecast_reads import expected_breaches, forecast_limits
from data.kpis import area_kpis
from data.scope import Scope, create_web_engine, provision_web_role, scoped, web_database_url
from tests.forecast_incidents import calm_device, open_incident, resolve

pytestmark = pytest.mark.integration
PUDONG = "310115"


@pytest.fixture(scope="module")
def engine(live_city_url) -> Iterator[sa.Engine]:
    """The owner's engine on a city of this module's own: the 预警 written here change counts."""
    owner = create_db_engine(live_city_url)
    yield owner
    owner.dispose()


@pytest.fixture(scope="module")
def web_engine(engine, live_city_url) -> Iterator[sa.Engine]:
    """The web role's engine: what it reads is limited by the scope it runs in."""
    provision_web_role(engine)
    web = create_web_engine(web_database_url(live_city_url))
    yield web
    web.dispose()


def _alarm_figures(kpis):
    return (kpis.open_by_severity, kpis.opened_today, kpis.resolved_today)


def test_forecasts_and_health_are_counted_apart_from_alarms(engine):
    device = calm_device(engine, district=PUDONG)
    street = device["street_code"]
    before = {
        "city": area_kpis(engine),
        "district": area_kpis(engine, district=PUDONG),
        "street": area_kpis(engine, district=PUDONG, street=street),
    }
    areas_before = {a.code: a for a in district_metrics(engine)}
    forecast = open_incident(engine, device, minutes=23)
    later = open_incident(engine, calm_device(engine, district=PUDONG), minutes=50)
    health = open_incident(engine, calm_device(engine, district=PUDONG), kind="health")
    try:
        for name, scope in (("city", {}), ("district", {"district": PUDONG})):
            kpis = area_kpis(engine, **scope)
            assert _alarm_figures(kpis) == _alarm_figures(before[name]), name
            assert kpis.forecasts_open == before[name].forecasts_open + 2
            assert kpis.health_open == before[name].health_open + 1
            minutes = (kpis.forecast_next - kpis.at).total_seconds() / 60
            assert 22 < minutes <= 23
        on_street = area_kpis(engine, district=PUDONG, street=street)
        assert _alarm_figures(on_street) == _alarm_figures(before["street"])
        assert on_street.forecasts_open >= 1
        pudong = {a.code: a for a in district_metrics(engine)}[PUDONG]
        assert pudong.open_incidents == areas_before[PUDONG].open_incidents
        assert pudong.open_critical == areas_before[PUDONG].open_critical
        assert pudong.open_forecasts == areas_before[PUDONG].open_forecasts + 2
        assert pudong.open_health == areas_before[PUDONG].open_health + 1
        streets = {a.code: a for a in street_metrics(engine, district=PUDONG)}
        assert streets[street].open_forecasts >= 1
    finally:
        for incident in (forecast, later, health):
            resolve(engine, incident)
    assert area_kpis(engine, district=PUDONG).forecasts_open == before["district"].forecasts_open


def test_an_area_with_a_forecast_and_no_alarm_is_forecast_only(engine):
    device = calm_device(engine, district=PUDONG)
    incident = open_incident(engine, device, minutes=30)
    try:
        streets = {a.code: a for a in street_metrics(engine, district=PUDONG)}
        mine = streets[device["street_code"]]
        assert mine.forecast_only == (mine.open_incidents == 0)
        alarm = open_incident(engine, calm_device(engine, district=PUDONG), kind="alarm")
        try:
            streets = {a.code: a for a in street_metrics(engine, district=PUDONG)}
            alarmed = [a for a in streets.values() if a.open_incidents and a.open_forecasts]
            assert all(not a.forecast_only for a in alarmed)
        finally:
            resolve(engine, alarm)
    finally:
        resolve(engine, incident)


def test_a_device_with_a_live_forecast_shows_the_forecast_state(engine):
    device = calm_device(engine, district=PUDONG)
    incident = open_incident(engine, device)
    try:
        states = area_devices(engine, district=PUDONG).set_index("id")["state"]
        assert states[device["id"]] == "forecast"
    finally:
        resolve(engine, incident)
    states = area_devices(engine, district=PUDONG).set_index("id")["state"]
    assert states[device["id"]] == "normal"


def test_expected_breaches_and_limits_for_the_timeline_and_feed(engine):
    soon = open_incident(
        engine, calm_device(engine, district=PUDONG), minutes=40, limit=0.3, unit="m"
    )
    far = open_incident(engine, calm_device(engine, district=PUDONG), minutes=300)
    try:
        now = database_now(engine)
        ahead = expected_breaches(engine, start=now, end=now + timedelta(hours=3), district=PUDONG)
        assert soon in set(ahead["id"]) and far not in set(ahead["id"])
        row = ahead.set_index("id").loc[soon]
        assert row["limit"] == pytest.approx(0.3) and row["unit"] == "m"
        elsewhere = expected_breaches(
            engine, start=now, end=now + timedelta(hours=3), district="310101"
        )
        assert soon not in set(elsewhere["id"])
        limits = forecast_limits(engine, incident_ids=(soon, far))
        assert limits[soon] == (pytest.approx(0.3), "m", 1)
        assert forecast_limits(engine, incident_ids=()) == {}
    finally:
        resolve(engine, soon)
        resolve(engine, far)


def test_the_web_role_sees_forecasts_of_its_scope_only(engine, web_engine):
    incident = open_incident(engine, calm_device(engine, district=PUDONG), minutes=20)
    try:
        with scoped(Scope(PUDONG)):
            mine = area_kpis(web_engine, district=PUDONG)
        with scoped(Scope("310101")):
            other = area_kpis(web_engine)
            now = database_now(web_engine)
            hidden = expected_breaches(web_engine, start=now, end=now + timedelta(hours=1))
        assert mine.forecasts_open >= 1
        # the only live 预警 of this city is Pudong's
        assert other.forecasts_open == 0
        assert incident not in set(hidden["id"])
    finally:
        resolve(engine, incident)
