"""Scenario (专题) views: what each scenario's figures are (as data), and the pure builder of its
figure tiles from the measurands' state now (data/topic_reads.py)."""

from __future__ import annotations

from dataclasses import dataclass

from dash import dcc, html

from components.i18n import t
from components.state import href
from data.topic_reads import AlarmTimes, MeasurandNow, Place

# the scenarios, in the order of the topic row (each is a device category)
TOPICS = ("flood", "power", "water", "gas", "elderly", "weather")
# scenarios about people at home: figures are counts, never places
PERSONAL_TOPICS = frozenset({"elderly"})
# what a figure may show: a reading at an extreme, or a count of devices (data/topic_reads.py)
SHOWS = (
    "highest",
    "lowest",
    "above_normal",
    "above_alarm",
    "below_normal",
    "below_alarm",
    "beyond_normal",
    "streets_alarm",
    "total",
    # from the scenario's alarms (data/topic_reads.alarm_times): restoration and repair
    "open_longest",
    "restore_mean",
    # estimates from the devices beyond their alarm line: households they stand for, area
    "served_alarm",
    "area_alarm",
)
_TIME_SHOWS = frozenset({"open_longest", "restore_mean"})
_ESTIMATES = frozenset({"served_alarm", "area_alarm"})
# counts that mean an alarm (the tile turns orange when not zero; red stays for 紧急)
_ALARM_COUNTS = frozenset({"above_alarm", "below_alarm", "streets_alarm"})


@dataclass(frozen=True)
class Figure:
    """One tile: its text key (topic.fig.<key>), the measurands it reads, what it shows (the
    highest or lowest reading, or a count) and whether it names where the extreme is."""

    key: str
    measurands: tuple[str, ...]
    show: str
    where: bool = True


FIGURES: dict[str, tuple[Figure, ...]] = {
    "flood": (
        Figure("rain", ("rain_gauge", "rainfall"), "highest"),
        Figure("underpasses", ("ponding",), "above_alarm"),
        Figure("deepest", ("ponding",), "highest"),
        Figure("rivers", ("river_level",), "above_normal"),
        Figure("tide", ("tide_level",), "highest"),
        Figure("pumps", ("pump_status",), "above_alarm"),
    ),
    "power": (
        Figure("outages", ("outage",), "above_alarm"),
        Figure("outage_streets", ("outage",), "streets_alarm"),
        Figure("outage_longest", ("outage",), "open_longest", where=False),
        Figure("outage_restore", ("outage",), "restore_mean", where=False),
        Figure("households_off", ("outage",), "served_alarm", where=False),
        Figure("load_high", ("transformer_load",), "above_normal"),
    ),
    "water": (
        Figure("pressure_low", ("pipe_pressure",), "below_normal"),
        Figure("pressure_min", ("pipe_pressure",), "lowest"),
        Figure("bursts", ("pipe_pressure",), "streets_alarm"),
        Figure("burst_longest", ("pipe_pressure",), "open_longest", where=False),
        Figure("burst_repair", ("pipe_pressure",), "restore_mean", where=False),
        Figure("burst_area", ("pipe_pressure",), "area_alarm", where=False),
    ),
    "gas": (
        Figure("manholes", ("methane_manhole",), "above_normal"),
        Figure("manholes_alarm", ("methane_manhole",), "above_alarm"),
        Figure("methane_max", ("methane_manhole",), "highest"),
        Figure("kitchen", ("kitchen_gas",), "above_alarm"),
        Figure("valves", ("cutoff_valve",), "above_alarm"),
        Figure("gas_pressure", ("gas_pressure",), "beyond_normal"),
    ),
    "elderly": (
        Figure("households", ("door_inactivity",), "total", where=False),
        Figure("sos", ("sos_button",), "above_alarm", where=False),
        Figure("falls", ("fall_radar",), "above_alarm", where=False),
        Figure("inactive", ("door_inactivity",), "above_normal", where=False),
        Figure("heart", ("heart_rate",), "beyond_normal", where=False),
        Figure("water_use", ("water_meter",), "beyond_normal", where=False),
    ),
    "weather": (
        Figure("temp_max", ("temperature",), "highest"),
        Figure("temp_min", ("temperature",), "lowest"),
        Figure("wind", ("wind_speed",), "highest"),
        Figure("visibility", ("visibility",), "lowest"),
        Figure("rain", ("rainfall",), "highest"),
        Figure("humidity", ("humidity",), "highest"),
    ),
}


def topic_measurands(topic: str) -> tuple[str, ...]:
    """Every measurand a scenario's figures read, each once."""
    return tuple(dict.fromkeys(m for figure in FIGURES[topic] for m in figure.measurands))


