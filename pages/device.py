"""Device `/device/<id>`: state, latest value against thresholds, readings chart, incidents."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from components import ids, reference
from components.device_view import (
    DeviceForecast,
    device_forecast,
    rule_of_forecast,
    series_figure,
    summary_children,
    why_children,
)
from components.feed import feed_children
from components.filters import labelled_options, segmented
from components.i18n import t
from components.notfound import not_found_page
from components.panels import panel, unavailable
from components.shell import create_page, crumb_links
from components.state import href, language, pick
from components.theme import message_figure
from data.devices import (
    DeviceBaseline,
    DeviceDetail,
    device_baseline,
    device_detail,
    device_series,
    forecast_rules,
)
from data.errors import READ_ERRORS, report_failure
from data.incident_reads import device_findings, incident_list
from data.rule_types import Rule
from panels.freshness import asof_output
from panels.guard import guard
from panels.reads import asof_payload, now, read

log = logging.getLogger(__name__)

dash.register_page(
    __name__, path_template="/device/<device_id>", title="设备 · 一屏观全城", name="device"
)

SERIES_WINDOWS = {"6h": (6, 300), "24h": (24, 900), "7d": (24 * 7, 3600)}
DEVICE_WHY = "device-why"


def _device_id(value: object) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() and 0 < len(text) <= 18 and int(text) > 0 else None


def layout(
    device_id: str | None = None, lang: str | None = None, window: str | None = None, **_other: str
):
    """The device page, or a friendly not-found page for an unknown id."""
    lang = language(lang)
    number = _device_id(device_id)
    if number is None:
        return not_found_page(lang, t("notfound.device", lang, code=str(device_id)[:40]))
    try:
        detail = read(device_detail, device_id=number)
        device = detail.value
    except READ_ERRORS as exc:
        report_failure(log, "device unavailable", exc)
        return create_page(
            lang=lang,
            title=t("app.title", lang),
            active="",
            body=[unavailable(t("panel.unavailable", lang))],
        )
    if device is None:
        return not_found_page(lang, t("notfound.device", lang, code=str(number)))
    district = device.district_name_en if lang == "en" else device.district_name_zh
    street = device.street_name_en if lang == "en" else device.street_name_zh
    crumbs = crumb_links(
        lang,
        [
            (t("crumb.city", lang), href("/", lang=lang)),
            (district, href(f"/district/{device.district_adcode}", lang=lang)),
            (
                street,
                href(f"/district/{device.district_adcode}", lang=lang, street=device.street_code),
            ),
            (device.code, None),
        ],
    )
    chosen_window = pick(window, list(SERIES_WINDOWS), "24h").value
    body = [
        dcc.Store(id=ids.DEVICE_ID, data=number),
        html.Div(
            className="os-grid os-grid-device",
            children=[
                panel(
                    t("device.title", lang, code=device.code),
                    html.Div(id=ids.DEVICE_SUMMARY, children=summary_children(device, lang)),
                    fresh=ids.DEVICE_SUMMARY,
                    asof=asof_payload(detail),
                ),
                panel(
                    t("device.series", lang),
                    html.Div(
                        className="os-device-chart",
                        children=[
                            html.Div(id=DEVICE_WHY, className="os-why-box", role="status"),
                            dcc.Graph(
                                id=ids.DEVICE_SERIES,
                                className="os-graph",
                                figure=message_figure(t("panel.loading", lang)),
                                config={"displayModeBar": False, "responsive": True},
                            ),
                        ],
                    ),
                    extra=segmented(
                        ids.DEVICE_WINDOW,
                        labelled_options(SERIES_WINDOWS, lang, "window"),
                        chosen_window,
                        class_name="os-window",
                    ),
                    fresh=ids.DEVICE_SERIES,
                ),
                panel(
                    t("device.incidents", lang),
                    html.Div(id=ids.DEVICE_INCIDENTS, className="os-feed"),
                    class_name="os-panel-wide",
                    fresh=ids.DEVICE_INCIDENTS,
                ),
            ],
        ),
    ]
    return create_page(
        lang=lang,
        title=f"{device.code} · {t('app.title', lang)}",
        active="",
        body=body,
        crumbs=crumbs,
        class_name="os-page-device",
    )


def _forecast_rules(device: DeviceDetail, findings: pd.DataFrame) -> tuple[Rule, ...]:
    """The 预警 rules of the device's type; without them (unreadable), the live 预警's own
    figures, so the chart still shows the forecast the engine made."""
    try:
        return read(
            forecast_rules,
            type_id=device.type_id,
            category=device.category_code,
            value_kind=device.value_kind,
        ).value
    except READ_ERRORS as exc:
        report_failure(log, "device forecast rules unavailable", exc)
    live = findings[findings["kind"] == "forecast"] if not findings.empty else findings
    return tuple(rule_of_forecast(detail) for detail in live.get("detail", []))


def _forecast_parts(
    device: DeviceDetail, *, end: datetime
) -> tuple[DeviceForecast | None, DeviceBaseline | None, pd.DataFrame, list]:
    """The 预警 forecast, the learned normal and the live findings of a device, with their reads."""
    findings = read(device_findings, device_id=device.id)
    baseline = read(device_baseline, device_id=device.id)
    rules = _forecast_rules(device, findings.value)
    window = max((rule.window_s or 0 for rule in rules), default=0)
    forecast = None
    if window:
        raw = read(
            device_series,
            device_id=device.id,
            start=end - timedelta(seconds=window),
            end=end + timedelta(minutes=1),
        )
        forecast = device_forecast(raw.value, device=device, rules=rules, baseline=baseline.value)
    return forecast, baseline.value, findings.value, [findings, baseline]


@callback(
    Output(ids.DEVICE_SERIES, "figure"),
    Output(ids.DEVICE_SUMMARY, "children"),
    Output(DEVICE_WHY, "children"),
    asof_output(ids.DEVICE_SERIES),
    asof_output(ids.DEVICE_SUMMARY),
    Input(ids.DEVICE_WINDOW, "value"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.DEVICE_ID, "data"),
    State(ids.LANG, "data"),
)
@guard(
    lambda lang: (
        message_figure(t("panel.unavailable", lang)),
        dash.no_update,
        dash.no_update,
        dash.no_update,
        dash.no_update,
    )
)
def update_series(window, _tick, device_id, lang):
    """The readings chart for the chosen window with the forecast and the learned normal, the
    refreshed summary, and why the device is watched."""
    lang = language(lang)
    number = _device_id(device_id)
    detail = read(device_detail, device_id=number) if number else None
    if detail is None or detail.value is None:
        missing = message_figure(t("notfound.device", lang, code=str(device_id)))
        return missing, dash.no_update, [], dash.no_update, dash.no_update
    device = detail.value
    hours, bucket = SERIES_WINDOWS[pick(window, list(SERIES_WINDOWS), "24h").value]
    clock = now()
    end = clock.value
    start = end - timedelta(hours=hours)
    series = read(
        device_series,
        device_id=number,
        start=start,
        end=end + timedelta(minutes=1),
        bucket_seconds=bucket,
    )
    forecast, baseline, findings, reads = _forecast_parts(device, end=end)
    figure = series_figure(
        series.value,
        device,
        lang,
        forecast=forecast,
        baseline=baseline,
        start_s=start.timestamp(),
        end_s=end.timestamp(),
    )
    return (
        figure,
        summary_children(device, lang),
        why_children(findings, lang),
        asof_payload(clock, series, *reads),
        asof_payload(detail),
    )


@callback(
    Output(ids.DEVICE_INCIDENTS, "children"),
    asof_output(ids.DEVICE_INCIDENTS),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.DEVICE_ID, "data"),
    State(ids.LANG, "data"),
)
@guard(lambda lang: (unavailable(t("panel.unavailable", lang)), dash.no_update))
def update_incidents(_tick, device_id, lang):
    """This device's incidents of the last 30 days."""
    lang = language(lang)
    number = _device_id(device_id)
    clock = now()
    if number is None:
        return html.Div(t("device.no_incidents", lang), className="os-empty"), asof_payload(clock)
    end = clock.value + timedelta(minutes=1)
    frame = read(
        incident_list, start=end - timedelta(days=30), end=end, device_id=number, limit=200
    )
    asof = asof_payload(clock, frame)
    if frame.value.empty:
        return html.Div(t("device.no_incidents", lang), className="os-empty"), asof
    return feed_children(frame.value, lang=lang, categories=reference.categories()), asof
