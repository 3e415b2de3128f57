"""Resources and dispatch as screens show them (pure builders): a scenario's units by status,
its playbook's progress and its coverage blind spots; an incident's suggested and sent units."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dash import html

from components.i18n import name, t
from components.tiles import CITY_TZ
from components.unit_layer import GLYPHS, STATUS_COLORS
from data.resources import BUSY

MOBILE_STATUSES = ("available", "en_route", "on_site", "off_duty")


def glyph(kind: str, status: str) -> html.Span:
    """A unit's map symbol, for lists and legends."""
    return html.Span(
        className=f"os-unit os-unit-{status}",
        children=html.Span(GLYPHS.get(kind, "•"), style={"background": STATUS_COLORS[status]}),
    )


def minutes(seconds: float | None) -> str:
    """A travel time as '~12 min' (estimates are never shown to the second)."""
    if seconds is None:
        return "—"
    return f"~{max(1, round(seconds / 60))} min"


def _count_line(kind: str, label: str, counts: dict[str, int], *, lang: str) -> html.Div:
    """One kind's units on one line: available of all, and how many are out on jobs."""
    busy = sum(counts.get(s, 0) for s in ("dispatched", "en_route", "on_site"))
    total = sum(counts.values())
    return html.Div(
        className="os-res-count",
        title=label,
        children=[
            glyph(kind, "available"),
            html.Span(label, className="os-res-kind"),
            html.B(f"{counts.get('available', 0)}"),
            html.Span(f"/{total}", className="os-dispatch-meta"),
            html.Span(
                t("unit.busy_n", lang, n=busy), className="os-res-busy" + (" os-on" if busy else "")
            ),
        ],
    )


def summary(
    counts: dict[str, dict[str, int]],
    kind_names: dict[str, tuple[str, str]],
    progress: dict[str, int] | None,
    blind: list[dict[str, Any]],
    *,
    lang: str,
    target_min: int,
) -> list[Any]:
    """A scenario's resources: units by kind, the playbook's progress, the blind spots."""
    lines = [
        _count_line(kind, name(kind_names.get(kind, (kind, kind)), lang), by_status, lang=lang)
        for kind, by_status in counts.items()
    ]
    return [
        html.Div(lines or t("unit.none", lang), className="os-res-counts"),
        html.Div(
            className="os-res-state",
            children=[
                playbook_progress(progress, lang=lang),
                _blind_spots(blind, lang=lang, target_min=target_min),
            ],
        ),
    ]


def playbook_progress(progress: dict[str, int] | None, *, lang: str) -> html.Div:
    """'12 / 18 已完成' with a bar, and how many are overdue; or that no playbook is running."""
    if not progress or not progress.get("total"):
        return html.Div(t("playbook.idle", lang), className="os-dispatch-note os-playbook")
    done, total = progress["done"], progress["total"]
    overdue = progress.get("overdue", 0)
    return html.Div(
        className="os-playbook",
        children=[
            html.Div(
                [
                    html.B(t("playbook.progress", lang, done=done, total=total)),
                    html.Span(
                        " · " + t("playbook.overdue", lang, n=overdue) if overdue else "",
                        className="os-blind",
                    ),
                ]
            ),
            html.Div(
                className="os-res-progress",
                children=html.Div(style={"width": f"{100 * done / total:.0f}%"}),
            ),
        ],
    )


def _blind_spots(blind: list[dict[str, Any]], *, lang: str, target_min: int) -> html.Div:
    """How many streets no available unit reaches within the target, and the worst few."""
    if not blind:
        return html.Div(t("coverage.none", lang, m=target_min), className="os-dispatch-note")
    worst = sorted(blind, key=lambda s: -(s["eta_s"] if s["eta_s"] is not None else 1e9))[:3]
    return html.Div(
        className="os-dispatch-note",
        children=[
            html.Span(t("coverage.blind", lang, n=len(blind), m=target_min), className="os-blind"),
            html.Span(
                " · "
                + "，".join(
                    f"{name((s['name_zh'], s['name_en']), lang)} {minutes(s['eta_s'])}"
                    for s in worst
                )
            ),
        ],
    )


