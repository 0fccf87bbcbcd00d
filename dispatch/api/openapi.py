"""The OpenAPI 3.1 document for /api/v1. A test checks it names every route that exists."""

from __future__ import annotations

from typing import Any

from grids import LEVELS

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ERROR, description)


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False):
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


AREA_LIST_PARAMS = [
    _query("level", {"type": "string", "enum": list(LEVELS)}, "Only areas of this level."),
    _query("parent", {"type": "string"}, "Only children of this area code."),
    _query("bbox", {"type": "string", "example": "118.77,32.02,118.79,32.04"},
           "min_lon,min_lat,max_lon,max_lat (WGS84); areas whose bounding box overlaps it."),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000, "default": 100}, "Page size."),
    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Page start."),
]

LOCATE_PARAMS = [
    _query("lon", {"type": "number"}, "Longitude.", required=True),
    _query("lat", {"type": "number"}, "Latitude.", required=True),
    _query("crs", {"type": "string", "enum": ["wgs84", "gcj02", "bd09"], "default": "wgs84"},
           "Datum of the point: gcj02 for AMap/Tencent, bd09 for Baidu."),
]


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "griddispatch API",
            "version": "1",
            "description": "Urban grid management dispatch (网格化管理调度). Coordinates out are WGS84.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/health": {"get": {"summary": "Liveness", "operationId": "health",
                                "responses": {"200": _json({"type": "object"}, "ok")}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": _json({"type": "object"}, "OpenAPI")}}},
            "/areas": {"get": {
                "summary": "Areas of the tree as a GeoJSON FeatureCollection, paginated",
                "operationId": "listAreas",
                "parameters": AREA_LIST_PARAMS,
                "responses": {"200": _json({"$ref": "#/components/schemas/AreaCollection"}, "a page"),
                              "400": _error("a bad filter, named in details.field")},
            }},
            "/areas/{code}": {"get": {
                "summary": "One area with its chain of ancestors",
                "operationId": "getArea",
                "parameters": [{"name": "code", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json({"$ref": "#/components/schemas/AreaFeature"}, "the area"),
                              "404": _error("no such code")},
            }},
            "/locate": {"get": {
                "summary": "Unit, building, grid, community, street and district of a point",
                "operationId": "locate",
                "parameters": LOCATE_PARAMS,
                "responses": {"200": _json({"$ref": "#/components/schemas/Location"}, "located"),
                              "400": _error("bad lon, lat or crs"),
                              "422": _error("outside the managed area (farther than the tolerance)")},
            }},
        },
        "components": {"schemas": SCHEMAS},
    }


AREA_REF = {"type": ["object", "null"], "properties": {"code": {"type": "string"},
                                                      "name": {"type": "string"}}}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}},
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
