"""Coordinate systems, geometry validation and distances (grids.geometry)."""

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from grids.geometry import (
    CRS_NAMES,
    bd09_to_gcj02,
    bd09_to_wgs84,
    degrees_covering,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geometry_problem,
    metres_between,
    repair,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

NANJING = (118.78, 32.04)

# (wgs84 lon, lat) -> (gcj02 lon, lat): eviltransform's test table, and coordtransform's
# README example (116.404, 39.915).
WGS_TO_GCJ = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
]
# coordtransform's README: gcj02tobd09(116.404, 39.915).
GCJ_TO_BD = [((116.404, 39.915), (116.41036949371029, 39.92133699351021))]
# coordtransform's one-step inverses of (116.404, 39.915); the exact inverses here agree
# with them to the approximation's own error (a few 1e-7 degrees).
PUBLISHED_INVERSES = [
    (gcj02_to_wgs84, (116.39775550083061, 39.91359571849836)),
    (bd09_to_gcj02, (116.39762729119315, 39.90865673957631)),
]

# A lattice of points across China (every 4° of longitude, 3° of latitude) plus Nanjing.
CHINA = np.array(
    [(lon, lat) for lon in np.arange(75.5, 135, 4.0) for lat in np.arange(18.5, 53, 3.0)]
    + [NANJING]
)


@pytest.mark.parametrize(("wgs", "gcj"), WGS_TO_GCJ)
def test_wgs84_to_gcj02_reproduces_published_pairs(wgs, gcj):
    np.testing.assert_allclose(wgs84_to_gcj02(*wgs), gcj, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("wgs", "gcj"), WGS_TO_GCJ)
def test_gcj02_to_wgs84_inverts_published_pairs(wgs, gcj):
    np.testing.assert_allclose(gcj02_to_wgs84(*gcj), wgs, rtol=0, atol=1e-7)


@pytest.mark.parametrize(("gcj", "bd"), GCJ_TO_BD)
def test_bd09_published_pairs_both_ways(gcj, bd):
    np.testing.assert_allclose(gcj02_to_bd09(*gcj), bd, rtol=0, atol=1e-9)
    np.testing.assert_allclose(bd09_to_gcj02(*bd), gcj, rtol=0, atol=1e-7)


@pytest.mark.parametrize(("inverse", "published"), PUBLISHED_INVERSES)
def test_exact_inverses_agree_with_published_approximations(inverse, published):
    np.testing.assert_allclose(inverse(116.404, 39.915), published, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("forward", "backward"), [(wgs84_to_gcj02, gcj02_to_wgs84), (wgs84_to_bd09, bd09_to_wgs84)]
)
def test_round_trip_across_china_is_under_a_metre(forward, backward):
    lon, lat = CHINA[:, 0], CHINA[:, 1]
    back_lon, back_lat = backward(*forward(lon, lat))
    assert np.max(metres_between(lon, lat, back_lon, back_lat)) < 1.0


def test_nanjing_offset_is_a_few_hundred_metres():
    assert 400 < metres_between(*NANJING, *wgs84_to_gcj02(*NANJING)) < 700
    assert 800 < metres_between(*NANJING, *wgs84_to_bd09(*NANJING)) < 1500


@pytest.mark.parametrize("point", [(2.35, 48.85), (-74.0, 40.7), (139.69, 35.69), (151.2, -33.9)])
def test_gcj02_is_identity_outside_china(point):
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point


@pytest.mark.parametrize(
    "convert", [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09]
)
def test_arrays_match_scalars_and_keep_their_shape(convert):
    lon = CHINA[:-1, 0].reshape(-1, 2)
    lat = CHINA[:-1, 1].reshape(-1, 2)
    out_lon, out_lat = convert(lon, lat)
    assert out_lon.shape == out_lat.shape == lon.shape
    for i, j in np.ndindex(lon.shape):
        scalar = convert(float(lon[i, j]), float(lat[i, j]))
        assert isinstance(scalar[0], float)
        np.testing.assert_allclose((out_lon[i, j], out_lat[i, j]), scalar, rtol=0, atol=1e-9)


@pytest.mark.parametrize("crs", [None, "wgs84", "WGS84", "epsg:4326", "EPSG:4326", "4326"])
def test_to_wgs84_identity_names(crs):
    assert to_wgs84(*NANJING, crs) == NANJING


