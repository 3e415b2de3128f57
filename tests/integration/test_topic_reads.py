"""Scenario figures against the seeded city: each measurand's counts and extremes recomputed in
pandas from the device, type and latest-reading tables."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyproj
import pytest
import shapely
import sqlalchemy as sa
from scipy.sparse import identity
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from components.topics import TOPICS, topic_measurands
from data.checks import InvalidQuery
from data.scope import Scope, create_web_engine, provision_web_role, scoped, web_database_url
from data.topic_reads import (
    METRES_PER_DEGREE,
    PATCH_GAP_M,
    REACH_M,
    alarm_times,
    beyond_lines,
    measurands_now,
)
from tests.conftest import SEED_END

pytestmark = pytest.mark.integration
PUDONG = "310115"


def _devices(engine: sa.Engine) -> pd.DataFrame:
    """Every active device with its type's lines, latest value and whether it is online."""
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT d.id, d.district_adcode, d.street_code, t.measurand, t.interval_s,"
                " t.normal_min, t.normal_max, t.alarm_min, t.alarm_max, l.ts, l.value,"
                " d.served, ST_X(d.geom) AS lon, ST_Y(d.geom) AS lat"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " LEFT JOIN device_latest l ON l.device_id = d.id WHERE d.status = 'active'"
            )
        )
        df = pd.DataFrame(result.all(), columns=list(result.keys()))
    grace = pd.to_timedelta(df["interval_s"].clip(lower=200) * 3, unit="s")
    df["online"] = df["ts"].notna() & (df["ts"] > SEED_END - grace)
    return df


def _patches(alarmed: pd.DataFrame) -> tuple[int, float]:
    """The alarmed devices' patches (linked when closer than the gap, in degrees as the read
    does) and their area: each patch's hull widened by the reach, in a local projection."""
    if alarmed.empty:
        return 0, 0.0
    points = alarmed[["lon", "lat"]].to_numpy(dtype=float)
    gap = PATCH_GAP_M / METRES_PER_DEGREE
    near = cKDTree(points).sparse_distance_matrix(cKDTree(points), gap)
    count, labels = connected_components(near.tocsr() + identity(len(points)), directed=False)
    km2 = 0.0
    for label in range(count):
        mine = points[labels == label]
        centre = mine.mean(axis=0)
        local = pyproj.Transformer.from_crs(
            "EPSG:4326", f"+proj=aeqd +lat_0={centre[1]} +lon_0={centre[0]}", always_xy=True
        )
        x, y = local.transform(mine[:, 0].tolist(), mine[:, 1].tolist())
        hull = shapely.MultiPoint(list(zip(x, y, strict=True))).convex_hull
        km2 += hull.buffer(REACH_M, quad_segs=64).area / 1e6
    return count, km2


@pytest.mark.parametrize("district", [None, PUDONG])
def test_every_scenarios_figures_equal_a_recomputation(engine, seeded, district):
    _check_every_scenario(engine, district)


def test_a_burst_and_an_outage_make_patches_and_households_as_recomputed(engine, seeded):
    # some mains in two places lose pressure, some transformer areas lose supply (one of
    # unknown households): put back afterwards, the other tests see the seeded city
    with engine.begin() as conn:
        chosen = conn.execute(_TROUBLE_SQL, {"at": SEED_END}).all()
        saved = conn.execute(
            sa.text("SELECT * FROM device_latest WHERE device_id = ANY(:ids)"),
            {"ids": [row.id for row in chosen]},
        ).all()
        conn.execute(_TROUBLE_SET_SQL, {"ids": [row.id for row in chosen], "at": SEED_END})
        unknown = next(row.id for row in chosen if row.measurand == "outage")
        was = conn.execute(
            sa.text("SELECT served FROM device WHERE id = :id"), {"id": unknown}
        ).scalar_one()
        conn.execute(sa.text("UPDATE device SET served = NULL WHERE id = :id"), {"id": unknown})
    try:
        patched, served = _check_every_scenario(engine, None)
        assert patched >= 2 and served > 0, (patched, served)
        assert _check_every_scenario(engine, PUDONG)[0] >= 1
    finally:
        with engine.begin() as conn:
            for row in saved:
                conn.execute(
                    sa.text("UPDATE device_latest SET ts = :ts, value = :value,"
                            " level = :level WHERE device_id = :device_id"),
                    row._asdict(),
                )  # fmt: skip
            conn.execute(
                sa.text("UPDATE device SET served = :was WHERE id = :id"),
                {"was": was, "id": unknown},
            )


