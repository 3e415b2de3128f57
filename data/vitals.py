"""城市体征 (the city's vital signs): a few measurands' hourly means over the last day, from the
hourly rollups, and the 预警 in force; within the reader's access scope like every read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from data.checks import check_measurands, check_scope
from data.clock import at_or_now
from data.kpis import trend_hours

# the measurands of the strip, in order: weather, water, tide, grid load, water mains, air
VITAL_MEASURANDS = (
    "temperature",
    "rainfall",
    "tide_level",
    "transformer_load",
    "pipe_pressure",
    "pm25",
)

# each measurand's hours: mean and extremes; its alarm lines are the lowest high line and the
# highest low line of its types (the first reached)
_HOURLY_SQL = sa.text(
    """
    SELECT t.measurand, min(t.unit), min(t.decimals), r.bucket,
           sum(r.value_sum) / nullif(sum(r.n_readings), 0), max(r.value_max), min(r.value_min),
           min(min(t.alarm_max)) OVER (PARTITION BY t.measurand),
           max(max(t.alarm_min)) OVER (PARTITION BY t.measurand)
    FROM rollup_district_type_1h r JOIN device_type t ON t.id = r.type_id
    WHERE t.measurand = ANY(CAST(:measurands AS text[]))
      AND r.bucket > :since AND r.bucket <= :at
      AND (CAST(:district AS text) IS NULL OR r.district_adcode = :district)
    GROUP BY t.measurand, r.bucket
    """
)

# how many devices read beyond their alarm line in each hour: counted from the readings (the
# rollups count readings, and a device in trouble may report far more often than its interval)
_ALARMED_SQL = sa.text(
    """
    SELECT t.measurand, bucket_1h(r.ts) AS bucket, count(DISTINCT r.device_id)
    FROM device_type t
    JOIN device d ON d.type_id = t.id
    JOIN reading r ON r.device_id = d.id AND r.ts >= :since AND r.ts < :until
    WHERE t.measurand = ANY(CAST(:measurands AS text[]))
      AND (CAST(:district AS text) IS NULL OR d.district_adcode = :district)
      AND (r.value > t.alarm_max OR r.value < t.alarm_min)
    GROUP BY 1, 2
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


@dataclass(frozen=True)
class MeasurandHours:
    """One measurand's last day by the hour (oldest first; None where an hour had no reading):
    mean, highest, lowest, devices that read beyond their alarm line (measurand_hours only);
    and its types' first alarm lines."""

    measurand: str
    unit: str
    decimals: int
    hours: tuple[datetime, ...]
    means: tuple[float | None, ...]
    highs: tuple[float | None, ...]
    lows: tuple[float | None, ...]
    alarmed: tuple[float | None, ...]
    alarm_max: float | None
    alarm_min: float | None


def _by_hour(
    rows: Sequence[Any], column: int, hours: tuple[datetime, ...]
) -> tuple[float | None, ...]:
    """One column of one measurand's rows, an entry per hour (None where none)."""
    got = {row[3]: row[column] for row in rows}
    return tuple(None if got.get(h) is None else float(got[h]) for h in hours)


def _measurand_hours(
    conn: sa.Connection, *, measurands: Sequence[str], district: str | None, moment: datetime
) -> tuple[MeasurandHours, ...]:
    """The last day of each of `measurands` with readings in scope, in their given order."""
    hours = trend_hours(moment)
    rows = conn.execute(
        _HOURLY_SQL,
        {
            "measurands": list(measurands),
            "since": hours[0] - timedelta(hours=1),
            "at": moment,
            "district": district,
        },
    ).all()
    found = []
    for measurand in dict.fromkeys(measurands):
        own = [row for row in rows if row[0] == measurand]
        if not own:
            continue
        first = own[0]
        found.append(
            MeasurandHours(
                measurand=measurand,
                unit=first[1],
                decimals=int(first[2]),
                hours=hours,
                means=_by_hour(own, 4, hours),
                highs=_by_hour(own, 5, hours),
                lows=_by_hour(own, 6, hours),
                alarmed=(None,) * len(hours),
                alarm_max=None if first[7] is None else float(first[7]),
                alarm_min=None if first[8] is None else float(first[8]),
            )
        )
    return tuple(found)


def measurand_hours(
    engine: Engine,
    *,
    measurands: Sequence[str],
    counted: Sequence[str] | None = None,
    district: str | None = None,
    at: datetime | None = None,
) -> tuple[MeasurandHours, ...]:
    """The last day by the hour of each of `measurands` in the city (or one district), with
    the devices in alarm each hour for those `counted` (all by default: the count reads the
    readings themselves, so it is asked only where it is drawn)."""
    check_scope(district=district)
    check_measurands(measurands)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        found = _measurand_hours(conn, measurands=measurands, district=district, moment=moment)
        wanted = [m.measurand for m in found if counted is None or m.measurand in counted]
        if not wanted:
            return found
        hours = found[0].hours
        rows = conn.execute(
            _ALARMED_SQL,
            {
                "measurands": wanted,
                "since": hours[0],
                "until": hours[-1] + timedelta(hours=1),
                "district": district,
            },
        ).all()
    counts = {(measurand, bucket): int(n) for measurand, bucket, n in rows}
    # an hour with readings and none beyond the line counts 0; one without readings, nothing
    return tuple(
        m
        if m.measurand not in wanted
        else replace(
            m,
            alarmed=tuple(
                None if high is None else float(counts.get((m.measurand, hour), 0))
                for hour, high in zip(hours, m.highs, strict=True)
            ),
        )
        for m in found
    )


def city_vitals(
    engine: Engine, *, district: str | None = None, at: datetime | None = None
) -> Vitals:
    """The vital signs of the city (or one district) over the last day, at `at` or now."""
    check_scope(district=district)
    with engine.connect() as conn:
        moment = at_or_now(conn, at)
        found = _measurand_hours(
            conn, measurands=VITAL_MEASURANDS, district=district, moment=moment
        )
        warnings = conn.execute(_WARNINGS_SQL, {"at": moment, "district": district}).scalar_one()
    signs = tuple(
        Vital(
            measurand=m.measurand,
            unit=m.unit,
            decimals=m.decimals,
            hours=m.hours,
            values=m.means,
        )
        for m in found
    )
    return Vitals(signs=signs, warnings=int(warnings), at=moment)
