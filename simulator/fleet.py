"""The demo's crews and vehicles on the move, reporting GPS fixes like real trackers.

A dispatched unit leaves once its turnout time has passed and drives to its job at its
destination district's road speed; a released one drives home. No road graph ships offline, so
a unit drives a city block pattern: along one axis, then the other (an L-shaped path; on
average ~1.27× the straight line, close to the travel model's detour factors). Moving units
report every MOVING_EVERY_S, parked ones every PARKED_EVERY_S (a tracker's heartbeat). The fixes
go out through the same transport as the readings (ingest rows naming a unit_code).

With a duty officer (the demo's `serve`), the fleet also plays the command centre: it sends the
first suggested unit to each new critical alarm, and units to the playbook tasks that need them,
lends a district whose playbook calls for a kind the city holds in reserve (pump and generator
trucks) the nearest reserve unit of it, and takes it back once that district needs it no more;
it marks a task done once its unit is on site (or, for a task no unit does, a few minutes after it
appeared), and returns units to service when their job is over. Every such action is recorded
as actor `simulator:duty`, so nobody mistakes it for a person's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from data import dispatch, lending, playbooks
from data.resources import ResourceError
from data.unit_positions import FixBatch

log = logging.getLogger(__name__)

DUTY_ACTOR = "simulator:duty"
RELOAD_EVERY_S = 5.0
DUTY_EVERY_S = 20.0
MOVING_EVERY_S = 10.0
PARKED_EVERY_S = 120.0
METRES_PER_DEGREE_LAT = 110_574.0
DISPATCHES_PER_PASS = 3


@dataclass
class _Unit:
    """A unit as the simulator drives it."""

    code: str
    lon: float
    lat: float
    to_lon: float
    to_lat: float
    metres_per_s: float
    moving: bool
    last_fix_s: float = 0.0


@dataclass
class Fleet:
    """Units and their next fixes; `step` is called by the live loop."""

    engine: Engine
    duty_officer: bool = False
    seed: int = 0
    units: dict[str, _Unit] = field(default_factory=dict)
    _loaded_s: float = -math.inf
    _duty_s: float = -math.inf

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 31])

    def step(self, now_s: float) -> list[dict[str, Any]]:
        """The fixes due at `now_s` (epoch seconds): moved units and heartbeats."""
        if now_s - self._loaded_s >= RELOAD_EVERY_S:
            self._loaded_s = now_s
            self._reload(now_s)
        if self.duty_officer and now_s - self._duty_s >= DUTY_EVERY_S:
            self._duty_s = now_s
            self._duty_pass()
        stamp = datetime.fromtimestamp(now_s, UTC).isoformat()
        fixes = []
        for unit in self.units.values():
            every = MOVING_EVERY_S if unit.moving else PARKED_EVERY_S
            if now_s - unit.last_fix_s < every:
                continue
            if unit.moving:
                advance(unit, seconds=min(now_s - unit.last_fix_s, 3 * MOVING_EVERY_S))
            unit.last_fix_s = now_s
            fixes.append(
                {
                    "unit_code": unit.code,
                    "ts": stamp,
                    "lon": round(unit.lon, 6),
                    "lat": round(unit.lat, 6),
                }
            )
        return fixes

    def _reload(self, now_s: float) -> None:
        """Positions and destinations from the store (a person may have sent or released any)."""
        try:
            state = dispatch.fleet_state(self.engine)
        except Exception as exc:  # the database may be restarting: drive on what we know
            log.warning("fleet: could not re-read units: %s", exc)
            return
        known = self.units
        self.units = {}
        for row in state:
            previous = known.get(row["code"])
            unit = _Unit(
                code=row["code"],
                lon=row["lon"],
                lat=row["lat"],
                to_lon=row["to_lon"],
                to_lat=row["to_lat"],
                metres_per_s=float(row["kmh"]) / 3.6,
                moving=bool(row["going"] or row["returning"]),
                # spread the first heartbeats over their period
                last_fix_s=previous.last_fix_s
                if previous
                else now_s - self.rng.uniform(0, PARKED_EVERY_S),
            )
            if previous is not None and previous.moving and unit.moving:
                # our own last fix may not have reached the store yet: keep driving from it
                unit.lon, unit.lat = previous.lon, previous.lat
            self.units[unit.code] = unit

    def _duty_pass(self) -> None:
        """The scripted duty officer's round (see the module's docstring)."""
        try:
            with self.engine.begin() as conn:
                released = dispatch.release_finished(conn, actor=DUTY_ACTOR)
            lent, back = self._lend_reserve(), self._take_back()
            sent = self._staff_incidents() + self._staff_tasks()
            done = playbooks.drill_complete_tasks(self.engine, actor=DUTY_ACTOR)
            released += self._release_long_jobs()
        except Exception as exc:  # the database may be restarting: try again next round
            log.warning("fleet: duty officer's round failed: %s", exc)
            return
        if sent or released or done or lent or back:
            log.info(
                "duty officer: sent %d units, released %d, closed %d tasks;"
                " lent %d reserve units, took back %d",
                sent,
                released,
                done,
                lent,
                back,
            )

    def _lend_reserve(self) -> int:
        """Lend the city's nearest reserve unit to each district whose playbook calls for one."""
        return self._lend(lending.reserve_requests(self.engine, limit=DISPATCHES_PER_PASS))

    def _take_back(self) -> int:
        """Take back the units it lent that are free again where they are no longer called for."""
        idle = lending.idle_loans(self.engine, lent_by=DUTY_ACTOR)
        return self._lend([(code, None) for code in idle])

    def _lend(self, loans: Sequence[tuple[str, str | None]]) -> int:
        """Lend (or, to None, take back) each unit; those a person changed first are skipped."""
        done = 0
        for code, district in loans:
            try:
                lending.lend_unit(self.engine, code=code, district=district, actor=DUTY_ACTOR)
            except ResourceError:
                continue
            done += 1
        return done

    def _staff_incidents(self) -> int:
        """Send the first suggestion to each new critical alarm nobody was sent to."""
        sent = 0
        for incident_id in dispatch.unstaffed_incidents(self.engine, limit=DISPATCHES_PER_PASS):
            suggestions = dispatch.suggest_units(self.engine, incident_id=incident_id, k=1)
            sent += self._send(suggestions, incident_id=incident_id)
        return sent

    def _staff_tasks(self) -> int:
        """Send a unit to each open task that needs one and has none."""
        sent = 0
        for task_id in playbooks.unstaffed_tasks(self.engine, limit=DISPATCHES_PER_PASS):
            suggestions = playbooks.task_suggestions(self.engine, task_id=task_id, k=1)
            sent += self._send(suggestions, task_id=task_id)
        return sent

    def _send(
        self,
        suggestions: list[dispatch.Suggestion],
        *,
        incident_id: int | None = None,
        task_id: int | None = None,
    ) -> int:
        """Dispatch the first suggestion; 0 when there is none or a person was faster."""
        if not suggestions:
            return 0
        try:
            dispatch.dispatch_unit(
                self.engine,
                resource_id=suggestions[0].resource_id,
                incident_id=incident_id,
                task_id=task_id,
                actor=DUTY_ACTOR,
            )
        except ResourceError:
            return 0
        return 1

    def _release_long_jobs(self) -> int:
        """Units on site for a long while have done what they can: back to service."""
        released = 0
        for unit in dispatch.fleet_state(self.engine):
            if not unit["done_on_site"]:
                continue
            try:
                dispatch.move_unit(
                    self.engine, resource_id=unit["id"], action="release", actor=DUTY_ACTOR
                )
            except ResourceError:
                continue
            released += 1
        return released


