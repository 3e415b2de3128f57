"""The after-action review (data/review.py) on the real PostGIS: a told story read back figure by
figure, the seeded day against a recomputation from its incidents, scope by row-level security,
and bad windows refused."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from data.checks import InvalidQuery
from data.review import review, review_bucket, review_incidents
from data.scope import Scope, create_web_engine, provision_web_role, scoped, web_database_url
from tests.conftest import SEED_END, cli_runner

PUDONG, JINGAN = "310115", "310106"
# the story's window, far from anything the seed or other tests write
W = SEED_END + timedelta(days=100)
END = W + timedelta(hours=6)

# (key, district, category, severity, kind, opened, acknowledged, resolved, team) in minutes
# from W; acknowledged or resolved after END (360) count as not yet done
STORY = [
    ("p1", PUDONG, "flood", "critical", "alarm", 10, 15, 70, "浦东防汛队"),
    ("p2", PUDONG, "flood", "major", "alarm", 20, 40, None, "浦东防汛队"),
    ("p3", PUDONG, "gas", "minor", "alarm", 30, None, 400, None),
    ("j1", JINGAN, "flood", "critical", "alarm", 50, 52, 110, "静安城运"),
    ("j2", JINGAN, "power", "major", "alarm", 100, 400, None, None),
    ("before", PUDONG, "flood", "critical", "alarm", -30, -20, 10, "浦东防汛队"),
    ("f1", PUDONG, "flood", "major", "forecast", 5, None, 10, None),
]


def _at(minutes: float | None) -> datetime | None:
    return None if minutes is None else W + timedelta(minutes=minutes)


def _insert(conn: sa.Connection, row: tuple) -> int:
    key, district, category, severity, kind, opened, acked, resolved, team = row
    status = "resolved" if resolved is not None else "acknowledged" if acked else "open"
    return conn.execute(
        sa.text(
            "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
            " street_code, rule_code, severity, status, title_zh, title_en, opened_at,"
            " acknowledged_at, resolved_at, assignee, kind, expected_at, geom)"
            " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
            "  :rule, :severity, :status, :key, :key, :opened, :acked, :resolved, :team, :kind,"
            "  CASE WHEN :kind = 'forecast' THEN CAST(:opened AS timestamptz)"
            "   + interval '30 minutes' END, d.geom"
            " FROM device d JOIN device_type t ON t.id = d.type_id"
            " WHERE d.district_adcode = :district AND t.category_code = :category"
            " ORDER BY d.id LIMIT 1 RETURNING id"
        ),
        {
            "rule": f"review-{key}",
            "severity": severity,
            "status": status,
            "key": key,
            "opened": _at(opened),
            "acked": _at(acked),
            "resolved": _at(resolved),
            "team": team,
            "kind": kind,
            "district": district,
            "category": category,
        },
    ).scalar_one()


def _story_rest(conn: sa.Connection, ids: dict[str, int]) -> None:
    """The 预警 that foresaw p1, two units sent (one arrived), a level raised, a task done."""
    conn.execute(
        sa.text("UPDATE incident SET foreseen_by = :f, lead_s = 300 WHERE id = :a"),
        {"f": ids["f1"], "a": ids["p1"]},
    )
    # each district's own unit (a district reads its own units' history, RLS)
    pick = sa.text("SELECT id FROM resource WHERE district_adcode = :d ORDER BY id LIMIT 1")
    pudong_unit = conn.execute(pick, {"d": PUDONG}).scalar_one()
    jingan_unit = conn.execute(pick, {"d": JINGAN}).scalar_one()
    events = [
        (pudong_unit, "dispatched", 12, ids["p1"]),
        (pudong_unit, "arrived", 30, ids["p1"]),
        (jingan_unit, "dispatched", 55, ids["j1"]),
    ]
    for unit, kind, minutes, incident in events:
        conn.execute(
            sa.text(
                "INSERT INTO resource_event (resource_id, at, kind, actor, to_status,"
                " incident_id, eta_s) VALUES (:u, :at, :kind, 'review-test', 'en_route', :i, 600)"
            ),
            {"u": unit, "at": _at(minutes), "kind": kind, "i": incident},
        )
    # a city reserve unit lent to Jing'an for the storm and taken back (the history lend_unit
    # writes)
    reserve = conn.execute(
        sa.text("SELECT id FROM resource WHERE district_adcode IS NULL ORDER BY id LIMIT 1")
    ).scalar_one()
    for minutes, lent_to, was in ((20, JINGAN, None), (90, None, JINGAN)):
        conn.execute(
            sa.text(
                "INSERT INTO resource_event (resource_id, at, kind, actor, from_status,"
                " to_status, lent_to, from_lent_to) VALUES (:u, :at, 'lent', 'review-test',"
                " 'available', 'available', :lent, :was)"
            ),
            {"u": reserve, "at": _at(minutes), "lent": lent_to, "was": was},
        )
    for key, minutes in (("p1", 15), ("j1", 52)):
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor, from_status,"
                " to_status) VALUES (:i, :at, 'acknowledged', 'review-test', 'open',"
                " 'acknowledged')"
            ),
            {"i": ids[key], "at": _at(minutes)},
        )
    conn.execute(
        sa.text(
            "INSERT INTO warning_level_change (at, topic_code, district_adcode, from_level,"
            " to_level, source, actor) VALUES (:at, 'flood', :d, NULL, 4, 'operator', 'review')"
        ),
        {"at": _at(8), "d": PUDONG},
    )
    conn.execute(
        sa.text(
            "INSERT INTO playbook_task (action_id, topic_code, district_adcode, level, owner,"
            " status, created_at, due_at, done_at, done_by)"
            " SELECT id, 'flood', :d, 4, 'review', 'done', :created, :due, :done, 'review'"
            " FROM playbook_action WHERE topic_code = 'flood' AND level = 4 ORDER BY seq LIMIT 1"
        ),
        {"d": PUDONG, "created": _at(9), "due": _at(39), "done": _at(60)},
    )


@pytest.fixture(scope="module")
def story(engine, seeded) -> Iterator[dict[str, int]]:
    """The story written into the session's city (the trigger-free way the rules engine's
    history would hold it); removed afterwards."""
    with engine.begin() as conn:
        ids = {row[0]: _insert(conn, row) for row in STORY}
        _story_rest(conn, ids)
    yield ids
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM resource_event WHERE actor = 'review-test'"))
        conn.execute(sa.text("DELETE FROM warning_level_change WHERE actor = 'review'"))
        conn.execute(sa.text("DELETE FROM playbook_task WHERE owner = 'review'"))
        conn.execute(
            sa.text("DELETE FROM incident WHERE id = ANY(:ids)"), {"ids": list(ids.values())}
        )


def test_the_review_of_a_told_story_reads_it_back(engine, story):
    got = review(engine, start=W, end=END)
    by_district = got.by_district.set_index("key")
    assert set(by_district.index) == {PUDONG, JINGAN}
    pudong, jingan = by_district.loc[PUDONG], by_district.loc[JINGAN]
    # Pudong: p1 acknowledged in 5 min, p2 in 20; p1 resolved in 60; p3 done after the end
    assert (pudong.incidents, pudong.critical, pudong.acknowledged, pudong.resolved) == (3, 1, 2, 1)
    assert pudong.mtta_s == pytest.approx(750) and pudong.mttr_s == pytest.approx(3600)
    # Jing'an: j2's acknowledgement came after the window and does not count
    assert (jingan.incidents, jingan.acknowledged, jingan.resolved) == (2, 1, 1)
    assert jingan.mtta_s == pytest.approx(120) and jingan.p50_resolve_s == pytest.approx(3600)
    teams = dict(zip(got.by_team.key, got.by_team.incidents, strict=True))
    assert teams == {"浦东防汛队": 2, "静安城运": 1, "": 2}
    mix = {(r.category_code, r.severity): r.n for r in got.mix.itertuples()}
    assert mix == {
        ("flood", "critical"): 2,
        ("flood", "major"): 1,
        ("gas", "minor"): 1,
        ("power", "major"): 1,
    }
    assert got.timeline.n.sum() == 5 and got.bucket == timedelta(minutes=10)
    assert got.early == {
        "forecasts": 1,
        "alarms": 5,
        "foreseen": 1,
        "p50_lead_s": 300,
        "max_lead_s": 300,
    }
    units = got.units.sort_values("dispatched_at")
    assert list(units.incident_id) == [story["p1"], story["j1"]]
    assert (units.arrived_at.iloc[0] - units.dispatched_at.iloc[0]) == timedelta(minutes=18)
    assert pd.isna(units.arrived_at.iloc[1])
    assert list(got.levels.to_level) == [4] and list(got.tasks.status) == ["done"]
    assert list(got.log.title_en) == ["p1", "j1"] and set(got.log.actor) == {"review-test"}
    # one district: only its incidents, its units, its levels (and the city's) and its tasks
    mine = review(engine, start=W, end=END, district=JINGAN)
    assert list(mine.by_district.key) == [JINGAN] and list(mine.units.incident_id) == [story["j1"]]
    assert mine.levels.empty and mine.tasks.empty and list(mine.log.title_en) == ["j1"]
    # the reserve's loan to Jing'an and its end: in the city's review and Jing'an's, not Pudong's
    assert list(got.loans.lent_to) == [JINGAN, None]
    assert list(got.loans.from_lent_to) == [None, JINGAN]
    assert list(mine.loans["at"]) == list(got.loans["at"])
    assert review(engine, start=W, end=END, district=PUDONG).loans.empty


def test_the_csv_rows_are_the_incidents_under_review(engine, story):
    rows = review_incidents(engine, start=W, end=END)
    assert sorted(rows.title_en) == ["j1", "j2", "p1", "p2", "p3"]
    p3 = rows.set_index("title_en").loc["p3"]
    assert pd.isna(p3.resolved_at)  # resolved after the window: open as the window ends
    assert rows.set_index("title_en").units_sent.to_dict()["p1"] == 1


def test_a_district_reader_reviews_only_their_district(engine, story, db_url):
    provision_web_role(engine)
    web = create_web_engine(web_database_url(db_url))
    try:
        with scoped(Scope(JINGAN)):
            seen = review(web, start=W, end=END)
            asked = review(web, start=W, end=END, district=PUDONG)
    finally:
        web.dispose()
    assert list(seen.by_district.key) == [JINGAN]
    assert list(seen.units.incident_id) == [story["j1"]] and list(seen.log.title_en) == ["j1"]
    assert asked.by_district.empty and asked.log.empty and asked.units.empty


def _recomputed(rows: pd.DataFrame) -> pd.DataFrame:
    """Per district, from the incidents themselves: counts, MTTA and MTTR in seconds."""
    ack = (rows.acknowledged_at - rows.opened_at).dt.total_seconds()
    fix = (rows.resolved_at - rows.opened_at).dt.total_seconds()
    frame = rows.assign(ack=ack, fix=fix)
    grouped = frame.groupby("district_adcode")
    return pd.DataFrame(
        {
            "incidents": grouped.size(),
            "acknowledged": grouped.ack.count(),
            "mtta_s": grouped.ack.mean(),
            "resolved": grouped.fix.count(),
            "mttr_s": grouped.fix.mean(),
        }
    )


def test_the_seeded_day_equals_a_recomputation_from_its_incidents(engine, seeded):
    start, end = SEED_END - timedelta(hours=24), SEED_END
    got = review(engine, start=start, end=end)
    rows = review_incidents(engine, start=start, end=end)
    assert len(rows) > 20, "the seeded day has incidents"
    want = _recomputed(rows)
    table = got.by_district.set_index("key")[list(want.columns)].sort_index()
    pd.testing.assert_frame_equal(
        table.astype(float), want.sort_index().astype(float), check_names=False, rtol=1e-9
    )
    assert got.timeline.n.sum() == len(rows) == got.mix.n.sum()
    assert got.bucket == timedelta(minutes=30)


@pytest.mark.parametrize(
    "bad",
    [
        {"start": END, "end": W},
        {"start": W, "end": W + timedelta(days=32)},
        {"start": W.replace(tzinfo=None), "end": END.replace(tzinfo=None)},
        {"start": W, "end": END, "district": "31011'"},
        {"start": W, "end": END, "district": JINGAN, "street": "310115001"},
        {"start": W, "end": END, "log_limit": 0},
    ],
)
def test_bad_reviews_are_refused(engine, bad):
    with pytest.raises(InvalidQuery):
        review(engine, **bad)


def test_the_timeline_has_a_readable_number_of_bars():
    for hours in (1, 6, 12, 24, 72, 24 * 7, 24 * 31):
        span = timedelta(hours=hours)
        assert 6 <= span / review_bucket(span) <= 72, hours


@pytest.fixture
def report(monkeypatch, capsys, db_url):
    """`cli.py report` on the session's city."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    return cli_runner(capsys)


