"""Status tiles (KPIs with their trend against yesterday): `create_tiles` and the pure builder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from dash import dcc, html

from components.attributes import wildcards
from components.countdown import earliest, minutes_until
from components.i18n import t
from components.panels import skeleton
from components.state import href
from data.kpis import Kpis, TileTrends

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


# ratios beyond this are written as ">10×": "▲ 2570%" reads as noise from the back row
CHANGE_CAP = 10.0
SPARK_WIDTH, SPARK_HEIGHT = 120, 26


def format_change(now: float | None, base: float | None, lang: str) -> tuple[str, str]:
    """The one way a change is written ("较昨日同时 ▲ 12%", "▲ >10×", "—" without a base), and
    its direction ("up", "down", "flat", "none"); colour is the stylesheet's, and neutral."""
    label = t("tile.vs_same_time", lang)
    if now is None or base is None or base <= 0:
        return f"{label} —", "none"
    ratio = now / base
    if abs(ratio - 1) < 0.005:
        return f"{label} {t('tile.no_change', lang)}", "flat"
    arrow = "▲" if ratio > 1 else "▼"
    amount = f">{CHANGE_CAP:.0f}×" if ratio > CHANGE_CAP else f"{abs(ratio - 1):.0%}"
    return f"{label} {arrow} {amount}", "up" if ratio > 1 else "down"


def _change(pair: tuple[float | None, float | None] | None, lang: str) -> html.Span:
    """A tile's change against the same time yesterday."""
    text, direction = format_change(*(pair or (None, None)), lang)
    # os-trend: the tile's change line, sized by the surface (pages, walls)
    return html.Span(text, className=f"os-trend os-change os-change-{direction}")


def sparkline_svg(
    values: Sequence[float | None], *, width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT
) -> str:
    """An SVG polyline of `values` (gaps where None), scaled to its own range, last point dotted;
    a series of zeros lies flat on the baseline, greyed."""
    known = [v for v in values if v is not None]
    if not known or len(values) < 2:
        return ""
    low, high = min(known), max(known)
    zero = high == 0 and low == 0
    span = high - low
    step = (width - 4) / (len(values) - 1)

    def y(v: float) -> float:
        # a flat non-zero series sits mid-height; zeros on the baseline
        level = 0.0 if zero else 0.5 if span == 0 else (v - low) / span
        return round(height - 3 - level * (height - 6), 1)

    runs: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(f"{2 + i * step:.1f},{y(v)}")
    colour = "#5d6b80" if zero else "#8fb3d9"
    lines = "".join(
        f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.6"'
        ' stroke-linejoin="round"/>'
        for run in runs
        if len(run) > 1
    )
    # an hour alone between gaps is still a figure: a small dot rather than nothing
    lines += "".join(
        '<circle cx="{}" cy="{}" r="1.4" fill="{}"/>'.format(*run[0].split(","), colour)
        for run in runs
        if len(run) == 1
    )
    last = max(i for i, v in enumerate(values) if v is not None)
    x_last, y_last = f"{2 + last * step:.1f}", y(values[last] or 0.0)
    dot = f'<circle cx="{x_last}" cy="{y_last}" r="2.2" fill="{colour}"/>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}">{lines}{dot}</svg>'
    )


def sparkline(values: Sequence[float | None] | None, lang: str) -> html.Img | html.Span:
    """A tile's sparkline of the last day as an image (no chart library on the page)."""
    svg = sparkline_svg(values or ())
    if not svg:
        return html.Span(className="os-spark os-spark-none")
    zero = all(not v for v in values or ())
    return html.Img(
        src="data:image/svg+xml;utf8," + quote(svg),
        alt=t("tile.spark_alt", lang),
        title=t("tile.spark_alt", lang),
        className=f"os-spark{' os-spark-zero' if zero else ''}",
        **wildcards({"data-points": str(len(values or ()))}),
    )


def _tile(
    key: str, label: str, value: str, detail, trend=None, accent: str = "", spark=None
) -> html.Div:
    # a zero is a quiet fact, not a signal: greyed
    zero = " os-tile-zero" if value.strip() in {"0", "–"} else ""
    return html.Div(
        className=f"os-tile os-tile-{key} {accent}{zero}".strip(),
        children=[
            html.Div(label, className="os-tile-label"),
            html.Div(value, className="os-tile-value", **wildcards({"data-key": key})),
            html.Div(detail, className="os-tile-detail"),
            trend if trend is not None else html.Span(),
            spark if spark is not None else html.Span(),
        ],
    )


def _severity_detail(kpis: Kpis, lang: str) -> list:
    return [
        html.Span(
            f"{t(f'severity.{severity}', lang)} {kpis.open_by_severity[severity]}",
            # "紧急 0" is no emergency: zeros grey, never the severity's colour
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
    kpis: Kpis,
    lang: str,
    *,
    now: datetime | None = None,
    scope: dict | None = None,
    trends: TileTrends | None = None,
) -> list[html.Div]:
    """The eight tiles of `kpis` in `lang`: the six KPIs (with the last day's sparklines and the
    change against the same time yesterday when `trends` are given) and the early warnings."""
    return [
        *_kpi_tiles(kpis, lang, trends),
        *foresight_tiles(kpis, lang, now=now, scope=scope),
    ]


def _kpi_tiles(kpis: Kpis, lang: str, trends: TileTrends | None) -> list[html.Div]:
    """The six KPI tiles of `kpis` in `lang`."""
    rate = kpis.online_rate
    mttr = kpis.mean_minutes_to_resolve
    mtta = kpis.mean_minutes_to_acknowledge
    minutes = t("tile.minutes", lang)

    def trend(key: str) -> dict:
        # the status snapshot keeps no history: device tiles have no trend to show
        if trends is None or key not in trends.changes:
            return {}
        return {
            "trend": _change(trends.changes[key], lang),
            "spark": sparkline(trends.series.get(key), lang),
        }

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
            **trend("readings_today"),
        ),
        _tile(
            "open_incidents",
            t("tile.open_incidents", lang),
            f"{kpis.open_total:,}",
            _severity_detail(kpis, lang),
            accent="os-tile-alert" if kpis.open_by_severity["critical"] else "",
            **trend("open_incidents"),
        ),
        _tile(
            "resolved_today",
            t("tile.resolved_today", lang),
            f"{kpis.resolved_today:,}",
            t("tile.opened_today", lang, n=f"{kpis.opened_today:,}"),
            **trend("resolved_today"),
        ),
        _tile(
            "mttr",
            t("tile.mttr", lang),
            "–" if mttr is None else f"{mttr:.0f} {minutes}",
            t("tile.mtta", lang, m="–" if mtta is None else f"{mtta:.0f}"),
            **trend("mttr"),
        ),
    ]


def _clock(kpis: Kpis) -> str:
    moment = kpis.status_as_of or kpis.at
    return moment.astimezone(CITY_TZ).strftime("%H:%M")
