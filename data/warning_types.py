"""The shapes of warning levels (revision 0011): rules, a level as stored, an evaluation's
update."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

CITY = ""  # the city's row among the districts'


@dataclass(frozen=True)
class WarningRule:
    """One rule: `min_count` devices (or live alarms) passing its test make `level` hold."""

    id: int
    topic: str
    level: int  # 1 = I 红 … 4 = IV 蓝
    test: str
    min_count: int
    note_zh: str
    note_en: str


@dataclass(frozen=True)
class LevelState:
    """A scenario's level in one district (or the city) as stored."""

    topic: str
    district: str
    computed: int | None = None
    calm_since: datetime | None = None
    override: int | None = None  # 0 = an operator's "no warning"
    override_until: datetime | None = None

    def in_force(self, now: datetime) -> int | None:
        """The level in force: the operator's until it expires, else the rules'."""
        if self.override is not None and self.override_until and self.override_until > now:
            return self.override or None
        return self.computed


@dataclass(frozen=True)
class LevelUpdate:
    """What an evaluation makes of one level: its new state, why, and the change in force."""

    state: LevelState
    why: list[dict[str, object]] = field(default_factory=list)
    changed_from: int | None = None
    changed: bool = False
    source: str = "rules"  # or 'expiry': an operator's level ran out


def severity(level: int | None) -> int:
    """How severe a level is, for comparing: no warning 0, IV 1 … I 4."""
    return 0 if not level else 5 - level
