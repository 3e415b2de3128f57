"""Test data for 预警 on the panels: incidents inserted as the foresight engine would write them
(revision 0006's contract), on a real device of the city, so the panels can be judged before the
engine exists."""

from __future__ import annotations

import json

import sqlalchemy as sa

FLOOD_LIMIT_CM = 15.0


def calm_device(
    engine: sa.Engine, *, district: str, category: str = "flood", quiet_street: bool = False
) -> dict:
    """An online device of `category` in `district` reading normally, without a live incident
    (`quiet_street`: on a street without any live incident either)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code"
                " FROM device d JOIN device_type t ON t.id = d.type_id"
                " JOIN device_latest l ON l.device_id = d.id"
                " WHERE d.district_adcode = :district AND t.category_code = :category"
                "   AND d.status = 'active' AND l.level = 0"
                "   AND l.ts > now() - greatest(3 * t.interval_s, 600) * interval '1 second'"
                "   AND NOT EXISTS (SELECT 1 FROM incident i"
                "                   WHERE i.device_id = d.id AND i.status <> 'resolved')"
                "   AND (NOT :quiet OR NOT EXISTS (SELECT 1 FROM incident i"
                "        WHERE i.street_code = d.street_code AND i.status <> 'resolved'))"
                " ORDER BY d.id LIMIT 1"
            ),
            {"district": district, "category": category, "quiet": quiet_street},
        ).one()
    return dict(row._mapping)


def insert_incident(
    engine: sa.Engine,
    *,
    device_id: int,
    kind: str,
    rule_code: str,
    severity: str,
    title: tuple[str, str],
    detail: dict,
    expected_minutes: float | None,
    opened_minutes_ago: float = 3,
    trigger_value: float | None = None,
    foreseen_by: int | None = None,
    lead_s: int | None = None,
) -> int:
    """An open incident on a device, written as the engine writes it (the owner); the threshold
    is the type's alarm limit; returns its id."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.text(
                    "INSERT INTO incident (device_id, type_id, category_code, district_adcode,"
                    " street_code, rule_code, severity, status, title_zh, title_en,"
                    " trigger_value, threshold, opened_at, geom, kind, expected_at, detail,"
                    " foreseen_by, lead_s)"
                    " SELECT d.id, d.type_id, t.category_code, d.district_adcode, d.street_code,"
                    "   :rule, :severity, 'open', :title_zh, :title_en, :value, t.alarm_max,"
                    "   now() - :ago * interval '1 minute', d.geom, :kind,"
                    "   now() + CAST(:ahead AS float) * interval '1 minute',"
                    "   CAST(:detail AS jsonb), :foreseen_by, :lead_s"
                    " FROM device d JOIN device_type t ON t.id = d.type_id WHERE d.id = :device"
                    " RETURNING id"
                ),
                {
                    "device": device_id,
                    "rule": rule_code,
                    "severity": severity,
                    "title_zh": title[0],
                    "title_en": title[1],
                    "value": trigger_value,
                    "ago": opened_minutes_ago,
                    "kind": kind,
                    "ahead": expected_minutes,
                    "detail": json.dumps(detail),
                    "foreseen_by": foreseen_by,
                    "lead_s": lead_s,
                },
            ).scalar_one()
        )


def open_incident(
    engine: sa.Engine,
    device: dict,
    *,
    kind: str = "forecast",
    minutes: float = 23,
    severity: str = "critical",
    limit: float = FLOOD_LIMIT_CM,
    unit: str = "cm",
    rule_code: str | None = None,
    foreseen_by: int | None = None,
    lead_s: int | None = None,
) -> int:
    """A live incident of `kind` on `device`: a 预警 expects its breach `minutes` from now (its
    stored title says so as of now); returns its id."""
    detail = (
        {
            "limit": limit,
            "unit": unit,
            "side": 1,
            "value": limit * 0.8,
            "probability": 0.95,
            "because_zh": "积水持续上涨",
            "because_en": "ponding keeps rising",
        }
        if kind == "forecast"
        else {"check": "stuck", "because_zh": "读数不变", "because_en": "value stuck"}
    )
    titles = {
        "forecast": (
            f"预计 {minutes:.0f} 分钟后超过报警值 {limit:g} {unit}",
            f"Forecast: above alarm limit {limit:g} {unit} in {minutes:.0f} min",
        ),
        "health": ("传感器读数停滞", "Sensor stuck"),
        "alarm": (f"积水超过报警值 {limit:g} {unit}", f"Ponding above {limit:g} {unit}"),
    }[kind]
    return insert_incident(
        engine,
        device_id=device["id"],
        kind=kind,
        rule_code=rule_code
        or {"forecast": "forecast_high", "health": "stuck"}.get(kind, "alarm_high"),
        severity=severity,
        title=titles,
        detail=detail,
        expected_minutes=minutes if kind == "forecast" else None,
        trigger_value=limit * 0.8,
        foreseen_by=foreseen_by,
        lead_s=lead_s,
    )


def resolve(engine: sa.Engine, incident_id: int) -> None:
    """Resolve an incident inserted by a test (the counters follow by trigger)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE incident SET status = 'resolved', resolved_at = greatest(now(), opened_at)"
                " WHERE id = :id"
            ),
            {"id": incident_id},
        )
