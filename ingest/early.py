"""Early warning in the rules pass: the readings the pass drained go through the foresight engine
in the same transaction, so a reading is judged once, and its findings become incidents."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa

from data import foresight_store
from data.rule_types import Rule
from data.rules_store import Inbox
from foresight.engine import Foresight

log = logging.getLogger(__name__)


@dataclass
class EarlyReport:
    """What early warning did in one pass."""

    watched: int = 0
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    superseded: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether any early-warning incident changed."""
        return bool(self.opened or self.updated or self.resolved or self.superseded)


def alarm_codes(rules: list[Rule]) -> dict[int, list[str]]:
    """The threshold rule codes that are alarms (level 2) on each side: what supersedes a 预警."""
    out: dict[int, list[str]] = {1: [], -1: []}
    for rule in rules:
        if rule.kind != "threshold" or (rule.level or 0) < 2 or rule.value_kind == "binary":
            continue
        for side in (1, -1):
            if rule.side in (0, side) and rule.code not in out[side]:
                out[side].append(rule.code)
    return out


class EarlyWarning:
    """Holds the engine between passes; reloads what it watches when rules or baselines change."""

    def __init__(self, *, reload_every_s: float = 600.0, live_window_s: float = 1800.0) -> None:
        self.reload_every_s = reload_every_s
        # a series whose newest reading came later than this raises nothing live but its clock
        self.live_window_s = live_window_s
        self.engine: Foresight | None = None
        self.watch: foresight_store.Watch | None = None
        self._key: tuple[object, ...] = ()
        self._devices = -1
        self._next_reload = 0.0

    def _refresh(self, conn: sa.Connection, rules: list[Rule]) -> None:
        key = (tuple(rules), foresight_store.baselines_version(conn))
        if self.engine is not None and key == self._key and time.monotonic() < self._next_reload:
            return
        # the devices may have changed since (added, retired, moved); nothing changed, nothing
        # to reload: a 10M city's watch is gigabytes, built again beside the one it replaces
        devices = foresight_store.device_changes(conn)
        if self.engine is not None and (key, devices) == (self._key, self._devices):
            self._next_reload = time.monotonic() + self.reload_every_s
            return
        watch = foresight_store.load_watch(conn, rules=rules)
        engine = Foresight(watch.spec, watch.rules_by_type)
        if self.engine is not None:
            engine.carry_over(self.engine)
        self.engine, self.watch, self._key, self._devices = engine, watch, key, devices
        self._next_reload = time.monotonic() + self.reload_every_s

    def run(
        self, conn: sa.Connection, *, inbox: Inbox, rules: list[Rule], now_s: float | None = None
    ) -> EarlyReport:
        """Link alarms to the 预警 that foresaw them, then judge the drained readings."""
        started = time.perf_counter()
        report = EarlyReport()
        report.superseded = foresight_store.supersede_forecasts(
            conn, alarm_codes=alarm_codes(rules)
        )
        self._refresh(conn, rules)
        assert self.engine is not None and self.watch is not None
        engine, types = self.engine, self.watch.types
        report.watched = len(engine.spec)
        engine.sync(foresight_store.live_early(conn))
        engine.observe(
            device_id=inbox.device_id,
            ts_s=inbox.ts_us / 1e6,
            value=inbox.value,
            arrived_s=inbox.arrived_us / 1e6,
        )
        now_s = time.time() if now_s is None else now_s
        for finding in engine.evaluate(now_s=now_s, live_window_s=self.live_window_s):
            type_id = int(engine.spec.type_id[engine.row_of(finding.device_id)])
            text = types[type_id]
            if finding.action == "open":
                report.opened += foresight_store.open_early(conn, finding, text=text) is not None
            elif finding.action == "update":
                report.updated += foresight_store.update_forecast(conn, finding, text=text)
            else:
                report.resolved += foresight_store.resolve_early(conn, finding)
        report.seconds = time.perf_counter() - started
        return report
