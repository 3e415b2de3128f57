"""Incidents `/incidents`: filterable, sortable table, a map of the filtered incidents, detail."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import dash
import dash_leaflet as dl
import pandas as pd
from dash import (
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    dash_table,
    dcc,
    html,
)
from dash.exceptions import PreventUpdate
from dash_extensions.javascript import Namespace

from components import ids, reference
from components.area_map import (
    CITY_BOUNDS,
    MAP_JS,
    create_map,
    geojson_options,
    legend_children,
    severity_legend,
)
from components.filters import (
    checks,
    control,
    dropdown,
    dropdown_options,
    labelled_options,
    lookup,
    segmented,
)
from components.i18n import name, t
from components.incident_detail import detail_children, readings_figure, time_to_breach
from components.panels import panel, unavailable
from components.replay import page_replay, replay_at
from components.shell import create_page
from components.state import (
    INCIDENT_STATUSES,
    SEVERITIES,
    SORT_COLUMNS,
    WINDOWS,
    language,
    pick,
    pick_many,
)
from components.theme import KIND_COLORS, SEVERITY_COLORS, TEXT, message_figure
from components.tiles import CITY_TZ
from components.unit_layer import moving_layer
from data.asof import replay_args
from data.checks import InvalidQuery
from data.devices import device_series
from data.event_reads import event_list
from data.incident_reads import INCIDENT_KINDS, incident_detail, incident_events, incident_list
from panels.event_actions import EVENT_WINDOW, create_event_bar
from panels.freshness import asof_output
from panels.guard import guard
from panels.incident_actions import create_incident_actions
from panels.incident_dispatch import DISPATCH_DONE, INCIDENT_UNITS, create_incident_dispatch
from panels.reads import asof_payload, now, read, read_fresh
from web.boundaries import boundary_url
from web.session import current_principal

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/incidents", title="事件中心 · 一屏观全城", name="incidents")

TABLE_LIMIT = 500
DETAIL_CHART_HEIGHT = 220
COLUMNS = (
    "opened_at",
    "age",
    "kind",
    "severity",
    "status",
    "category",
    "title",
    "expected",
    "district",
    "street",
)
# the table's column widths in px, by language (the title column takes the rest)
COLUMN_WIDTHS = {
    "zh": {
        "opened_at": 100,
        "age": 96,
        "kind": 76,
        "severity": 56,
        "status": 66,
        "category": 80,
        "expected": 90,
        "district": 80,
        "street": 130,
    },
    "en": {
        "opened_at": 100,
        "age": 96,
        "kind": 112,
        "severity": 70,
        "status": 110,
        "category": 100,
        "expected": 90,
        "district": 90,
        "street": 120,
    },
}
# the kind filter: all, or one incident kind (?kind=forecast shows the 预警)
KIND_CHOICES = ("all", *INCIDENT_KINDS)
# one line per event and per incident in none (?lines=events, the default), or every incident
LINE_CHOICES = ("events", "incidents")
INCIDENT_LINES = "incidents-lines"
# the early-warning columns' headers (col.kind names an event's action in the history)
COLUMN_LABELS = {"kind": "fx.col.kind", "expected": "fx.col.expected", "age": "queue.col.age"}
INCIDENT_KIND = "incidents-kind"
# the selected incident's ring on the map, and the map bounds of the districts one may choose
INCIDENT_RING = "incidents-ring"
INCIDENT_BOUNDS = "incidents-bounds"
QUEUE_JS = Namespace("onescreen", "incidents")
# the table's default order: the work queue, most urgent first (data/incident_reads.py)
QUEUE_ORDER = "priority"


def _incident_id(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def layout(
    lang: str | None = None,
    district: str | None = None,
    category: str | None = None,
    severity: str | None = None,
    status: str | None = None,
    window: str | None = None,
    incident: str | None = None,
    sort: str | None = None,
    kind: str | None = None,
    event: str | None = None,
    lines: str | None = None,
    at: str | None = None,
    **_other: str,
):
    """The incident centre with the URL's filters and selected incident (and event); at `at=`
    a replay, read only."""
    lang = language(lang)
    moment, replay = page_replay(at, lang=lang)
    districts = lookup(reference.districts)
    principal = current_principal()
    if principal is not None and not principal.sees_city:
        # only the districts this person works in (the database shows no others anyway), and
        # one's own district chosen unless the URL says otherwise
        districts = {code: names for code, names in districts.items() if principal.allows(code)}
        if district is None and len(districts) == 1:
            district = next(iter(districts))
    categories = lookup(reference.categories)
    bounds = _bounds(districts, whole_city=principal is None or principal.sees_city)
    chosen_sort = (sort or "").removeprefix("-")
    sort_by = (
        [
            {
                "column_id": chosen_sort,
                "direction": "asc" if sort and not sort.startswith("-") else "desc",
            }
        ]
        if chosen_sort in SORT_COLUMNS
        else []
    )
    chosen_district = pick(district, list(districts), None).value or ""
    body = [
        dcc.Store(id=ids.INCIDENT_SELECTED, data=_incident_id(incident)),
        dcc.Store(id=INCIDENT_BOUNDS, data=bounds),
        dcc.Store(id=ids.INCIDENT_EVENT, data=_incident_id(event)),
        replay,
        create_event_bar(_incident_id(event), lang),
        _filters(
            lang,
            districts=districts,
            categories=categories,
            chosen={
                "district": district,
                "category": category,
                "severity": severity,
                "status": status,
                "window": window,
                "kind": kind,
                "lines": lines,
            },
        ),
        html.Div(
            className="os-grid os-grid-incidents",
            children=[
                panel(
                    t("incidents.title", lang),
                    html.Div(_table(lang, sort_by), className="os-table-wrap"),
                    fresh=ids.INCIDENT_TABLE,
                ),
                html.Div(
                    className="os-incidents-side",
                    children=[
                        _map_panel(lang, bounds=bounds.get(chosen_district)),
                        _detail_panel(lang, replaying=moment is not None),
                    ],
                ),
            ],
        ),
    ]
    return create_page(
        lang=lang,
        title=f"{t('incidents.title', lang)} · {t('app.title', lang)}",
        active="incidents",
        body=body,
        class_name="os-page-incidents",
    )


def _bounds(
    districts: dict[str, tuple[str, str]], *, whole_city: bool
) -> dict[str, list[list[float]]]:
    """Map bounds of each district one may choose, and of all of them ("")."""
    known = lookup(lambda: reference.bounds(None))
    chosen = {code: known[code] for code in districts if code in known}
    if whole_city or not chosen:
        return {"": CITY_BOUNDS, **chosen}
    # "all" of one's own districts: the box around them
    south = min(b[0][0] for b in chosen.values())
    west = min(b[0][1] for b in chosen.values())
    north = max(b[1][0] for b in chosen.values())
    east = max(b[1][1] for b in chosen.values())
    return {"": [[south, west], [north, east]], **chosen}


def _lines_control(lang: str, lines: str | None) -> html.Div:
    """One line per event (the default) or every incident."""
    return control(
        t("group.lines", lang),
        segmented(
            INCIDENT_LINES,
            labelled_options(LINE_CHOICES, lang, "group.lines"),
            pick(lines, LINE_CHOICES, "events").value,
        ),
    )


def _filters(
    lang: str,
    *,
    districts: dict[str, tuple[str, str]],
    categories: dict[str, tuple[str, str]],
    chosen: dict[str, str | None],
) -> html.Div:
    """The filter bar: district, category, severities, statuses, window, and the count."""
    district, category = chosen["district"], chosen["category"]
    severity, status, window = chosen["severity"], chosen["status"], chosen["window"]
    kind = pick(chosen["kind"], KIND_CHOICES, "all")
    return html.Div(
        className="os-filters",
        children=[
            _lines_control(lang, chosen["lines"]),
            control(
                t("fx.filter.kind", lang),
                segmented(
                    INCIDENT_KIND,
                    labelled_options(KIND_CHOICES, lang, "fx.kinds"),
                    kind.value,
                ),
            ),
            control(
                t("filter.district", lang),
                dropdown(
                    ids.INCIDENT_DISTRICT,
                    dropdown_options(districts, lang, "filter.all_districts"),
                    pick(district, list(districts), None).value or "",
                    lang=lang,
                    searchable=True,
                ),
                wide=True,
            ),
            control(
                t("filter.category", lang),
                dropdown(
                    ids.INCIDENT_CATEGORY,
                    dropdown_options(categories, lang, "filter.all_categories"),
                    pick(category, list(categories), None).value or "",
                    lang=lang,
                    searchable=True,
                ),
                wide=True,
            ),
            control(
                t("filter.severity", lang),
                checks(
                    ids.INCIDENT_SEVERITY,
                    labelled_options(SEVERITIES, lang, "severity"),
                    list(pick_many(severity, SEVERITIES)),
                ),
            ),
            control(
                t("filter.status", lang),
                checks(
                    ids.INCIDENT_STATUS,
                    labelled_options(INCIDENT_STATUSES, lang, "status"),
                    list(pick_many(status, INCIDENT_STATUSES)),
                ),
            ),
            control(
                t("filter.window", lang),
                segmented(
                    ids.INCIDENT_WINDOW,
                    labelled_options(WINDOWS, lang, "window"),
                    pick(window, list(WINDOWS), "24h").value,
                ),
            ),
            html.Span(id=ids.INCIDENT_COUNT, className="os-count os-queue-counts"),
            # a bad ?kind= is said, not silently replaced
            html.Span(t("fx.bad_kind", lang), className="os-filter-note", role="alert")
            if kind.rejected
            else None,
        ],
    )


def _table(lang: str, sort_by: list[dict]) -> Any:
    """The incidents table (filled by its callback), sorted as the URL says."""
    # dash.dash_table's __init__ is `# type: ignore`d as a whole, so mypy sees none of its names
    return dash_table.DataTable(  # type: ignore[attr-defined]
        id=ids.INCIDENT_TABLE,
        columns=[{"name": t(COLUMN_LABELS.get(c, f"col.{c}"), lang), "id": c} for c in COLUMNS],
        data=[],
        sort_action="custom",
        sort_mode="single",
        sort_by=sort_by,
        page_action="none",
        # no fixed_rows: it sizes the header from getBoundingClientRect, which is wrong on
        # scaled walls; a sticky header (CSS) stays aligned at every size
        style_table={"height": "100%", "overflowY": "auto"},
        style_cell={
            "fontFamily": "inherit",
            "fontSize": 14,
            "padding": "5px 8px",
            "textAlign": "left",
            "whiteSpace": "nowrap",
            "overflow": "hidden",
            "textOverflow": "ellipsis",
            "maxWidth": 320,
        },
        # fixed widths (onescreen_incidents.css lays the table out by them): the title takes
        # what is left, so no column is pushed out of the panel
        style_cell_conditional=[
            {"if": {"column_id": column}, "width": f"{width}px"}
            for column, width in COLUMN_WIDTHS[lang].items()
        ],
        # the default text colour lives here, not in CSS, so the severity colours can win
        style_data={"color": TEXT},
        style_data_conditional=[
            {
                "if": {
                    "filter_query": f'{{severity}} = "{t(f"severity.{s}", lang)}"',
                    "column_id": "severity",
                },
                "color": color,
                "fontWeight": 600,
            }
            for s, color in SEVERITY_COLORS.items()
        ]
        + [
            {
                "if": {
                    "filter_query": f'{{kind}} = "{t(f"fx.kind.{k}", lang)}"',
                    "column_id": ["kind", "expected"],
                },
                "color": color,
                "fontWeight": 600,
            }
            for k, color in KIND_COLORS.items()
        ]
        # an event's row (many alarms as one line) stands out as the feed's does
        + [
            {
                "if": {"filter_query": f'{{kind}} = "{t("group.badge", lang)}"'},
                "backgroundColor": "rgba(120, 160, 255, 0.10)",
                "fontWeight": 600,
            }
        ],
        # the selected row's frame is added by onescreen_incidents.frameRow, beside this rule
        css=[{"selector": ".dash-spreadsheet-menu", "rule": "display: none"}],
    )


def _map_panel(lang: str, *, bounds: list[list[float]] | None) -> html.Section:
    """The incidents map (of the chosen district): outlines, one point per incident by severity,
    and a ring round the selected one."""
    return panel(
        t("incidents.map", lang),
        create_map(
            map_id=ids.INCIDENT_MAP,
            lang=lang,
            legend_id="incidents-legend",
            legend=legend_children(t("col.severity", lang), []) + severity_legend(lang),
            layers=[
                dl.GeoJSON(
                    url=boundary_url(level="districts"),
                    **geojson_options(style=MAP_JS("outlineStyle"), interactive=False),
                ),
                dl.GeoJSON(
                    id=ids.INCIDENT_POINTS,
                    data={"type": "FeatureCollection", "features": []},
                    **geojson_options(
                        pointToLayer=MAP_JS("incidentPoint"),
                        hideout={"severityColors": SEVERITY_COLORS},
                    ),
                ),
                moving_layer(INCIDENT_UNITS),
                dl.GeoJSON(
                    id=INCIDENT_RING,
                    data={"type": "FeatureCollection", "features": []},
                    **geojson_options(pointToLayer=QUEUE_JS("selectionRing"), interactive=False),
                ),
            ],
            bounds=bounds,
        ),
        class_name="os-panel-map",
        fresh=ids.INCIDENT_MAP,
    )


def _detail_panel(lang: str, *, replaying: bool = False) -> html.Section:
    """The selected incident's detail, its actions (hidden in a replay: the past is read only;
    kept in the page, as the detail's callback listens to them) and what more there is to show."""
    actions = [create_incident_actions(lang), create_incident_dispatch(lang)]
    if replaying:
        actions = [html.Div(actions, className="os-replay-hidden", hidden=True)]
    return panel(
        t("incidents.detail", lang),
        html.Div(
            className="os-detail",
            children=[
                html.Div(
                    id=ids.INCIDENT_DETAIL,
                    children=html.Div(t("incidents.select", lang), className="os-empty"),
                ),
                *actions,
                html.Div(id=ids.INCIDENT_DETAIL_MORE),
            ],
        ),
        fresh=ids.INCIDENT_DETAIL,
    )


