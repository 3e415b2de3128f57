"""The after-action review's figures and tables (pure builders over data.review.Review)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from components.i18n import name, t
from components.panels import panel
from components.theme import SEVERITY_COLORS, base_layout
from components.tiles import CITY_TZ
from components.timeline import timeline_figure
from components.topics import TOPICS
from components.warnings import ROMAN
from data.review import Review

SEVERITIES = ("critical", "major", "minor")


def duration(seconds: object, lang: str) -> str:
    """Seconds as minutes or hours and minutes; a dash when there is none."""
    if seconds is None or pd.isna(seconds):  # type: ignore[call-overload]
        return "–"
    minutes = round(float(seconds) / 60)  # type: ignore[arg-type]
    if minutes < 60:
        return f"{minutes} 分" if lang == "zh" else f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} 小时 {rest} 分" if lang == "zh" else f"{hours} h {rest} min"


def local(moment: object, fmt: str = "%m-%d %H:%M") -> str:
    """A moment in Beijing time; a dash when there is none."""
    if moment is None or pd.isna(moment):  # type: ignore[call-overload]
        return "–"
    return pd.Timestamp(moment).tz_convert(CITY_TZ).strftime(fmt)  # type: ignore[arg-type]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as plain dicts (typed loosely: the columns are the SQL's)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _median(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.median()) if len(values) else None


def review_kpis(rv: Review, lang: str) -> list[tuple[str, str]]:
    """The headline figures: (label, value) in reading order."""
    handled = rv.by_district
    total = int(handled.incidents.sum()) if not handled.empty else 0
    acked = int(handled.acknowledged.sum()) if total else 0
    resolved = int(handled.resolved.sum()) if total else 0
    mtta = (handled.mtta_s * handled.acknowledged).sum() / acked if acked else None
    mttr = (handled.mttr_s * handled.resolved).sum() / resolved if resolved else None
    alarms, foreseen = int(rv.early["alarms"] or 0), int(rv.early["foreseen"] or 0)
    response = (
        _median((rv.units.arrived_at - rv.units.dispatched_at).dt.total_seconds())
        if not rv.units.empty
        else None
    )
    done = int((rv.tasks.status == "done").sum()) if not rv.tasks.empty else 0
    return [
        (t("review.k.incidents", lang), f"{total:,}"),
        (t("review.k.critical", lang), f"{int(handled.critical.sum()) if total else 0:,}"),
        (t("review.k.mtta", lang), duration(mtta, lang)),
        (t("review.k.mttr", lang), duration(mttr, lang)),
        (t("review.k.foreseen", lang), f"{foreseen} / {alarms}"),
        (t("review.k.lead", lang), duration(rv.early["p50_lead_s"], lang)),
        (t("review.k.units", lang), f"{len(rv.units):,}"),
        (t("review.k.response", lang), duration(response, lang)),
        (t("review.k.tasks", lang), f"{done} / {len(rv.tasks)}"),
    ]


def review_timeline(rv: Review, lang: str, topics: dict[str, tuple[str, str]]) -> go.Figure:
    """Incidents opened per bucket by severity, with the warning level changes marked."""
    frame = rv.timeline.rename(columns={"at": "bucket", "n": "incidents"})
    multi_day = rv.end - rv.start > pd.Timedelta(hours=30)
    # the review marks level changes on it with plotly's own API (one figure per report)
    figure = go.Figure(
        timeline_figure(
            frame,
            stack="severity",
            lang=lang,
            start=rv.start,
            end=rv.end,
            categories={},
            bucket_minutes=int(rv.bucket.total_seconds() // 60),
            tickformat="%m-%d %H:%M" if multi_day else "%H:%M",
        )
    )
    # a line and a label per level change (plotly's add_vline cannot label a date axis)
    for change in _records(rv.levels):
        at = pd.Timestamp(change["at"]).tz_convert(CITY_TZ)
        label = name(topics.get(change["topic_code"], ("", "")), lang)
        figure.add_shape(
            type="line",
            x0=at,
            x1=at,
            yref="paper",
            y0=0,
            y1=1,
            line={"color": "#8fa3bf", "dash": "dot", "width": 1},
        )
        figure.add_annotation(
            x=at, y=1, yref="paper", yanchor="bottom", showarrow=False, font={"size": 12},
            text=f"{label} {ROMAN.get(change['to_level'], '–')}",
        )  # fmt: skip
    return figure


def mix_figure(rv: Review, lang: str, categories: dict[str, tuple[str, str]]) -> go.Figure:
    """Incidents by category (rows), stacked by severity."""
    figure = go.Figure(layout=base_layout())
    counts = rv.mix.pivot_table(
        index="category_code", columns="severity", values="n", aggfunc="sum", fill_value=0
    )
    order: list[str] = (
        [str(code) for code in counts.sum(axis=1).sort_values().index] if not counts.empty else []
    )
    labels = [name(categories.get(code, (code, code)), lang) for code in order]
    for severity in reversed(SEVERITIES):
        column = counts.get(severity)
        values = [0 if column is None else int(column.loc[code]) for code in order]
        figure.add_bar(
            y=labels,
            x=values,
            orientation="h",
            name=t(f"severity.{severity}", lang),
            marker={"color": SEVERITY_COLORS[severity], "line": {"width": 0}},
        )
    figure.update_layout(
        barmode="stack",
        margin={"l": 110, "r": 12, "t": 30, "b": 36},
        xaxis={"title": {"text": t("axis.incidents", lang)}, "rangemode": "tozero"},
        showlegend=True,
    )
    return figure


def table(
    columns: Sequence[str], rows: list[list[Any]], lang: str, *, class_name: str = ""
) -> html.Table | html.P:
    """A plain table under the review's column labels, or a line saying nothing happened."""
    if not rows:
        return html.P(t("review.none", lang), className="os-review-none")
    return html.Table(
        className=f"os-review-table {class_name}".strip(),
        children=[
            html.Thead(html.Tr([html.Th(t(f"review.c.{c}", lang)) for c in columns])),
            html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows]),
        ],
    )


