"""The resource board `/resources` (资源调度): per scenario and district, the units on a map over
the streets' coverage (how long the fastest available unit would take; the blind spots beyond the
target), the playbook's tasks with their owners, due times and progress, and the units list."""

from __future__ import annotations

import logging
from typing import Any

import dash
import dash_leaflet as dl
from dash import ALL, Input, Output, State, callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from components import ids, reference
from components.area_map import MAP_JS, create_map, geojson_options
from components.i18n import name, t
from components.notfound import not_found_page
from components.panels import panel, unavailable
from components.resources import (
    TASK_ACTION,
    UNIT_LEND,
    coverage_style,
    reserve_rows,
    summary,
    task_rows,
    unit_table,
)
from components.shell import create_page
from components.state import href, language
from components.topics import TOPICS
from components.unit_layer import unit_features, unit_layers
from data.dispatch import COVERAGE_TARGET_S, coverage, dispatch_unit
from data.lending import lend_unit, lendable_units
from data.playbooks import handle_task, progress, task_suggestions, tasks
from data.resources import ResourceError, kinds, status_counts, unit_positions, units
from panels.guard import guard
from panels.incident_actions import act_as_principal
from panels.reads import read, read_fresh, shared_cache
from web.boundaries import boundary_url
from web.services import web_engine
from web.session import client_address, current_principal

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/resources", title="资源调度 · 一屏观全城", name="resources")

BOARD = "resources-board"
BOARD_MAP = "resources-map"
BOARD_COVERAGE = "resources-coverage"
BOARD_SUMMARY = "resources-summary"
BOARD_TASKS = "resources-tasks"
BOARD_UNITS = "resources-units"
BOARD_DONE = "resources-done"
BOARD_MESSAGE = "resources-message"


def _checked(topic: object, district: object) -> tuple[str, str | None] | None:
    """The board's scenario and district, if they are ones this viewer may see."""
    if topic not in TOPICS:
        return None
    if district in (None, ""):
        return str(topic), None
    principal = current_principal()
    if district not in reference.districts() or not (principal and principal.allows(district)):
        return None
    return str(topic), str(district)


def _links(topic: str, lang: str, district: str | None) -> html.Nav:
    """The scenarios (the shown one marked) and the districts in scope, as links."""
    principal = current_principal()
    places = [("", t("crumb.city", lang))] + [
        (code, name(names, lang))
        for code, names in reference.districts().items()
        if principal is not None and principal.allows(code)
    ]
    links: list[Any] = [
        dcc.Link(
            t(f"topic.{code}", lang),
            href=href("/resources", lang=lang, topic=code, district=district),
            className="os-topic-link" + (" os-topic-active" if code == topic else ""),
        )
        for code in TOPICS
    ]
    options: list[Any] = [{"label": label, "value": code} for code, label in places]
    picker = dcc.Dropdown(
        id=f"{BOARD}-district",
        options=options,
        value=district or "",
        clearable=False,
        className="os-dropdown os-board-district",
    )
    return html.Nav(className="os-topic-row", children=[*links, picker])


