"""Incident detail view and the readings-around-the-event chart (pure builders)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from components.chart_truth import draw_on_off, is_on_off, mark_trigger, on_off_text, value_range
from components.countdown import minutes_until
from components.i18n import t
from components.state import href
from components.theme import ACCENT, KIND_COLORS, SEVERITY_COLORS, base_layout, message_figure
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
    """Readings (5-minute mean and range; an on/off sensor's state as steps) around an incident,
    its threshold, its opening and the reading that opened it, all inside the axis."""
    if series.empty:
        return message_figure(t("device.no_reading", lang))
    times = pd.to_datetime(series["ts"], utc=True).dt.tz_convert(CITY_TZ)
    figure = go.Figure(layout=base_layout())
    on_off = is_on_off(incident.get("value_kind"))
    if on_off:
        draw_on_off(figure, times, series["value_max"], lang=lang)
    else:
        _draw_analog(figure, times, series, incident=incident, lang=lang)
    _mark_expected(figure, incident)
    opened = pd.Timestamp(incident["opened_at"]).tz_convert(CITY_TZ)
    # the same local-time representation as the series (epoch milliseconds would be read as
    # UTC wall time and land eight hours early)
    figure.add_vline(x=opened.to_pydatetime(), line={"color": "#ffffff", "dash": "dot", "width": 1})
    trigger = incident.get("trigger_value")
    if trigger is not None and not pd.isna(trigger):
        text = on_off_text(float(trigger), lang) if on_off else _number(trigger, incident)
        mark_trigger(figure, at=opened, value=float(trigger), text=t("chart.trigger", lang, v=text))
    figure.update_layout(
        xaxis={"title": {"text": t("axis.time", lang)}, "tickformat": "%H:%M"},
        showlegend=False,
        margin={"l": 56, "r": 12, "t": 10, "b": 40},
    )
    if not on_off:
        figure.update_layout(
            yaxis={"title": {"text": f"{t('axis.value', lang)}{f' ({unit})' if unit else ''}"}}
        )
    return figure


def _number(value: Any, incident: dict) -> str:
    """A reading with the type's decimals and unit."""
    decimals = int(incident.get("decimals") or 1)
    return f"{float(value):.{decimals}f} {incident.get('unit') or ''}".strip()


def _draw_analog(
    figure: go.Figure, times: pd.Series, series: pd.DataFrame, *, incident: dict, lang: str
) -> None:
    """Mean and range of an analog sensor, its threshold; the axis holds the readings, the
    threshold, the trigger reading and a 预警's limit (lines alone would not widen it)."""
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
    threshold = incident.get("threshold")
    if threshold is not None:
        figure.add_hline(
            y=float(threshold),
            line={"color": SEVERITY_COLORS["critical"], "dash": "dash", "width": 1.5},
            annotation_text=t("col.threshold", lang),
            annotation_font_color="#ff8a95",
        )
    extra = [threshold, incident.get("trigger_value"), detail_of(incident).get("limit")]
    # headroom: the trigger's label sits above its marker, which is often the highest point
    span = value_range(series["value_min"], series["value_max"], extra, headroom=0.25)
    if span is not None:
        figure.update_yaxes(range=span)


def _mark_expected(figure: go.Figure, incident: dict) -> None:
    """A 预警's expected breach: where the limit is expected to be crossed, in the 预警 colour."""
    detail = detail_of(incident)
    limit = detail.get("limit", incident.get("threshold"))
    if incident.get("kind") != "forecast" or incident.get("expected_at") is None or limit is None:
        return
    at = pd.Timestamp(incident["expected_at"]).tz_convert(CITY_TZ).to_pydatetime()
    color = KIND_COLORS["forecast"]
    figure.add_vline(x=at, line={"color": color, "dash": "dot", "width": 1.5})
    figure.add_scatter(
        x=[at],
        y=[float(limit)],
        mode="markers",
        marker={"color": color, "size": 12, "symbol": "diamond"},
        hoverinfo="skip",
    )


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

    kind = incident.get("kind") or "alarm"
    return [
        (
            t("fx.col.kind", lang),
            html.Span(
                t(f"fx.kind.{kind}", lang),
                className=f"os-kind os-kind-{kind}",
                # an alarm's tag takes its severity's colour: red only for 紧急
                style={"color": KIND_COLORS.get(kind, SEVERITY_COLORS[incident["severity"]])},
            ),
        ),
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


def detail_of(record: dict) -> dict:
    """An incident's why (incident.detail), {} when it has none."""
    value = record.get("detail")
    return value if isinstance(value, dict) else {}


def time_to_breach(expected_at: object, *, at: datetime, lang: str) -> str:
    """A 预警's time to its expected breach, counted from `at` (render time, never the title's):
    "12 分钟后" / "in 12 min", "已到预计时间" once due, "" when unknown."""
    minutes = minutes_until(expected_at, at)
    if minutes is None:
        return ""
    return t("fx.due", lang) if minutes <= 0 else t("fx.in_minutes", lang, n=minutes)


def _minutes(seconds: object) -> int:
    return max(0, round(float(seconds) / 60)) if isinstance(seconds, int | float) else 0


def _links(incident: dict, lang: str) -> list:
    """An alarm foreseen by a 预警 ("提前 N 分钟预警 #id"), a 预警 superseded by its alarm."""
    items = []
    if incident.get("foreseen_by"):
        forecast = int(incident["foreseen_by"])
        items.append(
            html.Div(
                className="os-foreseen",
                children=[
                    t("fx.foreseen", lang, n=_minutes(incident.get("lead_s"))),
                    " ",
                    dcc.Link(
                        t("fx.foreseen_by", lang, id=forecast),
                        href=href("/incidents", lang=lang, incident=str(forecast)),
                        id="incident-foreseen-link",
                    ),
                ],
            )
        )
    if incident.get("superseded_by"):
        alarm = int(incident["superseded_by"])
        items.append(
            html.Div(
                dcc.Link(
                    t("fx.superseded_by", lang, id=alarm),
                    href=href("/incidents", lang=lang, incident=str(alarm)),
                    id="incident-superseded-link",
                ),
                className="os-foreseen",
            )
        )
    return items


def _forecast_facts(incident: dict, detail: dict, *, lang: str, at: datetime) -> list:
    """A 预警's figures: expected breach (with its live countdown), band, limit, probability."""
    decimals = int(incident.get("decimals") or 1)
    unit = detail.get("unit") or incident.get("unit") or ""

    def number(value: object) -> str:
        return "–" if value is None else f"{float(str(value)):.{decimals}f} {unit}".strip()

    expected = _when(incident.get("expected_at"))
    if incident.get("status") != "resolved" and incident.get("expected_at") is not None:
        expected += " · " + time_to_breach(incident["expected_at"], at=at, lang=lang)
    band = [
        _when(pd.Timestamp(v)) if v else "–"
        for v in (detail.get("expected_lo"), detail.get("expected_hi"))
    ]
    facts = [
        (t("fx.expected_at", lang), expected),
        (t("fx.expected_band", lang), " – ".join(band) if any(b != "–" for b in band) else "–"),
        (t("fx.limit", lang), number(detail.get("limit"))),
        (t("fx.latest", lang), number(detail.get("value"))),
    ]
    if detail.get("probability") is not None:
        facts.append((t("fx.probability", lang), f"{100 * float(detail['probability']):.0f}%"))
    if detail.get("slope_per_h") is not None:
        slope = f"{float(detail['slope_per_h']):+.{decimals}f} {unit}".strip()
        facts.append((t("fx.slope", lang), t("fx.per_hour", lang, v=slope)))
    return facts


def why_section(incident: dict, *, lang: str, at: datetime) -> list:
    """Why a 预警, anomaly or device-health incident was raised: its sentence and figures; the
    foresight links of an alarm."""
    detail = detail_of(incident)
    kind = incident.get("kind") or "alarm"
    links = _links(incident, lang)
    if kind == "alarm" or not detail:
        return links
    because = detail.get("because_en" if lang == "en" else "because_zh")
    facts: list = []
    if kind == "forecast":
        facts = _forecast_facts(incident, detail, lang=lang, at=at)
    elif kind == "anomaly" and detail.get("usual") is not None:
        slot = detail.get("slot_en" if lang == "en" else "slot_zh") or ""
        unit = detail.get("unit") or ""
        facts = [(t("fx.usual", lang), f"{detail['usual']} {unit} {slot}".strip())]
    elif kind == "health" and detail.get("check"):
        facts = [(t("fx.check", lang), str(detail["check"]))]
    return [
        html.Div(
            className=f"os-why-detail os-why-{kind}",
            id="incident-why",
            children=[
                html.Div(t("fx.why", lang), className="os-legend-title"),
                html.P(because, className="os-why-because") if because else None,
                html.Dl(
                    className="os-facts",
                    children=[
                        x for label, value in facts for x in (html.Dt(label), html.Dd(value))
                    ],
                ),
            ],
        ),
        *links,
    ]


def detail_children(
    incident: dict,
    *,
    events: pd.DataFrame,
    figure: go.Figure,
    lang: str,
    categories: dict[str, tuple[str, str]],
    at: datetime | None = None,
) -> list:
    """Title with facts and why, readings chart and event history of one incident."""
    facts = _facts(incident, lang=lang, categories=categories)
    moment = at if at is not None else datetime.now(UTC)
    return [
        html.H3(incident["title_en" if lang == "en" else "title_zh"]),
        html.Div(
            [
                html.Dl(
                    className="os-facts",
                    children=[
                        x for label, value in facts for x in (html.Dt(label), html.Dd(value))
                    ],
                ),
                *why_section(incident, lang=lang, at=moment),
            ]
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
