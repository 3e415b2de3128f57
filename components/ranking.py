"""Area rankings (pure builders): clickable rows on a district page, a static top list on walls."""

from __future__ import annotations

from collections.abc import Sequence

from dash import html

from components.attributes import wildcards
from components.choropleth import format_value, metric_value
from components.i18n import t
from data.areas import AreaMetric


def ranking_head(*, metric: str, lang: str, level: str, wall: bool = False) -> html.Div:
    """The column heads of a ranking: area, devices (not on walls) and the metric; short, with
    the metric's full name as the title so a narrow column never cuts it."""
    full = t(f"metric.{metric}", lang)
    value = "os-wall-rank-value" if wall else "os-rank-value"
    heads = [
        html.Span(t(f"rank.col.{level}", lang)),
        *([] if wall else [html.Span(t("rank.col.devices", lang), className=value)]),
        html.Span(t(f"rank.col.{metric}", lang), title=full, className=value),
    ]
    if wall:
        heads.insert(0, html.Span("#", className="os-wall-rank-pos"))
    return html.Div(
        heads,
        # not a row (walls count their rows): the rows' grid by its own class
        className="os-wall-rank-head" if wall else "os-rank-row os-rank-head",
        **wildcards({"data-metric": metric}),
    )


def ranking_rows(areas, *, metric: str, lang: str, selected: str | None) -> list:
    """Streets sorted by the metric (worst first), each a button that scopes the page to it."""
    values = [(area, metric_value(area, metric)) for area in areas]
    worst_first = metric != "online_rate"
    values.sort(
        key=lambda pair: (pair[1] is None, -(pair[1] or 0) if worst_first else (pair[1] or 0))
    )
    top = max((v for _, v in values if v is not None), default=0) or 1
    rows = []
    for area, value in values:
        label = area.name_en if lang == "en" else area.name_zh
        rows.append(
            html.Button(
                id={"type": "os-rank", "code": area.code},
                className=f"os-rank-row {'os-rank-selected' if area.code == selected else ''}",
                n_clicks=0,
                children=[
                    html.Div(
                        [
                            html.Span(label),
                            html.Span(" ≈", className="os-rank-approx") if area.approximate else "",
                            html.Div(
                                className="os-rank-bar",
                                style={"width": f"{(value or 0) / top * 100:.0f}%"},
                            ),
                        ]
                    ),
                    html.Span(f"{area.devices_total:,}", className="os-rank-value"),
                    html.Span(format_value(value, metric), className="os-rank-value"),
                ],
            )
        )
    return rows


def wall_ranking(areas: Sequence[AreaMetric], *, metric: str, lang: str, limit: int = 12) -> list:
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