def _age(opened_at: datetime, *, at: datetime, lang: str) -> str:
    """How long an incident has been live, in minutes, hours or days."""
    minutes = max(0, int((at - pd.Timestamp(opened_at).to_pydatetime()).total_seconds() // 60))
    if minutes < 60:
        return t("queue.minutes", lang, n=minutes)
    if minutes < 24 * 60:
        return t("queue.hours", lang, h=minutes // 60, m=minutes % 60)
    return t("queue.days", lang, d=minutes // (24 * 60), h=minutes // 60 % 24)


def _queue_counts(frame: pd.DataFrame, lang: str) -> list:
    """What waits, what is in hand and what critical is unacknowledged among the listed."""
    live = frame[frame["status"] != "resolved"] if not frame.empty else frame
    waiting = live[live["status"] == "open"] if not live.empty else live
    critical = int((waiting["severity"] == "critical").sum()) if not waiting.empty else 0
    counts = (
        ("critical", t("queue.critical_open", lang, n=critical), critical),
        ("open", t("queue.open", lang, n=len(waiting)), len(waiting)),
        ("acknowledged", t("queue.acknowledged", lang, n=len(live) - len(waiting)), 1),
    )
    # zeros are grey: nothing red when nothing critical waits
    zero = " os-queue-count-zero"
    return [
        html.Span(text, className=f"os-queue-count os-queue-count-{key}" + ("" if n else zero))
        for key, text, n in counts
    ]


def _rows(frame: pd.DataFrame, lang: str, categories: dict, *, at: datetime) -> list[dict]:
    en = lang == "en"
    rows = []
    for item in frame.to_dict("records"):
        live = item["status"] != "resolved"
        live_forecast = item["kind"] == "forecast" and live
        street = item["street_en"] if en else item["street_zh"]
        rows.append(
            {
                "id": int(item["id"]),
                "opened_at": pd.Timestamp(item["opened_at"])
                .tz_convert(CITY_TZ)
                .strftime("%m-%d %H:%M"),
                "age": _age(item["opened_at"], at=at, lang=lang) if live else "",
                "kind": t(f"fx.kind.{item['kind']}", lang),
                "kind_code": item["kind"],
                "expected": time_to_breach(item["expected_at"], at=at, lang=lang)
                if live_forecast
                else "",
                "severity": t(f"severity.{item['severity']}", lang),
                "severity_code": item["severity"],
                "status": t(f"status.{item['status']}", lang),
                "category": name(
                    categories.get(item["category_code"], (item["category_code"],) * 2), lang
                ),
                "title": item["title_en"] if en else item["title_zh"],
                "district": item["district_en"] if en else item["district_zh"],
                "street": street if isinstance(street, str) else "",
            }
        )
    return rows


def _points(frame: pd.DataFrame, lang: str) -> dict:
    en = lang == "en"
    # drawn in order: minor first, critical last, so no lesser dot covers a critical one
    rank = {severity: n for n, severity in enumerate(reversed(SEVERITIES))}
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [float(item["lon"]), float(item["lat"])],
                },
                "properties": {
                    "id": int(item["id"]),
                    "severity": item["severity"],
                    "tip": item["title_en"] if en else item["title_zh"],
                },
            }
            for item in sorted(frame.to_dict("records"), key=lambda i: rank[i["severity"]])
            if item["lon"] is not None
        ],
    }


