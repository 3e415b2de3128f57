"""Pure builders for walls: the attention card shown for a new critical incident."""

from __future__ import annotations

from typing import SupportsFloat

import pandas as pd
from dash import html

from components.i18n import name, t
from components.tiles import CITY_TZ


def _number(value: SupportsFloat | None, decimals: int, unit: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{float(value):.{decimals}f} {unit}".strip()


def attention_children(
    incident: dict, *, lang: str, categories: dict[str, tuple[str, str]], at: pd.Timestamp
) -> list:
    """The attention card's text: what, where, since when, the value against its threshold."""
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
