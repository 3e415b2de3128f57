"""The failure guard every live panel shares: one panel's failure stays its own."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from dash import ctx
from dash.exceptions import PreventUpdate

from components import ids
from data.errors import READ_ERRORS, report_failure

log = logging.getLogger(__name__)


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
            except READ_ERRORS as exc:
                # an outage is an operational state, not a bug: one line per failed read
                report_failure(log, f"panel {callback.__name__} failed", exc)
                if ctx.triggered_id == ids.REFRESH:
                    raise PreventUpdate from None
                lang = args[-1] if args and args[-1] in ("zh", "en") else "zh"
                return fallback(lang)

        return wrapped

    return decorate
