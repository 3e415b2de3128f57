"""The rules loop: drains the readings the trigger queued for the rules, advances each device's
state, writes the incidents, and looks for silent devices; one transaction per pass, so a
reading is judged exactly once and a crash repeats nothing."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from redis import Redis
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from data import event_store, rules_store, warning_store
from data.dispatch import has_resources, release_finished
from data.event_types import GroupingWrites
from data.rule_types import US, Escalate, Open, Reading, Resolve, Rule, State, rules_for_type
from data.rules_store import Inbox
from ingest.early import EarlyReport, EarlyWarning
from ingest.grouping import group_pass
from ingest.rules import advance_device, late_episodes, offline_limit_s
from ingest.warning_levels import evaluate
from serving.events import announce_new_data

log = logging.getLogger(__name__)
# the default backfill window (settings: ONESCREEN_LIVE_WINDOW_SECONDS); see config.py for why
LIVE_WINDOW_S = 1800.0
# the once-a-minute cost line: `serve` shows it at ONESCREEN_LOG_LEVEL (other rule logs are quieter)
cost_log = logging.getLogger("onescreen.rules_cost")


@dataclass
class PassReport:
    """What one pass did."""

    readings: int = 0
    opened: int = 0
    escalated: int = 0
    resolved: int = 0
    offline_opened: int = 0
    offline_resolved: int = 0
    offline_held_back: int = 0
    late: int = 0  # readings past the live window: history only
    late_recorded: int = 0  # past incidents they revealed, recorded resolved
    skipped: bool = False
    early: EarlyReport = field(default_factory=EarlyReport)
    events: GroupingWrites = field(default_factory=GroupingWrites)
    warnings_changed: int = 0  # scenario levels in force that changed

    @property
    def changed(self) -> bool:
        """Whether the pass opened, escalated or resolved any incident."""
        return bool(
            self.opened
            or self.escalated
            or self.resolved
            or self.offline_opened
            or self.offline_resolved
            or self.late_recorded
            or self.early.changed
            or self.events.changed
            or self.warnings_changed
        )


class RulesEngine:
    """Evaluates the incident rules; one instance per process, one pass at a time city-wide."""

    def __init__(
        self,
        engine: Engine,
        *,
        offline_every_s: float = 15.0,
        max_offline_share: float = 0.2,
        inbox_batch: int = 50_000,
        watch_start: datetime | None = None,
        early: bool = True,
        live_window_s: float = LIVE_WINDOW_S,
        group_every_s: float = 10.0,
        warning_every_s: float = 30.0,
    ) -> None:
        self.engine = engine
        # a reading that arrives later than this after its timestamp is history, not news
        self.live_window_s = live_window_s
        # 预警, baselines and device health ride on the same pass (None: threshold rules only)
        self.early = EarlyWarning(live_window_s=live_window_s) if early else None
        self.offline_every_s = offline_every_s
        self.max_offline_share = max_offline_share
        self.inbox_batch = inbox_batch
        # silence before the rules were watching is not evidence of a failed device
        self.watch_start = watch_start or datetime.now(UTC)
        self._next_offline = 0.0
        self._synced = False
        self._early_schema: bool | None = None  # revision 0006 or later: early warning runs
        self.group_every_s = group_every_s
        self._next_group = 0.0
        self._events_schema: bool | None = None  # revision 0009 or later: incidents are grouped
        self._neighbours: tuple[float, dict[str, frozenset[str]]] | None = None
        self._fleet_by_street: tuple[float, dict[tuple[str, str], int]] | None = None
        self.warning_every_s = warning_every_s
        self._next_warning = 0.0
        self._warnings_schema: bool | None = None  # revision 0011 or later: warning levels
        self._resources_schema: bool | None = None  # revision 0013 or later: units

    def run_once(
        self,
        *,
        now: datetime | None = None,
        offline: bool | None = None,
        group: bool | None = None,
        warnings: bool | None = None,
    ) -> PassReport:
        """One pass: threshold rules over queued readings, then (when due) offline detection,
        grouping incidents into events and the scenarios' warning levels."""
        report = PassReport()
        with self.engine.begin() as conn:
            if not rules_store.try_lock(conn):
                report.skipped = True
                return report
            if not self._synced:
                rules_store.sync_live_incidents(conn)
                self._synced = True
            rules = rules_store.load_rules(conn)
            types = rules_store.load_types(conn)
            if self._early_schema is None:
                self._early_schema = rules_store.has_early_rules(conn)
            inbox = rules_store.drain_inbox(
                conn, limit=self.inbox_batch, arrivals=self._early_schema
            )
            report.readings = len(inbox)
            live, late = inbox.split_late(window_us=round(self.live_window_s * US))
            self._threshold(conn, live, rules, types, report)
            self._late(conn, late, rules, types, report)
            if self.early is not None and self._early_schema:
                report.early = self.early.run(
                    conn, inbox=inbox, rules=rules, now_s=None if now is None else now.timestamp()
                )
            due = time.monotonic() >= self._next_offline if offline is None else offline
            if due:
                self._offline(conn, rules, types, now or datetime.now(UTC), report)
                self._next_offline = time.monotonic() + self.offline_every_s
            due = time.monotonic() >= self._next_group if group is None else group
            if due:
                self._group(conn, now or datetime.now(UTC), report)
        due = time.monotonic() >= self._next_warning if warnings is None else warnings
        if due:
            report.warnings_changed = self.evaluate_warnings(now or datetime.now(UTC))
            self._next_warning = time.monotonic() + self.warning_every_s
        return report

    def _group(self, conn: sa.Connection, now: datetime, report: PassReport) -> None:
        """Group incidents into events, and return to service the units whose incident was
        resolved (by a rule or a person)."""
        if self._events_schema is None:
            self._events_schema = event_store.has_event_groups(conn)
        if self._events_schema:
            started = time.perf_counter()
            report.events = replace(
                group_pass(
                    conn,
                    now=now,
                    neighbours=self._street_neighbours(conn),
                    fleet=self._fleet(conn),
                ),
                seconds=time.perf_counter() - started,
            )
        self._next_group = time.monotonic() + self.group_every_s
        if self._resources_schema is None:
            self._resources_schema = has_resources(conn)
        if self._resources_schema:
            release_finished(conn, actor=rules_store.ACTOR)

    def evaluate_warnings(self, now: datetime) -> int:
        """Evaluate the scenarios' warning levels in a short transaction of their own (an
        operator setting a level waits for it, not for the whole pass); the changes."""
        with self.engine.begin() as conn:
            if self._warnings_schema is None:
                self._warnings_schema = warning_store.has_warnings(conn)
            if not self._warnings_schema:
                return 0
            states = warning_store.lock_levels(conn)
            topics, districts = warning_store.warning_places(conn)
            updates = evaluate(
                rules=warning_store.load_warning_rules(conn),
                counts=warning_store.warning_counts(conn, now=now),
                states=states,
                topics=topics,
                districts=districts,
                now=now,
            )
            return warning_store.save_levels(conn, updates=updates, now=now)

    def _street_neighbours(self, conn: sa.Connection) -> dict[str, frozenset[str]]:
        """The streets' neighbours, read again every few minutes (streets seldom change)."""
        if self._neighbours is None or time.monotonic() >= self._neighbours[0]:
            self._neighbours = (time.monotonic() + 300.0, event_store.load_neighbours(conn))
        return self._neighbours[1]

    def _fleet(self, conn: sa.Connection) -> dict[tuple[str, str], int]:
        """Each scenario's devices by street, read again every few minutes."""
        if self._fleet_by_street is None or time.monotonic() >= self._fleet_by_street[0]:
            self._fleet_by_street = (time.monotonic() + 300.0, event_store.load_fleet(conn))
        return self._fleet_by_street[1]

    def _applicable(
        self, rules: list[Rule], types: dict[int, rules_store.TypeInfo], type_id: int
    ) -> dict[str, Rule]:
        info = types[type_id]
        return rules_for_type(
            rules, type_id=type_id, category=info.category, value_kind=info.value_kind
        )

    def _threshold(
        self,
        conn: sa.Connection,
        inbox: Inbox,
        rules: list[Rule],
        types: dict[int, rules_store.TypeInfo],
        report: PassReport,
    ) -> None:
        """Advance the live rule states over readings that arrived on time."""
        # the threshold rules judge what can change an alarm: readings outside the normal
        # range, and every reading of a device already in a rule state (so it can clear)
        device_ids = sorted(
            set(np.unique(inbox.device_id[inbox.level > 0]).tolist())
            | rules_store.stated_devices(conn, device_ids=inbox.device_id)
        )
        by_device = inbox.by_device(device_ids=device_ids)
        type_of = rules_store.device_types(conn, device_ids=device_ids)
        states = rules_store.load_states(conn, device_ids=device_ids)
        applicable: dict[int, dict[str, Rule]] = {}
        advanced: dict[int, dict[str, State]] = {}
        for device_id in device_ids:
            type_id = type_of.get(device_id)
            if type_id is None:
                continue  # removed since: nothing to judge
            if type_id not in applicable:
                applicable[type_id] = self._applicable(rules, types, type_id)
            advanced[device_id] = self._advance(
                conn,
                device_id,
                applicable[type_id],
                states.get(device_id, {}),
                by_device[device_id],
                report,
            )
        # written once for the pass: nothing later in it reads them
        rules_store.save_states(conn, states=advanced)

    def _late(
        self,
        conn: sa.Connection,
        late: Inbox,
        rules: list[Rule],
        types: dict[int, rules_store.TypeInfo],
        report: PassReport,
    ) -> None:
        """Readings that arrived after the live window are history: the conditions they show
        are recorded as incidents that opened and closed in the past, never live ones."""
        report.late = len(late)
        device_ids = np.unique(late.device_id[late.level > 0]).tolist()
        if not device_ids:
            return
        by_device = late.by_device(device_ids=device_ids)
        type_of = rules_store.device_types(conn, device_ids=device_ids)
        for device_id, type_id in type_of.items():
            episodes = late_episodes(
                device_id,
                rules=self._applicable(rules, types, type_id),
                readings=by_device[device_id],
                arrived_us=int(late.arrived_us[late.device_id == device_id].max()),
            )
            for episode in episodes:
                rules_store.record_late_incident(conn, episode)
            report.late_recorded += len(episodes)

    def _advance(
        self,
        conn: sa.Connection,
        device_id: int,
        rules: dict[str, Rule],
        states: dict[str, State],
        readings: list[Reading],
        report: PassReport,
    ) -> dict[str, State]:
        """Judge one device's readings: open, escalate and resolve its incidents now; its new
        states (with the ids of incidents just opened) are returned for the pass to write."""
        new_states, actions = advance_device(
            device_id, rules=rules, states=states, readings=readings
        )
        real: dict[int, int] = {}

        def resolved_id(incident_id: int) -> int | None:
            return real.get(incident_id) if incident_id < 0 else incident_id

        for action in actions:
            if isinstance(action, Open):
                real[action.temp_id] = rules_store.open_incident(conn, action)
                report.opened += 1
            elif isinstance(action, Escalate):
                incident_id = resolved_id(action.incident_id)
                if incident_id is not None and rules_store.escalate_incident(
                    conn, action, incident_id=incident_id
                ):
                    report.escalated += 1
            elif isinstance(action, Resolve):
                incident_id = resolved_id(action.incident_id)
                if incident_id is not None and rules_store.resolve_incident(
                    conn, action, incident_id=incident_id
                ):
                    report.resolved += 1
        for code, state in new_states.items():
            if state.incident_id is not None and state.incident_id < 0:
                new_states[code] = replace(state, incident_id=real.get(state.incident_id))
        return new_states

    def _offline(
        self,
        conn: sa.Connection,
        rules: list[Rule],
        types: dict[int, rules_store.TypeInfo],
        now: datetime,
        report: PassReport,
    ) -> None:
        type_ids: list[int] = []
        limits: list[float] = []
        severities: list[str] = []
        auto_resolve = True
        for type_id, info in types.items():
            rule = rules_for_type(
                rules, type_id=type_id, category=info.category, value_kind=info.value_kind
            ).get("offline")
            if rule is None:
                continue
            auto_resolve = auto_resolve and rule.auto_resolve
            type_ids.append(type_id)
            limits.append(offline_limit_s(rule, interval_s=info.interval_s))
            severities.append(rule.severity)
        if type_ids:
            active = rules_store.active_device_count(conn)
            opened, candidates = rules_store.open_offline_incidents(
                conn,
                limits=rules_store.OfflineLimits(type_ids, limits, severities),
                now=now,
                watch_start=self.watch_start,
                max_new=max(50, int(active * self.max_offline_share)),
            )
            report.offline_opened = opened
            if candidates and not opened:
                report.offline_held_back = candidates
                log.warning(
                    "%d devices fell silent at once (of %d): looks like an ingest outage, not "
                    "device faults; no offline incidents opened",
                    candidates,
                    active,
                )
        if auto_resolve:
            report.offline_resolved = rules_store.resolve_offline_incidents(conn)


