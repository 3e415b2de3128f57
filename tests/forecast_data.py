"""Early-warning test data written as the owner (the engine's part): a ponding device ramping
toward its alarm limit, its learned normal, 预警 / anomaly / health incidents per the revision
0006 contract, and an alarm that a 预警 foresaw."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tests.forecast_incidents import insert_incident


@dataclass(frozen=True)
class Ponding:
    """An underpass ponding sensor the tests drive."""

    id: int
    code: str
    district: str
    street: str
    limit: float


def ponding_device(engine: sa.Engine, *, district: str, skip: int = 0) -> Ponding:
    """A ponding sensor in `district` (the `skip`-th, so tests can take different ones)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT d.id, d.code, d.district_adcode, d.street_code, t.alarm_max"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " WHERE d.district_adcode = :district AND t.code LIKE 'flood.ponding.%'"
                "   AND d.status = 'active' AND t.alarm_max IS NOT NULL"
                " ORDER BY d.id OFFSET :skip LIMIT 1"
            ),
            {"district": district, "skip": skip},
        ).one()
    return Ponding(int(row[0]), row[1], row[2], row[3], float(row[4]))


def ramp(engine: sa.Engine, device: Ponding, *, minutes: int = 30, top: float = 0.8) -> None:
    """One reading a minute for the last `minutes`, rising steadily to `top` × the limit (its
    older readings in that span replaced)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM reading WHERE device_id = :id"
                " AND ts > now() - (:minutes + 5) * interval '1 minute'"
            ),
            {"id": device.id, "minutes": minutes},
        )
        conn.execute(
            sa.text(
                "INSERT INTO reading (device_id, ts, value, quality)"
                " SELECT :id, date_trunc('minute', now()) - g * interval '1 minute',"
                "        :top * :limit * (1 - g::float / :span) + 0.02 * sin(g), 0"
                " FROM generate_series(0, :minutes) AS g"
            ),
            {
                "id": device.id,
                "minutes": minutes,
                "span": float(minutes) * 2.2,
                "top": top,
                "limit": device.limit,
            },
        )


def baseline(engine: sa.Engine, device_id: int, *, median: float, spread: float) -> None:
    """A learned hour-of-day normal for the device (flat, `median` ± `spread`)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO device_baseline (device_id, slots, median, spread, source, days,"
                " fitted_at) VALUES (:id, 24, :median, :spread, 'device', 21, now())"
                " ON CONFLICT (device_id) DO UPDATE SET median = excluded.median,"
                " spread = excluded.spread, fitted_at = excluded.fitted_at"
            ),
            {"id": device_id, "median": [median] * 24, "spread": [spread] * 24},
        )


def forecast_detail(limit: float, *, minutes: float, value: float) -> dict:
    """A 预警's why, as the engine writes it."""
    return {
        "limit": limit,
        "unit": "cm",
        "side": 1,
        "value": value,
        "probability": 0.93,
        "slope_per_h": 12.5,
        "expected_lo": None,
        "expected_hi": None,
        "horizon_s": 3600,
        "window_s": 1800,
        "points": 30,
        "because_zh": f"积水深度 30 分钟内持续上升，按当前速率约 {minutes:.0f} 分钟后超过报警值",
        "because_en": f"Ponding has risen for 30 min; at this rate it passes the limit in"
        f" {minutes:.0f} min",
    }


def open_incident(
    engine: sa.Engine,
    device_id: int,
    *,
    kind: str,
    minutes_ahead: float | None = None,
    severity: str = "critical",
    rule_code: str | None = None,
    detail: dict | None = None,
    title: tuple[str, str] = ("测试预警", "Test early warning"),
    opened_minutes_ago: float = 5,
) -> int:
    """An open incident of `kind` on the device, opened as the engine would (the owner)."""
    return insert_incident(
        engine,
        device_id=device_id,
        kind=kind,
        rule_code=rule_code or f"{kind}-test-{device_id}",
        severity=severity,
        title=title,
        detail=detail or {},
        expected_minutes=minutes_ahead,
        opened_minutes_ago=opened_minutes_ago,
        trigger_value=9,
    )


def supersede(engine: sa.Engine, forecast_id: int, *, lead_s: int) -> int:
    """The real alarm a 预警 foresaw: opened with foreseen_by and lead_s, the 预警 resolved with a
    'superseded' event (as the engine does)."""
    with engine.begin() as conn:
        alarm = conn.execute(
            sa.text(
                "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                " street_code, rule_code, severity, status, title_zh, title_en, trigger_value,"
                " threshold, opened_at, geom, kind, foreseen_by, lead_s)"
                " SELECT device_id, type_id, category_code, district_adcode, street_code,"
                "   'alarm_high', 'critical', 'open', '积水超过报警值',"
                "   'Ponding above alarm limit', 16, threshold, now(), geom, 'alarm', id, :lead"
                " FROM incident WHERE id = :forecast RETURNING id"
            ),
            {"forecast": forecast_id, "lead": lead_s},
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE incident SET status = 'resolved', resolved_at = now() WHERE id = :id"),
            {"id": forecast_id},
        )
        conn.execute(
            sa.text(
                "INSERT INTO incident_event (incident_id, at, kind, actor, from_status,"
                " to_status, note) VALUES (:id, now(), 'superseded', 'rules', 'open',"
                " 'resolved', :note)"
            ),
            {"id": forecast_id, "note": f"#{alarm}"},
        )
    return int(alarm)
