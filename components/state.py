"""Page state carried in the URL (language, metric, category, …): parsed against allow-lists."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from components.i18n import DEFAULT_LANGUAGE, LANGUAGES

METRICS = ("open_incidents", "incidents_per_100km2", "online_rate", "readings_last_hour")
STACKS = ("severity", "category")
LAYERS = ("streets", "grid")
WINDOWS = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}
SEVERITIES = ("critical", "major", "minor")
INCIDENT_STATUSES = ("open", "acknowledged", "resolved")
SORT_COLUMNS = ("opened_at", "severity", "status", "category", "district")


@dataclass(frozen=True)
class Choice:
    """A parsed URL value and whether the raw value had to be replaced by the default."""

    value: str | None
    rejected: bool = False


def pick(
    raw: object, allowed: tuple[str, ...] | list[str] | set[str], default: str | None
) -> Choice:
    """`raw` if it is one of `allowed`, else the default (flagged as rejected unless empty)."""
    if raw is None or raw == "":
        return Choice(default)
    if isinstance(raw, str) and raw in allowed:
        return Choice(raw)
    return Choice(default, rejected=True)


def pick_many(raw: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated subset of `allowed` in allow-list order; all of them when empty/invalid."""
    if not isinstance(raw, str) or not raw:
        return allowed
    wanted = set(raw.split(","))
    chosen = tuple(value for value in allowed if value in wanted)
    return chosen or allowed


def language(raw: object) -> str:
    """The page language from `?lang=`; Chinese unless English is asked for."""
    return pick(raw, LANGUAGES, DEFAULT_LANGUAGE).value or DEFAULT_LANGUAGE


def query_string(**values: object) -> str:
    """`?a=1&b=2` of the non-empty values (defaults should be passed as None to keep URLs short)."""
    kept = {
        key: ",".join(value) if isinstance(value, tuple | list) else value
        for key, value in values.items()
        if value not in (None, "", (), [])
    }
    return f"?{urlencode(kept)}" if kept else ""


def href(path: str, *, lang: str, **values: object) -> str:
    """A link inside the app that keeps the language."""
    return path + query_string(lang=None if lang == DEFAULT_LANGUAGE else lang, **values)
