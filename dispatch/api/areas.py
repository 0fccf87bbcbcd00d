"""Areas of the tree as GeoJSON, and locate."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request

from dispatch.api.openapi import CRS, op, path_param, query
from dispatch.api.params import IntParam, bbox_arg, float_arg
from dispatch.app import session
from dispatch.areas import area_feature, chain_with_names, index_cache, locate_point
from dispatch.errors import ApiError, bad_field
from grids import LEVELS
from grids.store import areas_by_code, query_areas

bp = Blueprint("areas", __name__)


LIMIT = IntParam("limit", 100, 1, 5000, "Page size.")
OFFSET = IntParam("offset", 0, 0, 10**9, "Page start.")


@bp.get("/areas")
def list_areas():
    level = request.args.get("level") or None
    if level and level not in LEVELS:
        raise bad_field("level", f"must be one of {', '.join(LEVELS)}", value=level)
    limit = LIMIT.read()
    offset = OFFSET.read()
    parent = request.args.get("parent") or None
    name = request.args.get("q") or None
    if name and len(name) > 100:
        raise bad_field("q", "is too long (at most 100 characters)")
    areas, total = query_areas(
        session(), level=level, parent=parent, bbox=bbox_arg(), name_contains=name,
        limit=limit, offset=offset,
    )
    body = {
        "type": "FeatureCollection",
        "features": [area_feature(a) for a in areas],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next": None,
    }
    if offset + limit < total:
        # The caller's own parameters as they came (url_for would read some names, such as
        # `endpoint` or `_external`, as its own), the page moved on.
        kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("offset", "limit")]
        body["next"] = f"{request.path}?{urlencode([*kept, ('limit', limit), ('offset', offset + limit)])}"
    return jsonify(body)


@bp.get("/areas/<code>")
def get_area(code: str):
    db = session()
    area = areas_by_code(db, [code]).get(code)
    if area is None:
        raise ApiError(404, "area_not_found", f"no area with code {code!r}", {"code": code})
    chain = chain_with_names(index_cache().get(db).chain_of(code))
    return jsonify(area_feature(area, chain=chain))


@bp.get("/locate")
def locate():
    lon, lat = float_arg("lon"), float_arg("lat")
    crs = request.args.get("crs") or None
    tolerance = current_app.config["LOCATE_TOLERANCE_M"]
    return jsonify(locate_point(session(), lon, lat, crs=crs, tolerance_m=tolerance))


PATHS = {
    "/areas": {"get": op(
        "Areas of the tree as a GeoJSON FeatureCollection, paginated", "listAreas",
        params=[
            query("level", {"type": "string", "enum": list(LEVELS)}, "Only areas of this level."),
            query("parent", {"type": "string"}, "Only children of this area code."),
            query("q", {"type": "string", "maxLength": 100}, "Only areas whose name contains this text."),
            query("bbox", {"type": "string", "example": "118.77,32.02,118.79,32.04"},
                  "min_lon,min_lat,max_lon,max_lat (WGS84); areas whose bounding box overlaps it."),
            LIMIT.documented(),
            OFFSET.documented(),
        ],
        ok=("200", {"$ref": "#/components/schemas/AreaCollection"}),
        errors={"400": "a bad filter, named in details.field"}, auth=False)},
    "/areas/{code}": {"get": op(
        "One area with its chain of ancestors", "getArea", params=[path_param("code")],
        ok=("200", {"$ref": "#/components/schemas/AreaFeature"}),
        errors={"404": "no such code"}, auth=False)},
    "/locate": {"get": op(
        "Unit, building, grid, community, street and district of a point", "locate",
        params=[
            query("lon", {"type": "number"}, "Longitude.", required=True),
            query("lat", {"type": "number"}, "Latitude.", required=True),
            query("crs", CRS,
                  "Datum of the point: gcj02 for AMap/Tencent, bd09 for Baidu."),
        ],
        ok=("200", {"$ref": "#/components/schemas/Location"}),
        errors={"400": "bad lon, lat or crs", "422": "outside the managed area (farther than the tolerance)"},
        auth=False)},
}
