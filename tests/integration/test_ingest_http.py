"""The ingest HTTP API against the real seeded PostGIS: good, bad, duplicate and hostile batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from config import load_settings
from data import ingest_store
from tests.bodies import CountingBody
from web.ingest_api import register_ingest_routes
from web.services import attach

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(live_city_url):
    """A Flask server with only the ingest routes, on a live city of its own."""
    app = Flask("ingest-test")
    # the services the routes reach: settings and the owner's engine
    services = attach(app, load_settings(DATABASE_URL=live_city_url, ingest_max_rows=500))
    register_ingest_routes(app)
    yield app.test_client()
    services.close()


@pytest.fixture(scope="module")
def engine(live_engine_):
    return live_engine_


@pytest.fixture(scope="module")
def token(engine) -> str:
    return ingest_store.create_token(engine, source="test-http", city_wide=True, label="tests")


@pytest.fixture(scope="module")
def devices(engine) -> dict:
    """An analog and a binary device of the tiny city, with their type's limits."""
    with engine.connect() as conn:
        analog = conn.execute(
            sa.text(
                "SELECT d.id, d.code, t.normal_min, t.normal_max, t.alarm_max FROM device d"
                " JOIN device_type t ON t.id = d.type_id"
                " WHERE t.value_kind = 'analog' AND d.status = 'active' AND t.normal_min >= 0"
                " ORDER BY d.id LIMIT 1"
            )
        ).one()
        binary = conn.execute(
            sa.text(
                "SELECT d.id FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.value_kind = 'binary' AND d.status = 'active' ORDER BY d.id LIMIT 1"
            )
        ).scalar_one()
    return {"analog": analog, "binary": binary}