@dataclass
class PassCosts:
    """What the passes of the last minute cost, logged once a minute (operators and the load
    bench read it: a pass longer than the interval means the rules fall behind)."""

    passes: list[float] = field(default_factory=list)
    early: list[float] = field(default_factory=list)
    grouping: list[float] = field(default_factory=list)
    readings: int = 0
    watched: int = 0
    since: float = field(default_factory=time.monotonic)

    def add(self, report: PassReport, *, seconds: float) -> None:
        """Count one pass."""
        if report.skipped:
            return
        self.passes.append(seconds)
        self.early.append(report.early.seconds)
        if report.events.seconds:
            self.grouping.append(report.events.seconds)
        self.readings += report.readings
        self.watched = report.early.watched or self.watched

    def log_every(self, period_s: float) -> None:
        """Log and restart the tally once `period_s` has passed."""
        if time.monotonic() - self.since < period_s or not self.passes:
            return
        whole, early = sorted(self.passes), sorted(self.early)
        grouping = sorted(self.grouping) or [0.0]
        cost_log.info(
            "rules cost: %d passes, %d readings, pass p50 %.0f ms p95 %.0f ms, early warning "
            "p50 %.0f ms p95 %.0f ms over %d series, grouping p95 %.0f ms",
            len(whole),
            self.readings,
            1000 * whole[len(whole) // 2],
            1000 * whole[int(0.95 * (len(whole) - 1))],
            1000 * early[len(early) // 2],
            1000 * early[int(0.95 * (len(early) - 1))],
            self.watched,
            1000 * grouping[int(0.95 * (len(grouping) - 1))],
        )
        self.passes, self.early, self.readings, self.since = [], [], 0, time.monotonic()
        self.grouping = []


@dataclass
class RulesLoop:
    """Handle on the background rules thread."""

    stop_event: threading.Event
    thread: threading.Thread
    engine: RulesEngine

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """Finish the current pass and stop."""
        self.stop_event.set()
        self.thread.join(timeout_s)


def start_rules(
    engine: Engine,
    *,
    interval_s: float = 2.0,
    redis: Redis | None = None,
    live_window_s: float = LIVE_WINDOW_S,
) -> RulesLoop:
    """Run the rules every `interval_s` in a daemon thread until stopped, announcing changed
    incidents on `redis`; readings later than `live_window_s` are history."""
    rules = RulesEngine(engine, live_window_s=live_window_s)
    stop = threading.Event()
    costs = PassCosts()

    def loop() -> None:
        while not stop.is_set():
            try:
                started = time.perf_counter()
                report = rules.run_once()
                costs.add(report, seconds=time.perf_counter() - started)
                if report.changed:
                    log.info("rules: %s", report)
                    announce_new_data(source="rules", client=redis)
            except SQLAlchemyError as exc:
                # the database may be restarting; the queued readings wait in the inbox
                log.warning("rules pass failed, retrying: %s", str(exc).splitlines()[0])
            except Exception:
                # a bug must cost one pass, not every rule for the rest of the server's life
                log.exception("rules pass failed; retrying at the next interval")
            costs.log_every(60.0)
            stop.wait(interval_s)

    thread = threading.Thread(target=loop, name="onescreen-rules", daemon=True)
    thread.start()
    return RulesLoop(stop_event=stop, thread=thread, engine=rules)
