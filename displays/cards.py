"""Pure builders for walls: the attention card shown for a new critical incident."""

from __future__ import annotations

from typing import SupportsFloat

import pandas as pd
from dash import html

from components.countdown import minutes_until
from components.i18n import name, t
from components.incident_detail import detail_of, time_to_breach
from components.tiles import CITY_TZ
from components.warnings import level_badge


def _number(value: SupportsFloat | None, decimals: int, unit: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{float(value):.{decimals}f} {unit}".strip()


def _fact(
    label: str, value: str, note: str, *, value_class: str = "os-wall-fact-value"
) -> html.Div:
    return html.Div(
        [
            html.Div(label, className="os-wall-fact-label"),
            html.Div(value, className=value_class),
            html.Div(note, className="os-wall-fact-note"),
        ]
    )


def forecast_children(
    incident: dict, *, lang: str, categories: dict[str, tuple[str, str]], at: pd.Timestamp
) -> list:
    """The attention card of a critical 预警: what is expected, where, in how long (counted from
    `at`, not from when the title was written), against which limit; not yet an alarm."""
    en = lang == "en"
    detail = detail_of(incident)
    decimals = int(incident.get("decimals") or 1)
    unit = detail.get("unit") or incident.get("unit") or ""
    place = incident["district_en" if en else "district_zh"]
    street = incident.get("street_en" if en else "street_zh")
    expected = pd.Timestamp(incident["expected_at"]).tz_convert(CITY_TZ)
    opened = pd.Timestamp(incident["opened_at"]).tz_convert(CITY_TZ)
    category = name(
        categories.get(incident["category_code"], (incident["category_code"],) * 2), lang
    )
    because = detail.get("because_en" if en else "because_zh")
    probability = detail.get("probability")
    when = time_to_breach(expected, at=at, lang=lang)
    chance = "" if probability is None else f" · {t('fx.probability', lang)} {probability:.0%}"
    latest = _number(detail.get("value", incident.get("trigger_value")), decimals, unit)
    minutes = max(0, int((pd.Timestamp(at) - opened).total_seconds() // 60))
    return [
        html.Div(
            className="os-wall-alert-head",
            children=[
                html.Span(t("fx.wall.badge", lang), className="os-wall-alert-sev os-wall-fx-badge"),
                html.Span(category, className="os-wall-alert-cat"),
                html.Span(t("fx.wall.not_yet", lang), className="os-wall-alert-status"),
            ],
        ),
        html.H2(incident["title_en" if en else "title_zh"], className="os-wall-alert-title"),
        html.Div(
            f"{place} · {street}" if isinstance(street, str) and street else place,
            className="os-wall-alert-place",
        ),
        html.Div(because, className="os-wall-fx-because") if because else None,
        html.Div(
            className="os-wall-alert-facts",
            children=[
                _fact(
                    t("fx.expected_at", lang),
                    when,
                    expected.strftime("%H:%M") + chance,
                    value_class="os-wall-fact-value os-wall-fx-countdown",
                ),
                _fact(
                    t("fx.limit", lang),
                    _number(detail.get("limit", incident.get("threshold")), decimals, unit),
                    f"{t('fx.latest', lang)} {latest}",
                ),
                _fact(
                    t("col.device", lang),
                    incident.get("device_code") or "–",
                    t("fx.wall.opened", lang, n=minutes),
                    value_class="os-wall-fact-code",
                ),
            ],
        ),
    ]


def attention_children(
    incident: dict, *, lang: str, categories: dict[str, tuple[str, str]], at: pd.Timestamp
) -> list:
    """The attention card's text: what, where, since when, the value against its threshold (a
    critical 预警's card says when the breach is expected instead)."""
    if incident.get("kind") == "forecast" and incident.get("expected_at") is not None:
        return forecast_children(incident, lang=lang, categories=categories, at=at)
    en = lang == "en"
    decimals = int(incident.get("decimals") or 1)
    unit = incident.get("unit") or ""
    place = incident["district_en" if en else "district_zh"]
    street = incident.get("street_en" if en else "street_zh")
    opened = pd.Timestamp(incident["opened_at"]).tz_convert(CITY_TZ)
    minutes = max(0, int((pd.Timestamp(at) - opened).total_seconds() // 60))
    category = name(
        categories.get(incident["category_code"], (incident["category_code"],) * 2), lang
    )
    kind = incident.get("type_en" if en else "type_zh") or ""
    return [
        html.Div(
            className="os-wall-alert-head",
            children=[
                html.Span(t("severity.critical", lang), className="os-wall-alert-sev"),
                html.Span(category, className="os-wall-alert-cat"),
                html.Span(
                    t(f"status.{incident['status']}", lang),
                    className=f"os-wall-alert-status os-status-{incident['status']}",
                ),
            ],
        ),
        html.H2(incident["title_en" if en else "title_zh"], className="os-wall-alert-title"),
        html.Div(
            f"{place} · {street}" if isinstance(street, str) and street else place,
            className="os-wall-alert-place",
        ),
        html.Div(
            className="os-wall-alert-facts",
            children=[
                html.Div(
                    [
                        html.Div(t("col.opened_at", lang), className="os-wall-fact-label"),
                        html.Div(opened.strftime("%H:%M:%S"), className="os-wall-fact-value"),
                        html.Div(
                            t("wall.minutes_ago", lang, n=minutes), className="os-wall-fact-note"
                        ),
                    ]
                ),
                html.Div(
                    [
                        html.Div(t("col.value", lang), className="os-wall-fact-label"),
                        html.Div(
                            _number(incident.get("trigger_value"), decimals, unit),
                            className="os-wall-fact-value os-wall-fact-bad",
                        ),
                        html.Div(
                            f"{t('col.threshold', lang)} "
                            f"{_number(incident.get('threshold'), decimals, unit)}",
                            className="os-wall-fact-note",
                        ),
                    ]
                ),
                html.Div(
                    [
                        html.Div(t("col.device", lang), className="os-wall-fact-label"),
                        html.Div(incident.get("device_code") or "–", className="os-wall-fact-code"),
                        html.Div(kind, className="os-wall-fact-note"),
                    ]
                ),
            ],
        ),
    ]


KIOSK_FORECASTS = 4  # areas named on a kiosk's 预警 strip; the rest are counted


def kiosk_forecast_children(
    summary: pd.DataFrame, *, lang: str, categories: dict[str, tuple[str, str]], at: pd.Timestamp
) -> list:
    """A kiosk's public 预警 strip: how many, where (street, or only the district for personal
    categories, already masked) and roughly when; no device, no title, no reading."""
    if summary.empty:
        return []
    en = lang == "en"
    items: list = [html.Span(t("fx.kiosk.title", lang), className="os-kiosk-fx-title")]
    for row in summary.head(KIOSK_FORECASTS).to_dict("records"):
        district = row["district_en" if en else "district_zh"]
        street = row.get("street_en" if en else "street_zh")
        place = f"{district} · {street}" if isinstance(street, str) and street else district
        category = name(categories.get(row["category_code"], (row["category_code"],) * 2), lang)
        left = minutes_until(pd.Timestamp(row["earliest"]), pd.Timestamp(at).to_pydatetime())
        when = t("fx.due", lang) if not left else t("fx.kiosk.when", lang, n=left)
        items.append(
            html.Span(
                [
                    t("fx.kiosk.item", lang, place=place, category=category, n=row["forecasts"]),
                    " ",
                    html.Span(when, className="os-kiosk-fx-when"),
                ],
                className="os-kiosk-fx-item",
            )
        )
    rest = int(summary["forecasts"].iloc[KIOSK_FORECASTS:].sum())
    if rest:
        items.append(html.Span(f"+{rest}", className="os-kiosk-fx-item"))
    return items


def warning_children(
    rise: dict, *, lang: str, place: str, why: list[str], since: pd.Timestamp | None
) -> list:
    """The attention card of a warning level's rise: the scenario, the new level and the one
    before, where, since when and why."""
    level = rise.get("level")
    before = rise.get("from")
    topic = t(f"topic.{rise.get('category')}", lang)
    return [
        html.Div(
            className="os-wall-alert-head",
            children=[
                html.Span(t("warn.raised", lang), className="os-wall-alert-sev"),
                html.Span(topic, className="os-wall-alert-cat"),
            ],
        ),
        html.H2(level_badge(level, lang), className="os-wall-alert-title os-wall-warn-title"),
        html.Div(place, className="os-wall-alert-place"),
        html.Div(
            t("warn.was", lang, level=level_badge(before, lang).children)
            + (f" · {since.tz_convert(CITY_TZ):%H:%M}" if since is not None else ""),
            className="os-wall-warn-was",
        ),
        html.Ul([html.Li(line) for line in why[:4]], className="os-wall-warn-why"),
        html.Div(t("panel.topic_trend", lang), className="os-wall-alert-section"),
    ]