def layout(
    topic: str | None = None, district: str | None = None, lang: str | None = None, **_other: str
) -> html.Div:
    """The board of scenario `topic` (flood by default) in the city or `district`."""
    lang = language(lang)
    checked = _checked(topic or "flood", district)
    if checked is None:
        return not_found_page(lang, t("auth.forbidden", lang))
    topic, district = checked
    body = [
        dcc.Store(id=BOARD, data={"topic": topic, "district": district}),
        dcc.Store(id=BOARD_DONE, data=0),
        _links(topic, lang, district),
        html.Div(
            className="os-grid os-grid-topic",
            children=[
                panel(
                    t("board.map", lang, topic=t(f"topic.{topic}", lang)),
                    create_map(
                        map_id=BOARD_MAP,
                        lang=lang,
                        legend_id=f"{BOARD}-legend",
                        legend=[html.Div(t("board.legend", lang, m=COVERAGE_TARGET_S // 60))],
                        bounds=reference.bounds(None).get(district or "city"),
                        layers=[
                            dl_coverage(district),
                            *unit_layers(lambda part: f"{BOARD}-{part}"),
                        ],
                    ),
                    class_name="os-panel-map",
                ),
                html.Div(
                    className="os-side os-side-board",
                    children=[
                        panel(t("panel.resources", lang), html.Div(id=BOARD_SUMMARY)),
                        panel(
                            t("board.tasks", lang),
                            [
                                html.Div(id=BOARD_MESSAGE, role="status"),
                                html.Div(id=BOARD_TASKS, className="os-board-list"),
                            ],
                        ),
                        panel(t("board.units", lang), html.Div(id=BOARD_UNITS)),
                    ],
                ),
            ],
        ),
    ]
    return create_page(
        lang=lang,
        title=" · ".join(
            (t("panel.resources", lang), t(f"topic.{topic}", lang), t("app.title", lang))
        ),
        active="resources",
        body=body,
        class_name="os-page-board",
    )


def dl_coverage(district: str | None) -> Any:
    """The streets, coloured in the browser by the fastest available unit's estimated time."""
    return dl.GeoJSON(
        id=BOARD_COVERAGE,
        url=boundary_url(level="streets", district=district),
        **geojson_options(
            style=MAP_JS("areaStyle"),
            onEachFeature=MAP_JS("areaTooltip"),
            hideout={"colors": {}, "tips": {}, "fillOpacity": 0.55},
        ),
    )


@callback(
    Output(BOARD_COVERAGE, "hideout"),
    Output(f"{BOARD}-units", "data"),
    Output(f"{BOARD}-moving", "data"),
    Output(BOARD_SUMMARY, "children"),
    Output(BOARD_TASKS, "children"),
    Output(BOARD_UNITS, "children"),
    Input(BOARD, "data"),
    Input(BOARD_DONE, "data"),
    Input(ids.REFRESH, "n_intervals"),
    State(ids.LANG, "data"),
)
@guard(lambda lang: (dash.no_update,) * 3 + (unavailable(t("panel.unavailable", lang)),) * 3)
def refresh(state, _done, _tick, lang):
    """Everything on the board, in the viewer's scope."""
    lang = language(lang)
    checked = _checked(*(state or {}).values()) if isinstance(state, dict) else None
    if checked is None:
        raise PreventUpdate
    topic, district = checked
    streets = read(coverage, skill=topic).value
    here = [s for s in streets if district is None or s["district_adcode"] == district]
    positions = read(unit_positions, district=district, skill=topic).value
    parked, moving = unit_features(positions, lang=lang, wall=False)
    kind_names = {k.code: (k.name_zh, k.name_en) for k in read(kinds).value}
    counts = read(status_counts, district=district, skill=topic).value
    principal = current_principal()
    acting = bool(principal and principal.can_act)
    return (
        {**coverage_style(here, lang=lang), "fillOpacity": 0.55},
        parked,
        moving,
        summary(
            counts,
            kind_names,
            read(progress, district=district).value.get(topic),
            [s for s in here if s["blind"]],
            lang=lang,
            target_min=COVERAGE_TARGET_S // 60,
        ),
        task_rows(
            read_fresh(tasks, topic=topic, district=district).value, lang=lang, acting=acting
        ),
        _units(
            topic,
            district,
            lang=lang,
            city=bool(principal and principal.sees_city),
            acting=acting,
        ),
    )


def _units(topic: str, district: str | None, *, lang: str, city: bool, acting: bool) -> list[Any]:
    """The board's units; seen by the city, its reserve first: the units lent (here, or all on
    the city's board) and, on a district's board, the free ones nearest it."""
    names = reference.districts()
    table = unit_table(
        read(units, district=district, skill=topic, limit=400).value,
        lang=lang,
        district_names=names,
    )
    if not city:  # the city's reserve is the city's to see and lend
        return [table]
    lent = read(units, district=district, skill=topic, lent_only=True).value
    free = [] if district is None else read(lendable_units, district=district, skill=topic).value
    reserve = reserve_rows(
        [u for u in lent if district is None or u["lent_to"] == district],
        free,
        lang=lang,
        district=district,
        district_names=names,
        lender=acting,
    )
    return [reserve, table]


@callback(
    Output(ids.URL, "href", allow_duplicate=True),
    Input(f"{BOARD}-district", "value"),
    State(BOARD, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def choose_district(district, state, lang):
    """Picking a district opens its board."""
    topic = state.get("topic") if isinstance(state, dict) else None
    if _checked(topic, district) is None:
        raise PreventUpdate
    return href("/resources", lang=language(lang), topic=topic, district=district or None)


@callback(
    Output(BOARD_MESSAGE, "children"),
    Output(BOARD_DONE, "data"),
    Input({"type": TASK_ACTION, "action": ALL, "task": ALL}, "n_clicks"),
    Input({"type": UNIT_LEND, "unit": ALL, "to": ALL}, "n_clicks"),
    State(BOARD_DONE, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def act_on_board(task_clicks, lend_clicks, done, lang):
    """Complete, reopen or staff a task, or lend a reserve unit or take it back, as the
    signed-in person."""
    lang = language(lang)
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict):
        raise PreventUpdate

    def work(actor: str) -> str:
        if trigger.get("type") == UNIT_LEND:
            text = _lend(trigger.get("unit"), trigger.get("to"), actor=actor, lang=lang)
        else:
            task = trigger.get("task")
            if type(task) is not int:
                raise ResourceError("no such task")
            _apply(trigger.get("action"), task, actor=actor)
            text = t("board.done", lang)
        shared_cache().clear()
        return text

    clicks = [*(task_clicks or []), *(lend_clicks or [])]
    return act_as_principal(
        clicks, done, lang, work=work, refused=(ResourceError,), failure="board action failed"
    )


def _lend(code: object, to: object, *, actor: str, lang: str) -> str:
    """Lend unit `code` to district `to` ("" = take it back); what to tell the person."""
    districts = reference.districts()
    if not isinstance(code, str) or not isinstance(to, str) or (to and to not in districts):
        raise ResourceError("no such unit or district")
    loan = lend_unit(
        web_engine(), code=code, district=to or None, actor=actor, address=client_address()
    )
    unit = loan.name_en if lang == "en" else loan.name_zh
    if not to:
        return t("board.back", lang, unit=unit)
    return t("board.lent", lang, unit=unit, district=name(districts[to], lang))


def _apply(action: object, task: int, *, actor: str) -> None:
    """One task action: send its first suggested unit, or move the task."""
    if action == "send":
        found = task_suggestions(web_engine(), task_id=task, k=1)
        if not found:
            raise ResourceError("no suitable unit is available for this task")
        dispatch_unit(
            web_engine(),
            resource_id=found[0].resource_id,
            task_id=task,
            actor=actor,
            address=client_address(),
        )
        return
    if action not in ("done", "reopen"):
        raise ResourceError("unknown task action")
    handle_task(
        web_engine(), task_id=task, action=str(action), actor=actor, address=client_address()
    )
