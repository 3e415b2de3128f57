"""`Link: rel=preload` on page documents: what a page's map fetches first (its boundaries, its
device clusters) starts downloading with the page's scripts, not after they have run and the
layout has arrived (~1.5 s later on a fresh browser). A page declares its URLs with
`dash.register_page(..., preload=fn)`: fn(**path variables and query) → URLs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cache

import dash
from flask import Flask, Response, request

from data.errors import READ_ERRORS, report_failure

log = logging.getLogger(__name__)

MAX_PRELOADS = 6
# what a declared preload may name: this site's paths only, nothing a header could be split by
_SAFE_URL = re.compile(r"^/[A-Za-z0-9/_.\-?=&%]*$")


@cache
def _pattern(path_template: str) -> re.Pattern[str]:
    """A Dash path template ("/district/<adcode>") as a regular expression."""
    parts = re.split(r"<([A-Za-z_][A-Za-z0-9_]*)>", path_template)
    pattern = "".join(
        re.escape(part) if k % 2 == 0 else f"(?P<{part}>[^/]+)" for k, part in enumerate(parts)
    )
    return re.compile(f"^{pattern}$")


def page_preloads(path: str, query: dict[str, str]) -> list[str]:
    """The URLs the page at `path` declares worth fetching at once (none for most pages)."""
    for page in dash.page_registry.values():
        preload: Callable[..., list[str]] | None = page.get("preload")
        template = page.get("path_template")
        if preload is None or not template:
            continue
        found = _pattern(template).match(path)
        if found:
            urls = preload(**{**query, **found.groupdict()})
            return [url for url in urls if _SAFE_URL.match(url)][:MAX_PRELOADS]
    return []


def register_preloads(server: Flask) -> None:
    """Announce each page document's declared first fetches in a Link header."""

    @server.after_request
    def _announce(response: Response) -> Response:
        if request.method != "GET" or response.status_code != 200:
            return response
        if response.mimetype != "text/html":
            return response
        try:
            urls = page_preloads(request.path, request.args.to_dict())
        except READ_ERRORS as exc:
            # the page itself will say the store is out; the header is only a head start
            report_failure(log, "page preloads unavailable", exc)
            return response
        if urls:
            response.headers["Link"] = ", ".join(
                f"<{url}>; rel=preload; as=fetch; crossorigin" for url in urls
            )
        return response