@callback(
    Output(ids.INCIDENT_TABLE, "data"),
    Output(ids.INCIDENT_POINTS, "data"),
    Output(ids.INCIDENT_COUNT, "children"),
    asof_output(ids.INCIDENT_TABLE),
    asof_output(ids.INCIDENT_MAP),
    Input(ids.INCIDENT_DISTRICT, "value"),
    Input(ids.INCIDENT_CATEGORY, "value"),
    Input(ids.INCIDENT_SEVERITY, "value"),
    Input(ids.INCIDENT_STATUS, "value"),
    Input(ids.INCIDENT_WINDOW, "value"),
    Input(INCIDENT_KIND, "value"),
    Input(INCIDENT_LINES, "value"),
    Input(ids.INCIDENT_TABLE, "sort_by"),
    Input(ids.REFRESH, "n_intervals"),
    Input(ids.EVENT_ACTION_DONE, "data"),
    Input(ids.INCIDENT_EVENT, "data"),
    Input(ids.REPLAY_AT, "data"),
    State(ids.LANG, "data"),
)
@guard(
    lambda lang: (
        [],
        dash.no_update,
        unavailable(t("panel.unavailable", lang)),
        dash.no_update,
        dash.no_update,
    )
)
def update_table(
    district,
    category,
    severities,
    statuses,
    window,
    kind,
    lines,
    sort_by,
    _tick,
    _done,
    event,
    replayed,
    lang,
):
    """The filtered, sorted lines (one per event and per incident in none, or every incident,
    or one event's members when the URL names it) and the incidents' map points (as they stood
    at the instant a replay shows)."""
    lang = language(lang)
    categories = reference.categories()
    at = _replayed(replayed)
    clock = now(at)
    end = clock.value + timedelta(minutes=1)
    group_id = _incident_id(event)
    hours = WINDOWS[pick(window, list(WINDOWS), "24h").value]
    query = {
        "start": end - (timedelta(hours=hours) if group_id is None else EVENT_WINDOW),
        "end": end,
        "district": pick(district, list(reference.districts()), None).value,
        "category": pick(category, list(categories), None).value,
    }
    chosen = _chosen(severities, statuses, kind)
    query.update(replay_args(at))
    everything = read(
        incident_list, **query, **chosen, **_order(sort_by), group_id=group_id, limit=TABLE_LIMIT
    )
    frame, reads = everything.value, [clock, everything]
    rows = _rows(frame, lang, categories, at=clock.value)
    events = pd.DataFrame()
    if group_id is None and _by_event(lines, chosen):
        found = read(event_list, **query, limit=TABLE_LIMIT)
        singles = read(
            incident_list, **query, **chosen, **_order(sort_by), grouped=False, limit=TABLE_LIMIT
        )
        events = found.value
        reads += [found, singles]
        rows = _event_rows(events, lang, categories, at=clock.value) + _rows(
            singles.value, lang, categories, at=clock.value
        )
    asof = asof_payload(*reads)
    count_key = "incidents.count_capped" if len(frame) >= TABLE_LIMIT else "incidents.count"
    count = [html.Span(t(count_key, lang, n=len(frame))), *_queue_counts(frame, lang)]
    if not events.empty:
        count.insert(0, html.Span(t("group.count", lang, n=len(events))))
    return rows, _points(frame, lang), count, asof, asof


