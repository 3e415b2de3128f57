"""The early-warning engine: per-series windows of recent readings, the detectors run over the
series that changed, and a small state machine per (series, rule) that says when to open, update
and resolve. Pure: fed arrays by the rules loop live and by bench/forecast.py in replay."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from data.rule_types import Rule
from foresight import baseline, health, trend

WINDOW = 32  # readings kept per series
EARLY_KINDS = ("forecast", "baseline", "stuck", "jump", "clock", "peer")
INCIDENT_KIND = {
    "forecast": "forecast",
    "baseline": "anomaly",
    "stuck": "health",
    "jump": "health",
    "clock": "health",
    "peer": "health",
}
PEER_EVERY_S = 60.0
UPDATE_MOVE_S = 60.0  # a forecast is rewritten when its expected time moves this much
MIN_TREND_T = 4.0  # how clear (slope / its standard error) a trend must be to raise a 预警
MASS_LATE = 20  # more late devices than this (and a fifth) in one pass: a backlog, not clocks


@dataclass(frozen=True)
class SeriesSpec:
    """The series the engine watches, one row each, sorted by device id."""

    device_id: np.ndarray
    type_id: np.ndarray
    peer_group: np.ndarray  # same street and type
    interval_s: np.ndarray
    normal_min: np.ndarray
    normal_max: np.ndarray
    alarm_min: np.ndarray  # NaN: none
    alarm_max: np.ndarray
    resolution: np.ndarray  # smallest step of the type's values
    season: np.ndarray  # rows × 24: the daily cycle's median (NaN: not known)
    season_spread: np.ndarray  # rows × 24: its spread
    # hour-of-week normal, kept only for the rows a baseline rule watches: row → its line in
    # normal_median / normal_spread (k × 168), −1 for none (the daily cycle, `season`, then)
    normal_row: np.ndarray
    normal_median: np.ndarray
    normal_spread: np.ndarray

    def __len__(self) -> int:
        """Number of series."""
        return len(self.device_id)


@dataclass(frozen=True)
class Finding:
    """One decision: open, update or resolve the incident of (device, rule)."""

    action: str  # 'open' | 'update' | 'resolve'
    device_id: int
    rule: Rule
    at_s: float
    value: float
    figures: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The incident kind this rule raises."""
        return INCIDENT_KIND[self.rule.kind]


@dataclass
class _RuleState:
    """Per row, for one rule: pending since, clear since, raised, suppressed, expected time."""

    pending: np.ndarray
    clear: np.ndarray
    raised: np.ndarray
    suppressed: np.ndarray
    expected: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _RuleState:
        """No row pending or raised."""
        nan = np.full(n, np.nan)
        return cls(nan.copy(), nan.copy(), np.zeros(n, bool), np.zeros(n, bool), nan.copy())


@dataclass(frozen=True)
class _Check:
    """A rule applied to the rows of the types it covers."""

    rule: Rule
    rows: np.ndarray  # bool per row
    limit: np.ndarray  # forecast: the limit per row (NaN: none)


