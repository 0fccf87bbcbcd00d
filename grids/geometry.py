"""Coordinate systems, geometry validation and distances for the area tree.

Pure functions of numbers and shapely geometries. Coordinates are (lon, lat) in degrees;
every function that takes coordinates accepts scalars or numpy arrays and returns the
same shape.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from numpy.typing import ArrayLike
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

# Names accepted by to_wgs84 (case-insensitive); None also means WGS84.
WGS84_NAMES: tuple[str, ...] = ("wgs84", "epsg:4326", "4326")
CRS_NAMES: tuple[str, ...] = (*WGS84_NAMES, "gcj02", "bd09")

POLYGONAL_TYPES: tuple[str, ...] = ("Polygon", "MultiPolygon")

# Krasovsky 1940 ellipsoid, as used by the published GCJ-02 algorithm.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
# BD-09 uses this exact truncated value of pi, so keep it for bit-compatible results.
_BD_X_PI = 3.14159265358979324 * 3000.0 / 180.0

# The inverses are solved by fixed-point iteration; the offsets vary slowly (a few hundred
# metres over a degree), so each step gains about two digits and 1e-7° (~1 cm) takes 3-4.
_INVERSE_TOLERANCE_DEG = 1e-7
_INVERSE_MAX_STEPS = 50

_GEOD = Geod(ellps="WGS84")
# Shortest ground length of one degree anywhere on the ellipsoid (a meridian degree at the
# equator is 110,574 m), rounded down so radii derived from it always over-cover.
_MIN_METRES_PER_DEGREE = 110_000.0


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _shaped(lon: np.ndarray, lat: np.ndarray) -> tuple:
    """Return plain floats for 0-d input so scalar callers get scalars back."""
    if lon.ndim == 0:
        return float(lon), float(lat)
    return lon, lat


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> np.ndarray | bool:
    """Whether GCJ-02 leaves a point unshifted (the published rough China bounding box)."""
    x, y = _arrays(lon, lat)
    outside = (x < 72.004) | (x > 137.8347) | (y < 0.8293) | (y > 55.8271)
    return bool(outside) if outside.ndim == 0 else outside


def _gcj_offset(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 shift in degrees (dlon, dlat) of WGS84 points, zero outside China."""
    dx, dy = x - 105.0, y - 35.0
    px, py = dx * np.pi, dy * np.pi
    waves = (20.0 * np.sin(6.0 * px) + 20.0 * np.sin(2.0 * px)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * dx + 3.0 * dy + 0.2 * dy * dy + 0.1 * dx * dy + 0.2 * np.sqrt(np.abs(dx))
    dlat += waves + (20.0 * np.sin(py) + 40.0 * np.sin(py / 3.0)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(py / 12.0) + 320.0 * np.sin(py / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + dx + 2.0 * dy + 0.1 * dx * dx + 0.1 * dx * dy + 0.1 * np.sqrt(np.abs(dx))
    dlon += waves + (20.0 * np.sin(px) + 40.0 * np.sin(px / 3.0)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(px / 12.0) + 300.0 * np.sin(px / 30.0)) * 2.0 / 3.0

    rad_lat = y / 180.0 * np.pi
    magic = 1 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    outside = out_of_china(x, y)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _wgs84_to_gcj02(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dlon, dlat = _gcj_offset(x, y)
    return x + dlon, y + dlat


def _gcj02_to_bd09(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _invert(forward, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve forward(u, v) == (x, y) by fixed-point iteration, starting from (x, y)."""
    u, v = x.copy(), y.copy()
    for _ in range(_INVERSE_MAX_STEPS):
        fx, fy = forward(u, v)
        ex, ey = fx - x, fy - y
        u, v = u - ex, v - ey
        if np.all(np.maximum(np.abs(ex), np.abs(ey)) < _INVERSE_TOLERANCE_DEG):
            break
    return u, v


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple:
    """WGS84 -> GCJ-02 (AMap, Tencent); identity outside China."""
    return _shaped(*_wgs84_to_gcj02(*_arrays(lon, lat)))


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple:
    """GCJ-02 -> WGS84, the exact inverse of wgs84_to_gcj02 (to 1e-7°)."""
    return _shaped(*_invert(_wgs84_to_gcj02, *_arrays(lon, lat)))


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple:
    """GCJ-02 -> BD-09 (Baidu)."""
    return _shaped(*_gcj02_to_bd09(*_arrays(lon, lat)))


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple:
    """BD-09 -> GCJ-02, the exact inverse of gcj02_to_bd09 (to 1e-7°)."""
    return _shaped(*_invert(_gcj02_to_bd09, *_arrays(lon, lat)))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple:
    """WGS84 -> BD-09."""
    return _shaped(*_gcj02_to_bd09(*_wgs84_to_gcj02(*_arrays(lon, lat))))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple:
    """BD-09 -> WGS84."""
    x, y = _invert(_gcj02_to_bd09, *_arrays(lon, lat))
    return _shaped(*_invert(_wgs84_to_gcj02, x, y))


def _check_range(name: str, values: np.ndarray, limit: float) -> None:
    bad = ~np.isfinite(values) | (np.abs(values) > limit)
    if np.any(bad):
        value = values.flat[int(np.flatnonzero(bad.ravel())[0])]
        raise ValueError(f"{name} {value} is not a number in [-{limit:g}, {limit:g}]")


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str | None = None) -> tuple:
    """Validate coordinates given in crs (see CRS_NAMES) and convert them to WGS84."""
    name = "wgs84" if crs is None else str(crs).strip().lower()
    if name not in CRS_NAMES:
        raise ValueError(f"unknown crs {crs!r}: expected one of {', '.join(CRS_NAMES)}")
    x, y = _arrays(lon, lat)
    _check_range("longitude", x, 180.0)
    _check_range("latitude", y, 90.0)
    if name in WGS84_NAMES:
        return _shaped(x, y)
    converted = gcj02_to_wgs84(x, y) if name == "gcj02" else bd09_to_wgs84(x, y)
    # BD-09's fixed shift carries a point at a pole or the date line out of the globe
    # (a latitude of -90.0055), where distances are NaN and any grid looks nearest.
    wx, wy = _arrays(*converted)
    for axis, values, given, limit in (("longitude", wx, x, 180.0), ("latitude", wy, y, 90.0)):
        bad = ~np.isfinite(values) | (np.abs(values) > limit)
        if np.any(bad):
            value = given.flat[int(np.flatnonzero(bad.ravel())[0])]
            raise ValueError(f"{axis} {value} in {name} lies outside the globe in WGS84")
    return converted


def geometry_problem(geom: BaseGeometry | None) -> str | None:
    """Why geom cannot be an area's geometry, or None if it can."""
    if geom is None or geom.is_empty:
        return "empty geometry"
    if geom.geom_type not in POLYGONAL_TYPES:
        return f"wrong geometry type {geom.geom_type} (expected Polygon or MultiPolygon)"
    if not shapely.is_valid(geom):
        return f"invalid geometry: {shapely.is_valid_reason(geom)}"
    min_x, min_y, max_x, max_y = geom.bounds
    if min_x < -180 or max_x > 180 or min_y < -90 or max_y > 90:
        # Almost always projected coordinates read without their CRS.
        return f"coordinates outside WGS84 lon/lat range: bounds {geom.bounds}"
    return None


def repair(geom: BaseGeometry | None) -> BaseGeometry | None:
    """Make geom valid, keeping only its polygonal parts; None if none survive."""
    if geom is None or geom.is_empty:
        return None
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        return None  # NaN or infinity: nothing to repair from (GEOS would raise)
    fixed = shapely.make_valid(geom)
    if fixed.geom_type in POLYGONAL_TYPES:
        return fixed
    # A collection: drop the lines and points make_valid left from collapsed rings.
    parts = shapely.get_parts(fixed)
    polygons = [part for part in parts if part.geom_type in POLYGONAL_TYPES]
    if not polygons:
        return None
    return shapely.union_all(polygons)


def metres_between(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike):
    """Geodesic distance in metres on the WGS84 ellipsoid."""
    x1, y1 = _arrays(lon1, lat1)
    x2, y2 = _arrays(lon2, lat2)
    x1, y1, x2, y2 = np.broadcast_arrays(x1, y1, x2, y2)
    _, _, distance = _GEOD.inv(x1, y1, x2, y2)
    distance = np.asarray(distance, dtype=float)
    return float(distance) if distance.ndim == 0 else distance


def degrees_covering(metres: float, lat: float) -> float:
    """A lon/lat (Euclidean, degrees) radius containing every point within metres of lat."""
    reach = metres / _MIN_METRES_PER_DEGREE
    # A degree of longitude shrinks with cos(latitude); use the worst latitude reachable.
    worst_lat = abs(lat) + reach
    if worst_lat >= 89.0:
        return 360.0
    return reach / math.cos(math.radians(worst_lat))