def _replayed(raw: object) -> datetime | None:
    """The instant the page replays (None: live); a forged one is refused."""
    try:
        return replay_at(raw, now=datetime.now(CITY_TZ))
    except InvalidQuery:
        raise PreventUpdate from None


def _by_event(lines: object, chosen: dict[str, tuple[str, ...]]) -> bool:
    """Whether the table lists one line per event: by default, and only while no kind, severity
    or status is filtered out (a filter then lists each incident it keeps, grouped or not)."""
    unfiltered = chosen == {
        "severities": SEVERITIES,
        "statuses": INCIDENT_STATUSES,
        "kinds": INCIDENT_KINDS,
    }
    return unfiltered and pick(lines, LINE_CHOICES, "events").value == "events"


def _chosen(severities: object, statuses: object, kind: object) -> dict[str, tuple[str, ...]]:
    """The severity, status and kind filters as a read takes them (all when none chosen)."""
    chosen_kind = pick(kind, KIND_CHOICES, "all").value
    return {
        "severities": pick_many(",".join(severities), SEVERITIES)
        if isinstance(severities, list) and severities
        else SEVERITIES,
        "statuses": pick_many(",".join(statuses), INCIDENT_STATUSES)
        if isinstance(statuses, list) and statuses
        else INCIDENT_STATUSES,
        "kinds": INCIDENT_KINDS if chosen_kind in (None, "all") else (chosen_kind,),
    }


