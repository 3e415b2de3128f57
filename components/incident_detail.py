"""Incident detail view and the readings-around-the-event chart (pure builders)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from components.i18n import t
from components.state import href
from components.theme import ACCENT, SEVERITY_COLORS, base_layout, message_figure
from components.tiles import CITY_TZ


def _when(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "–"
    return pd.Timestamp(value).tz_convert(CITY_TZ).strftime("%Y-%m-%d %H:%M")


def assignee_label(record: dict, lang: str) -> str:
    """Whom an incident or event names as assignee, by name (the code if the name is gone)."""
    assignee = record.get("assignee")
    if not isinstance(assignee, str) or ":" not in assignee:
        return t("action.unassigned", lang)
    named = record.get("assignee_en" if lang == "en" else "assignee_zh")
    return named if isinstance(named, str) and named else assignee.split(":", 1)[1]


def _event_note(row: dict, lang: str) -> str:
    note = row["note"] if isinstance(row.get("note"), str) else ""
    if row["kind"] == "assigned" and isinstance(row.get("assignee"), str):
        return f"→ {assignee_label(row, lang)}" + (f" · {note}" if note else "")
    return note


def readings_figure(
    series: pd.DataFrame, *, incident: dict, lang: str, unit: str | None
) -> go.Figure:
    """Readings (5-minute mean and range) around an incident, its threshold and its opening."""
    if series.empty:
        return message_figure(t("device.no_reading", lang))
    times = pd.to_datetime(series["ts"], utc=True).dt.tz_convert(CITY_TZ)
    figure = go.Figure(layout=base_layout())
    figure.add_scatter(
        x=list(times) + list(times[::-1]),
        y=list(series["value_max"]) + list(series["value_min"][::-1]),
        fill="toself",
        fillcolor="rgba(57,197,255,0.15)",
        line={"width": 0},
        name=t("series.range", lang),
        hoverinfo="skip",
    )
    figure.add_scatter(
        x=times, y=series["value"], name=t("series.mean", lang), line={"color": ACCENT, "width": 2}
    )
    if incident.get("threshold") is not None:
        figure.add_hline(
            y=float(incident["threshold"]),
            line={"color": SEVERITY_COLORS["critical"], "dash": "dash", "width": 1.5},
            annotation_text=t("col.threshold", lang),
            annotation_font_color="#ff8a95",
        )
    opened = pd.Timestamp(incident["opened_at"]).tz_convert(CITY_TZ)
    # the same local-time representation as the series (epoch milliseconds would be read as
    # UTC wall time and land eight hours early)
    figure.add_vline(x=opened.to_pydatetime(), line={"color": "#ffffff", "dash": "dot", "width": 1})
    figure.update_layout(
        xaxis={"title": {"text": t("axis.time", lang)}, "tickformat": "%H:%M"},
        yaxis={"title": {"text": f"{t('axis.value', lang)}{f' ({unit})' if unit else ''}"}},
        showlegend=False,
        margin={"l": 56, "r": 12, "t": 10, "b": 40},
    )
    return figure


def _place_and_device(incident: dict, lang: str) -> tuple[str, Any]:
    """Where the incident is (district · street) and its device, linked to the device page."""
    en = lang == "en"
    place = incident["district_en" if en else "district_zh"]
    street = incident.get("street_en" if en else "street_zh")
    if street:
        place = f"{place} · {street}"
    device: Any = (
        dcc.Link(
            f"{incident['device_code']} ({incident['type_en' if en else 'type_zh']})",
            href=href(f"/device/{incident['device_id']}", lang=lang),
        )
        if incident.get("device_id")
        else "–"
    )
    return place, device


def _facts(incident: dict, *, lang: str, categories: dict[str, tuple[str, str]]) -> list:
    """The incident's facts, label and value: severity, status, times, place, device, values."""
    decimals = int(incident.get("decimals") or 1)
    unit = incident.get("unit") or ""
    category = categories.get(incident["category_code"], (incident["category_code"],) * 2)
    place, device = _place_and_device(incident, lang)

    def number(value: Any) -> str:
        return "–" if value is None else f"{float(value):.{decimals}f} {unit}".strip()

    return [
        (
            t("col.severity", lang),
            html.Span(
                t(f"severity.{incident['severity']}", lang),
                className=f"os-sev os-sev-{incident['severity']}",
            ),
        ),
        (
            t("col.status", lang),
            html.Span(
                t(f"status.{incident['status']}", lang), className=f"os-status-{incident['status']}"
            ),
        ),
        (t("col.category", lang), category[1] if lang == "en" else category[0]),
        (t("col.opened_at", lang), _when(incident["opened_at"])),
        (t("col.acknowledged_at", lang), _when(incident.get("acknowledged_at"))),
        (t("col.resolved_at", lang), _when(incident.get("resolved_at"))),
        (t("action.assigned_to", lang), assignee_label(incident, lang)),
        (t("device.place", lang), f"{place} ({incident['lon']:.5f}, {incident['lat']:.5f})"),
        (t("col.device", lang), device),
        (t("col.value", lang), number(incident.get("trigger_value"))),
        (t("col.threshold", lang), number(incident.get("threshold"))),
    ]


def _history(events: pd.DataFrame, lang: str) -> html.Table:
    """The incident's event history, oldest first."""
    rows = [
        html.Tr(
            className=f"os-history-{row['kind']}",
            children=[
                html.Td(_when(row["at"])),
                html.Td(t(f"event.{row['kind']}", lang)),
                html.Td(row["actor"] or "–"),
                html.Td(_event_note(row, lang)),
            ],
        )
        for row in events.to_dict("records")
    ]
    head = [html.Th(t(k, lang)) for k in ("col.at", "col.kind", "col.actor", "col.note")]
    return html.Table(
        className="os-history", children=[html.Thead(html.Tr(head)), html.Tbody(rows)]
    )


def detail_children(
    incident: dict,
    *,
    events: pd.DataFrame,
    figure: go.Figure,
    lang: str,
    categories: dict[str, tuple[str, str]],
) -> list:
    """Title, facts, readings chart and event history of one incident."""
    facts = _facts(incident, lang=lang, categories=categories)
    return [
        html.H3(incident["title_en" if lang == "en" else "title_zh"]),
        html.Dl(
            className="os-facts",
            children=[item for label, value in facts for item in (html.Dt(label), html.Dd(value))],
        ),
        html.Div(t("incidents.readings", lang), className="os-legend-title"),
        dcc.Graph(
            figure=figure,
            config={"displayModeBar": False, "responsive": True},
            className="os-detail-graph",
        ),
        html.Div(t("incidents.history", lang), className="os-legend-title"),
        _history(events, lang),
    ]
