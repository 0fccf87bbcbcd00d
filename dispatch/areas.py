"""Area look-ups for the API: GeoJSON features and locate with names filled in."""

from __future__ import annotations

from typing import Any

import shapely
from flask import current_app
from sqlalchemy.orm import Session

from dispatch.errors import ApiError, bad_field
from grids import LEVELS
from grids.geometry import to_wgs84
from grids.index import Location, OutsideManagedArea
from grids.store import Area, IndexCache


def index_cache() -> IndexCache:
    return current_app.extensions["griddispatch.index"]


def area_feature(area: Area, *, chain: dict[str, Any] | None = None) -> dict[str, Any]:
    """One area as a GeoJSON Feature (geometry in WGS84), with its named chain if given."""
    properties: dict[str, Any] = {
        "code": area.code,
        "name": area.name,
        "level": area.level,
        "parent_code": area.parent_code,
        "properties": area.properties or {},
    }
    if chain is not None:
        properties["chain"] = chain
    return {
        "type": "Feature",
        "id": area.code,
        "geometry": shapely.geometry.mapping(area.geometry),
        "properties": properties,
        "bbox": [area.min_lon, area.min_lat, area.max_lon, area.max_lat],
    }


def chain_with_names(chain: dict[str, str | None]) -> dict[str, dict[str, str] | None]:
    """`{level: {"code", "name"} | None}` for every level, unit up to district."""
    names = index_cache().names
    return {
        level: ({"code": chain[level], "name": names.get(chain[level], chain[level])}
                if chain.get(level) else None)
        for level in reversed(LEVELS)
    }


def locate_point(
    db_session: Session, lon: float, lat: float, *, crs: str | None, tolerance_m: float
) -> dict[str, Any]:
    """Locate a point given in any accepted CRS; 422 when it is outside the managed area."""
    try:
        wgs_lon, wgs_lat = to_wgs84(lon, lat, crs)
    except ValueError as exc:
        field = "crs" if "crs" in str(exc).lower() else ("lon" if "lon" in str(exc) else "lat")
        raise bad_field(field, str(exc)) from None
    index = index_cache().get(db_session)
    try:
        location: Location = index.locate(float(wgs_lon), float(wgs_lat), tolerance_m=tolerance_m)
    except OutsideManagedArea as exc:
        raise ApiError(
            422,
            "outside_managed_area",
            str(exc),
            {
                "lon": float(wgs_lon),
                "lat": float(wgs_lat),
                "nearest_distance_m": exc.nearest_distance_m,
                "tolerance_m": tolerance_m,
            },
        ) from None
    return {
        "input": {"lon": lon, "lat": lat, "crs": (crs or "wgs84").lower()},
        "lon": location.lon,
        "lat": location.lat,
        "method": location.method,
        "distance_m": round(location.distance_m, 2),
        "chain": chain_with_names(location.chain),
    }
