"""Request body limits per route, enforced while the body streams in, before anything parses it.

`install_body_limits` wraps the Flask app's WSGI callable (create_app does it) with the one table
of `Settings.body_limits()` that the reverse proxy enforces too. A declared Content-Length over
the route's limit is refused at once, unread; a body of unknown length (chunked) is read through
a counting stream that refuses it as soon as it passes the limit — never buffered whole. The
refusal is a 413 (JSON under /api/, plain text elsewhere) and the connection is closed, so the
server does not read the rest of the body either.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

READ_CHUNK = 64 * 1024
TOO_LARGE = "413 Content Too Large"


class BodyTooLarge(RequestEntityTooLarge):
    """The request body passed its route's limit (a 413 wherever it surfaces)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit} bytes")
        self.limit = limit


def limit_for(limits: Mapping[str, int], path: str) -> int:
    """The limit of the longest route prefix in `limits` that `path` starts with ("" = the rest)."""
    prefix = max((p for p in limits if path.startswith(p)), key=len)
    return limits[prefix]


class CountingStream:
    """A request body read through a byte count: reading past `limit` raises BodyTooLarge, and
    no read ever asks the server for more than one byte past the limit."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self.limit = limit
        self.count = 0
        self.exceeded = False
        self.finished = False

    def _allowance(self, size: int | None) -> int:
        room = self.limit - self.count + 1  # one byte more tells "at the limit" from "over it"
        return room if size is None or size < 0 else min(size, room)

    def _counted(self, data: bytes, asked: int) -> bytes:
        self.count += len(data)
        if self.count > self.limit:
            self.exceeded = True
            raise BodyTooLarge(self.limit)
        if asked > 0 and not data:
            self.finished = True
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative), within the limit."""
        if self.exceeded:
            raise BodyTooLarge(self.limit)
        if size is not None and size >= 0:
            asked = self._allowance(size)
            return self._counted(self._inner.read(asked), asked) if asked else b""
        parts = []
        while not self.finished:
            parts.append(self.read(READ_CHUNK))
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, within the limit."""
        if self.exceeded:
            raise BodyTooLarge(self.limit)
        asked = self._allowance(size)
        return self._counted(self._inner.readline(asked), asked) if asked else b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        """The remaining lines, within the limit."""
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def drain(self) -> None:
        """Read and drop what the application left unread, up to the limit (then it raises)."""
        while not self.finished:
            self.read(READ_CHUNK)

    def close(self) -> None:
        """Nothing to release: the server owns the underlying stream."""


def read_body(limit: int) -> bytes:
    """The current request's body, refused with BodyTooLarge as soon as it passes `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    return CountingStream(request.stream, limit).read()


def refusal(path: str, limit: int) -> tuple[list[tuple[str, str]], bytes]:
    """The 413's headers and body: JSON under /api/, a short plain text elsewhere."""
    if path.startswith("/api/"):
        message = f"the request body is over {limit} bytes; send less"
        body = json.dumps({"error": {"code": "too_large", "message": message}}).encode()
        content_type = "application/json"
    else:
        body = f"request body too large (over {limit} bytes) / 请求内容过大\n".encode()
        content_type = "text/plain; charset=utf-8"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        # the rest of the body is never read: this connection cannot carry another request
        ("Connection", "close"),
    ]
    return headers, body


class _Refused:
    """A 413 body that closes the connection once sent: gunicorn ignores the application's
    `Connection: close` and would read and drop the rest of the refused body to keep the
    connection alive, for as long as the client sends."""

    def __init__(self, body: bytes, environ: dict[str, Any]) -> None:
        self._body = body
        self._socket = environ.get("gunicorn.socket")

    def __iter__(self) -> Iterator[bytes]:
        yield self._body

    def close(self) -> None:
        """Close the client's connection (the answer is sent): the unread body makes it a reset,
        and gunicorn, finding the socket closed, drops the connection instead of reading on."""
        if isinstance(self._socket, socket.socket):
            # a shutdown alone left the socket to gunicorn, which kept it open: the client then
            # stalled on a full window for a minute instead of hearing at once
            self._socket.close()


class BodyLimits:
    """WSGI middleware that refuses request bodies over their route's limit with a 413."""

    def __init__(self, app: WsgiApp, limits: Mapping[str, int]) -> None:
        if "" not in limits:
            raise ValueError("body limits need a default entry (the empty prefix)")
        self._app = app
        self._limits = dict(limits)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Refuse an over-limit body, count one of unknown length, pass the rest through."""
        path = environ.get("PATH_INFO") or "/"
        limit = limit_for(self._limits, path)
        declared = _declared_length(environ)
        if declared is not None and declared > limit:
            return self._refuse(environ, start_response, path, limit)
        if declared is not None or not environ.get("HTTP_TRANSFER_ENCODING"):
            return self._app(environ, start_response)
        return self._counted(environ, start_response, path, limit)

    def _counted(
        self, environ: dict[str, Any], start_response: StartResponse, path: str, limit: int
    ) -> Iterable[bytes]:
        """Serve a body of unknown length through a counting stream; 413 once it passes the
        limit, whatever the application made of the exception."""
        stream = environ["wsgi.input"] = CountingStream(environ["wsgi.input"], limit)
        started: list[bool] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            with contextlib.suppress(BodyTooLarge):
                stream.drain()  # what the application left unread, before the answer starts
            started.append(True)
            if stream.exceeded:
                return start_response(TOO_LARGE, refusal(path, limit)[0])
            return start_response(status, headers, exc_info)

        try:
            answer = self._app(environ, start)
        except BodyTooLarge:
            answer = []
        if not stream.exceeded:
            return answer
        if hasattr(answer, "close"):
            answer.close()
        if not started:
            start_response(TOO_LARGE, refusal(path, limit)[0])
        return _Refused(refusal(path, limit)[1], environ)

    @staticmethod
    def _refuse(
        environ: dict[str, Any], start_response: StartResponse, path: str, limit: int
    ) -> Iterable[bytes]:
        headers, body = refusal(path, limit)
        start_response(TOO_LARGE, headers)
        return _Refused(body, environ)


def _declared_length(environ: dict[str, Any]) -> int | None:
    """The declared Content-Length, None when absent (a malformed one is the server's to refuse,
    and Werkzeug then reads nothing)."""
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def install_body_limits(server: Flask, limits: Mapping[str, int]) -> None:
    """Put the body limits in front of everything the Flask server does."""
    server.wsgi_app = BodyLimits(server.wsgi_app, limits)  # type: ignore[method-assign]
