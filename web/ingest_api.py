"""The ingest HTTP API: `POST /api/v1/readings`, its OpenAPI description, health and readiness."""

from __future__ import annotations

import logging
import threading

import psycopg
from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from data.errors import OneScreenError
from ingest.service import Ingestor
from ingest.validate import BadRequest
from web.health import register_health_routes
from web.limits import BodyTooLarge, limit_for, read_body
from web.openapi import openapi_document
from web.services import services

log = logging.getLogger(__name__)

_lock = threading.Lock()


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers)
    return response


def _ingestor(app: Flask) -> Ingestor:
    """One Ingestor per app, made at the first request (nothing touches the database at import)."""
    with _lock:
        ingestor = app.extensions.get("onescreen_ingestor")
        if ingestor is None:
            settings = services().settings
            ingestor = Ingestor(
                services().engine,
                max_rows=settings.ingest_max_rows,
                max_future_s=settings.ingest_max_future_seconds,
                retention_days=settings.reading_retention_days,
                topic_prefix=settings.mqtt_topic_prefix,
                redis=services().redis,
            )
            app.extensions["onescreen_ingestor"] = ingestor
        return ingestor


def register_ingest_routes(app: Flask) -> None:
    """Add the ingest API to the Flask server under /api/v1."""
    app.add_url_rule("/api/v1/readings", view_func=post_readings, methods=["POST"])
    app.add_url_rule("/api/v1/openapi.json", view_func=openapi, methods=["GET"])
    register_health_routes(app)
    app.register_error_handler(405, method_not_allowed)


def post_readings() -> Response:
    """POST /api/v1/readings: store a batch; 200 when every row was stored, 207 some, 422 none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(
            401,
            "unauthorized",
            "send a source or device token as 'Authorization: Bearer <token>'",
            **{"WWW-Authenticate": 'Bearer realm="onescreen"'},
        )
    mimetype = request.mimetype or ""
    if mimetype != "application/json":
        return _error(
            415, "unsupported_media_type", "send the batch as Content-Type: application/json"
        )
    # the same limit the body-limit middleware and the reverse proxy enforce: this route's
    limit = limit_for(services().settings.body_limits(), request.path)
    if request.content_length is not None and request.content_length > limit:
        return _too_large(limit)
    try:
        return _store_batch(_ingestor(current_app), token=token.strip(), limit=limit)
    except Exception as exc:
        return _ingest_failure(exc)


def _store_batch(ingestor: Ingestor, *, token: str, limit: int) -> Response:
    """Authenticate the token, read the body and store its rows; the answer says what happened."""
    principal = ingestor.authenticate(token)
    if principal is None:
        return _error(
            401,
            "invalid_token",
            "the token is unknown or revoked",
            **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    # read while counting: a chunked body is refused as soon as it passes the limit
    body = read_body(limit)
    result = ingestor.ingest_body(body, principal=principal)
    if result.rejected == 0:
        status = 200
    elif result.rejected == result.total:
        status = 422
    else:
        status = 207
    response = jsonify(result.as_dict())
    response.status_code = status
    return response


def _ingest_failure(exc: Exception) -> Response:
    """The answer to a batch that raised: 400/413 for the request, 503 when the store is away."""
    if isinstance(exc, BadRequest):
        return _error(413 if exc.code == "too_many_rows" else 400, exc.code, exc.message)
    if isinstance(exc, BodyTooLarge):
        return _too_large(exc.limit)
    if isinstance(exc, DBAPIError):
        if not exc.connection_invalidated and not isinstance(exc.orig, psycopg.OperationalError):
            log.exception("ingest failed")
            return _error(500, "internal", "internal error; nothing was stored")
        log.warning("ingest unavailable: %s", str(exc).splitlines()[0])
        return _unavailable()
    if isinstance(exc, SQLAlchemyError | OneScreenError | psycopg.OperationalError):
        # nothing was committed (a statement or lock timeout on the raw COPY path too): the
        # client must send the batch again
        log.warning("ingest unavailable: %s", str(exc).splitlines()[0])
        return _unavailable()
    log.exception("ingest failed")
    return _error(500, "internal", "internal error; nothing was stored")


def _too_large(limit: int) -> Response:
    """413: the body is over this route's limit."""
    return _error(413, "too_large", f"the body is over {limit} bytes; send smaller batches")


def _unavailable() -> Response:
    """503: nothing was stored and the batch may be sent again."""
    return _error(
        503,
        "unavailable",
        "the store is unavailable; nothing was stored, send the batch again",
        **{"Retry-After": "5"},
    )


def openapi() -> Response:
    """GET /api/v1/openapi.json: the API's OpenAPI description."""
    return jsonify(openapi_document())


def method_not_allowed(_error_: Exception) -> Response:
    """405 as JSON under /api/, as plain text elsewhere."""
    if request.path.startswith("/api/"):
        return _error(405, "method_not_allowed", f"{request.method} is not allowed here")
    return Response("method not allowed", status=405)