class Foresight:
    """Keeps the windows and the rule states; `observe` readings, then `evaluate`."""

    def __init__(self, spec: SeriesSpec, rules_by_type: dict[int, dict[str, Rule]]) -> None:
        n = len(spec)
        self.spec = spec
        # float32 windows relative to an epoch: 12 bytes a reading, so a seed-scale city's
        # 510,000 series keep their windows in ~200 MB
        self.epoch = np.nan
        self.ts = np.full((n, WINDOW), np.nan, dtype=np.float32)
        self.value = np.full((n, WINDOW), np.nan, dtype=np.float32)
        self.lag = np.full((n, WINDOW), np.nan, dtype=np.float32)
        self.head = np.zeros(n, dtype=np.int64)
        self.dirty = np.zeros(n, dtype=bool)
        self.late = 0
        # per row, set by evaluate: the newest reading arrived within the live window; when
        self._on_time = np.ones(n, dtype=bool)
        self._arrived = np.full(n, np.nan)
        self.checks = _checks(spec, rules_by_type)
        self.states = {c.rule.code: _RuleState.empty(n) for c in self.checks}
        self._next_peer = -np.inf

    def carry_over(self, old: Foresight) -> None:
        """Take the windows and rule states of the series `old` also watched (a reload)."""
        mine = np.flatnonzero(np.isin(self.spec.device_id, old.spec.device_id))
        theirs = np.searchsorted(old.spec.device_id, self.spec.device_id[mine])
        self.epoch = old.epoch
        for name in ("ts", "value", "lag", "head", "dirty"):
            getattr(self, name)[mine] = getattr(old, name)[theirs]
        for code, state in self.states.items():
            before = old.states.get(code)
            if before is None:
                continue
            for name in ("pending", "clear", "raised", "suppressed", "expected"):
                getattr(state, name)[mine] = getattr(before, name)[theirs]
        self.late = old.late

    # --- readings -------------------------------------------------------------------------

    def observe(
        self, *, device_id: np.ndarray, ts_s: np.ndarray, value: np.ndarray, arrived_s: np.ndarray
    ) -> int:
        """Add readings (any order) to their series' windows; returns how many were taken."""
        if len(self.spec) == 0 or len(device_id) == 0:
            return 0
        if np.isnan(self.epoch):
            self.epoch = float(np.min(ts_s)) - 86400.0
        row = np.clip(np.searchsorted(self.spec.device_id, device_id), 0, len(self.spec) - 1)
        known = self.spec.device_id[row] == device_id
        ts_all = np.asarray(ts_s, dtype=np.float64) - self.epoch
        order = np.lexsort((ts_all[known], row[known]))
        row, ts = row[known][order], ts_all[known][order]
        val = np.asarray(value, dtype=np.float64)[known][order]
        lag = (np.asarray(arrived_s, dtype=np.float64) - np.asarray(ts_s))[known][order]
        # a late reading (older than the newest kept) was judged on newer data already
        fresh = ~(ts <= self.ts[row, (self.head[row] - 1) % WINDOW])
        self.late += int((~fresh).sum())
        row, ts, val, lag = row[fresh], ts[fresh], val[fresh], lag[fresh]
        if len(row) == 0:
            return 0
        first = np.r_[True, row[1:] != row[:-1]]
        rank = np.arange(len(row)) - np.maximum.accumulate(np.where(first, np.arange(len(row)), 0))
        counts = np.bincount(row, minlength=len(self.spec))
        # only a row's last WINDOW readings can stay in its window
        skip = np.maximum(counts[row] - WINDOW, 0)
        keep = rank >= skip
        row, ts, val, lag, rank = row[keep], ts[keep], val[keep], lag[keep], (rank - skip)[keep]
        pos = (self.head[row] + rank) % WINDOW
        self.ts[row, pos], self.value[row, pos], self.lag[row, pos] = ts, val, lag
        self.head += np.minimum(counts, WINDOW)
        self.dirty[row] = True
        return len(row)

    def recent(self, rows: np.ndarray, what: np.ndarray, k: int = WINDOW) -> np.ndarray:
        """The last `k` entries of `what` for `rows`, oldest first, as float64 (NaN where none)."""
        idx = (self.head[rows][:, None] - k + np.arange(k)[None, :]) % WINDOW
        out = what[rows[:, None], idx].astype(np.float64)
        return out + self.epoch if what is self.ts else out

    def newest_ts(self) -> np.ndarray:
        """Per row, the epoch seconds of its newest reading (NaN: none yet)."""
        rows = np.arange(len(self.spec))
        return self.ts[rows, (self.head - 1) % WINDOW].astype(np.float64) + self.epoch

    def row_of(self, device_id: int) -> int:
        """The row of a watched device."""
        return int(np.searchsorted(self.spec.device_id, device_id))

    def newest_value(self, rows: np.ndarray) -> np.ndarray:
        """The newest value of `rows`."""
        return self.value[rows, (self.head[rows] - 1) % WINDOW].astype(np.float64)

    # --- decisions --------------------------------------------------------------------------

    def sync(self, live: dict[str, np.ndarray]) -> None:
        """Align 'raised' with the incidents live in the store (device ids per rule code); one
        closed by someone else (a person, an alarm superseding a 预警) stays quiet until its
        condition clears."""
        for code, state in self.states.items():
            is_live = np.isin(self.spec.device_id, live.get(code, np.empty(0, np.int64)))
            state.suppressed |= state.raised & ~is_live
            state.raised = is_live

    def evaluate(
        self, *, now_s: float | None = None, live_window_s: float = np.inf
    ) -> list[Finding]:
        """Run every rule over the series that got readings (and those with a live incident);
        a series whose newest reading arrived more than `live_window_s` late opens nothing but
        its clock check (late data is history, and a wrong clock makes every reading late)."""
        findings: list[Finding] = []
        newest = self.newest_ts()
        rows_all = np.arange(len(self.spec))
        lag = self.lag[rows_all, (self.head - 1) % WINDOW].astype(np.float64)
        self._on_time = ~(lag > live_window_s)
        # a clock is judged when the reading came in, not at the wrong time it carries
        self._arrived = newest + np.nan_to_num(lag)
        peer_due = now_s is not None and now_s >= self._next_peer
        for check in self.checks:
            state = self.states[check.rule.code]
            if check.rule.kind == "peer":
                if not peer_due:
                    continue
                rows = np.flatnonzero(check.rows & ~np.isnan(newest))
            else:
                rows = np.flatnonzero(check.rows & (self.dirty | state.raised))
            if len(rows):
                at = self._arrived[rows] if check.rule.kind == "clock" else newest[rows]
                findings += self._judge(check, state, rows, at)
        if peer_due and now_s is not None:
            self._next_peer = now_s + PEER_EVERY_S
        self.dirty[:] = False
        return findings

    def _judge(
        self, check: _Check, state: _RuleState, rows: np.ndarray, at: np.ndarray
    ) -> list[Finding]:
        cond, figures = DETECTORS[check.rule.kind](self, check, rows)
        rule = check.rule
        raised, suppressed = state.raised[rows], state.suppressed[rows]
        pending = np.where(
            cond, np.where(np.isnan(state.pending[rows]), at, state.pending[rows]), np.nan
        )
        due = cond & ~raised & ~suppressed & (at - pending >= rule.duration_s)
        if rule.kind != "clock":
            due &= self._on_time[rows]
        clear = np.where(
            cond | ~raised, np.nan, np.where(np.isnan(state.clear[rows]), at, state.clear[rows])
        )
        resolve = raised & ~cond & (at - clear >= rule.clear_s)
        moved = np.zeros(len(rows), dtype=bool)
        if "expected_s" in figures:
            expected = at + figures["expected_s"]
            moved = cond & raised & (np.abs(expected - state.expected[rows]) >= UPDATE_MOVE_S)
            state.expected[rows] = np.where(due | moved, expected, state.expected[rows])
        state.pending[rows] = np.where(due, np.nan, pending)
        state.clear[rows] = np.where(resolve, np.nan, clear)
        state.raised[rows] = (raised | due) & ~resolve
        state.suppressed[rows] = suppressed & cond
        out: list[Finding] = []
        last = self.newest_value(rows)
        for action, mask in (("open", due), ("update", moved), ("resolve", resolve)):
            for i in np.flatnonzero(mask):
                out.append(
                    Finding(
                        action=action,
                        device_id=int(self.spec.device_id[rows[i]]),
                        rule=rule,
                        at_s=float(at[i]),
                        value=float(last[i]),
                        figures={k: _plain(v[i]) for k, v in figures.items()},
                    )
                )
        return out