def suggestion_row(s: Any, *, lang: str, button: Any) -> html.Div:
    """A suggested unit: symbol, name and kind, distance and estimated time, its button."""
    label = s.name_en if lang == "en" else s.name_zh
    kind = s.kind_en if lang == "en" else s.kind_zh
    return html.Div(
        className="os-dispatch-row",
        children=[
            glyph(s.kind_code, "available"),
            html.Div(
                [
                    html.Div(
                        [
                            label,
                            html.Span(t("dispatch.local", lang), className="os-dispatch-local")
                            if s.local
                            else None,
                        ],
                        className="os-dispatch-name",
                    ),
                    html.Div(f"{kind} · {s.metres / 1000:.1f} km", className="os-dispatch-meta"),
                ]
            ),
            html.Span(minutes(s.eta_s), className="os-dispatch-eta"),
            button,
        ],
    )


def sent_row(unit: dict[str, Any], *, lang: str, now: datetime, buttons: list[Any]) -> html.Div:
    """A unit sent to the job: its status, how far it still is, its estimated arrival."""
    label = unit["name_en"] if lang == "en" else unit["name_zh"]
    left = unit.get("metres_left")
    eta = unit.get("eta_at")
    remaining = (eta - now).total_seconds() if eta is not None else None
    status = t(f"unit.status.{unit['status']}", lang)
    when = (
        t("dispatch.arrived", lang)
        if unit["status"] == "on_site"
        else (
            t("dispatch.late", lang)
            if remaining is not None and remaining < 0
            else minutes(remaining)
        )
    )
    return html.Div(
        className=f"os-dispatch-row os-sent-{unit['status']}",
        children=[
            glyph(unit["kind_code"], unit["status"]),
            html.Div(
                [
                    html.Div(label),
                    html.Div(
                        f"{status}"
                        + (f" · {left / 1000:.1f} km" if left is not None and left > 150 else ""),
                        className="os-dispatch-meta",
                    ),
                ]
            ),
            html.Span(when, className="os-dispatch-eta"),
            html.Div(buttons),
        ],
    )


# coverage colours: reached within 5, 10, 15 min (greens); beyond the target; no unit at all
COVERAGE_COLORS = ("#1f7a5a", "#2e9e6e", "#58b98a", "#ffa23a", "#ff4d5e")


