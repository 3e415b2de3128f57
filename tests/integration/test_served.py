"""`import-served`: the households each monitor stands for, set from a CSV file all or nothing;
bad files refused with the line and the reason, and the stored counts kept."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import cli_runner

pytestmark = pytest.mark.integration


@pytest.fixture
def outage_monitors(engine, seeded, db_url, monkeypatch):
    """Two outage monitors' codes, the CLI pointed at the seeded city; their counts restored."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.code, d.served FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.measurand = 'outage' ORDER BY d.id LIMIT 2"
            )
        ).all()
    yield [code for code, _ in rows]
    with engine.begin() as conn:
        for code, served in rows:
            conn.execute(
                sa.text("UPDATE device SET served = :s WHERE code = :c"), {"s": served, "c": code}
            )


def _served(engine, codes):
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.text("SELECT served FROM device WHERE code = ANY(:c) ORDER BY id"), {"c": codes}
            )
            .scalars()
            .all()
        )


def test_the_seed_gives_every_outage_monitor_households_and_nothing_else(engine, seeded):
    with engine.connect() as conn:
        kinds = conn.execute(
            sa.text(
                "SELECT t.measurand = 'outage', count(d.served), count(*), min(d.served),"
                " max(d.served) FROM device d JOIN device_type t ON t.id = d.type_id GROUP BY 1"
            )
        ).all()
    by_kind = {row[0]: row[1:] for row in kinds}
    known, total, low, high = by_kind[True]
    assert known == total > 0 and 120 <= low <= high <= 480
    assert by_kind[False][0] == 0


def test_import_served_sets_the_listed_monitors(engine, outage_monitors, tmp_path, capsys):
    run = cli_runner(capsys)
    first, second = outage_monitors
    path = tmp_path / "served.csv"
    path.write_text(f"device_code,served,note\n{first},350,台区 A\n{second},\n", encoding="utf-8")
    code, out, err = run("import-served", str(path))
    assert code == 0, err
    assert "households set for 2 device(s), 2 changed" in out
    assert _served(engine, outage_monitors) == [350, None]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("code,households\nX,1\n", "the header must begin device_code,served"),
        ("device_code,served\n", "no rows"),
        ("device_code,served\n{first},-3\n", "line 2: households must be a whole number"),
        ("device_code,served\n{first},12.5\n", "line 2: households must be a whole number"),
        ("device_code,served\n{first},100001\n", "line 2: households must be a whole number"),
        ("device_code,served\n{first},10\n{first},11\n", "line 3: device {first} is listed twice"),
        ("device_code,served\n,10\n", "line 2: a device code is needed"),
        ("device_code,served\n{first},10\nSH-NOPE,5\n", "no device with code SH-NOPE"),
    ],
)
def test_import_served_refuses_bad_files_and_keeps_the_counts(
    engine, outage_monitors, tmp_path, capsys, content, message
):
    run = cli_runner(capsys)
    before = _served(engine, outage_monitors)
    path = tmp_path / "bad.csv"
    path.write_text(content.format(first=outage_monitors[0]), encoding="utf-8")
    code, _, err = run("import-served", str(path))
    assert code == 2 and message.format(first=outage_monitors[0]) in err, err
    assert _served(engine, outage_monitors) == before


def test_import_served_refuses_a_missing_file(engine, outage_monitors, tmp_path, capsys):
    code, _, err = cli_runner(capsys)("import-served", str(tmp_path / "none.csv"))
    assert code == 2 and "no such file" in err
