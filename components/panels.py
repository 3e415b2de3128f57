"""Panel frames, loading placeholders and the guard that keeps one panel's failure its own."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from dash import ctx, dcc, html
from dash.exceptions import PreventUpdate
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from components import ids
from components.live import badge
from data.checks import InvalidQuery
from data.errors import DatabaseUnavailable, OneScreenError

log = logging.getLogger(__name__)

PANEL_ERRORS = (OneScreenError, SQLAlchemyError, InvalidQuery, ValueError, KeyError)


def skeleton(class_name: str = "os-skel-block") -> html.Div:
    """A shimmering placeholder shown until a panel's first content arrives."""
    return html.Div(className=f"os-skel {class_name}")


def panel(
    title: str,
    body: Any,
    *,
    class_name: str = "",
    extra: Any = None,
    fresh: str | None = None,
    asof: dict | None = None,
) -> html.Section:
    """A titled panel frame; `fresh` names its as-of store and badge (`asof`: initial data)."""
    side = extra if extra is not None else html.Span()
    if fresh is not None:
        side = html.Div(className="os-panel-side", children=[side, badge(fresh, asof)])
    return html.Section(
        className=f"os-panel {class_name}".strip(),
        children=[
            html.Header(
                className="os-panel-head",
                children=[html.H2(title, className="os-panel-title"), side],
            ),
            html.Div(className="os-panel-body", children=body),
        ],
    )


def unavailable(message: str) -> html.Div:
    """What a panel shows when its data cannot be read."""
    return html.Div(message, className="os-unavailable", role="status")


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def report_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed read: one line when the database is down, the traceback otherwise."""
    if _database_down(exc):
        logger.warning("%s: database unavailable: %s", what, _first_line(exc))
    else:
        logger.error("%s", what, exc_info=exc)


def guard(fallback: Callable[[str], Any]) -> Callable:
    """Wrap a callback whose last argument is the page language.

    A failed refresh keeps the panel's last good content (PreventUpdate); a failed first load or
    filter change shows `fallback(lang)` in this panel only. Either way the error is logged once.
    """

    def decorate(callback: Callable) -> Callable:
        @functools.wraps(callback)
        def wrapped(*args: Any) -> Any:
            try:
                return callback(*args)
            except PreventUpdate:
                raise
            except PANEL_ERRORS as exc:
                # an outage is an operational state, not a bug: one line per failed read
                report_failure(log, f"panel {callback.__name__} failed", exc)
                if ctx.triggered_id == ids.REFRESH:
                    raise PreventUpdate from None
                lang = args[-1] if args and args[-1] in ("zh", "en") else "zh"
                return fallback(lang)

        return wrapped

    return decorate


# plotly.js is ~4.8 MB of script: parsing it competes with the map for the main thread, so a
# page's charts mount only after this delay (the map is the primary panel)
CHART_DEFER_MS = 1200


def deferred_chart_box(box_id: str, defer_id: str, placeholder: Any) -> html.Div:
    """A chart container showing `placeholder` until its callback fills it after the defer."""
    return html.Div(
        className="os-chart-box",
        children=[
            dcc.Interval(id=defer_id, interval=CHART_DEFER_MS, max_intervals=1),
            html.Div(id=box_id, className="os-chart-slot", children=placeholder),
        ],
    )


def chart(graph_id: str, figure: Any) -> dcc.Graph:
    """A themed, responsive graph without the mode bar."""
    return dcc.Graph(
        id=graph_id,
        figure=figure,
        config={"displayModeBar": False, "responsive": True},
        className="os-graph",
    )