def _order(sort_by: object) -> dict[str, Any]:
    """The table's order: the column clicked, else the work queue's."""
    if isinstance(sort_by, list) and sort_by and isinstance(sort_by[0], dict):
        column = sort_by[0].get("column_id")
        if column in SORT_COLUMNS:
            return {"order_by": column, "descending": sort_by[0].get("direction") != "asc"}
    return {"order_by": QUEUE_ORDER, "descending": True}


def _event_rows(events: pd.DataFrame, lang: str, categories: dict, *, at: datetime) -> list[dict]:
    """One table row per event, first (as the feed pins them); its id is the event's, negated,
    so a click opens its members rather than selecting an incident."""
    en = lang == "en"
    rows = []
    for item in events.to_dict("records"):
        title = [item["event_en"] if en else item["event_zh"]]
        title.append(t("group.members", lang, n=int(item["members"])))
        if int(item["unacknowledged"]):
            title.append(t("group.waiting", lang, n=int(item["unacknowledged"])))
        names = list(item["districts_en" if en else "districts_zh"] or [])
        place = (", " if en else "、").join(names[:2]) + ("…" if len(names) > 2 else "")
        rows.append(
            {
                "id": -int(item["id"]),
                "opened_at": pd.Timestamp(item["opened_at"])
                .tz_convert(CITY_TZ)
                .strftime("%m-%d %H:%M"),
                "age": _age(item["opened_at"], at=at, lang=lang) if int(item["live"]) else "",
                "kind": t("group.badge", lang),
                "kind_code": "event",
                "expected": "",
                "severity": t(f"severity.{item['severity']}", lang),
                "severity_code": item["severity"],
                "status": t(f"status.{item['status']}", lang),
                "category": name(
                    categories.get(item["category_code"], (item["category_code"],) * 2), lang
                ),
                "title": " · ".join(title),
                "district": place,
                "street": t("group.streets", lang, n=int(item["n_streets"])),
            }
        )
    return rows


