"""Reading 预警 for the live panels: the breaches live forecasts expect, and the figures (limit,
unit) a feed row needs to count down to one. Opening and updating them is the foresight engine's."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.asof import replaying, timed
from data.checks import InvalidQuery, check_scope, check_window

_BREACHES_SQL = timed(
    """
    SELECT i.id, i.expected_at, i.severity, i.category_code, i.title_zh, i.title_en,
           i.detail ->> 'limit' AS limit, i.detail ->> 'unit' AS unit
    FROM {live_incident}
    WHERE i.kind = 'forecast'
      AND i.expected_at >= :start AND i.expected_at < :end
      AND (CAST(:district AS text) IS NULL OR i.district_adcode = :district)
      AND (CAST(:street AS text) IS NULL OR i.street_code = :street)
      AND (CAST(:category AS text) IS NULL OR i.category_code = :category)
    ORDER BY i.expected_at, i.id
    LIMIT :limit
    """
)


def expected_breaches(
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    district: str | None = None,
    street: str | None = None,
    category: str | None = None,
    limit: int = 500,
    at: datetime | None = None,
    replay: bool = False,
) -> pd.DataFrame:
    """Live 预警 whose expected breach falls in [start, end), soonest first (`replay`: those
    live at `at`)."""
    check_scope(district=district, street=street, category=category)
    check_window(start, end)
    if not 1 <= limit <= 5000:
        raise InvalidQuery("limit must be between 1 and 5000")
    params = {
        "start": start,
        "end": end,
        "district": district,
        "street": street,
        "category": category,
        "limit": limit,
        "at": at,
    }
    with engine.connect() as conn:
        result = conn.execute(_BREACHES_SQL.of(replaying(at, replay)), params)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    frame["limit"] = pd.to_numeric(frame["limit"], errors="coerce")
    return frame


def forecast_limits(
    engine: Engine, *, incident_ids: tuple[int, ...]
) -> dict[int, tuple[float | None, str, int]]:
    """The alarm limit, unit and side (1 above, -1 below) each 预警 of `incident_ids` expects to
    be crossed; ids that are not 预警 are absent."""
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in incident_ids):
        raise InvalidQuery("incident_ids must be positive integers")
    if len(incident_ids) > 1000:
        raise InvalidQuery("at most 1000 incident ids")
    if not incident_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, detail ->> 'limit', coalesce(detail ->> 'unit', ''),"
                " detail ->> 'side' FROM incident"
                " WHERE id = ANY(:ids) AND kind = 'forecast'"
            ),
            {"ids": list(incident_ids)},
        ).all()
    return {int(r[0]): (_number(r[1]), str(r[2]), -1 if _number(r[3]) == -1 else 1) for r in rows}


def _number(text: str | None) -> float | None:
    """A jsonb number read as text, or None when missing or not a number."""
    try:
        return None if text is None else float(text)
    except ValueError:
        return None
