"""Status tiles (KPIs with their trend against yesterday): `create_tiles` and the pure builder."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dash import dcc, html

from components.attributes import wildcards
from components.countdown import earliest, minutes_until
from components.i18n import t
from components.panels import skeleton
from components.state import href
from data.kpis import Kpis

CITY_TZ = ZoneInfo("Asia/Shanghai")


def create_tiles(tiles_id: str) -> html.Div:
    """The tile grid, with placeholders until the first figures arrive."""
    return html.Div(id=tiles_id, className="os-tiles", children=skeleton_tiles())


def skeleton_tiles() -> list[html.Div]:
    """Eight tile frames with shimmering placeholders (never an empty panel)."""
    return [
        html.Div(
            className="os-tile", children=[skeleton("os-skel-value"), skeleton("os-skel-line")]
        )
        for _ in range(8)
    ]


def _trend(today: float | None, yesterday: float | None, lang: str, *, lower_is_better: bool):
    """An arrow, the change and its colour against yesterday."""
    if today is None or not yesterday:
        return html.Span(t("tile.yesterday_none", lang), className="os-trend os-trend-none")
    change = (today - yesterday) / yesterday
    if abs(change) < 0.005:
        return html.Span(
            f"{t('tile.vs_yesterday', lang)} {t('tile.no_change', lang)}",
            className="os-trend os-trend-flat",
        )
    better = (change < 0) == lower_is_better
    arrow = "▲" if change > 0 else "▼"
    # a tenfold change reads better as a factor than as "2570.0%"
    amount = f"×{today / yesterday:.0f}" if change >= 9 else f"{abs(change):.1%}"
    return html.Span(
        f"{t('tile.vs_yesterday', lang)} {arrow} {amount}",
        className=f"os-trend {'os-trend-good' if better else 'os-trend-bad'}",
    )


def _tile(key: str, label: str, value: str, detail, trend=None, accent: str = "") -> html.Div:
    return html.Div(
        className=f"os-tile os-tile-{key} {accent}".strip(),
        children=[
            html.Div(label, className="os-tile-label"),
            html.Div(value, className="os-tile-value", **wildcards({"data-key": key})),
            html.Div(detail, className="os-tile-detail"),
            trend if trend is not None else html.Span(),
        ],
    )


def _severity_detail(kpis: Kpis, lang: str) -> list:
    return [
        html.Span(
            f"{t(f'severity.{severity}', lang)} {kpis.open_by_severity[severity]}",
            # zero is calm: no severity colour for a count of none
            className=f"os-sev os-sev-{severity}"
            + (" os-sev-zero" if not kpis.open_by_severity[severity] else ""),
        )
        for severity in ("critical", "major", "minor")
    ]


def _kind_link(kind: str, lang: str, scope: dict[str, str | None] | None):
    """A link to the incident centre filtered to `kind` in the view's scope (none on walls)."""
    if scope is None:
        return html.Span()
    return dcc.Link(
        t("fx.tile.view", lang),
        href=href("/incidents", lang=lang, kind=kind, **scope),
        className="os-tile-link",
    )


def foresight_tiles(
    kpis: Kpis, lang: str, *, now: datetime | None = None, scope: dict | None = None
) -> list[html.Div]:
    """The 预警 tile (live count, earliest expected breach counted down from `now`) and the
    device-health tile; `scope` (district, category) links each to its incidents, None on walls."""
    minutes = minutes_until(kpis.forecast_next, now or kpis.at)
    return [
        _tile(
            "forecasts",
            t("fx.tile.forecast", lang),
            f"{kpis.forecasts_open:,}",
            earliest(minutes if kpis.forecasts_open else None, lang),
            _kind_link("forecast", lang, scope),
            accent="os-tile-forecast" if kpis.forecasts_open else "",
        ),
        _tile(
            "health",
            t("fx.tile.health", lang),
            f"{kpis.health_open:,}",
            t("fx.tile.health_detail", lang),
            _kind_link("health", lang, scope),
            accent="os-tile-health" if kpis.health_open else "",
        ),
    ]


def tiles_children(
    kpis: Kpis, lang: str, *, now: datetime | None = None, scope: dict | None = None
) -> list[html.Div]:
    """The eight tiles of `kpis` in `lang`: the six KPIs and the two early-warning tiles."""
    return [*_kpi_tiles(kpis, lang), *foresight_tiles(kpis, lang, now=now, scope=scope)]


def _kpi_tiles(kpis: Kpis, lang: str) -> list[html.Div]:
    """The six KPI tiles of `kpis` in `lang`."""
    rate = kpis.online_rate
    mttr = kpis.mean_minutes_to_resolve
    mtta = kpis.mean_minutes_to_acknowledge
    minutes = t("tile.minutes", lang)
    # yesterday's figures are whole-day totals: compare today against the same share of yesterday
    day_share = _day_share(kpis)
    return [
        _tile(
            "devices",
            t("tile.devices", lang),
            f"{kpis.devices_total:,}",
            t(
                "tile.online_detail",
                lang,
                online=f"{kpis.devices_online:,}",
                warning=f"{kpis.devices_warning:,}",
                alarm=f"{kpis.devices_alarm:,}",
            ),
        ),
        _tile(
            "online",
            t("tile.online", lang),
            "–" if rate is None else f"{rate:.1%}",
            t("status.as_of", lang, t=_clock(kpis)),
            accent="os-tile-ok" if rate is not None and rate >= 0.97 else "os-tile-warn",
        ),
        _tile(
            "readings_today",
            t("tile.readings_today", lang),
            f"{kpis.readings_today:,}",
            "",
            _trend(
                kpis.readings_today,
                kpis.readings_yesterday * day_share if kpis.readings_yesterday else None,
                lang,
                lower_is_better=False,
            ),
        ),
        _tile(
            "open_incidents",
            t("tile.open_incidents", lang),
            f"{kpis.open_total:,}",
            _severity_detail(kpis, lang),
            _trend(
                kpis.opened_today,
                kpis.opened_yesterday * day_share if kpis.opened_yesterday else None,
                lang,
                lower_is_better=True,
            ),
            accent="os-tile-alert" if kpis.open_by_severity["critical"] else "",
        ),
        _tile(
            "resolved_today",
            t("tile.resolved_today", lang),
            f"{kpis.resolved_today:,}",
            t("tile.opened_today", lang, n=f"{kpis.opened_today:,}"),
            _trend(
                kpis.resolved_today,
                kpis.resolved_yesterday * day_share if kpis.resolved_yesterday else None,
                lang,
                lower_is_better=False,
            ),
        ),
        _tile(
            "mttr",
            t("tile.mttr", lang),
            "–" if mttr is None else f"{mttr:.0f} {minutes}",
            t(
                "tile.mtta",
                lang,
                m="–" if mtta is None else f"{mtta:.0f}",
            ),
            _trend(mttr, kpis.mean_minutes_to_resolve_yesterday, lang, lower_is_better=True),
        ),
    ]


def _day_share(kpis: Kpis) -> float:
    """How much of the Shanghai day has passed at `kpis.at` (at least one minute)."""
    local = kpis.at.astimezone(CITY_TZ)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return max(seconds, 60) / 86400


def _clock(kpis: Kpis) -> str:
    moment = kpis.status_as_of or kpis.at
    return moment.astimezone(CITY_TZ).strftime("%H:%M")