@callback(
    Output(ids.INCIDENT_SELECTED, "data"),
    Output(ids.INCIDENT_EVENT, "data"),
    Input(ids.INCIDENT_TABLE, "active_cell"),
    Input(ids.INCIDENT_POINTS, "clickData"),
    prevent_initial_call=True,
)
def select_incident(active_cell, point):
    """A clicked row or map point selects that incident; an event's row opens its members."""
    if dash.ctx.triggered_id == ids.INCIDENT_POINTS:
        properties = (point or {}).get("properties", {}) if isinstance(point, dict) else {}
        chosen = _incident_id(properties.get("id"))
    else:
        row = (active_cell or {}).get("row_id") if isinstance(active_cell, dict) else None
        event = _incident_id(-row) if type(row) is int and row < 0 else None
        if event is not None:
            return dash.no_update, event
        chosen = _incident_id(row)
    if chosen is None:
        raise PreventUpdate
    return chosen, dash.no_update


@callback(
    Output(ids.INCIDENT_DETAIL, "children"),
    Output(ids.INCIDENT_DETAIL_MORE, "children"),
    asof_output(ids.INCIDENT_DETAIL),
    Input(ids.INCIDENT_SELECTED, "data"),
    Input(ids.INCIDENT_ACTION_DONE, "data"),
    # a unit sent, arrived or released is a line of the incident's history too
    Input(DISPATCH_DONE, "data"),
    Input(ids.REFRESH, "n_intervals"),
    Input(ids.REPLAY_AT, "data"),
    State(ids.LANG, "data"),
)
@guard(lambda lang: (unavailable(t("panel.unavailable", lang)), [], dash.no_update))
def show_incident(incident_id, _done, _dispatched, _tick, replayed, lang):
    """Detail of the selected incident: facts; readings around it and its history (kept live;
    in a replay, as it stood then)."""
    lang = language(lang)
    at = _replayed(replayed)
    clock = now(at)
    chosen = _incident_id(incident_id)
    if chosen is None:
        empty = html.Div(t("incidents.select", lang), className="os-empty")
        return empty, [], asof_payload(clock)
    # the acting user must see their own change at once, not the cache's copy from before it
    incident = read_fresh(incident_detail, incident_id=chosen, **replay_args(at))
    if incident.value is None:
        missing = html.Div(t("incidents.not_found", lang), className="os-unavailable")
        return missing, [], asof_payload(clock, incident)
    events = read_fresh(incident_events, incident_id=chosen, **replay_args(at))
    reads = [clock, incident, events]
    figure = message_figure(t("device.no_reading", lang))
    if incident.value.get("device_id"):
        opened = pd.Timestamp(incident.value["opened_at"]).to_pydatetime()
        closed = incident.value.get("resolved_at") or clock.value
        end = min(max(closed, opened) + timedelta(hours=1), opened + timedelta(days=2))
        series = read(
            device_series,
            device_id=int(incident.value["device_id"]),
            start=opened - timedelta(hours=3),
            end=end,
            bucket_seconds=300,
        )
        reads.append(series)
        figure = readings_figure(
            series.value, incident=incident.value, lang=lang, unit=incident.value.get("unit")
        )
    # a fixed height (autosizing it inside the scrolling detail could outgrow its box and cover
    # the handling buttons), the panel's width (plotly's fixed 700 px overflowed narrow panels)
    figure.update_layout(height=DETAIL_CHART_HEIGHT, width=None, autosize=True)
    children = detail_children(
        incident.value,
        events=events.value,
        figure=figure,
        lang=lang,
        categories=reference.categories(),
        at=clock.value,
    )
    # the handling form sits between the facts and the readings, where it is seen first
    return children[:2], children[2:], asof_payload(*reads)


