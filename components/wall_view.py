"""Pure builders for walls and kiosks: area ranking, kiosk masking, the attention card."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from dash import html

from components.choropleth import format_value, metric_value
from components.i18n import name, t
from components.tiles import CITY_TZ
from data.areas import AreaMetric

# categories whose incidents describe people at home: a public kiosk shows them only as counts
PERSONAL_CATEGORIES = frozenset({"elderly"})


def ranking_children(
    areas: Sequence[AreaMetric], *, metric: str, lang: str, limit: int = 12
) -> list:
    """The `limit` worst areas for `metric` with a bar each (best first for online rate)."""
    values = [(area, metric_value(area, metric)) for area in areas]
    worst_first = metric != "online_rate"
    values.sort(
        key=lambda pair: (pair[1] is None, -(pair[1] or 0) if worst_first else (pair[1] or 0))
    )
    values = values[:limit]
    top = max((v for _, v in values if v is not None), default=0) or 1
    if not values:
        return [html.Div(t("legend.no_data", lang), className="os-empty")]
    return [
        html.Div(
            className="os-wall-rank-row",
            children=[
                html.Span(str(position), className="os-wall-rank-pos"),
                html.Div(
                    className="os-wall-rank-name",
                    children=[
                        html.Span(area.name_en if lang == "en" else area.name_zh),
                        html.Div(
                            className="os-wall-rank-bar",
                            style={"width": f"{(value or 0) / top * 100:.0f}%"},
                        ),
                    ],
                ),
                html.Span(format_value(value, metric), className="os-wall-rank-value"),
            ],
        )
        for position, (area, value) in enumerate(values, start=1)
    ]


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


def _number(value: object, decimals: int, unit: str) -> str:
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


def wall_figure(figure: go.Figure) -> go.Figure:
    """A dashboard figure with type large enough to read from across a room."""
    figure.update_layout(
        font={"size": 17},
        legend={"font": {"size": 16}},
        margin={"l": 60, "r": 14, "t": 34, "b": 48},
    )
    figure.update_xaxes(tickfont={"size": 16}, title_font={"size": 16})
    figure.update_yaxes(tickfont={"size": 16}, title_font={"size": 16})
    return figure