@pytest.mark.parametrize(
    ("crs", "forward"),
    [("gcj02", wgs84_to_gcj02), ("GCJ02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)],
)
def test_to_wgs84_converts(crs, forward):
    lon, lat = to_wgs84(*forward(*NANJING), crs)
    assert metres_between(lon, lat, *NANJING) < 0.01


def test_unknown_crs_names_the_accepted_ones():
    with pytest.raises(ValueError) as err:
        to_wgs84(*NANJING, "epsg:3857")
    assert all(name in str(err.value) for name in CRS_NAMES)


@pytest.mark.parametrize(
    ("lon", "lat", "named"),
    [
        (181.0, 32.0, "longitude"),
        (-180.5, 32.0, "longitude"),
        (118.0, 91.0, "latitude"),
        (float("nan"), 32.0, "longitude"),
        (118.0, float("inf"), "latitude"),
        (np.array([118.0, 200.0]), np.array([32.0, 32.0]), "longitude 200"),
    ],
)
def test_bad_coordinates_are_named(lon, lat, named):
    with pytest.raises(ValueError, match=named):
        to_wgs84(lon, lat, "gcj02")


def test_metres_between_matches_a_known_distance():
    # One degree of latitude at the equator is 110,574 m on WGS84.
    assert metres_between(0.0, 0.0, 0.0, 1.0) == pytest.approx(110_574, abs=1)
    distances = metres_between(np.zeros(3), np.zeros(3), 0.0, np.array([0.0, 1.0, -1.0]))
    np.testing.assert_allclose(distances, [0, 110_574, 110_574], atol=1)


@pytest.mark.parametrize("lat", [0.0, 32.04, 60.0, -45.0])
def test_degrees_covering_contains_every_direction(lat):
    radius = degrees_covering(30.0, lat)
    bearings = np.radians(np.arange(0, 360, 5))
    # Points 30 m away in every direction must lie within the radius in degree space.
    lon2, lat2, _ = Geod(ellps="WGS84").fwd(
        np.full(bearings.size, 118.0),
        np.full(bearings.size, lat),
        np.degrees(bearings),
        np.full(bearings.size, 30.0),
    )
    assert np.max(np.hypot(lon2 - 118.0, lat2 - lat)) <= radius


SQUARE = Polygon([(118.1, 32.0), (118.2, 32.0), (118.2, 32.1), (118.1, 32.1)])
BOW_TIE = Polygon([(118.0, 32.0), (118.2, 32.2), (118.2, 32.0), (118.0, 32.2)])


@pytest.mark.parametrize(
    ("geom", "reason"),
    [
        (SQUARE, None),
        (MultiPolygon([SQUARE]), None),
        (None, "empty geometry"),
        (Polygon(), "empty geometry"),
        (
            LineString([(118.1, 32.0), (118.2, 32.1)]),
            "wrong geometry type LineString (expected Polygon or MultiPolygon)",
        ),
        (Point(118.1, 32.0), "wrong geometry type Point (expected Polygon or MultiPolygon)"),
        (shapely.box(500_000, 3_500_000, 500_100, 3_500_100), "outside WGS84"),
    ],
)
def test_geometry_problem(geom, reason):
    problem = geometry_problem(geom)
    if reason is None:
        assert problem is None
    else:
        assert reason in problem


def test_bow_tie_is_reported_and_repaired():
    assert geometry_problem(BOW_TIE).startswith("invalid geometry: Self-intersection[")
    fixed = repair(BOW_TIE)
    assert fixed.geom_type == "MultiPolygon"
    assert fixed.is_valid and geometry_problem(fixed) is None
    # Two triangles, each a quarter of the 0.2 x 0.2 square.
    assert fixed.area == pytest.approx(0.02)


def test_repair_keeps_only_polygonal_parts():
    collapsed = Polygon([(118.0, 32.0), (118.1, 32.0), (118.2, 32.0)])
    assert repair(collapsed) is None
    assert repair(None) is None
    assert repair(SQUARE).equals(SQUARE)
    # A polygon with a zero-width spike: make_valid yields a polygon plus a line.
    spiked = Polygon([(0, 0), (2, 0), (2, 1), (3, 1), (2, 1), (2, 2), (0, 2)])
    fixed = repair(spiked)
    assert fixed.geom_type in ("Polygon", "MultiPolygon")
    assert fixed.area == pytest.approx(4.0)