def advance(unit: _Unit, *, seconds: float) -> None:
    """Drive `unit` for `seconds` along its L-shaped path (longitude first, then latitude)."""
    budget = unit.metres_per_s * max(seconds, 0.0)
    per_lon = METRES_PER_DEGREE_LAT * math.cos(math.radians(unit.lat))
    for axis in ("lon", "lat"):
        scale = per_lon if axis == "lon" else METRES_PER_DEGREE_LAT
        here = getattr(unit, axis)
        there = getattr(unit, f"to_{axis}")
        gap = (there - here) * scale
        step = math.copysign(min(abs(gap), budget), gap)
        setattr(unit, axis, here + step / scale)
        budget -= abs(step)
        if budget <= 0:
            break
    if unit.lon == unit.to_lon and unit.lat == unit.to_lat:
        unit.moving = False


def fix_batch(fixes: list[dict[str, Any]], *, units: dict[str, tuple[int, str]]) -> FixBatch:
    """Fleet fixes as the ingest paths hand them to the store (those of known units), for
    whoever steps the fleet in-process rather than over the wire (tests, benches)."""
    known = [f for f in fixes if f["unit_code"] in units]
    return FixBatch(
        unit_id=np.array([units[f["unit_code"]][0] for f in known], dtype=np.int64),
        ts_us=np.array(
            [int(datetime.fromisoformat(f["ts"]).timestamp() * 1_000_000) for f in known],
            dtype=np.int64,
        ),
        lon=np.array([f["lon"] for f in known], dtype=np.float64),
        lat=np.array([f["lat"] for f in known], dtype=np.float64),
    )