def coverage_style(streets: list[dict[str, Any]], *, lang: str) -> dict[str, Any]:
    """The coverage layer's hideout: each street's colour and tooltip."""
    colors, tips = {}, {}
    for street in streets:
        eta = street["eta_s"]
        if eta is None:
            color = COVERAGE_COLORS[4]
        elif street["blind"]:
            color = COVERAGE_COLORS[3]
        else:
            color = COVERAGE_COLORS[min(int(eta // 300), 2)]
        colors[street["code"]] = color
        tips[street["code"]] = f"{name((street['name_zh'], street['name_en']), lang)} · " + (
            t("coverage.tip", lang, eta=minutes(eta)) if eta is not None else t("unit.none", lang)
        )
    return {"colors": colors, "tips": tips}


def _due(task: dict[str, Any], *, lang: str) -> str:
    """When a task is due (or was done), as the city's clock shows it."""
    moment = task["done_at"] or task["due_at"]
    return moment.astimezone(CITY_TZ).strftime("%H:%M")


def task_rows(tasks: list[dict[str, Any]], *, lang: str, acting: bool) -> list[Any]:
    """The playbook's tasks: level, what to do (and where), owner and due time, buttons."""
    if not tasks:
        return [html.Div(t("playbook.idle", lang), className="os-empty")]
    rows = []
    for task in tasks:
        text = task["text_en"] if lang == "en" else task["text_zh"]
        street = task.get("target_street_en" if lang == "en" else "target_street_zh")
        where = f" · {street or ''} {task['target_code']}" if task["target_code"] else ""
        status = task["status"]
        buttons = []
        if acting and status == "open":
            if task["kind_code"] and not task["units"]:
                buttons.append(_task_button("send", task["id"], lang))
            buttons.append(_task_button("done", task["id"], lang))
        elif acting:
            buttons.append(_task_button("reopen", task["id"], lang))
        overdue = status == "open" and task["overdue"]
        rows.append(
            html.Div(
                className=f"os-task os-task-{status}" + (" os-task-overdue" if overdue else ""),
                children=[
                    html.Span(
                        LEVEL_NAMES[task["level"]], className=f"os-level os-level-{task['level']}"
                    ),
                    html.Div(
                        [
                            html.Div(text + where),
                            html.Div(
                                f"{task['owner'].split(':', 1)[-1]}"
                                + (
                                    f" · {t('task.units', lang, n=task['units'])}"
                                    if task["units"]
                                    else ""
                                )
                                + f" · {t('task.' + status, lang)}",
                                className="os-dispatch-meta",
                            ),
                        ]
                    ),
                    html.Span(_due(task, lang=lang), className="os-task-due"),
                    html.Div(buttons),
                ],
            )
        )
    return rows


LEVEL_NAMES = {1: "I", 2: "II", 3: "III", 4: "IV"}
TASK_ACTION = "os-task-action"


def _task_button(action: str, task_id: int, lang: str) -> html.Button:
    return html.Button(
        t(f"task.do.{action}", lang),
        id={"type": TASK_ACTION, "action": action, "task": int(task_id)},
        className=f"os-action os-task-do-{action}",
        n_clicks=0,
    )


def unit_table(
    rows: list[dict[str, Any]], *, lang: str, district_names: dict[str, tuple[str, str]]
) -> html.Div:
    """The units (busy first), with kind, status, home district and, for busy ones, ETA; a city
    unit says where it is lent."""
    order = {"en_route": 0, "dispatched": 1, "on_site": 2, "available": 3, "off_duty": 4}
    rows = sorted(rows, key=lambda r: (order.get(r["status"], 5), r["code"]))
    return html.Div(
        className="os-board-units",
        children=[
            _unit_row(
                row,
                lang=lang,
                meta=_lent_note(row, lang=lang, district_names=district_names),
                end=html.Span(),
            )
            for row in rows[:200]
        ],
    )


def _unit_row(row: dict[str, Any], *, lang: str, meta: str, end: Any) -> html.Div:
    """One unit: its symbol, name, code and status (and `meta`), ETA when busy, then `end`."""
    return html.Div(
        className="os-dispatch-row" + (" os-unit-lent" if row.get("lent_to") else ""),
        children=[
            glyph(row["kind_code"], row["status"]),
            html.Div(
                [
                    html.Div(row["name_en"] if lang == "en" else row["name_zh"]),
                    html.Div(
                        f"{row['code']} · {t('unit.status.' + row['status'], lang)}{meta}",
                        className="os-dispatch-meta",
                    ),
                ]
            ),
            html.Span(
                row["eta_at"].astimezone(CITY_TZ).strftime("%H:%M")
                if row.get("eta_at") and row["status"] in ("dispatched", "en_route")
                else "",
                className="os-dispatch-eta",
            ),
            end,
        ],
    )


def _lent_note(
    row: dict[str, Any], *, lang: str, district_names: dict[str, tuple[str, str]]
) -> str:
    """' · lent to <district>' for a city unit lent out, else nothing."""
    lent = row["lent_to"]
    if not lent:
        return ""
    return " · " + t(
        "unit.lent_to", lang, district=name(district_names.get(lent, (lent, lent)), lang)
    )


def reserve_rows(
    lent: list[dict[str, Any]],
    free: list[dict[str, Any]],
    *,
    lang: str,
    district: str | None,
    district_names: dict[str, tuple[str, str]],
    lender: bool,
) -> html.Div:
    """The city's reserve as a board shows it: the units lent (to `district`, or anywhere on the
    city's board), each with a take-back button, then the free ones nearest `district` with a
    lend button — the buttons for the city's duty desk (`lender`) only."""
    if district is None:
        heading = t("board.reserve_city", lang, n=len(lent))
    else:
        heading = t("board.reserve", lang, district=name(district_names[district], lang))
    rows: list[Any] = [html.Div(heading, className="os-reserve-head")]
    for row in lent:
        back = lender and row["status"] not in BUSY
        meta = _lent_note(row, lang=lang, district_names=district_names)
        end = lend_button(row["code"], "", lang) if back else html.Span()
        rows.append(_unit_row(row, lang=lang, meta=meta, end=end))
    for row in free:
        end = lend_button(row["code"], district or "", lang) if lender and district else html.Span()
        shown = {**row, "status": "available"}
        far = f" · {row['metres'] / 1000:.1f} km"
        rows.append(_unit_row(shown, lang=lang, meta=far, end=end))
    if district is not None and not lent and not free:
        rows.append(html.Div(t("board.reserve_none", lang), className="os-empty"))
    return html.Div(rows, className="os-reserve")


UNIT_LEND = "os-unit-lend"


def lend_button(code: str, to: str, lang: str) -> html.Button:
    """Lend unit `code` to district `to`, or take it back (`to` empty)."""
    action = "lend" if to else "back"
    return html.Button(
        t(f"unit.do.{action}", lang),
        id={"type": UNIT_LEND, "unit": code, "to": to},
        className=f"os-action os-unit-do-{action}",
        n_clicks=0,
    )
