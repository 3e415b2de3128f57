"""Device page builders: summary with the latest value against thresholds, and its chart."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from components.attributes import wildcards
from components.i18n import t
from components.state import href
from components.theme import ACCENT, SEVERITY_COLORS, STATE_COLORS, base_layout, message_figure
from components.tiles import CITY_TZ
from data.devices import DeviceDetail


def _fmt(value: float | None, device: DeviceDetail) -> str:
    return "–" if value is None else f"{value:,.{device.decimals}f}"


def gauge(device: DeviceDetail, lang: str) -> html.Div:
    """Where the latest value sits between the alarm limits (normal band in the middle)."""
    low = device.alarm_min if device.alarm_min is not None else device.normal_min
    high = device.alarm_max if device.alarm_max is not None else device.normal_max
    span = (high - low) or 1.0
    low_edge, high_edge = low - span * 0.25, high + span * 0.25
    children = []
    if device.last_value is not None:
        position = (device.last_value - low_edge) / (high_edge - low_edge)
        children.append(
            html.Div(
                className="os-gauge-marker",
                style={"left": f"{min(max(position, 0), 1) * 100:.1f}%"},
            )
        )
    return html.Div(
        [
            html.Div(className="os-gauge", children=children),
            html.Div(
                className="os-gauge-scale",
                children=[
                    html.Span(f"{t('device.alarm_min', lang)} {_fmt(device.alarm_min, device)}"),
                    html.Span(
                        f"{t('device.normal_band', lang)} {_fmt(device.normal_min, device)} – "
                        f"{_fmt(device.normal_max, device)}"
                    ),
                    html.Span(f"{t('device.alarm_max', lang)} {_fmt(device.alarm_max, device)}"),
                ],
            ),
        ]
    )


def summary_children(device: DeviceDetail, lang: str) -> list:
    """State, latest value with unit and time, gauge and facts of one device."""
    en = lang == "en"
    latest = (
        t(
            "device.at",
            lang,
            t=pd.Timestamp(device.last_ts).tz_convert(CITY_TZ).strftime("%Y-%m-%d %H:%M:%S"),
        )
        if device.last_ts is not None
        else t("device.no_reading", lang)
    )
    return [
        html.Div(
            [
                html.Span(
                    t(f"state.{device.state}", lang),
                    className=f"os-state os-state-{device.state}",
                    id="device-state",
                    **wildcards({"data-state": device.state}),
                ),
            ]
        ),
        html.Div(
            className="os-legend-title",
            children=t("device.latest", lang),
            style={"marginTop": "10px"},
        ),
        html.Div(
            [
                html.Span(_fmt(device.last_value, device), className="os-device-value"),
                html.Span(f" {device.unit}", className="os-panel-note"),
            ]
        ),
        html.Div(latest, className="os-panel-note"),
        gauge(device, lang),
        html.Dl(
            className="os-facts",
            children=[
                html.Dt(t("device.type", lang)),
                html.Dd(
                    f"{device.type_name_en if en else device.type_name_zh} ({device.type_code})"
                ),
                html.Dt(t("device.place", lang)),
                html.Dd(
                    [
                        dcc.Link(
                            device.district_name_en if en else device.district_name_zh,
                            href=href(f"/district/{device.district_adcode}", lang=lang),
                        ),
                        " · ",
                        dcc.Link(
                            device.street_name_en if en else device.street_name_zh,
                            href=href(
                                f"/district/{device.district_adcode}",
                                lang=lang,
                                street=device.street_code,
                            ),
                        ),
                    ]
                ),
                html.Dt("WGS-84"),
                html.Dd(f"{device.lon:.5f}, {device.lat:.5f}"),
                html.Dt(t("col.status", lang)),
                html.Dd(
                    f"{t('device.interval', lang, s=device.interval_s)} · "
                    f"{t('device.installed', lang, d=device.installed_on)}"
                ),
            ],
        ),
    ]


def series_figure(series: pd.DataFrame, device: DeviceDetail, lang: str) -> go.Figure:
    """Mean and min–max band per bucket with the normal band and alarm limits drawn."""
    if series.empty:
        return message_figure(t("device.no_reading", lang))
    times = pd.to_datetime(series["ts"], utc=True).dt.tz_convert(CITY_TZ)
    figure = go.Figure(layout=base_layout())
    figure.add_hrect(
        y0=device.normal_min,
        y1=device.normal_max,
        fillcolor=STATE_COLORS["normal"],
        opacity=0.08,
        line_width=0,
    )
    figure.add_scatter(
        x=list(times) + list(times[::-1]),
        y=list(series["value_max"]) + list(series["value_min"][::-1]),
        fill="toself",
        fillcolor="rgba(57,197,255,0.16)",
        line={"width": 0},
        name=t("series.range", lang),
        hoverinfo="skip",
    )
    figure.add_scatter(
        x=times,
        y=series["value"],
        name=t("series.mean", lang),
        line={"color": ACCENT, "width": 2},
        hovertemplate=f"%{{y:.{device.decimals}f}} {device.unit}<extra>%{{x|%m-%d %H:%M}}</extra>",
    )
    for limit, key in (
        (device.alarm_min, "device.alarm_min"),
        (device.alarm_max, "device.alarm_max"),
    ):
        if limit is not None:
            figure.add_hline(
                y=limit,
                line={"color": SEVERITY_COLORS["critical"], "dash": "dash", "width": 1.5},
                annotation_text=f"{t(key, lang)} {_fmt(limit, device)}",
                annotation_font_color="#ff8a95",
                annotation_position="top left",
            )
    figure.update_layout(
        xaxis={"title": {"text": t("axis.time", lang)}},
        yaxis={
            "title": {
                "text": f"{t('axis.value', lang)} ({device.unit})"
                if device.unit
                else t("axis.value", lang)
            }
        },
        margin={"l": 64, "r": 16, "t": 30, "b": 44},
    )
    return figure
