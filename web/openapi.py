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


def openapi_document() -> dict:
    """The whole description."""
    error = {"$ref": "#/components/schemas/Error"}
    result = {"$ref": "#/components/schemas/IngestResult"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OneScreen ingest API",
            "version": "1.0.0",
            "description": "Devices and department systems push readings here. Idempotent: a "
            "reading sent again (same device and ts) is stored once. The same JSON body may be "
            "published over MQTT (QoS 1) to <prefix>/<source>/telemetry.",
        },
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a source token (any device) or a device token "
                    "(`python cli.py tokens create --source NAME [--device ID]`)",
                }
            },
            "schemas": {"Reading": _READING, "IngestResult": _RESULT, "Error": _ERROR},
        },
        "security": [{"token": []}],
        "paths": {
            "/api/v1/readings": {
                "post": {
                    "summary": "Store a batch of readings",
                    "operationId": "postReadings",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
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
                            }
                        },
                    },
                    "responses": {
                        "200": _json(result, "every row stored (or already stored)"),
                        "207": _json(result, "some rows rejected: see status and errors"),
                        "400": _json(error, "not JSON, not a batch, empty"),
                        "401": _json(error, "missing, unknown or revoked token"),
                        "413": _json(error, "too many rows or bytes"),
                        "415": _json(error, "not application/json"),
                        "422": _json(result, "every row rejected: see errors"),
                        "503": _json(error, "store unavailable: nothing stored, send again"),
                    },
                }
            },
            "/api/v1/health": {
                "get": {
                    "summary": "Ingest health: newest reading, dead letters of the last hour",
                    "operationId": "getHealth",
                    "security": [],
                    "responses": {
                        "200": {"description": "healthy"},
                        "503": _json(error, "the database did not answer in time, or failed"),
                    },
                }
            },
            "/api/v1/ready": {
                "get": {
                    "summary": "Readiness: the database answers a trivial query in time",
                    "operationId": "getReady",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready"},
                        "503": _json(error, "not ready, with the reason"),
                    },
                }
            },
        },
    }