def _now(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def _post(client, token, body, *, content_type="application/json"):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(
        "/api/v1/readings",
        data=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )


def _stored(engine, device_id: int, ts: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM reading WHERE device_id = :d AND ts = :ts"),
            {"d": device_id, "ts": datetime.fromisoformat(ts)},
        ).scalar_one()


def test_good_batch_is_stored_and_a_resend_is_stored_once(client, token, devices, engine):
    device = devices["analog"]
    middle = (device.normal_min + device.normal_max) / 2
    rows = [
        {"device_id": device.id, "ts": _now(-30), "value": middle},
        {"device_code": device.code, "ts": _now(-20), "value": middle, "quality": "suspect"},
        {"device_id": devices["binary"], "ts": _now(-10), "value": 0},
    ]
    first = _post(client, token, {"readings": rows})
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["status"] == ["stored", "stored", "stored"]
    again = _post(client, token, {"readings": rows})
    assert again.status_code == 200
    assert again.get_json()["status"] == ["duplicate"] * 3
    assert again.get_json()["stored"] == 0
    for row in rows:
        assert _stored(engine, row.get("device_id", device.id), row["ts"]) == 1
    with engine.connect() as conn:
        quality = conn.execute(
            sa.text("SELECT quality FROM reading WHERE device_id = :d AND ts = :ts"),
            {"d": device.id, "ts": datetime.fromisoformat(rows[1]["ts"])},
        ).scalar_one()
    assert quality == 1


def test_a_key_repeated_inside_one_batch_is_stored_once(client, token, devices, engine):
    device = devices["analog"]
    ts = _now(-40)
    row = {"device_id": device.id, "ts": ts, "value": device.normal_min}
    response = _post(client, token, [row, row])
    assert response.status_code == 200
    assert response.get_json()["status"] == ["stored", "duplicate"]
    assert _stored(engine, device.id, ts) == 1


def test_mixed_batch_says_per_row_why_and_keeps_a_dead_letter(client, token, devices, engine):
    device = devices["analog"]
    good_ts = _now(-50)
    rows = [
        {"device_id": device.id, "ts": good_ts, "value": device.normal_max},
        {"device_id": 99_999_999, "ts": _now(), "value": 1},
        {"device_id": device.id, "ts": _now(3600), "value": 1},
        {"device_id": device.id, "ts": "2026-11-25T08:00:00", "value": 1},
        {"device_id": device.id, "ts": _now(-60), "value": -5},
        {
            "device_id": device.id,
            "ts": _now(-61),
            "value": (device.alarm_max or device.normal_max) * 1000 + 1e6,
        },
        {"device_id": devices["binary"], "ts": _now(-62), "value": 0.5},
        {"device_id": device.id, "ts": "yesterday", "value": 1},
        {"device_id": device.id, "ts": _now(-63), "value": "high"},
        {"device_id": device.id, "ts": _now(-64)},
        {"device_id": True, "ts": _now(-65), "value": 1},
        "not an object",
        {
            "device_id": device.id,
            "ts": (datetime.now(UTC) - timedelta(days=400)).isoformat(),
            "value": 1,
        },
        {"device_id": device.id, "ts": _now(-66), "value": 1, "quality": 7},
    ]
    response = _post(client, token, {"readings": rows})
    assert response.status_code == 207
    body = response.get_json()
    assert body["stored"] == 1 and body["rejected"] == len(rows) - 1
    codes = {error["index"]: error["code"] for error in body["errors"]}
    assert codes == {
        1: "unknown_device",
        2: "ts_future",
        3: "ts_naive",
        4: "value_out_of_range",
        5: "value_out_of_range",
        6: "value_not_binary",
        7: "ts_invalid",
        8: "value_invalid",
        9: "value_missing",
        10: "device_invalid",
        11: "not_an_object",
        12: "ts_too_old",
        13: "quality_invalid",
    }
    assert all(error["message"] for error in body["errors"])
    assert _stored(engine, device.id, good_ts) == 1
    letters = ingest_store.dead_letters(engine, limit=5)
    assert any(
        letter["channel"] == "http"
        and letter["source_code"] == "test-http"
        and len(letter["rejected"]) == len(rows) - 1
        for letter in letters
    )


def test_wholly_bad_batches_get_4xx(client, token, devices):
    assert (
        _post(
            client, token, {"readings": [{"device_id": 99_999_999, "ts": _now(), "value": 1}]}
        ).status_code
        == 422
    )
    for body, code in [
        (b"{not json", "invalid_json"),
        ({"readings": []}, "no_readings"),
        ({"rows": []}, "no_readings"),
        ({"readings": {"a": 1}}, "not_a_list"),
        (b"", "empty_body"),
    ]:
        response = _post(client, token, body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["code"] == code
    too_many = [{"device_id": devices["binary"], "ts": _now(-k), "value": 0} for k in range(501)]
    assert _post(client, token, {"readings": too_many}).status_code == 413
    wrong_type = _post(client, token, b"device_id=1", content_type="text/plain")
    assert wrong_type.status_code == 415


def test_tokens_are_required_and_scoped(client, engine, devices):
    row = {"device_id": devices["binary"], "ts": _now(-70), "value": 0}
    assert client.post("/api/v1/readings", json={"readings": [row]}).status_code == 401
    assert _post(client, "not-a-token", {"readings": [row]}).status_code == 401
    device_token = ingest_store.create_token(
        engine, source="test-device", device_id=devices["analog"].id
    )
    response = _post(client, device_token, {"readings": [row]})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["code"] == "token_scope"
    own = {
        "device_id": devices["analog"].id,
        "ts": _now(-71),
        "value": devices["analog"].normal_min,
    }
    assert _post(client, device_token, {"readings": [own]}).status_code == 200
    revoked = ingest_store.create_token(engine, source="test-revoked", city_wide=True)
    ingest_store.revoke_tokens(engine, source="test-revoked")
    assert _post(client, revoked, {"readings": [own]}).status_code == 401


def test_scattered_live_batches_keep_rollups_and_latest_state_exact(client, token, engine):
    """Live batches name devices from all over the city (the trigger looks them up by key)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.id, t.normal_min, t.normal_max, t.alarm_max FROM device d"
                " JOIN device_type t ON t.id = d.type_id"
                " WHERE d.status = 'active' AND t.value_kind = 'analog' ORDER BY random() LIMIT 300"
            )
        ).all()
    assert max(r.id for r in rows) - min(r.id for r in rows) > 8 * len(rows)
    moment = datetime.now(UTC) - timedelta(seconds=5)
    readings = [
        {
            "device_id": row.id,
            "ts": (moment - timedelta(milliseconds=k)).isoformat(),
            # every third one beyond its alarm limit
            "value": (row.alarm_max or row.normal_max) + 1 if k % 3 == 0 else row.normal_min,
        }
        for k, row in enumerate(rows)
    ]
    response = _post(client, token, {"readings": readings})
    assert response.status_code == 200 and response.get_json()["stored"] == len(rows)
    with engine.connect() as conn:
        wrong_rollups = conn.execute(
            sa.text(
                """
                WITH truth AS (
                    SELECT bucket_15m(r.ts) AS bucket, d.street_code, t.category_code,
                           count(*) AS n,
                           count(*) FILTER (WHERE reading_level(r.value, t.normal_min,
                                t.normal_max, t.alarm_min, t.alarm_max) = 2) AS alarms
                    FROM reading r JOIN device d ON d.id = r.device_id
                    JOIN device_type t ON t.id = d.type_id GROUP BY 1, 2, 3)
                SELECT count(*) FROM truth FULL JOIN rollup_street_15m u
                    USING (bucket, street_code, category_code)
                WHERE truth.n IS DISTINCT FROM u.n_readings
                   OR truth.alarms IS DISTINCT FROM u.n_alarm
                """
            )
        ).scalar_one()
        wrong_latest = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT DISTINCT ON (device_id) device_id, ts FROM reading"
                " ORDER BY device_id, ts DESC) newest FULL JOIN device_latest l USING (device_id)"
                " WHERE l.ts IS DISTINCT FROM newest.ts"
            )
        ).scalar_one()
        queued = conn.execute(
            sa.text("SELECT count(*) FROM rule_inbox WHERE ts = ANY(:ts)"),
            {"ts": [datetime.fromisoformat(r["ts"]) for r in readings[::3]]},
        ).scalar_one()
    assert wrong_rollups == 0
    assert wrong_latest == 0
    assert queued == len(readings[::3])  # alarm readings reach the rules


def test_openapi_document_describes_the_endpoint(client):
    document = client.get("/api/v1/openapi.json").get_json()
    post = document["paths"]["/api/v1/readings"]["post"]
    assert {"200", "207", "400", "401", "413", "415", "422", "503"} <= set(post["responses"])
    assert "unknown_device" in json.dumps(document["components"]["schemas"]["IngestResult"])
    assert {"/api/v1/health", "/api/v1/ready"} <= set(document["paths"])


def test_health_reports_the_newest_reading(client):
    health = client.get("/api/v1/health").get_json()
    assert health["newest_reading"] is not None
    assert health["dead_letters_1h"] >= 0
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"


def test_health_finds_the_newest_reading_fresh_or_after_a_silence(client, token, devices, engine):
    """The newest reading as the readings hold it: in the last minutes (the time index) and,
    when there are none, in the newest quarter hour with readings."""

    def newest() -> datetime:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT max(ts) FROM reading")).scalar_one()

    def reported(**window: float) -> datetime:
        return datetime.fromisoformat(
            ingest_store.ingest_health(engine, **window)["newest_reading"]
        )

    moment = datetime.now(UTC) - timedelta(seconds=5)
    stored = client.post(
        "/api/v1/readings",
        json=[{"device_id": devices["analog"].id, "ts": moment.isoformat(), "value": 1.0}],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert stored.status_code == 200, stored.get_json()
    assert reported() == newest() >= moment - timedelta(microseconds=1)
    # as after a silence: nothing in the last instant, so the newest quarter hour's readings
    assert reported(recent_s=0) == newest()


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(client, token):
    # the view's own defence (this server has no body-limit middleware in front)
    limit = load_settings(ingest_max_rows=500).body_limits()["/api/v1/readings"]
    environ = EnvironBuilder(
        path="/api/v1/readings",
        method="POST",
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    ).get_environ()
    body = CountingBody(50 * 1024 * 1024)
    environ.pop("CONTENT_LENGTH", None)
    environ.update(
        {"wsgi.input": body, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    )
    answer, status, _headers = run_wsgi_app(client.application, environ, buffered=True)
    assert status.startswith("413")
    assert json.loads(b"".join(answer))["error"]["code"] == "too_large"
    assert body.taken <= limit + 64 * 1024, f"read {body.taken} bytes of a {limit}-byte limit"


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_row = st.fixed_dictionaries(
    {},
    optional={
        "device_id": st.integers(min_value=-5, max_value=4000) | st.integers() | _json_scalars,
        "device_code": st.text(max_size=40) | _json_scalars,
        "ts": st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat) | st.text(max_size=40),
        "value": st.floats(allow_nan=True, allow_infinity=True) | st.integers() | _json_scalars,
        "quality": st.integers(-3, 5) | st.text(max_size=8),
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.fixed_dictionaries({"readings": st.lists(_row, max_size=20)}),
        _json,
        st.binary(max_size=200),
    )
)
def test_fuzzed_payloads_never_cause_a_server_error(client, token, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = _post(client, token, data)
    assert response.status_code in {200, 207, 400, 413, 422}, response.get_data(as_text=True)
    payload = response.get_json()
    assert payload is not None
    if response.status_code in (200, 207, 422):
        assert len(payload["status"]) == payload["total"]
        assert payload["stored"] + payload["duplicate"] + payload["rejected"] == payload["total"]


def _category_device(engine, *, category: str, district: str | None = None) -> sa.Row:
    """An active analog device of `category` (in `district`), with its type's normal range."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT d.id, d.district_adcode, t.normal_min FROM device d"
                " JOIN device_type t ON t.id = d.type_id"
                " WHERE t.category_code = :category AND t.value_kind = 'analog'"
                "   AND d.status = 'active' AND d.district_adcode = coalesce(:district,"
                "   d.district_adcode) ORDER BY d.id LIMIT 1"
            ),
            {"category": category, "district": district},
        ).one()


