"""城市体征 (the city's vital signs): a few measurands' hourly means over the last day, from the
hourly rollups, and the 预警 in force; within the reader's access scope like every read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.checks import check_scope
from data.clock import at_or_now
from data.kpis import TREND_HOURS

# the measurands of the strip, in order: weather, water, tide, grid load, water mains, air
VITAL_MEASURANDS = (
    "temperature",
    "rainfall",
    "tide_level",
    "transformer_load",
    "pipe_pressure",
    "pm25",
)

_VITALS_SQL = sa.text(
    """
    SELECT t.measurand, min(t.unit), min(t.decimals), r.bucket,
           sum(r.value_sum) / nullif(sum(r.n_readings), 0)
    FROM rollup_district_type_1h r JOIN device_type t ON t.id = r.type_id
    WHERE t.measurand = ANY(CAST(:measurands AS text[]))
      AND r.bucket > :since AND r.bucket <= :at
      AND (CAST(:district AS text) IS NULL OR r.district_adcode = :district)
    GROUP BY t.measurand, r.bucket
    """
)

# 预警 are few (the partial index on kind, expected_at): counted directly
_WARNINGS_SQL = sa.text(
    """
    SELECT count(*) FROM incident
    WHERE kind = 'forecast' AND status <> 'resolved' AND opened_at <= :at
      AND (CAST(:district AS text) IS NULL OR district_adcode = :district)
    """
)


@dataclass(frozen=True)
class Vital:
    """One vital sign: its measurand and unit, hourly means (oldest first) and the latest."""

    measurand: str
    unit: str
    decimals: int
    hours: tuple[datetime, ...]
    values: tuple[float | None, ...]

    @property
    def latest(self) -> float | None:
        """The mean of the latest hour with readings (None when the day had none)."""
        return next((v for v in reversed(self.values) if v is not None), None)


@dataclass(frozen=True)
class Vitals:
    """The strip: vital signs with readings in scope, and the 预警 in force."""

    signs: tuple[Vital, ...]
    warnings: int
    at: datetime


def city_vitals(
    engine: Engine, *, district: str | None = None, at: datetime | None = None
) -> Vitals:
    """The vital signs of the city (or one district) over the last day, at `at` or now."""
    check_scope(district=district)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        current = moment.replace(minute=0, second=0, microsecond=0)
        hours = tuple(current - timedelta(hours=b) for b in range(TREND_HOURS - 1, -1, -1))
        rows = conn.execute(
            _VITALS_SQL,
            {
                "measurands": list(VITAL_MEASURANDS),
                "since": hours[0] - timedelta(hours=1),
                "at": moment,
                "district": district,
            },
        ).all()
        warnings = conn.execute(_WARNINGS_SQL, {"at": moment, "district": district}).scalar_one()
    units = {measurand: (unit, decimals) for measurand, unit, decimals, _h, _v in rows}
    means = {(m, h): v for m, _u, _d, h, v in rows}
    signs = tuple(
        Vital(
            measurand=m,
            unit=units[m][0],
            decimals=int(units[m][1]),
            hours=hours,
            values=tuple(
                None if means.get((m, h)) is None else float(means[(m, h)]) for h in hours
            ),
        )
        for m in VITAL_MEASURANDS
        if m in units
    )
    return Vitals(signs=signs, warnings=int(warnings), at=moment)
