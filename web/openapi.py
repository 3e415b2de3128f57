"""The OpenAPI 3.1 description of the ingest API, served at /api/v1/openapi.json."""

from __future__ import annotations

from ingest.validate import _MESSAGES

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

_READING = {
    "type": "object",
    "description": "One reading. Name the device by device_id or device_code.",
    "required": ["ts", "value"],
    "properties": {
        "device_id": {"type": "integer", "minimum": 1, "description": "OneScreen device id"},
        "device_code": {"type": "string", "description": "the device's code, instead of its id"},
        "ts": {
            "type": "string",
            "format": "date-time",
            "description": "when it was measured, ISO-8601 with a zone (Z or +08:00); at most "
            "ONESCREEN_INGEST_MAX_FUTURE_SECONDS ahead, not older than the retention",
        },
        "value": {
            "type": "number",
            "description": "in the type's unit; within the type's plausible range; 0 or 1 for "
            "binary devices",
        },
        "quality": {
            "oneOf": [
                {"type": "integer", "enum": [0, 1, 2]},
                {"type": "string", "enum": ["good", "suspect", "bad"]},
            ],
            "default": 0,
        },
    },
}

_RESULT = {
    "type": "object",
    "required": ["total", "stored", "duplicate", "rejected", "status", "errors"],
    "properties": {
        "total": {"type": "integer"},
        "stored": {"type": "integer", "description": "rows new to the store"},
        "duplicate": {
            "type": "integer",
            "description": "rows already stored (same device and ts): accepted, stored once",
        },
        "rejected": {"type": "integer"},
        "status": {
            "type": "array",
            "description": "one entry per row of the request, in order",
            "items": {"type": "string", "enum": ["stored", "duplicate", "rejected"]},
        },
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "code", "message"],
                "properties": {
                    "index": {"type": "integer", "description": "row position in the request"},
                    "code": {"type": "string", "enum": sorted(_MESSAGES)},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_RESULT_REF = {"$ref": "#/components/schemas/IngestResult"}


def _readings_path() -> dict:
    """POST /api/v1/readings."""
    batch = {
        "type": "object",
        "required": ["readings"],
        "properties": {
            "readings": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10000,
                "items": {"$ref": "#/components/schemas/Reading"},
            }
        },
    }
    return {
        "post": {
            "summary": "Store a batch of readings",
            "operationId": "postReadings",
            "requestBody": {"required": True, "content": {"application/json": {"schema": batch}}},
            "responses": {
                "200": _json(_RESULT_REF, "every row stored (or already stored)"),
                "207": _json(_RESULT_REF, "some rows rejected: see status and errors"),
                "400": _json(_ERROR_REF, "not JSON, not a batch, empty"),
                "401": _json(_ERROR_REF, "missing, unknown or revoked token"),
                "413": _json(_ERROR_REF, "too many rows or bytes"),
                "415": _json(_ERROR_REF, "not application/json"),
                "422": _json(_RESULT_REF, "every row rejected: see errors"),
                "503": _json(_ERROR_REF, "store unavailable: nothing stored, send again"),
            },
        }
    }


def _probe_path(summary: str, operation: str, ok: str, failed: str) -> dict:
    """A public GET probe: 200 `ok`, 503 `failed`."""
    return {
        "get": {
            "summary": summary,
            "operationId": operation,
            "security": [],
            "responses": {"200": {"description": ok}, "503": _json(_ERROR_REF, failed)},
        }
    }


def openapi_document() -> dict:
    """The whole description."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OneScreen ingest API",
            "version": "1.0.0",
            "description": "Devices and department systems push readings here. Idempotent: a "
            "reading sent again (same device and ts) is stored once. The same JSON body may be "
            "published over MQTT (QoS 1) to <prefix>/<login>/telemetry, logged in with the "
            "token's MQTT login (`tokens list`) and the token as password.",
        },
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token bound to one device, to categories × districts, or "
                    "city-wide (`python cli.py tokens create --source NAME --device ID | "
                    "--category C --district D | --all`); rows outside it are refused",
                }
            },
            "schemas": {"Reading": _READING, "IngestResult": _RESULT, "Error": _ERROR},
        },
        "security": [{"token": []}],
        "paths": {
            "/api/v1/readings": _readings_path(),
            "/api/v1/health": _probe_path(
                "Ingest health: newest reading, dead letters of the last hour",
                "getHealth",
                "healthy",
                "the database did not answer in time, or failed",
            ),
            "/api/v1/ready": _probe_path(
                "Readiness: the database answers a trivial query in time",
                "getReady",
                "ready",
                "not ready, with the reason",
            ),
        },
    }