def _window_args() -> list[str]:
    return ["--from", W.isoformat(), "--to", END.isoformat()]


def test_the_cli_writes_the_csv_pdf_and_html_of_a_review(report, story, tmp_path):
    code, out, _err = report("report", *_window_args(), "--out", str(tmp_path / "r.csv"))
    assert code == 0 and "5 incident(s)" in out
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text()[1:])))
    assert sorted(r["title_en"] for r in rows) == ["j1", "j2", "p1", "p2", "p3"]
    code, _out, _err = report(
        "report", *_window_args(), "--district", JINGAN, "--lang", "en",
        "--out", str(tmp_path / "r.html"),
    )  # fmt: skip
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "After-action review · Jing" in page and "Plotly.newPlot" in page
    # Jing'an's own: its incident in the log, none of Pudong's
    assert f"#{story['j1']} j1" in page and f"#{story['p1']} p1" not in page
    code, out, err = report("report", *_window_args(), "--out", str(tmp_path / "r.pdf"))
    assert code == 0, err
    pdf = (tmp_path / "r.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "soon", "--to", "later", "--out", "x.pdf"], "not a date"),
        ([*_window_args(), "--out", "x.docx"], "must end in"),
        (["--from", END.isoformat(), "--to", W.isoformat(), "--out", "x.csv"], "after start"),
        ([*_window_args(), "--district", "9", "--out", "x.csv"], "adcode"),
    ],
)
def test_the_cli_refuses_bad_reports(report, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _out, err = report("report", *args)
    assert code == 2 and message in err and not list(tmp_path.iterdir())
