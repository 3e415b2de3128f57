"""The scrolling list of latest incidents (pure builder from an incident_list frame)."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd
from dash import dcc, html

from components.countdown import countdown, earliest, minutes_until
from components.i18n import name, t
from components.panels import panel, skeleton
from components.state import href
from components.theme import KIND_COLORS
from components.tiles import CITY_TZ

Limits = dict[int, tuple[float | None, str, int]]


def _number(value: object) -> float | None:
    """A frame cell as a number (None for a missing or NaN one)."""
    if value is None or isinstance(value, str):
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _badge(item: dict, lang: str) -> html.Span:
    """Severity for alarms; the kind (预警, anomaly, device health) for the early-warning kinds."""
    kind = item.get("kind") or "alarm"
    if kind in KIND_COLORS:
        return html.Span(t(f"fx.kind.{kind}", lang), className=f"os-badge os-kind-{kind}")
    severity = item["severity"]
    return html.Span(t(f"severity.{severity}", lang), className=f"os-badge os-sev-{severity}")


def _title(item: dict, lang: str, *, now: datetime | None, limits: Limits) -> list:
    """The row's title: a live 预警 counts down to its breach (drawn now, never stored); an
    alarm that was foreseen says how many minutes ahead."""
    title = item["title_en"] if lang == "en" else item["title_zh"]
    kind = item.get("kind") or "alarm"
    if kind == "forecast" and item["status"] != "resolved" and now is not None:
        limit, unit, side = limits.get(int(item["id"]), (None, "", 1))
        minutes = minutes_until(item.get("expected_at"), now)
        title = countdown(minutes, lang, limit=limit, unit=unit, side=side)
        return [html.Span(title, className="os-feed-countdown")]
    lead = _number(item.get("lead_s"))
    if kind == "alarm" and lead is not None and _number(item.get("foreseen_by")) is not None:
        chip = t("fx.feed.lead", lang, m=round(lead / 60))
        return [html.Span(chip, className="os-feed-lead"), title]
    return [title]


def feed_children(
    frame: pd.DataFrame,
    *,
    lang: str,
    categories: dict[str, tuple[str, str]],
    link: bool = True,
    now: datetime | None = None,
    limits: Limits | None = None,
):
    """One row per incident, newest first: time, severity or kind, title, place; links to its
    detail (plain rows on walls and kiosks, which open nothing). Live 预警 count down from `now`
    to their expected breach (`limits`: each 预警's alarm limit, unit and side)."""
    if frame.empty:
        return html.Div(t("panel.empty_feed", lang), className="os-empty")
    rows = []
    for item in frame.to_dict("records"):
        if item.get("line") == "event":
            rows.append(event_row(item, lang=lang, categories=categories, link=link, now=now))
            continue
        opened = pd.Timestamp(item["opened_at"]).tz_convert(CITY_TZ).strftime("%H:%M")
        place = item["district_en"] if lang == "en" else item["district_zh"]
        street = item["street_en"] if lang == "en" else item["street_zh"]
        if isinstance(street, str) and street:
            place = f"{place} · {street}"
        code = item["category_code"]
        category = categories.get(code, (code, code))
        cells = [
            html.Span(opened, className="os-feed-time"),
            _badge(item, lang),
            html.Span(_title(item, lang, now=now, limits=limits or {}), className="os-feed-title"),
            html.Span(
                f"{category[1] if lang == 'en' else category[0]} · {place}",
                className="os-feed-place",
            ),
            html.Span(
                t(f"status.{item['status']}", lang),
                className=f"os-feed-status os-status-{item['status']}",
            ),
        ]
        kind = item.get("kind") or "alarm"
        # the bar beside the row takes the severity's colour, as its tag does
        row_class = (
            f"os-feed-row os-feed-{item['status']} os-feed-kind-{kind}"
            f" os-feed-sev-{item['severity']}"
        )
        rows.append(
            dcc.Link(
                href=href("/incidents", lang=lang, incident=str(item["id"])),
                className=row_class,
                children=cells,
            )
            if link
            else html.Div(className=row_class, children=cells)
        )
    return rows


def _clock(moment: object) -> str:
    return pd.Timestamp(moment).tz_convert(CITY_TZ).strftime("%H:%M")  # type: ignore[arg-type]


def _forecast_chip(item: dict, lang: str, now: datetime | None) -> list:
    """An event's live 预警, first on its line (they would otherwise hide among its members):
    how many, and the soonest breach they foresee."""
    n = int(_number(item.get("forecasts")) or 0)
    if not n:
        return []
    soonest = minutes_until(item.get("next_breach"), now) if now is not None else None
    text = t("group.forecasts", lang, n=n)
    if soonest is not None:
        text = f"{text} · {earliest(soonest, lang)}"
    return [html.Span(text, className="os-feed-countdown")]


def event_row(
    item: dict,
    *,
    lang: str,
    categories: dict[str, tuple[str, str]],
    link: bool,
    now: datetime | None = None,
) -> html.Div | dcc.Link:
    """One event as one line: its span in time, 事件 in its worst severity's colour, its live
    预警 and their soonest breach, what it is and how many alarms in how many districts (and
    how many wait), where; opens its members."""
    first, last = _clock(item["opened_at"]), _clock(item["last_at"])
    title = [item["event_en"] if lang == "en" else item["event_zh"]]
    # the count first: on a wall's one-line row the tail is what an ellipsis takes
    title.append(t("group.members", lang, n=int(item["members"])))
    districts = int(item.get("n_districts") or 0)
    if districts > 1:
        title.append(t("group.districts", lang, n=districts))
    if int(item.get("unacknowledged") or 0):
        title.append(t("group.waiting", lang, n=int(item["unacknowledged"])))
    names = list(item.get("districts_en" if lang == "en" else "districts_zh") or [])
    place = "、".join(names[:2]) if lang != "en" else ", ".join(names[:2])
    if len(names) > 2:
        place = t("group.more", lang, names=place)
    code = item["category_code"]
    category = name(categories.get(code, (code, code)), lang)
    cells = [
        html.Span(
            first if first == last else [first, html.Br(), f"–{last}"], className="os-feed-time"
        ),
        html.Span(t("group.badge", lang), className=f"os-badge os-sev-{item['severity']}"),
        html.Span([*_forecast_chip(item, lang, now), " · ".join(title)], className="os-feed-title"),
        html.Span(f"{category} · {place}", className="os-feed-place"),
        html.Span(
            t(f"status.{item['status']}", lang),
            className=f"os-feed-status os-status-{item['status']}",
        ),
    ]
    row_class = f"os-feed-row os-feed-event os-feed-{item['status']} os-feed-sev-{item['severity']}"
    if not link:
        return html.Div(className=row_class, children=cells)
    return dcc.Link(
        href=href("/incidents", lang=lang, event=str(item["id"])),
        className=row_class,
        children=cells,
    )


def create_feed(feed_id: str, lang: str) -> html.Section:
    """The latest-incidents panel, with placeholders until its callback fills it."""
    return panel(
        t("panel.feed", lang),
        html.Div(
            id=feed_id,
            className="os-feed",
            children=[skeleton("os-skel-line") for _ in range(6)],
        ),
        class_name="os-panel-feed",
        fresh=feed_id,
    )


# categories whose incidents describe people at home: a public kiosk shows them only as counts
PERSONAL_CATEGORIES = frozenset({"elderly"})


def mask_personal(frame: pd.DataFrame, *, categories: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Incidents as a public kiosk may show them: personal categories lose title, street,
    device and readings, keeping category, district, severity, status and time."""
    if frame.empty or "category_code" not in frame:
        return frame
    masked = frame.copy()
    personal = masked["category_code"].isin(PERSONAL_CATEGORIES)
    if not personal.any():
        return masked
    for column in ("street_code", "street_zh", "street_en", "device_id"):
        if column in masked:
            masked[column] = masked[column].astype(object)
            masked.loc[personal, column] = None
    for column in ("trigger_value", "threshold", "lon", "lat"):
        if column in masked:
            masked.loc[personal, column] = float("nan")
    for column, lang in (("title_zh", "zh"), ("title_en", "en")):
        if column in masked:
            masked.loc[personal, column] = [
                t(
                    "kiosk.masked_title",
                    lang,
                    category=name(categories.get(code, (code, code)), lang),
                )
                for code in masked.loc[personal, "category_code"]
            ]
    return masked
