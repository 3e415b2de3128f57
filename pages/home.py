"""City overview `/` — placeholder until the dashboard issue: shows the store's live figures."""

from __future__ import annotations

import logging

import dash
from dash import html
from sqlalchemy.exc import SQLAlchemyError

from data.engine import get_engine
from data.errors import OneScreenError
from data.queries import city_kpis

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/", title="一屏观全城 · OneScreen", name="overview")


def _tile(label_zh: str, label_en: str, value: str) -> html.Div:
    return html.Div(
        className="os-tile",
        children=[
            html.Div(value, className="os-tile-value"),
            html.Div(label_zh, className="os-tile-label"),
            html.Div(label_en, className="os-tile-label-en"),
        ],
    )


def layout(**_query: str) -> html.Div:
    """Tiles of the city's KPIs, read when the page is requested."""
    try:
        kpis = city_kpis(get_engine())
    except (OneScreenError, SQLAlchemyError):
        log.exception("overview figures unavailable")
        return html.Div(
            className="os-page",
            children=[
                html.H1("一屏观全城"),
                html.P("数据暂不可用，稍后自动恢复 / Data temporarily unavailable."),
            ],
        )
    online = f"{kpis.online_rate:.1%}" if kpis.online_rate is not None else "–"
    mttr = f"{kpis.mean_minutes_to_resolve:.0f} min" if kpis.mean_minutes_to_resolve else "–"
    return html.Div(
        className="os-page",
        children=[
            html.H1("一屏观全城 · OneScreen"),
            html.P(
                "上海城市运行 — 仪表盘页面将在下一阶段上线 (dashboard pages coming next)",
                className="os-subtitle",
            ),
            html.Div(
                className="os-tiles",
                children=[
                    _tile("设备总数", "devices", f"{kpis.devices_total:,}"),
                    _tile("在线率", "online", online),
                    _tile("今日读数", "readings today", f"{kpis.readings_today:,}"),
                    _tile("紧急事件", "critical open", str(kpis.open_by_severity["critical"])),
                    _tile("未结事件", "open incidents", str(kpis.open_total)),
                    _tile("平均处置时长", "mean time to resolve", mttr),
                ],
            ),
        ],
    )