def handling_rows(frame: pd.DataFrame, lang: str, label: Callable[[str], str]) -> list[list[Any]]:
    """Per district or team: counts and the mean times to acknowledge and to resolve."""
    return [
        [
            label(str(row["key"])),
            f"{row['incidents']:,}",
            f"{row['critical']:,}",
            f"{row['acknowledged']:,}",
            duration(row["mtta_s"], lang),
            f"{row['resolved']:,}",
            duration(row["mttr_s"], lang),
            duration(row["p50_resolve_s"], lang),
        ]
        for row in _records(frame)
    ]


HANDLING_COLUMNS = (
    "incidents",
    "critical",
    "acknowledged",
    "mtta",
    "resolved",
    "mttr",
    "p50_resolve",
)


def level_rows(
    rv: Review, lang: str, topics: dict[str, tuple[str, str]], places: Callable[[str], str]
) -> list[list[Any]]:
    """Each level change: when, where, which scenario, from and to, who."""
    return [
        [
            local(c["at"]),
            places(c["district_adcode"]),
            name(topics.get(c["topic_code"], (c["topic_code"], c["topic_code"])), lang),
            f"{ROMAN.get(c['from_level'], '–')} → {ROMAN.get(c['to_level'], '–')}",
            c["actor"] if c["source"] == "operator" else t(f"review.source.{c['source']}", lang),
        ]
        for c in _records(rv.levels)
    ]


def unit_rows(rv: Review, lang: str) -> list[list[Any]]:
    """Each unit sent: which, to what, when sent, when it arrived and how long that took."""
    rows = []
    for u in _records(rv.units):
        took = (
            (u["arrived_at"] - u["dispatched_at"]).total_seconds()
            if pd.notna(u["arrived_at"])
            else None
        )
        rows.append(
            [
                u["unit"],
                "#{} {}".format(u["incident_id"], t("severity." + str(u["severity"]), lang)),
                local(u["dispatched_at"]),
                local(u["arrived_at"]) if took is not None else t("review.not_arrived", lang),
                duration(took, lang),
            ]
        )
    return rows


def loan_rows(rv: Review, lang: str, places: Callable[[str], str]) -> list[list[Any]]:
    """Each loan of the city's reserve: when, which unit, lent where or taken back, by whom."""
    return [
        [
            local(loan["at"]),
            loan["unit"],
            t("review.lent", lang, place=places(loan["lent_to"]))
            if loan["lent_to"]
            else t("review.returned", lang, place=places(loan["from_lent_to"] or "")),
            loan["actor"],
        ]
        for loan in _records(rv.loans)
    ]


def task_rows(rv: Review, lang: str, places: Callable[[str], str]) -> list[list[Any]]:
    """Each playbook task: when created, where, what, status and when done."""
    return [
        [
            local(k["created_at"]),
            places(k["district_adcode"]),
            k["text_en"] if lang == "en" else k["text_zh"],
            t(f"task.{k['status']}", lang),
            local(k["done_at"]),
        ]
        for k in _records(rv.tasks)
    ]


def log_rows(rv: Review, lang: str) -> list[list[Any]]:
    """The handling log: when, what, which incident, who, and their note."""
    return [
        [
            local(e["at"], "%m-%d %H:%M:%S"),
            t(f"event.{e['kind']}", lang),
            f"#{e['incident_id']} {e['title_en'] if lang == 'en' else e['title_zh']}",
            e["actor"],
            e["note"] or "",
        ]
        for e in _records(rv.log)
    ]