def timed_measurands(topic: str) -> tuple[str, ...]:
    """The measurands whose alarms' times a scenario's figures show (none for most)."""
    return tuple(
        dict.fromkeys(
            m for figure in FIGURES[topic] if figure.show in _TIME_SHOWS for m in figure.measurands
        )
    )


def count_of(state: MeasurandNow, show: str) -> int:
    """One of a measurand's counts (beyond_normal: either side of its normal range)."""
    if show == "beyond_normal":
        return state.above_normal + state.below_normal
    return int(getattr(state, show))


def _place(place: Place | None, lang: str) -> str:
    if place is None:
        return ""
    street = place.street_en if lang == "en" else place.street_zh
    district = place.district_en if lang == "en" else place.district_zh
    return f"{street} · {district}" if street else district


def _number(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def _extreme_tile(figure: Figure, states: list[MeasurandNow], lang: str) -> tuple[str, list, str]:
    """The highest (or lowest) reading among the figure's measurands, where, and its lines."""
    side = figure.show
    known = [s for s in states if getattr(s, side) is not None]
    if not known:
        return "–", [t("topic.no_reading", lang)], "zero"
    pick = max if side == "highest" else min
    state = pick(known, key=lambda s: getattr(s, side))
    value = float(getattr(state, side))
    high = side == "highest"
    line = state.normal_max if high else state.normal_min
    alarm = state.alarm_max if high else state.alarm_min
    beyond_alarm = alarm is not None and (value > alarm if high else value < alarm)
    beyond_line = line is not None and (value > line if high else value < line)
    detail = []
    if figure.where:
        detail.append(_place(getattr(state, f"{side}_at"), lang))
    if line is not None:
        detail.append(t("topic.line", lang, value=_number(line, state.decimals), unit=state.unit))
    tone = "alarm" if beyond_alarm else "warn" if beyond_line else "ok"
    return f"{_number(value, state.decimals)} {state.unit}", detail, tone


def _count_tile(figure: Figure, states: list[MeasurandNow], lang: str) -> tuple[str, list, str]:
    """How many devices are beyond a line, of how many online (or how many are watched)."""
    if not states:
        return "–", [t("topic.no_devices", lang)], "zero"
    n = sum(count_of(s, figure.show) for s in states)
    online = sum(s.online for s in states)
    total = sum(s.total for s in states)
    if figure.show == "total":
        return f"{n:,}", [t("topic.online_of", lang, online=f"{online:,}")], "ok"
    detail = [t("topic.of_online", lang, online=f"{online:,}")]
    if online < total:
        detail.append(t("topic.offline", lang, n=f"{total - online:,}"))
    tone = "zero" if n == 0 else "alarm" if figure.show in _ALARM_COUNTS else "warn"
    return f"{n:,}", detail, tone


def _estimate_tile(figure: Figure, states: list[MeasurandNow], lang: str) -> tuple[str, list, str]:
    """An estimate from the devices beyond their alarm line: the households they stand for
    (saying how many stand for unknown ones), or the area their patches cover."""
    if not states:
        return "–", [t("topic.no_devices", lang)], "zero"
    alarmed = sum(s.above_alarm + s.below_alarm for s in states)
    if figure.show == "area_alarm":
        area = sum(s.area_alarm_km2 for s in states)
        patches = sum(s.patches_alarm for s in states)
        if not patches:
            return "0", [t("topic.estimate", lang)], "zero"
        detail = [t("topic.patches", lang, n=f"{patches:,}"), t("topic.estimate", lang)]
        return t("topic.km2", lang, value=f"{area:,.1f}"), detail, "alarm"
    served = sum(s.served_alarm for s in states)
    unknown = sum(s.unserved_alarm for s in states)
    detail = [t("topic.estimate_from", lang, n=f"{alarmed - unknown:,}")]
    if unknown:
        detail.append(t("topic.served_unknown", lang, n=f"{unknown:,}"))
    tone = "zero" if not alarmed else "alarm"
    return t("topic.households_n", lang, n=f"{served:,}"), detail, tone


def duration_text(seconds: float, lang: str) -> str:
    """A span of time as a duty officer says it: "38 分钟", "2 小时 05 分" ("2 h 05 min")."""
    minutes = max(int(seconds // 60), 0)
    if minutes < 60:
        return t("topic.minutes", lang, m=minutes)
    return t("topic.hours_minutes", lang, h=minutes // 60, m=f"{minutes % 60:02d}")


def _time_tile(figure: Figure, times: list[AlarmTimes], lang: str) -> tuple[str, list, str]:
    """The oldest open alarm's age (how long the outage has lasted), or the last day's mean
    time to restore, from the figure's alarms."""
    if figure.show == "open_longest":
        live = sum(x.live for x in times)
        oldest = min((x.oldest_open for x in times if x.oldest_open), default=None)
        if not live or oldest is None:
            return t("topic.none_open", lang), [t("topic.open_n", lang, n=0)], "zero"
        age = (max(x.at for x in times) - oldest).total_seconds()
        return duration_text(age, lang), [t("topic.open_n", lang, n=f"{live:,}")], "warn"
    restored = sum(x.restored for x in times)
    if not restored:
        return "–", [t("topic.restored_n", lang, n=0)], "zero"
    total = sum((x.mean_restore_s or 0) * x.restored for x in times)
    detail = [t("topic.restored_n", lang, n=f"{restored:,}")]
    return duration_text(total / restored, lang), detail, "ok"


def figure_tiles(
    topic: str,
    states: dict[str, MeasurandNow],
    *,
    lang: str,
    times: dict[str, AlarmTimes] | None = None,
) -> list[html.Div]:
    """The scenario's figure tiles (`times`: its alarms' times, for restoration figures); a
    figure whose devices are unknown says so, never blanks."""
    tiles = []
    for figure in FIGURES[topic]:
        if figure.show in _TIME_SHOWS and not any(m in states for m in figure.measurands):
            value, detail, tone = "–", [t("topic.no_devices", lang)], "zero"
        elif figure.show in _TIME_SHOWS:
            kept = [(times or {})[m] for m in figure.measurands if m in (times or {})]
            value, detail, tone = _time_tile(figure, kept, lang)
        else:
            found = [states[m] for m in figure.measurands if m in states]
            build = (
                _extreme_tile
                if figure.show in ("highest", "lowest")
                else _estimate_tile
                if figure.show in _ESTIMATES
                else _count_tile
            )
            value, detail, tone = build(figure, found, lang)
        tiles.append(
            html.Div(
                className=f"os-tile os-topic-tile os-topic-{tone}",
                children=[
                    html.Div(t(f"topic.fig.{figure.key}", lang), className="os-tile-label"),
                    html.Div(value, className="os-tile-value"),
                    html.Div(
                        [html.Span(text) for text in detail if text], className="os-tile-detail"
                    ),
                ],
            )
        )
    return tiles


def topic_links(active: str | None, lang: str, *, district: str | None = None) -> html.Nav:
    """The row of scenario views, the shown one marked."""
    return html.Nav(
        className="os-topic-row",
        children=[
            dcc.Link(
                t(f"topic.{code}", lang),
                href=href(f"/topic/{code}", lang=lang, district=district),
                className="os-topic-link" + (" os-topic-active" if code == active else ""),
            )
            for code in TOPICS
        ],
    )


def _past_line(row: dict) -> tuple[float, float]:
    """How far a device is past its line, 0 at its normal line and 1 at its alarm line (at
    most 3: the map's graduated symbol), and the nearer line it is past."""
    value = float(row["value"])
    high = row["normal_max"] is not None and value > float(row["normal_max"])
    line = float(row["normal_max"] if high else row["normal_min"])
    alarm = row["alarm_max"] if high else row["alarm_min"]
    if alarm is None or float(alarm) == line:
        return 1.0, line
    return min(max((value - line) / (float(alarm) - line), 0.0), 3.0), line


def topic_points(rows: list[dict], *, lang: str) -> dict:
    """The scenario map's points as GeoJSON: each device beyond its line, `a` when beyond its
    alarm line, `k` how far past its line (the symbol's size: an underpass's depth, a river's
    height over its warning line), with a tooltip saying what, how much, against which line
    and where."""
    en = lang == "en"
    features = []
    for row in rows:
        decimals = int(row["decimals"] or 1)
        value = _number(float(row["value"]), decimals)
        unit = row["unit"] or ""
        where = row["street_en" if en else "street_zh"] or ""
        past, line = _past_line(row)
        alarm = row["alarm_max"] if float(row["value"]) > line else row["alarm_min"]
        against = (
            t("topic.alarm_line", lang, value=_number(float(alarm), decimals), unit=unit)
            if row["alarm"] and alarm is not None
            else t("topic.line", lang, value=_number(line, decimals), unit=unit)
        )
        tip = f"{row['name_en' if en else 'name_zh']} {value} {unit}".strip() + f" · {against}"
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
                "properties": {
                    "id": int(row["id"]),
                    "a": bool(row["alarm"]),
                    "k": round(past, 2),
                    "tip": f"{tip} · {where}" if where else tip,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