def test_a_token_writes_only_its_categories_in_its_districts(client, engine):
    water = _category_device(engine, category="water")
    gas = _category_device(engine, category="gas", district=water.district_adcode)
    with engine.connect() as conn:
        elsewhere = conn.execute(
            sa.text(
                "SELECT d.id, t.normal_min FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE t.category_code = 'water' AND t.value_kind = 'analog' AND d.status ="
                " 'active' AND d.district_adcode <> :district ORDER BY d.id LIMIT 1"
            ),
            {"district": water.district_adcode},
        ).one()
    token = ingest_store.create_token(
        engine, source="water-bureau", categories=["water"], districts=[water.district_adcode]
    )
    rows = [
        {"device_id": device.id, "ts": _now(-80 - k), "value": device.normal_min}
        for k, device in enumerate((water, gas, elsewhere))
    ]
    response = _post(client, token, {"readings": rows})
    assert response.status_code == 207
    body = response.get_json()
    assert body["status"] == ["stored", "rejected", "rejected"]
    scope = f"this token may only send readings for water devices in {water.district_adcode}"
    assert body["errors"] == [
        {"index": 1, "code": "token_scope", "message": scope},
        {"index": 2, "code": "token_scope", "message": scope},
    ]


def test_a_token_must_say_what_it_may_send_for(engine):
    with pytest.raises(ingest_store.TokenError, match="--all"):
        ingest_store.create_token(engine, source="nothing-said")
    with pytest.raises(ingest_store.TokenError, match="no such category"):
        ingest_store.create_token(engine, source="typo", categories=["watr"])
    with pytest.raises(ingest_store.TokenError, match="no such district"):
        ingest_store.create_token(engine, source="typo", districts=["310199"])
    with pytest.raises(ingest_store.TokenError, match="takes no --device"):
        ingest_store.create_token(engine, source="both", city_wide=True, categories=["water"])
    gas = _category_device(engine, category="gas")
    with pytest.raises(ingest_store.TokenError, match="outside the token's categories"):
        ingest_store.create_token(engine, source="odd", device_id=gas.id, categories=["water"])
