"""The OpenAPI 3.1 document for /api/v1. A test checks it names every route that exists."""

from __future__ import annotations

import copy
from typing import Any

from flask import current_app

from grids import LEVELS
from grids.geometry import CRS_NAMES

ERROR = {"$ref": "#/components/schemas/Error"}
# A point's datum, as `grids.geometry.to_wgs84` takes it (in any mix of capitals).
CRS = {"type": "string", "enum": list(CRS_NAMES), "default": "wgs84",
       "description": "gcj02 for AMap/Tencent, bd09 for Baidu; case does not matter"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ERROR, description)


def query(name: str, schema: dict[str, Any], description: str, required: bool = False):
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def path_param(name: str, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}


def op(summary: str, operation_id: str, *, params: list | None = None,
       body: dict[str, Any] | None = None, ok: tuple[str, dict[str, Any]] = ("200", {"type": "object"}),
       errors: dict[str, str] | None = None, auth: bool | str = True, csv: bool = False) -> dict[str, Any]:
    """One operation: its parameters, JSON body, success and error answers.

    `auth` is True (a token is needed), False (none is read) or "optional" (anyone, but a
    token that is sent must be valid, and it may narrow what is allowed). With `csv` the
    success answer can also be CSV (`format=csv`)."""
    status, schema = ok
    responses = {status: {"description": "done; no body"} if status == "204" else _json(schema, "success")}
    if csv:
        responses[status]["content"]["text/csv"] = {"schema": {"type": "string"}}
    for code, description in (errors or {}).items():
        responses[code] = _error(description)
    # Any operation: text no field can hold (a NUL, a lone surrogate), in a parameter too.
    responses.setdefault("400", _error("a bad parameter or field, named in details.field"))
    if auth:
        responses.setdefault("401", _error("missing, unknown, expired or revoked token" if auth is True
                                           else "a token was sent, but it is unknown, expired or revoked"))
    operation: dict[str, Any] = {"summary": summary, "operationId": operation_id,
                                 "parameters": params or [], "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": _required_not_empty(body)}}}
    if auth:
        operation["security"] = [{"bearer": []}] if auth is True else [{}, {"bearer": []}]
    return operation


def _required_not_empty(body: dict[str, Any]) -> dict[str, Any]:
    """The body schema with minLength 1 on its required text fields: the server takes an
    empty one as a missing one. A copy, since bodies share their properties (a POST's and
    the PATCH's, where nothing is required)."""
    body = copy.deepcopy(body)
    shape = body["items"] if body.get("type") == "array" else body
    for name in shape.get("required", ()):
        field = shape["properties"][name]
        if field.get("type") == "string" and "enum" not in field:
            field.setdefault("minLength", 1)
    return body


def openapi_document() -> dict[str, Any]:
    """The whole document, gathered from each API module's PATHS."""
    from dispatch import api

    paths: dict[str, Any] = {}
    for module in api.modules():
        for path, operations in module.PATHS.items():
            paths.setdefault(path, {}).update(operations)
    if current_app.config.get("TEST_CLOCK"):  # documented only where the route exists
        from dispatch.api import testclock

        paths.update(testclock.PATHS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "griddispatch API",
            "version": "1",
            "description": "Urban grid management dispatch (网格化管理调度). Coordinates out are WGS84. "
                           "Errors are {\"error\": {\"code\", \"message\", \"details\"}}.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


AREA_REF = {"type": ["object", "null"], "properties": {"code": {"type": "string"},
                                                      "name": {"type": "string"}}}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string", "description": "English, for people"},
            "details": {"type": "object", "description": "for invalid_field: `field`, and on incident "
                        "actions `reason` (required, invalid, too_long, unknown, crew_off_duty, "
                        "already_dispatched, same_grid, not_a_grid, same_incident, original_ended, "
                        "out_of_range) for a client to put in its own words"}}}},
    },
    "AreaFeature": {
        "type": "object",
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": "string"},
            "geometry": {"type": "object", "description": "GeoJSON Polygon or MultiPolygon, WGS84"},
            "bbox": {"type": "array", "items": {"type": "number"}},
            "properties": {"type": "object", "properties": {
                "code": {"type": "string"}, "name": {"type": "string"},
                "level": {"type": "string", "enum": list(LEVELS)},
                "parent_code": {"type": ["string", "null"]},
                "properties": {"type": "object"},
                "chain": {"type": "object", "additionalProperties": AREA_REF}}},
        },
    },
    "AreaCollection": {
        "type": "object",
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": {"type": "array", "items": {"$ref": "#/components/schemas/AreaFeature"}},
            "total": {"type": "integer"}, "limit": {"type": "integer"},
            "offset": {"type": "integer"}, "next": {"type": ["string", "null"]},
        },
    },
    "Location": {
        "type": "object",
        "properties": {
            "input": {"type": "object"},
            "lon": {"type": "number"}, "lat": {"type": "number"},
            "method": {"type": "string", "enum": ["unit", "building", "grid", "snapped"]},
            "distance_m": {"type": "number", "description": "metres to the grid when snapped"},
            "chain": {"type": "object", "properties": {level: AREA_REF for level in LEVELS}},
        },
    },
}
SCHEMAS["Incident"] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "public_id": {"type": "string"}, "category": {"type": "string"},
        "status": {"type": "string"}, "version": {"type": "integer"},
        "priority": {"type": "string"}, "sla_state": {"type": "string"},
        "escalation_level": {"type": "integer"},
        "areas": {"type": "object", "additionalProperties": AREA_REF},
        "reporter": {"type": "object", "description": "phone masked except for the assigned manager, operators, admins"},
        "manager": {"type": ["object", "null"]}, "crew": {"type": ["object", "null"]},
        "times": {"type": "object"}, "deadlines": {"type": "object"},
        "paused": {"type": ["object", "null"], "description": "{since, reason} while the clocks stand still"},
        "tracking_token": {"type": "string", "description": "only in the answer to the report"},
    },
}