# four mains pressure monitors in Pudong's best-equipped street, two in Chongming, and three
# outage monitors in Pudong, all online
_TROUBLE_SQL = sa.text(
    """
(SELECT d.id, t.measurand FROM device d JOIN device_type t ON t.id = d.type_id
 WHERE t.measurand = 'pipe_pressure' AND d.status = 'active' AND d.district_adcode = '310115'
 ORDER BY d.street_code, d.id LIMIT 4)
UNION ALL
(SELECT d.id, t.measurand FROM device d JOIN device_type t ON t.id = d.type_id
 WHERE t.measurand = 'pipe_pressure' AND d.status = 'active' AND d.district_adcode = '310151'
 ORDER BY d.id LIMIT 2)
UNION ALL
(SELECT d.id, t.measurand FROM device d JOIN device_type t ON t.id = d.type_id
 WHERE t.measurand = 'outage' AND d.status = 'active' AND d.district_adcode = '310115'
 ORDER BY d.id LIMIT 3)
"""
)
_TROUBLE_SET_SQL = sa.text(
    """
INSERT INTO device_latest (device_id, ts, value, quality, level)
SELECT d.id, :at, CASE t.measurand WHEN 'outage' THEN 1 ELSE t.alarm_min / 2 END, 0, 2
FROM device d JOIN device_type t ON t.id = d.type_id WHERE d.id = ANY(:ids)
ON CONFLICT (device_id) DO UPDATE
SET ts = excluded.ts, value = excluded.value, level = excluded.level
"""
)


def _check_every_scenario(engine: sa.Engine, district: str | None) -> tuple[int, int]:
    """Every scenario's figures against the recomputation; the patches and households met."""
    devices = _devices(engine)
    patched = served = 0
    if district is not None:
        devices = devices[devices["district_adcode"] == district]
    for topic in TOPICS:
        measurands = topic_measurands(topic)
        found = measurands_now(engine, measurands=measurands, district=district, at=SEED_END)
        assert set(found) == set(devices["measurand"]) & set(measurands), topic
        for measurand, state in found.items():
            mine = devices[devices["measurand"] == measurand]
            on = mine[mine["online"]]
            value = on["value"].astype(float)
            alarm = (value > on["alarm_max"].astype(float)) | (
                value < on["alarm_min"].astype(float)
            )
            expected = {
                "total": len(mine),
                "online": len(on),
                "above_normal": int((value > on["normal_max"].astype(float)).sum()),
                "above_alarm": int((value > on["alarm_max"].astype(float)).sum()),
                "below_normal": int((value < on["normal_min"].astype(float)).sum()),
                "below_alarm": int((value < on["alarm_min"].astype(float)).sum()),
                "streets_alarm": on.loc[alarm, "street_code"].nunique(),
                "served_alarm": int(on.loc[alarm, "served"].fillna(0).sum()),
                "unserved_alarm": int(on.loc[alarm, "served"].isna().sum()),
            }
            assert {key: getattr(state, key) for key in expected} == expected, measurand
            patches, km2 = _patches(on.loc[alarm])
            patched += patches
            served += state.served_alarm
            assert state.patches_alarm == patches, measurand
            assert state.area_alarm_km2 == pytest.approx(km2, rel=0.03, abs=0.005), measurand
            assert state.highest == pytest.approx(value.max())
            assert state.lowest == pytest.approx(value.min())
            top = on.sort_values(["value", "id"], ascending=[False, True]).iloc[0]
            assert state.highest_at is not None
            with engine.connect() as conn:
                district_zh = conn.execute(
                    sa.text("SELECT name_zh FROM district WHERE adcode = :d"),
                    {"d": top["district_adcode"]},
                ).scalar_one()
            assert state.highest_at.district_zh == district_zh
    return patched, served


