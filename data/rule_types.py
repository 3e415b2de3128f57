"""The incident rules' vocabulary: rule rows, per-device rule state, readings as the rules
see them, and the decisions (open / escalate / resolve). Pure data shared by the evaluator
(ingest/rules.py) and the store (data/rules_store.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

US = 1_000_000


@dataclass(frozen=True)
class Rule:
    """One row of incident_rule."""

    code: str
    kind: str  # 'threshold' | 'offline'
    severity: str
    category_code: str | None = None
    type_id: int | None = None
    value_kind: str | None = None
    level: int | None = None  # threshold: 1 outside normal, 2 beyond alarm
    side: int | None = None  # 1 high, -1 low, 0 either
    duration_s: int = 0
    offline_factor: float | None = None
    offline_min_s: int | None = None
    auto_resolve: bool = True
    clear_s: int = 0
    enabled: bool = True
    horizon_s: int | None = None  # forecast: how far ahead a breach is looked for
    confidence: float | None = None  # forecast: P(breach within the horizon) needed
    window_s: int | None = None  # forecast: history fitted; clock: lag counted as skew
    min_points: int | None = None  # forecast/stuck/clock/peer: readings or peers needed
    deviation: float | None = None  # baseline/peer: robust z; jump: typical steps

    def matches(self, *, level: int, side: int) -> bool:
        """Does a reading of this level and side meet the rule's condition?"""
        if self.level is None or level < self.level:
            return False
        return self.side in (0, None) or side == self.side

    def specificity(self) -> int:
        """Type rows beat category rows beat generic rows."""
        return 2 if self.type_id is not None else 1 if self.category_code is not None else 0


@dataclass(frozen=True)
class State:
    """Where one device stands with one threshold rule."""

    last_ts_us: int
    breach_since_us: int | None = None
    clear_since_us: int | None = None
    incident_id: int | None = None
    suppressed: bool = False

    @property
    def idle(self) -> bool:
        """Nothing pending, nothing raised: the row can go."""
        return self.breach_since_us is None and self.incident_id is None and not self.suppressed


@dataclass(frozen=True)
class Open:
    """Raise an incident for (device, rule) at `at_us`, triggered by `value`.

    Until the store has inserted it, the incident is known by `temp_id` (negative, unique per
    device and pass), which later actions and the state refer to.
    """

    device_id: int
    rule: Rule
    at_us: int
    value: float
    side: int
    temp_id: int


@dataclass(frozen=True)
class Escalate:
    """Move the live incident of a lower rule to `rule` (e.g. warning → alarm)."""

    device_id: int
    incident_id: int
    from_code: str
    rule: Rule
    at_us: int
    value: float
    side: int


@dataclass(frozen=True)
class Resolve:
    """Close the incident: its condition has been clear long enough."""

    device_id: int
    incident_id: int
    rule: Rule
    at_us: int
    value: float


Action = Open | Escalate | Resolve


@dataclass(frozen=True)
class Reading:
    """A reading as the rules see it."""

    ts_us: int
    value: float
    level: int
    side: int


def rules_for_type(
    rules: Iterable[Rule], *, type_id: int, category: str, value_kind: str
) -> dict[str, Rule]:
    """The enabled rules that apply to a device type, the most specific row of each code."""
    chosen: dict[str, Rule] = {}
    for rule in rules:
        if rule.type_id is not None and rule.type_id != type_id:
            continue
        if rule.category_code is not None and rule.category_code != category:
            continue
        if rule.value_kind is not None and rule.value_kind != value_kind:
            continue
        current = chosen.get(rule.code)
        if current is None or rule.specificity() > current.specificity():
            chosen[rule.code] = rule
    return {code: rule for code, rule in chosen.items() if rule.enabled}