clientside_callback(
    """
    function (district, category, severity, status, timeWindow, incident, sortBy, kind, lines,
              event) {
        let sort = null;
        if (sortBy && sortBy.length) {
            sort = (sortBy[0].direction === "asc" ? "" : "-") + sortBy[0].column_id;
        }
        const all = (values, n) => (values && values.length === n) ? null : values;
        if (!window.onescreen || !window.onescreen.syncQuery) {
            return;  // assets still loading: the URL already holds the initial state
        }
        return window.onescreen.syncQuery(
            {district: district, category: category, severity: all(severity, 3),
             status: all(status, 3), window: timeWindow, incident: incident, sort: sort,
             kind: kind, lines: lines, event: event},
            {window: "24h", kind: "all", lines: "events"});
    }
    """,
    Input(ids.INCIDENT_DISTRICT, "value"),
    Input(ids.INCIDENT_CATEGORY, "value"),
    Input(ids.INCIDENT_SEVERITY, "value"),
    Input(ids.INCIDENT_STATUS, "value"),
    Input(ids.INCIDENT_WINDOW, "value"),
    Input(ids.INCIDENT_SELECTED, "data"),
    Input(ids.INCIDENT_TABLE, "sort_by"),
    Input(INCIDENT_KIND, "value"),
    Input(INCIDENT_LINES, "value"),
    Input(ids.INCIDENT_EVENT, "data"),
)


# the selected incident framed in the table and ringed on the map; the map goes to it (with the
# units sent or suggested, once they are in), or to the chosen district
# (assets/onescreen_incidents.js)
clientside_callback(
    ClientsideFunction(namespace="onescreen_incidents", function_name="frameRow"),
    Output(ids.INCIDENT_TABLE, "css"),
    Input(ids.INCIDENT_SELECTED, "data"),
    Input(ids.INCIDENT_TABLE, "data"),
)
clientside_callback(
    ClientsideFunction(namespace="onescreen_incidents", function_name="focus"),
    Output(INCIDENT_RING, "data"),
    Output(ids.INCIDENT_MAP, "viewport"),
    Input(ids.INCIDENT_SELECTED, "data"),
    Input(ids.INCIDENT_POINTS, "data"),
    Input(ids.INCIDENT_DISTRICT, "value"),
    Input(INCIDENT_UNITS, "data"),
    State(INCIDENT_BOUNDS, "data"),
)
