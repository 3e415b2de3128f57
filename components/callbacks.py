"""Callbacks declared where their components are, registered on each app `create_app()` builds.

Dash hands callbacks registered with `dash.callback` at import to the first app of the process
only; modules other than pages are imported once, so theirs are declared on a `CallbackSet` and
`create_app()` registers every set on its own app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dash import Dash


class CallbackSet:
    """Server and browser callbacks of one module, to register on any number of apps."""

    def __init__(self) -> None:
        self._server: list[tuple[tuple, dict, Callable]] = []
        self._browser: list[tuple[str, tuple, dict]] = []

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[Callable], Callable]:
        """Declare a server callback (the arguments of `dash.callback`)."""

        def declare(function: Callable) -> Callable:
            self._server.append((args, kwargs, function))
            return function

        return declare

    def clientside(self, script: str, *args: Any, **kwargs: Any) -> None:
        """Declare a browser-side callback (the arguments of `dash.clientside_callback`)."""
        self._browser.append((script, args, kwargs))

    def register(self, app: Dash) -> None:
        """Register every declared callback on `app`."""
        for args, kwargs, function in self._server:
            app.callback(*args, **kwargs)(function)
        for script, args, kwargs in self._browser:
            app.clientside_callback(script, *args, **kwargs)