def _plain(x: object) -> float | int | None:
    value = float(x)  # type: ignore[arg-type]
    return None if np.isnan(value) else value


# --- detectors: (engine, check, rows) → (condition per row, figures per row) ---------------------


def _forecast(fx: Foresight, check: _Check, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    rule, spec = check.rule, fx.spec
    ts, val = fx.recent(rows, fx.ts), fx.recent(rows, fx.value)
    now = ts[:, -1]
    window = float(rule.window_s or 1800)
    # a trend towards a limit starts inside the normal band: readings beyond the opposite edge
    # (the tail of an excursion the other way, e.g. a recovery from a high alarm) are not it
    side_sign = float(rule.side or 1)
    opposite = np.where(side_sign > 0, spec.normal_min[rows], spec.normal_max[rows])[:, None]
    val = np.where((ts >= now[:, None] - window) & (side_sign * (val - opposite) >= 0), val, np.nan)
    season = spec.season[rows]
    known = ~np.isnan(season).any(axis=1)
    season = np.where(known[:, None], season, 0.0)
    resid = val - baseline.interpolate(season, ts)
    # the spread of a few readings can be small by chance: never below the device's own
    # learned variability at this hour
    _, learned = _usual(fx, rows, now)
    model = trend.fit(
        t_h=(ts - now[:, None]) / trend.HOUR,
        r=resid,
        floor=np.maximum(spec.resolution[rows], np.nan_to_num(learned)),
        tau_h=np.full(len(rows), window / 4 / trend.HOUR),
    )
    n = len(rows)
    steps = trend.grid(np.full(n, float(rule.horizon_s or 3600)))
    limit = check.limit[rows]
    side = np.full(n, rule.side or 1)
    conf = np.full(n, float(rule.confidence or 0.9))
    verdict = trend.breach(
        model,
        steps_s=steps,
        seasonal=baseline.interpolate(season, now[:, None] + steps),
        limit=limit,
        side=side,
        confidence=conf,
    )
    latest = val[:, -1]
    # already beyond the limit: the alarm rule's business, not a forecast's
    beyond = side * (latest - limit) >= 0
    # a pass judges every series again and again: only a trend far clearer than noise may
    # raise (a ramp's t-statistic runs into the tens; chance wobbles of a dense series do not)
    trend_t = side * model.slope_h / (model.sigma * np.sqrt(model.slope_var))
    cond = (
        (model.n >= (rule.min_points or 5))
        & (trend_t >= MIN_TREND_T)
        & (verdict.probability >= conf)
        & ~np.isnan(verdict.expected_s)
        & ~beyond
        & ~np.isnan(limit)
    )
    figures = {
        "limit": limit,
        "side": side.astype(float),
        "probability": verdict.probability,
        "expected_s": np.where(np.isnan(verdict.expected_s), 0.0, verdict.expected_s),
        "earliest_s": verdict.earliest_s,
        "latest_s": verdict.latest_s,
        "slope_per_h": model.slope_h,
        "points": model.n,
        "horizon_s": np.full(n, float(rule.horizon_s or 3600)),
        "window_s": np.full(n, window),
    }
    return cond, figures


def _routine(fx: Foresight, check: _Check, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    rule, spec = check.rule, fx.spec
    ts = fx.recent(rows, fx.ts, 1)[:, 0]
    val = fx.newest_value(rows)
    # a series whose rings hold no reading yet (only late ones arrived) has no instant to judge
    dated = np.isfinite(ts)
    slot = baseline.slot_of(np.where(dated, ts, 0.0), slots=168)
    line = spec.normal_row[rows]
    has = (line >= 0) & (len(spec.normal_median) > 0)
    at = np.where(has, line, 0)
    # a device that learned no hour-of-week normal is held to its daily cycle, every day
    hour = slot % 24
    daily, daily_spread = spec.season[rows, hour], spec.season_spread[rows, hour]
    usual = np.where(has, spec.normal_median[at, slot] if has.any() else np.nan, daily)
    known = np.where(has, spec.normal_spread[at, slot] if has.any() else np.nan, daily_spread)
    width = np.maximum(spec.normal_max[rows] - spec.normal_min[rows], spec.resolution[rows])
    spread = np.maximum(known, np.maximum(0.05 * width, spec.resolution[rows]))
    z = (val - usual) / spread
    side = rule.side or 0
    away = np.abs(z) if side == 0 else side * z
    cond = dated & ~np.isnan(z) & (away > float(rule.deviation or 4))
    return cond, {"usual": usual, "spread": spread, "z": z, "slot": slot.astype(float)}


def _usual(fx: Foresight, rows: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows' learned normal (median, spread) in the hour of `ts` (NaN where not learned)."""
    slot = baseline.slot_of(np.nan_to_num(ts), slots=24)
    return fx.spec.season[rows, slot], fx.spec.season_spread[rows, slot]


def _stuck(fx: Foresight, check: _Check, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    spec = fx.spec
    recent = fx.recent(rows, fx.value)
    _, spread = _usual(fx, rows, fx.recent(rows, fx.ts, 1)[:, 0])
    resolution = spec.resolution[rows]
    # the device's quiet level (its lowest hourly normal: a night trickle, an empty car park at
    # dawn) and the physical floor are where a healthy series rests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        quiet = np.nan_to_num(np.nanmin(spec.season[rows], axis=1), nan=-np.inf)
    floor = np.where(spec.normal_min[rows] >= 0, 0.0, -np.inf)
    cond, run = health.stuck(
        recent,
        min_run=np.full(len(rows), int(check.rule.min_points or 3)),
        raised=fx.states[check.rule.code].raised[rows],
        floor=np.maximum(floor, quiet + 2 * resolution),
        # two readings of noise σ rounded to δ repeat with odds ≈ 0.28 δ / σ
        prior_odds=np.clip(0.28 * resolution / np.maximum(spread, 1e-12), 0.0, 0.999),
    )
    return cond, {"run": run.astype(float)}


def _spike(fx: Foresight, check: _Check, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    spec = fx.spec
    width = np.maximum(spec.normal_max[rows] - spec.normal_min[rows], spec.resolution[rows])
    recent = fx.recent(rows, fx.value)
    steps = float(check.rule.deviation or 4)
    cond = health.spike(recent, steps=steps, floor=0.25 * width)
    # a value the device usually has at that hour (the morning's first water) is no spike
    median, spread = _usual(fx, rows, fx.recent(rows, fx.ts, 2)[:, 0])
    usual = np.abs(recent[:, -2] - median) <= steps * np.maximum(spread, spec.resolution[rows])
    return cond & ~usual, {"spike_value": recent[:, -2]}


def _clock(fx: Foresight, check: _Check, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    rule = check.rule
    run = np.full(len(rows), int(rule.min_points or 1))
    # readings arrive within seconds of their timestamps whatever the interval; a backlog after an
    # outage ends with fresh readings, so only a clock that is off keeps the newest ones late
    limit = np.full(len(rows), float(rule.window_s or 600))
    lags = fx.recent(rows, fx.lag, int(run.max()) if len(run) else 1)
    cond = health.skewed(lags, run=run, limit=limit)
    # many devices late at once is an ingest backlog (an outage), not their clocks
    if cond.sum() > max(MASS_LATE, 0.2 * len(rows)):
        cond[:] = False
    return cond, {"lag_s": lags[:, -1], "limit_s": limit}


def _peer(fx: Foresight, check: _Check, rows: np.ndarray) -> tuple[np.ndarray, dict]:
    rule, spec = check.rule, fx.spec
    latest = fx.newest_value(rows)
    width = np.maximum(spec.normal_max[rows] - spec.normal_min[rows], spec.resolution[rows])
    outlier, median, z = health.peer_outliers(
        group=spec.peer_group[rows],
        value=latest,
        floor=0.05 * width,
        deviation=np.full(len(rows), float(rule.deviation or 8)),
        min_peers=int(rule.min_points or 4),
    )
    return outlier, {"peer_median": median, "z": z}


DETECTORS = {
    "forecast": _forecast,
    "baseline": _routine,
    "stuck": _stuck,
    "jump": _spike,
    "clock": _clock,
    "peer": _peer,
}


def _checks(spec: SeriesSpec, rules_by_type: dict[int, dict[str, Rule]]) -> list[_Check]:
    """One check per early-warning rule code, covering the rows whose type it applies to."""
    by_code: dict[str, list[tuple[Rule, int]]] = {}
    for type_id, rules in rules_by_type.items():
        for code, rule in rules.items():
            if rule.kind in EARLY_KINDS:
                by_code.setdefault(code, []).append((rule, type_id))
    checks: list[_Check] = []
    for code in sorted(by_code):
        # a code may have type- or category-specific rows: split by the distinct rule rows
        for rule in {r for r, _ in by_code[code]}:
            types = [t for r, t in by_code[code] if r == rule]
            rows = np.isin(spec.type_id, types)
            limit = np.full(len(spec), np.nan)
            if rule.kind == "forecast":
                limit = _limit(spec, rule)
                rows &= ~np.isnan(limit)
            if rows.any():
                checks.append(_Check(rule=rule, rows=rows, limit=limit))
    return checks


def _limit(spec: SeriesSpec, rule: Rule) -> np.ndarray:
    """The limit a forecast rule watches: the alarm (level 2) or normal (level 1) edge."""
    if (rule.side or 1) > 0:
        return spec.alarm_max if (rule.level or 2) >= 2 else spec.normal_max
    return spec.alarm_min if (rule.level or 2) >= 2 else spec.normal_min
