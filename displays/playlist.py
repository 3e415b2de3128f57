"""What a wall or kiosk shows: views (city, district, street, category focus) and playlists.

A playlist is written the same way in a URL (`/wall?views=city,districts,310115:flood`) and in a
saved configuration: comma-separated items, each `place[:category]` or a bare category, where
place is `city`, `districts` (every district in code order), a district adcode or a street code;
`topic:<scenario>` or `place:topic:<scenario>` is a scenario view (专题: its own figures and
warning level). `replay=FROM/TO` (with `speed=1|10|60`, 60 by default) plays that window of the
past over and over instead of now (回放).
Parsing is pure: the allow-lists come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from components.replay import ReplayLoop, replay_loop
from components.state import METRICS, pick
from components.topics import TOPICS
from data.checks import InvalidQuery
from data.clock import CITY_TZ
from panels.base import View

MAX_VIEW_ITEMS = 200
MAX_VIEWS_TEXT = 4000
DEFAULT_VIEWS = "city,districts"

INTERVAL_RANGE = (5, 3600)
ATTENTION_RANGE = (5, 3600)
IDLE_RANGE = (5, 3600)
RELOAD_RANGE_HOURS = (0.0, 720.0)
DEFAULT_INTERVAL_S = 30
DEFAULT_ATTENTION_S = 60
DEFAULT_IDLE_S = 90


@dataclass(frozen=True)
class ParsedViews:
    """The views understood, in order, and the items that were not."""

    views: list[View]
    rejected: list[str] = field(default_factory=list)


def parse_views(
    text: str,
    *,
    districts: Mapping[str, object],
    categories: Mapping[str, object],
    streets: Mapping[str, str],
) -> ParsedViews:
    """Parse playlist grammar; `streets` maps street code → district adcode."""
    if not isinstance(text, str):
        return ParsedViews([], [repr(text)[:40]])
    if len(text) > MAX_VIEWS_TEXT:
        return ParsedViews([], [f"{text[:40]}… ({len(text)} characters, at most {MAX_VIEWS_TEXT})"])
    views: list[View] = []
    rejected: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        expanded = _parse_item(item, districts=districts, categories=categories, streets=streets)
        if expanded is None:
            rejected.append(item[:40])
        else:
            views.extend(expanded)
        if len(views) > MAX_VIEW_ITEMS:
            rejected.append(f"… more than {MAX_VIEW_ITEMS} views")
            views = views[:MAX_VIEW_ITEMS]
            break
    return ParsedViews(views, rejected)


def _parse_item(
    item: str,
    *,
    districts: Mapping[str, object],
    categories: Mapping[str, object],
    streets: Mapping[str, str],
) -> list[View] | None:
    place, separator, category = item.partition(":")
    if separator and not category:
        return None
    topic = place == "topic" or category.startswith("topic:")
    if topic:
        # topic:flood is the city's scenario view; 310115:topic:flood a district's
        place, category = ("city", category) if place == "topic" else (place, category[6:])
        if category not in TOPICS or category not in categories:
            return None
        views = [replace(view, topic=True) for view in _places(place, category, districts, streets)]
        return views or None
    if not category and place in categories:
        return [View(category=place)]
    if category and category not in categories:
        return None
    return _places(place, category or None, districts, streets) or None


def _places(
    place: str, category: str | None, districts: Mapping[str, object], streets: Mapping[str, str]
) -> list[View]:
    """The views of a place item (none when it is not one)."""
    if place == "city":
        return [View(category=category)]
    if place == "districts":
        return [View(district=code, category=category) for code in sorted(districts)]
    if place in districts:
        return [View(district=place, category=category)]
    if place in streets:
        return [View(district=streets[place], street=place, category=category)]
    return []


def within_scope(views: list[View], *, district: str | None) -> list[View]:
    """The views a display scoped to `district` may show (the city view becomes the district's)."""
    if district is None:
        return list(views)
    kept: list[View] = []
    for view in views:
        if view.district is None:
            kept.append(replace(view, district=district))
        elif view.district == district:
            kept.append(view)
    # two city items in a row would otherwise show the district twice running
    deduplicated = [v for i, v in enumerate(kept) if i == 0 or kept[i - 1] != v]
    return deduplicated or [View(district=district)]


@dataclass(frozen=True)
class DisplayOptions:
    """How a wall or kiosk rotates and alerts, after URL, saved playlist and defaults merge."""

    views: list[View]
    interval_s: int = DEFAULT_INTERVAL_S
    attention_s: int = DEFAULT_ATTENTION_S
    idle_s: int = DEFAULT_IDLE_S
    metric: str = METRICS[0]
    sound: bool = False
    reload_hours: float = 0.0
    notes: list[str] = field(default_factory=list)
    # 回放: a window of the past played over and over instead of now
    replay: ReplayLoop | None = None


def _bounded_number(
    raw: object, *, name: str, bounds: tuple[float, float], default: float, notes: list[str]
) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(str(raw))
    except ValueError:
        notes.append(f"{name}={str(raw)[:20]}")
        return default
    low, high = bounds
    if not low <= value <= high or value != value:
        notes.append(f"{name}={str(raw)[:20]}")
        return default
    return value


def _replay_option(params: Mapping[str, object], notes: list[str]) -> ReplayLoop | None:
    """The replay loop the URL asks for; an unreadable one is noted and the display is live."""
    try:
        return replay_loop(params.get("replay"), params.get("speed"), now=datetime.now(CITY_TZ))
    except InvalidQuery:
        notes.append(f"replay={str(params.get('replay'))[:40]}")
        return None


def display_options(
    params: Mapping[str, object],
    *,
    saved: Mapping[str, object] | None,
    districts: Mapping[str, object],
    categories: Mapping[str, object],
    streets: Mapping[str, str],
    scope_district: str | None = None,
) -> DisplayOptions:
    """Options from URL `params` over a `saved` playlist over the defaults; bad values → notes."""
    base = dict(saved or {})
    notes: list[str] = []

    def get(url_key: str, saved_key: str) -> object:
        value = params.get(url_key)
        return value if value not in (None, "") else base.get(saved_key)

    text = get("views", "views")
    parsed = parse_views(
        str(text) if text not in (None, "") else DEFAULT_VIEWS,
        districts=districts,
        categories=categories,
        streets=streets,
    )
    notes.extend(f"views: {item}" for item in parsed.rejected)
    views = (
        parsed.views
        or parse_views(
            DEFAULT_VIEWS, districts=districts, categories=categories, streets=streets
        ).views
    )
    views = within_scope(views, district=scope_district)
    metric_raw = get("metric", "metric")
    metric = pick(metric_raw, METRICS, METRICS[0])
    if metric.rejected:
        notes.append(f"metric={str(metric_raw)[:20]}")
    loop = _replay_option(params, notes)
    sound_raw = get("sound", "sound")
    sound = str(sound_raw).lower() in ("1", "true", "yes", "on") if sound_raw is not None else False
    return DisplayOptions(
        views=views,
        interval_s=int(
            _bounded_number(
                get("interval", "interval_s"),
                name="interval",
                bounds=INTERVAL_RANGE,
                default=DEFAULT_INTERVAL_S,
                notes=notes,
            )
        ),
        attention_s=int(
            _bounded_number(
                get("attention", "attention_s"),
                name="attention",
                bounds=ATTENTION_RANGE,
                default=DEFAULT_ATTENTION_S,
                notes=notes,
            )
        ),
        idle_s=int(
            _bounded_number(
                params.get("idle"),
                name="idle",
                bounds=IDLE_RANGE,
                default=DEFAULT_IDLE_S,
                notes=notes,
            )
        ),
        metric=metric.value or METRICS[0],
        sound=sound,
        reload_hours=_bounded_number(
            get("reload", "reload_hours"),
            name="reload",
            bounds=RELOAD_RANGE_HOURS,
            default=0.0,
            notes=notes,
        ),
        notes=notes,
        replay=loop,
    )
