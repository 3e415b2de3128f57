"""Tile trends and the 城市体征 strip against a direct recomputation from the base tables."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from data.checks import InvalidQuery
from data.kpis import TREND_HOURS, area_kpis, tile_trends
from data.scope import CITY, Scope, create_web_engine, provision_web_role, scoped, web_database_url
from data.vitals import city_vitals, measurand_hours
from panels.base import View
from panels.vitals import _title_and_place
from tests.conftest import SEED_END

pytestmark = pytest.mark.integration
PUDONG = "310115"
# a moment inside an hour, so the hour under way and the same time yesterday both matter
AT = SEED_END - timedelta(minutes=20)


def frame(engine, sql, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def hourly(stamps: pd.Series) -> pd.Series:
    return stamps.dt.floor("h").value_counts()


def completed_so_far(counts: pd.Series, at: pd.Timestamp) -> tuple[float, float]:
    midnight = at.tz_convert("Asia/Shanghai").normalize()
    current, day = at.floor("h"), pd.Timedelta(days=1)
    today = counts[(counts.index >= midnight) & (counts.index < current)].sum()
    yesterday = counts[(counts.index >= midnight - day) & (counts.index < current - day)].sum()
    return float(today), float(yesterday)


@pytest.mark.parametrize("district", [None, PUDONG])
def test_tile_trends_equal_the_base_tables(engine, seeded, district):
    trends = tile_trends(engine, district=district, at=AT)
    at = pd.Timestamp(AT)
    hours = [pd.Timestamp(h) for h in trends.hours]
    assert len(hours) == TREND_HOURS and hours[-1] == at.floor("h")
    # rollups count whole hours: the hour under way holds what it has received so far
    readings = frame(
        engine,
        "SELECT r.ts FROM reading r JOIN device d ON d.id = r.device_id"
        " WHERE r.ts < :end AND (CAST(:d AS text) IS NULL OR d.district_adcode = :d)",
        end=at.floor("h") + pd.Timedelta(hours=1),
        d=district,
    )["ts"]
    per_hour = hourly(readings)
    assert list(trends.series["readings_today"]) == [float(per_hour.get(h, 0)) for h in hours]
    assert sum(trends.series["readings_today"]) > 0
    assert trends.changes["readings_today"] == completed_so_far(per_hour, at)

    incidents = frame(
        engine,
        "SELECT opened_at, resolved_at FROM incident WHERE kind IN ('alarm', 'anomaly')"
        " AND (CAST(:d AS text) IS NULL OR district_adcode = :d)",
        d=district,
    )
    done = incidents[incidents["resolved_at"].notna() & (incidents["resolved_at"] <= at)]
    resolved = hourly(done["resolved_at"])
    assert list(trends.series["resolved_today"]) == [float(resolved.get(h, 0)) for h in hours]
    assert trends.changes["resolved_today"] == completed_so_far(resolved, at)
    ends = [*(h + pd.Timedelta(hours=1) for h in hours[:-1]), at]

    def open_at(moment):
        live = incidents["resolved_at"].isna() | (incidents["resolved_at"] > moment)
        return float(((incidents["opened_at"] <= moment) & live).sum())

    assert list(trends.series["open_incidents"]) == [open_at(end) for end in ends]
    now, then = trends.changes["open_incidents"]
    assert (now, then) == (open_at(at), open_at(at - pd.Timedelta(days=1)))
    assert now == area_kpis(engine, district=district, at=AT).open_total
    minutes = (done["resolved_at"] - done["opened_at"]).dt.total_seconds() / 60
    by_hour = minutes.groupby(done["resolved_at"].dt.floor("h")).mean()
    for hour, value in zip(hours, trends.series["mttr"], strict=True):
        if hour in by_hour.index:
            assert value == pytest.approx(by_hour[hour])
        else:
            assert value is None


def test_vitals_equal_hourly_means_of_the_readings(engine, seeded):
    vitals = city_vitals(engine, at=AT)
    assert vitals.signs, "the seeded city has weather, tide and grid-load devices"
    readings = frame(
        engine,
        "SELECT t.measurand, t.unit, r.ts, r.value FROM reading r"
        " JOIN device d ON d.id = r.device_id JOIN device_type t ON t.id = d.type_id"
        " WHERE r.ts < :end AND r.ts >= :since",
        end=pd.Timestamp(AT).floor("h") + pd.Timedelta(hours=1),
        since=pd.Timestamp(AT).floor("h") - pd.Timedelta(hours=TREND_HOURS - 1),
    )
    readings["hour"] = readings["ts"].dt.floor("h")
    means = readings.groupby(["measurand", "hour"])["value"].mean()
    for sign in vitals.signs:
        assert sign.unit == readings.loc[readings["measurand"] == sign.measurand, "unit"].iloc[0]
        for hour, value in zip(sign.hours, sign.values, strict=True):
            key = (sign.measurand, pd.Timestamp(hour))
            if key in means.index:
                assert value == pytest.approx(means[key])
            else:
                assert value is None
        assert sign.latest is not None
    forecasts = frame(
        engine,
        "SELECT count(*) AS n FROM incident WHERE kind = 'forecast' AND status <> 'resolved'"
        " AND opened_at <= :at",
        at=AT,
    )
    assert vitals.warnings == int(forecasts["n"].iloc[0])


@pytest.mark.parametrize("district", [None, PUDONG])
def test_measurand_hours_equal_the_readings(engine, seeded, district):
    measurands = ("ponding", "pipe_pressure", "temperature", "outage", "no_such_measurand")
    found = measurand_hours(engine, measurands=measurands, district=district, at=AT)
    readings = frame(
        engine,
        "SELECT t.measurand, t.alarm_min, t.alarm_max, r.device_id, r.ts, r.value FROM reading r"
        " JOIN device d ON d.id = r.device_id JOIN device_type t ON t.id = d.type_id"
        " WHERE t.measurand = ANY(:m) AND r.ts < :end AND r.ts >= :since"
        " AND (CAST(:d AS text) IS NULL OR d.district_adcode = :d)",
        m=list(measurands),
        end=pd.Timestamp(AT).floor("h") + pd.Timedelta(hours=1),
        since=pd.Timestamp(AT).floor("h") - pd.Timedelta(hours=TREND_HOURS - 1),
        d=district,
    )
    readings["hour"] = readings["ts"].dt.floor("h")
    beyond = (readings["alarm_max"].notna() & (readings["value"] > readings["alarm_max"])) | (
        readings["alarm_min"].notna() & (readings["value"] < readings["alarm_min"])
    )
    # the devices that read beyond their alarm line in the hour, each once however often
    by_hour = readings.groupby(["measurand", "hour"])
    highs, lows = by_hour["value"].max(), by_hour["value"].min()
    alarmed = readings[beyond].groupby(["measurand", "hour"])["device_id"].nunique()
    assert [m.measurand for m in found] == [m for m in measurands if m in set(readings.measurand)]
    assert len(found) == 4, "the seeded city has ponding, pressure, weather and outage devices"
    for m in found:
        own = readings[readings["measurand"] == m.measurand]
        assert m.alarm_max == (None if own["alarm_max"].isna().all() else own["alarm_max"].min())
        assert m.alarm_min == (None if own["alarm_min"].isna().all() else own["alarm_min"].max())
        for hour, high, low, count in zip(m.hours, m.highs, m.lows, m.alarmed, strict=True):
            key = (m.measurand, pd.Timestamp(hour))
            if key not in highs.index:
                assert high is low is count is None
                continue
            assert (high, low) == (pytest.approx(highs[key]), pytest.approx(lows[key]))
            assert count == alarmed.get(key, 0)


def test_trends_refuse_bad_scope(engine, seeded):
    with pytest.raises(InvalidQuery):
        tile_trends(engine, district="Pudong; DROP TABLE incident")
    with pytest.raises(InvalidQuery):
        city_vitals(engine, district="x' OR 1=1")
    with pytest.raises(InvalidQuery):
        measurand_hours(engine, measurands=("temperature",), district="310115' --")
    with pytest.raises(InvalidQuery):
        measurand_hours(engine, measurands=("temperature'; --",))


def test_a_managers_city_view_covers_his_districts_and_says_so(engine, seeded, db_url):
    provision_web_role(engine)
    web = create_web_engine(web_database_url(db_url))
    try:
        with scoped(Scope(districts=PUDONG)):
            city = tile_trends(web, at=AT)
            vitals = city_vitals(web, at=AT)
            hours = measurand_hours(web, measurands=("temperature", "outage"), at=AT)
            title, _place = _title_and_place(View(), "zh")
        with scoped(Scope(districts=CITY)):
            assert _title_and_place(View(), "zh")[0] == "城市体征"
    finally:
        web.dispose()
    # row-level security: the manager's "city" is Pudong, and the strip's title says so
    assert city.series == tile_trends(engine, district=PUDONG, at=AT).series
    pudong = city_vitals(engine, district=PUDONG, at=AT).signs
    assert [sign.measurand for sign in vitals.signs] == [sign.measurand for sign in pudong]
    for mine, theirs in zip(vitals.signs, pudong, strict=True):
        assert [v is None for v in mine.values] == [v is None for v in theirs.values]
        assert [v or 0 for v in mine.values] == pytest.approx([v or 0 for v in theirs.values])
    assert title == "辖区体征（仅含本人辖区）"
    assert hours == measurand_hours(
        engine, measurands=("temperature", "outage"), district=PUDONG, at=AT
    )
