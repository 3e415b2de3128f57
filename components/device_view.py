"""Device page builders: summary with the latest value against thresholds, and its chart with
the 预警 forecast and the device's learned normal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from components.attributes import wildcards
from components.chart_truth import (
    add_window_note,
    draw_on_off,
    gauge_scale,
    is_on_off,
    mark_point,
    on_off_text,
    window_note,
)
from components.i18n import t
from components.incident_detail import detail_of
from components.state import href
from components.theme import (
    ACCENT,
    KIND_COLORS,
    MUTED,
    SEVERITY_COLORS,
    STATE_COLORS,
    base_layout,
    message_figure,
)
from components.tiles import CITY_TZ
from data.devices import DeviceBaseline, DeviceDetail
from data.rule_types import Rule
from foresight.baseline import band_at
from foresight.trend import SeriesForecast, forecast_series

FORECAST_FILL = "rgba(255,106,213,0.20)"  # STATE_COLORS["forecast"] at 20 %
BASELINE_FILL = "rgba(143,163,191,0.16)"  # MUTED at 16 %
BASELINE_STEP_S = 900  # the normal band is drawn every 15 minutes


def _fmt(value: float | None, device: DeviceDetail) -> str:
    return "–" if value is None else f"{value:,.{device.decimals}f}"


def gauge(device: DeviceDetail, lang: str) -> html.Div:
    """Where the latest value sits among the type's zones (red only beyond a limit it has)."""
    scale = gauge_scale(
        value_kind=device.value_kind,
        normal_min=device.normal_min,
        normal_max=device.normal_max,
        alarm_min=device.alarm_min,
        alarm_max=device.alarm_max,
    )
    children = []
    if device.last_value is not None:
        children.append(
            html.Div(
                className="os-gauge-marker",
                style={"left": f"{scale.position(device.last_value) * 100:.1f}%"},
            )
        )
    if is_on_off(device.value_kind):
        labels = [t("chart.normal", lang), t("chart.alarm", lang)]
    else:
        labels = [
            f"{t('device.alarm_min', lang)} {_fmt(device.alarm_min, device)}"
            if device.alarm_min is not None
            else t("chart.no_lower", lang),
            f"{t('device.normal_band', lang)} {_fmt(device.normal_min, device)} – "
            f"{_fmt(device.normal_max, device)}",
            f"{t('device.alarm_max', lang)} {_fmt(device.alarm_max, device)}"
            if device.alarm_max is not None
            else t("chart.no_upper", lang),
        ]
    return html.Div(
        [
            html.Div(
                className="os-gauge",
                children=children,
                style={"background": scale.background()},
                **wildcards({"data-zones": ",".join(zone for zone, _, _ in scale.zones)}),
            ),
            html.Div(
                className="os-gauge-scale",
                children=[html.Span(text) for text in labels],
                # on/off: each word under the middle of its half
                style={"justifyContent": "space-around"} if len(labels) == 2 else None,
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
                html.Span(
                    on_off_text(device.last_value, lang)
                    if is_on_off(device.value_kind)
                    else _fmt(device.last_value, device),
                    className="os-device-value",
                ),
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


def series_figure(
    series: pd.DataFrame,
    device: DeviceDetail,
    lang: str,
    *,
    forecast: DeviceForecast | None = None,
    baseline: DeviceBaseline | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> go.Figure:
    """Mean and min–max band per bucket with the normal band and alarm limits drawn (an on/off
    sensor: its state as steps); the device's learned normal from `start_s`, and the 预警
    forecast to its horizon, when given; a note when the data begins after `start_s`."""
    if series.empty:
        return message_figure(t("device.no_reading", lang))
    times = pd.to_datetime(series["ts"], utc=True).dt.tz_convert(CITY_TZ)
    figure = go.Figure(layout=base_layout())
    if start_s is not None and end_s is not None:
        note = window_note(
            times.iloc[0],
            start=datetime.fromtimestamp(start_s, UTC),
            end=datetime.fromtimestamp(end_s, UTC),
            lang=lang,
        )
        add_window_note(figure, note)
    figure.update_layout(
        xaxis={"title": {"text": t("axis.time", lang)}},
        margin={"l": 64, "r": 16, "t": 30, "b": 44},
    )
    if is_on_off(device.value_kind):
        # a bucket holding any alarm reading is an alarm: its max, held to the next bucket
        draw_on_off(figure, times, series["value_max"], lang=lang)
        return figure
    figure.add_hrect(
        y0=device.normal_min,
        y1=device.normal_max,
        fillcolor=STATE_COLORS["normal"],
        opacity=0.08,
        line_width=0,
    )
    if baseline is not None:
        first = float(times.iloc[0].timestamp()) if start_s is None else start_s
        last = float(times.iloc[-1].timestamp())
        if forecast is not None:
            last = max(last, float(forecast.forecast.t_s[-1]))
        add_baseline(figure, baseline, start_s=first, end_s=last, lang=lang)
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
    if forecast is not None:
        add_forecast(figure, forecast, device=device, lang=lang)
    _limit_lines(figure, device, lang)
    unit = f" ({device.unit})" if device.unit else ""
    figure.update_layout(yaxis={"title": {"text": f"{t('axis.value', lang)}{unit}"}})
    return figure


def _limit_lines(figure: go.Figure, device: DeviceDetail, lang: str) -> None:
    """The type's alarm limits as dashed lines (only those it has)."""
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


# The 预警 forecast and the learned normal over the readings ---------------------------------


@dataclass(frozen=True)
class DeviceForecast:
    """The forecast drawn on a device's chart: the rule that asks for it and its answer."""

    rule: Rule
    limit: float
    forecast: SeriesForecast


def rule_of_forecast(detail: object) -> Rule:
    """The rule a live 预警 was raised by, from the figures its detail keeps (revision 0006)."""
    figures = detail if isinstance(detail, dict) else {}
    return Rule(
        code="forecast_low" if figures.get("side") == -1 else "forecast_high",
        kind="forecast",
        severity="major",
        side=-1 if figures.get("side") == -1 else 1,
        horizon_s=int(figures.get("horizon_s") or 3600),
        window_s=int(figures.get("window_s") or 1800),
        min_points=5,
        confidence=0.9,
    )


def _limit_of(rule: Rule, device: DeviceDetail) -> float | None:
    """The alarm limit a 预警 rule watches: the type's alarm_max (high side) or alarm_min (low)."""
    return device.alarm_max if rule.side == 1 else device.alarm_min if rule.side == -1 else None


def device_forecast(
    raw: pd.DataFrame,
    *,
    device: DeviceDetail,
    rules: tuple[Rule, ...],
    baseline: DeviceBaseline | None,
) -> DeviceForecast | None:
    """The engine's forecast of the device's raw readings for each applicable 预警 rule; the one
    most likely to breach (None without a rule, a limit or enough points)."""
    if raw.empty:
        return None
    ts_s = pd.to_datetime(raw["ts"], utc=True).astype("int64").to_numpy() / 1e9
    values = raw["value"].astype(float).to_numpy()
    seasonal = None if baseline is None else np.asarray(baseline.median, dtype=float)
    best: DeviceForecast | None = None
    for rule in rules:
        limit = _limit_of(rule, device)
        if limit is None or None in (rule.horizon_s, rule.window_s, rule.min_points):
            continue
        forecast = forecast_series(
            ts_s=ts_s,
            values=values,
            limit=float(limit),
            side=int(rule.side or 1),
            horizon_s=float(rule.horizon_s or 0),
            window_s=float(rule.window_s or 0),
            min_points=int(rule.min_points or 2),
            confidence=float(rule.confidence or 0.9),
            seasonal=seasonal,
        )
        if forecast is not None and (
            best is None or forecast.probability > best.forecast.probability
        ):
            best = DeviceForecast(rule=rule, limit=float(limit), forecast=forecast)
    return best


def _local(epoch_s: np.ndarray) -> list:
    """Epoch seconds as city-time datetimes (the chart's x representation)."""
    nanoseconds = (np.asarray(epoch_s, dtype=float) * 1e9).astype("int64")
    return list(pd.to_datetime(nanoseconds, utc=True).tz_convert(CITY_TZ))


def add_baseline(
    figure: go.Figure, baseline: DeviceBaseline, *, start_s: float, end_s: float, lang: str
) -> None:
    """The device's learned normal (median ± spread) over [start_s, end_s]."""
    steps = np.arange(start_s, end_s + BASELINE_STEP_S, BASELINE_STEP_S, dtype=float)
    mid, spread = band_at(
        median=np.asarray(baseline.median), spread=np.asarray(baseline.spread), ts_s=steps
    )
    times = _local(steps)
    figure.add_scatter(
        x=times + times[::-1],
        y=list(mid + spread) + list((mid - spread)[::-1]),
        fill="toself",
        fillcolor=BASELINE_FILL,
        line={"width": 0},
        name=t("fx.baseline_band", lang),
        hoverinfo="skip",
    )
    figure.add_scatter(
        x=times,
        y=mid,
        name=t("fx.baseline_median", lang),
        line={"color": MUTED, "width": 1, "dash": "dot"},
        hoverinfo="skip",
        showlegend=False,
    )


def add_forecast(
    figure: go.Figure, chosen: DeviceForecast, *, device: DeviceDetail, lang: str
) -> None:
    """The forecast line and its band to the horizon, and the expected crossing marked."""
    forecast = chosen.forecast
    times = _local(forecast.t_s)
    color = STATE_COLORS["forecast"]
    figure.add_scatter(
        x=times + times[::-1],
        y=list(forecast.upper) + list(forecast.lower[::-1]),
        fill="toself",
        fillcolor=FORECAST_FILL,
        line={"width": 0},
        name=t("fx.forecast_band", lang, p=round(100 * float(chosen.rule.confidence or 0.9))),
        hoverinfo="skip",
    )
    figure.add_scatter(
        x=times,
        y=forecast.mean,
        name=t("fx.forecast_line", lang),
        mode="lines",
        line={"color": color, "width": 2.5, "dash": "dash"},
        hovertemplate=f"%{{y:.{device.decimals}f}} {device.unit}<extra>%{{x|%H:%M}}</extra>",
    )
    if forecast.breach_at_s is None:
        return
    at = _local(np.array([forecast.breach_at_s]))[0]
    figure.add_vline(x=at.to_pydatetime(), line={"color": color, "dash": "dot", "width": 1.5})
    crossing = t("fx.expected_crossing", lang)
    mark_point(
        figure,
        x=at.to_pydatetime(),
        y=chosen.limit,
        marker={
            "color": color,
            "size": 13,
            "symbol": "diamond",
            "line": {"color": "#fff", "width": 1},
        },
        color=color,
        text=t("fx.crossing_at", lang, t=at.strftime("%H:%M"), p=round(100 * forecast.probability)),
        name=crossing,
        hover=f"{crossing} %{{x|%H:%M}}<extra></extra>",
        rise=-36,
    )


def kind_badge(kind: str, lang: str, severity: str = "critical") -> html.Span:
    """A small coloured label of an incident's kind (预警, 异常, 设备健康; 告警 by severity)."""
    color = KIND_COLORS.get(kind, SEVERITY_COLORS.get(severity, SEVERITY_COLORS["critical"]))
    return html.Span(
        t(f"fx.kind.{kind}", lang),
        className=f"os-kind os-kind-{kind}",
        style={"color": color, "borderColor": color},
        **wildcards({"data-kind": kind}),
    )


def why_children(findings: pd.DataFrame, lang: str) -> list:
    """Why the device is watched now: each live 预警, anomaly or health incident in one sentence,
    linked to its incident."""
    en = lang == "en"
    items = []
    for row in findings.to_dict("records"):
        detail = detail_of(row)
        because = detail.get("because_en" if en else "because_zh") or ""
        items.append(
            html.Li(
                className=f"os-why-item os-why-{row['kind']}",
                children=[
                    kind_badge(row["kind"], lang, str(row.get("severity") or "critical")),
                    dcc.Link(
                        row["title_en" if en else "title_zh"],
                        href=href("/incidents", lang=lang, incident=str(row["id"])),
                        className="os-why-title",
                    ),
                    html.Div(because, className="os-why-because") if because else None,
                ],
            )
        )
    return [html.Ul(items, className="os-why", id="device-why-list")] if items else []