@pytest.mark.parametrize("district", [None, PUDONG])
def test_the_scenario_maps_points_equal_a_recomputation(engine, seeded, district):
    devices = _devices(engine)
    if district is not None:
        devices = devices[devices["district_adcode"] == district]
    on = devices[devices["online"]].copy()
    value = on["value"].astype(float)
    on["beyond"] = (value > on["normal_max"].astype(float)) | (
        value < on["normal_min"].astype(float)
    )
    on["alarm"] = (value > on["alarm_max"].astype(float)) | (value < on["alarm_min"].astype(float))
    drawn = 0
    for topic in TOPICS:
        measurands = topic_measurands(topic)
        points = beyond_lines(engine, measurands=measurands, district=district, at=SEED_END)
        mine = on[on["measurand"].isin(measurands) & on["beyond"]]
        assert sorted(p["id"] for p in points) == sorted(mine["id"]), topic
        alarms = set(mine.loc[mine["alarm"], "id"])
        assert {p["id"] for p in points if p["alarm"]} == alarms, topic
        # those beyond their alarm line first
        flags = [p["alarm"] for p in points]
        assert flags == sorted(flags, reverse=True)
        drawn += len(points)
    assert drawn > 0  # the seeded city has devices beyond their lines
    with pytest.raises(InvalidQuery):
        beyond_lines(engine, measurands=("ponding",), limit=0)


def test_the_figures_refuse_bad_input(engine, seeded):
    for bad in (
        {"measurands": ()},
        {"measurands": ("ponding; DROP TABLE device",)},
        {"measurands": ("ponding",) * 17},
        {"measurands": ("ponding",), "district": "x"},
    ):
        with pytest.raises(InvalidQuery):
            measurands_now(engine, **bad)


def test_a_district_reader_counts_only_their_districts_devices(engine, seeded, db_url):
    provision_web_role(engine)
    web = create_web_engine(web_database_url(db_url))
    try:
        with scoped(Scope(PUDONG)):
            mine = measurands_now(web, measurands=("ponding", "outage"), at=SEED_END)
            # asking for another district through the web engine finds nothing of it
            other = measurands_now(web, measurands=("ponding",), district="310101", at=SEED_END)
            my_times = alarm_times(web, measurands=("ponding", "outage"), at=SEED_END)
    finally:
        web.dispose()
    pudong = measurands_now(engine, measurands=("ponding", "outage"), district=PUDONG, at=SEED_END)
    assert mine == pudong and mine["ponding"].total > 0
    assert other == {}
    # row-level security on the incidents: a manager's restoration times are his districts'
    assert my_times == alarm_times(
        engine, measurands=("ponding", "outage"), district=PUDONG, at=SEED_END
    )


@pytest.mark.parametrize("where", ["city", "busiest district"])
def test_alarm_times_equal_a_recomputation_from_the_incidents(engine, seeded, where):
    measurands = ("outage", "pipe_pressure", "ponding", "river_level", "methane_manhole")
    at = SEED_END - timedelta(minutes=30)
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT t.measurand, i.status, i.opened_at, i.resolved_at, i.district_adcode"
                " FROM incident i JOIN device_type t ON t.id = i.type_id"
                " WHERE i.kind = 'alarm' AND t.measurand = ANY(:m)"
            ),
            {"m": list(measurands)},
        )
        incidents = pd.DataFrame(result.all(), columns=list(result.keys()))
    district = None if where == "city" else incidents["district_adcode"].mode().iloc[0]
    times = alarm_times(engine, measurands=measurands, district=district, at=at)
    if district is not None:
        incidents = incidents[incidents["district_adcode"] == district]
    incidents = incidents[incidents["opened_at"] <= at]
    live = incidents[incidents["status"] != "resolved"]
    done = incidents[
        (incidents["status"] == "resolved")
        & (incidents["resolved_at"] > at - timedelta(hours=24))
        & (incidents["resolved_at"] <= at)
    ]
    expected = set(live["measurand"]) | set(done["measurand"])
    assert set(times) == expected and expected, "the seeded city has alarms of these measurands"
    for measurand, got in times.items():
        mine, restored = live[live["measurand"] == measurand], done[done["measurand"] == measurand]
        assert got.live == len(mine) and got.restored == len(restored)
        assert got.oldest_open == (mine["opened_at"].min() if len(mine) else None)
        took = (restored["resolved_at"] - restored["opened_at"]).dt.total_seconds()
        assert got.mean_restore_s == (pytest.approx(took.mean()) if len(restored) else None)
    with pytest.raises(InvalidQuery):
        alarm_times(engine, measurands=("outage'--",))
    with pytest.raises(InvalidQuery):
        alarm_times(engine, measurands=("outage",), district="Pudong")