def review_title(
    lang: str,
    *,
    district: str | None,
    street: str | None,
    districts: dict[str, tuple[str, str]],
    streets: Mapping[str, tuple[str, str, bool]],
) -> str:
    """The review's title naming its area: the city, a district (`districts`) or a street of it
    (`streets`: that district's street names)."""
    if street:
        names = streets.get(street)
        place = str(names[1 if lang == "en" else 0]) if names else street
    elif district:
        place = name(districts.get(district, (district, district)), lang)
    else:
        place = t("crumb.city", lang)
    return t("review.title", lang, place=place)


def review_head(title: str, start: datetime, end: datetime, lang: str, *tools: Any) -> html.Div:
    """The review's heading: its title, its window in Beijing time, and `tools` beside them."""
    return html.Div(
        className="os-review-head",
        children=[
            html.H2(title),
            html.Div(window_text(start, end, lang), className="os-review-window"),
            *tools,
        ],
    )


def window_text(start: datetime, end: datetime, lang: str) -> str:
    """The window in Beijing time."""
    fmt = "%Y-%m-%d %H:%M"
    return t("review.window", lang, start=local(start, fmt), end=local(end, fmt))


def _chart(figure: go.Figure) -> dcc.Graph:
    return dcc.Graph(
        figure=figure,
        config={"displayModeBar": False, "responsive": True},
        className="os-review-chart",
    )


def review_sections(
    rv: Review,
    lang: str,
    *,
    districts: dict[str, tuple[str, str]],
    categories: dict[str, tuple[str, str]],
    log_limit: int,
) -> list[Any]:
    """The review's sections: headline figures, charts and tables (the page's and the PDF's)."""
    topics = {code: (t(f"topic.{code}", "zh"), t(f"topic.{code}", "en")) for code in TOPICS}

    def place(code: str) -> str:
        return t("crumb.city", lang) if not code else name(districts.get(code, (code,) * 2), lang)

    def team(key: str) -> str:
        return key or t("review.no_team", lang)

    kpis = html.Div(
        className="os-review-kpis",
        children=[
            html.Div([html.Div(value, className="os-review-kpi-value"), html.Div(label)])
            for label, value in review_kpis(rv, lang)
        ],
    )
    return [
        kpis,
        html.P(t("review.basis", lang), className="os-review-basis"),
        panel(t("review.timeline", lang), _chart(review_timeline(rv, lang, topics))),
        panel(t("review.mix", lang), _chart(mix_figure(rv, lang, categories))),
        panel(t("review.by_district", lang), table(
            ("place", *HANDLING_COLUMNS), handling_rows(rv.by_district, lang, place), lang)),
        panel(t("review.by_team", lang), table(
            ("team", *HANDLING_COLUMNS), handling_rows(rv.by_team, lang, team), lang)),
        panel(t("review.levels", lang), table(
            ("time", "place", "topic", "change", "by"), level_rows(rv, lang, topics, place),
            lang)),
        panel(t("review.units", lang), table(
            ("unit", "incident", "sent", "arrived", "took"), unit_rows(rv, lang), lang)),
        panel(t("review.tasks", lang), table(
            ("time", "place", "task", "status", "done"), task_rows(rv, lang, place), lang)),
        panel(t("review.loans", lang), table(
            ("time", "unit", "change", "by"), loan_rows(rv, lang, place), lang)),
        panel(t("review.log", lang), html.Div([
            table(("time", "action", "incident", "by", "note"), log_rows(rv, lang), lang),
            html.P(t("review.log_more", lang, n=log_limit), className="os-review-basis")
            if len(rv.log) >= log_limit else None])),
    ]  # fmt: skip


CSV_COLUMNS = (
    "id",
    "kind",
    "severity",
    "category_code",
    "district_adcode",
    "street_code",
    "team",
    "title_zh",
    "title_en",
    "opened_at",
    "acknowledged_at",
    "resolved_at",
    "ack_s",
    "resolve_s",
    "lead_s",
    "foreseen_by",
    "units_sent",
)


CSV_MOMENTS = ("opened_at", "acknowledged_at", "resolved_at")


def incidents_csv(rows: pd.DataFrame) -> str:
    """The incidents under review (data.review.review_incidents) as CSV text, times in Beijing
    time and durations in seconds; UTF-8 with a BOM, so spreadsheets read 中文."""
    if rows.empty:
        return "\ufeff" + ",".join(CSV_COLUMNS) + "\n"
    moments = {c: pd.to_datetime(rows[c], utc=True) for c in CSV_MOMENTS}
    rows = rows.assign(**moments)
    rows = rows.assign(
        ack_s=(rows.acknowledged_at - rows.opened_at).dt.total_seconds().round(),
        resolve_s=(rows.resolved_at - rows.opened_at).dt.total_seconds().round(),
    )
    for column in CSV_MOMENTS:
        rows[column] = rows[column].dt.tz_convert(CITY_TZ).dt.strftime("%Y-%m-%d %H:%M:%S%z")
    return "\ufeff" + rows[list(CSV_COLUMNS)].to_csv(index=False)
