"""Every schema revision on real PostGIS, walked base → head → base → head: at each one a reading
goes through the ingest write path and, where the rules exist, a rules pass judges it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from data import migrate
from data.ingest_store import PartitionCache, store_readings
from data.writes import ReadingBatch
from ingest.rules_engine import RulesEngine

pytestmark = pytest.mark.integration

ALARM_MAX = 80.0
PLACE = {
    "square": "MULTIPOLYGON(((121 31, 121.01 31, 121.01 31.01, 121 31.01, 121 31)))",
    "point": "POINT(121.005 31.005)",
}
REFERENCE = (
    "INSERT INTO district (adcode, name_zh, name_en, area_km2, geom, label_point)"
    " VALUES ('310101', '黄浦区', 'Huangpu', 1, ST_GeomFromText(:square, 4326),"
    " ST_GeomFromText(:point, 4326)) ON CONFLICT DO NOTHING",
    "INSERT INTO street (code, district_adcode, name_zh, name_en, area_km2, geom_source, geom,"
    " label_point) VALUES ('310101001', '310101', '南京东路', 'Nanjing Rd E', 1, 'test',"
    " ST_GeomFromText(:square, 4326), ST_GeomFromText(:point, 4326)) ON CONFLICT DO NOTHING",
    "INSERT INTO device_category (code, name_zh, name_en, scenario_zh, scenario_en, color,"
    " sort_order) VALUES ('fire', '消防', 'Fire', '火警', 'fire', '#ff0000', 1)"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO device_type (id, code, category_code, name_zh, name_en, measurand, unit,"
    " value_kind, interval_s, normal_min, normal_max, alarm_max) VALUES (1, 'smoke', 'fire',"
    " '烟感', 'Smoke', 'smoke', '%', 'analog', 60, 0, 40, :alarm_max) ON CONFLICT DO NOTHING",
)


# SHA-256 of each revision's SQL as it landed. A landed file never changes: a change to the
# schema or a function is a new revision with files of its own (NNNN_*.sql).
LANDED = {
    "0001_functions.sql": "bb0090f1ffb298652e9954dac1354d622aa435ad9981f0868f282d546dcaff56",
    "0001_reading_trigger.sql": "9bfcbef88d3b03f8c60767c634f4bfc835dcfbdc7eb37902c00c520d7c080cb9",
    "0001_schema.sql": "1ef1153eb71f840ace95bb33eef239bcd428641799125278e751b47daf465f39",
    "0002_live.sql": "a20c0422e8c9b1cb5f63c77665564dbf337f0dca9c495ff666a561c8d7114d36",
    "0002_reading_trigger.sql": "c3d979873d694554a3458615b85db7d64535736be909ed90f448c0f854107a8f",
    "0003_displays.sql": "0f45dabff90cfa56f9508836bdec310882c7a096207296e1f7bb81b9eaf54a7a",
    "0004_access.sql": "cc4539a5a6a1a47d19a11bf8962d894f652dd44688e7fc0dd440293fa69a274a",
    "0005_status.sql": "a35a4d94912ec1917dc3ab19dd71ee2c449804b5c907c8ffbf0999067869e079",
    "0006_foresight.sql": "cbec1d81b431192691d1f866022e7d7b0cda70f52160235239019732452bd67a",
    "0006_foresight_down.sql": "fe66c141572853cbf8bae51e14b206abe83ee3ba991549163898e2a4fc106444",
    "0007_source_scope.sql": "30bd0156f6f591f3f38f6ea05d7484c4898c539e0e9fe070875940e665089048",
    "0007_source_scope_down.sql": (
        "0b78a444ea960526e1011c3b9656c26cf08718fa43b1f9582b4cc1e82884789e"
    ),
    "0008_map_context.sql": "97a8449ac4b8bac308c22fd124df2235df41c9d72bba6f0301ffd8947a82bf0d",
    "0008_map_context_down.sql": (
        "b7b9ed39439d98a9e44f756f64bc834bb863ef1c7f45f1b481de5b340ed9f46c"
    ),
    "0009_events.sql": "89819b2c8388fbbefdc5bd6adc70e1b287260a10cf7a203a8a56c5a0430665e5",
    "0009_events_down.sql": "7fe2b631b7b68a49724d23390006c713a370e85acf870c91e076c79bb0377c46",
    "0010_news_order.sql": "6a0dcc2bbfd11b0cbea2c5878bb07c49270042add0e51d383b1a368fa59c1c02",
    "0010_news_order_down.sql": (
        "66526970bfb8d45707aedc20bdfde6a19b56ffb9cf948f32f59ff819f085f2ff"
    ),
    "0011_warnings.sql": "2f1e83aa7cb06f09ca6f607d26179943daa2e38963c9574926d5278ea4fd97e6",
    "0011_warnings_down.sql": ("6bc343752c1a45d26e332d8f6cc213adbbc2ad087e3927f6e0bac87bb78026fb"),
    "0012_served.sql": "b09a1d9ad163b94b30ec93ba081748101fa32470a7206a05f7a9ecdf5c696165",
    "0012_served_down.sql": "71f9b4aa7fd63a54daa2db3950428c2db38152e7b39eb40d8c641dc88eb53e8a",
    "0013_resources.sql": "d7359ace04ecfdd789e03e7a4bf0e97913b3703d5fb11eeddcad09f1bd343b7c",
    "0013_resources_down.sql": "f3bd452b26343435cb3476fe7c3be6def9baae3a10dd54b22c5086ce9edfb0dd",
    "0014_history.sql": "3ca22c95d71f08d7440998bf45080ced2d6128ccfd6386c4fcfc216513c8026f",
    "0014_history_down.sql": "1a3087990babb938b180ef93514c1eccdcbce2f2d24bcd803a5ed311b68d8c2d",
    "0015_incremental_status.sql": (
        "e7c5669e966a97a0668456cf55861b609a67082964a7e8bc60efe192605b6b3f"
    ),
    "0015_incremental_status_down.sql": (
        "5f50bdee50c872c12670c89e2e347b4708f367a64874bc247572700cf47e8e6a"
    ),
    "0016_reading_time_index.sql": (
        "1e99958bbbaf167ab26385350eeb262e6432c82ce108e0885f2fc2d02dad419f"
    ),
    "0016_reading_time_index_down.sql": (
        "bec9030f2c2a97fb88ab7a6cf2cd3d7ac372aec6794ad422ae7161a6703a9890"
    ),
    "0017_handling_counters.sql": (
        "7fc7f4c4988bc5f83889c76cb217a8f3a48656cfbfc770e6d0417dc5bf129189"
    ),
    "0017_handling_counters_down.sql": (
        "f46882d04e532cf39fc84f6025c9944d79ffbe2630dd41d003c934fc8aed284b"
    ),
}


def _revisions() -> list[str]:
    """Revision ids from the first to the head."""
    script = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _has_table(conn: sa.Connection, name: str) -> bool:
    return conn.execute(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}).scalar()


def _new_device(engine: sa.Engine, *, code: str) -> int:
    """A fire sensor of its own, in a one-street city made once per fresh schema."""
    params = {**PLACE, "alarm_max": ALARM_MAX, "code": code}
    with engine.begin() as conn:
        for statement in REFERENCE:
            conn.execute(sa.text(statement), params)
        return int(
            conn.execute(
                sa.text(
                    "INSERT INTO device (code, type_id, district_adcode, street_code,"
                    " installed_on, geom) VALUES (:code, 1, '310101', '310101001',"
                    " '2026-01-01', ST_GeomFromText(:point, 4326)) RETURNING id"
                ),
                params,
            ).scalar_one()
        )


SHAPE = sa.text(
    # functions (text, options, grants), columns, triggers and policies: what a revision's SQL
    # defines, without the partitions the walk's readings create
    "SELECT 'f ' || p.oid::regprocedure::text || ' ' || md5(pg_get_functiondef(p.oid))"
    "       || (SELECT string_agg(g::text, ',' ORDER BY g::text)"
    "           FROM unnest(coalesce(p.proacl, acldefault('f', p.proowner))) g) AS item"
    " FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND NOT EXISTS"
    "  (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
    " UNION ALL SELECT 'c ' || c.relname || '.' || a.attname || ' '"
    "       || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
    "   AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped"
    "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"
    " UNION ALL SELECT 't ' || pg_get_triggerdef(t.oid) FROM pg_trigger t"
    " JOIN pg_class c ON c.oid = t.tgrelid"
    " WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal"
    "   AND NOT c.relispartition"
    " UNION ALL SELECT 'p ' || tablename || '.' || policyname || ' ' || cmd || ' '"
    "       || coalesce(qual, '') || coalesce(with_check, '') FROM pg_policies"
    " ORDER BY 1"
)


def _shape(engine: sa.Engine) -> list[str]:
    """What the schema defines at this revision, comparable between visits."""
    with engine.connect() as conn:
        return list(conn.execute(SHAPE).scalars())


def _check_revision(engine: sa.Engine, *, step: str, at: datetime) -> None:
    """An alarm reading is stored; where the rules exist, a pass opens its incident."""
    revision = migrate.current_revision(engine)
    device_id = _new_device(engine, code=f"walk-{step}")
    batch = ReadingBatch(
        device_id=np.array([device_id], dtype=np.int64),
        ts_us=np.array([round(at.timestamp() * 1e6)], dtype=np.int64),
        value=np.array([ALARM_MAX + 10]),
        quality=np.zeros(1, dtype=np.int16),
    )
    with engine.begin() as conn:
        stored = store_readings(conn, batch, partitions=PartitionCache())
    assert stored.tolist() == [True], revision
    with engine.begin() as conn:
        latest = conn.execute(
            sa.text("SELECT level FROM device_latest WHERE device_id = :d"), {"d": device_id}
        ).scalar_one()
        assert latest == 2, revision
        conn.execute(sa.text("SELECT refresh_status(:at)"), {"at": at})
        has_rules = _has_table(conn, "incident_rule")
    if not has_rules:
        return
    # the offline scan reads what the status pass keeps from revision 0015 on
    report = RulesEngine(engine).run_once(offline=str(revision) >= "0015")
    assert (report.skipped, report.opened) == (False, 1), revision
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.text(
                    "SELECT severity FROM incident WHERE device_id = :d AND status = 'open'"
                    " AND rule_code = 'alarm_high'"  # (from 0006 a health check may see it too)
                ),
                {"d": device_id},
            ).scalar_one()
            == "critical"
        ), revision


def test_every_revision_takes_readings_and_runs_the_rules_up_down_and_up(scratch_db):
    order = ["base", *_revisions()]
    # up one revision at a time, down to base, up again
    path = [*order[1:], *reversed(order[:-1]), *order[1:]]
    # within the live window (ONESCREEN_LIVE_WINDOW_SECONDS): later readings open no live incident
    at = datetime.now(UTC) - timedelta(minutes=10)
    shapes: dict[str, list[str]] = {}
    for step, revision in enumerate(path):
        current = migrate.current_revision(scratch_db) or "base"
        if order.index(revision) > order.index(current):
            migrate.upgrade(scratch_db, revision=revision)
        else:
            migrate.downgrade(scratch_db, revision=revision)
        assert (migrate.current_revision(scratch_db) or "base") == revision
        if revision == "base":
            continue
        # a revision reached from above (or again) has the shape it had on the first way up
        shape = _shape(scratch_db)
        assert shapes.setdefault(revision, shape) == shape, revision
        _check_revision(scratch_db, step=f"{step}-{revision}", at=at + timedelta(seconds=step))


def test_sql_files_are_named_after_their_revision_and_stay_as_they_landed():
    revisions = _revisions()
    paths = list(migrate.SQL_DIR.glob("*.sql"))
    files = {path.name: path for path in paths if not path.is_symlink()}
    assert {name.split("_", 1)[0] for name in files} <= set(revisions)
    # the one other name: what landed 0004 and 0005 read revision 0001's functions by
    links = {path.name: path.resolve().name for path in paths if path.is_symlink()}
    assert links == {"002_functions.sql": "0001_functions.sql"}
    changed = [
        name
        for name, digest in LANDED.items()
        if name not in files or hashlib.sha256(files[name].read_bytes()).hexdigest() != digest
    ]
    assert changed == [], "landed migration SQL changed: write a new revision instead"
    # only the newest revision may still be taking shape; once a later one exists, record it
    unrecorded = {name.split("_", 1)[0] for name in files if name not in LANDED}
    assert unrecorded <= {revisions[-1]}
