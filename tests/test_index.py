"""Locating points in the area tree (grids.index)."""

import pickle
import random

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from grids import LEVELS
from grids.geometry import metres_between
from grids.index import AreaIndex, AreaRecord, Location, OutsideManagedArea

# A small tree in Nanjing, drawn on a lattice of 0.001° (about 94 m east-west, 111 m
# north-south) so the shapes below read as small integers.
LON0, LAT0, STEP = 118.78, 32.04, 0.001

DISTRICT, STREET, COMMUNITY = "320104", "320104008", "320104008004"
G1, G2, G3 = "320104008004001", "320104008004002", "320104008004003"
ORPHAN_GRID = "999999999999001"


def at(x: float, y: float) -> tuple[float, float]:
    """Lattice units -> (lon, lat)."""
    return LON0 + x * STEP, LAT0 + y * STEP


def shape(*corners: tuple[float, float]) -> Polygon:
    """Polygon from lattice corners."""
    return Polygon([at(x, y) for x, y in corners])


def box(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """Axis-aligned rectangle in lattice units."""
    return shape((x0, y0), (x1, y0), (x1, y1), (x0, y1))


RECORDS = [
    AreaRecord(DISTRICT, "district", None, box(-1, -1, 10, 10)),
    AreaRecord(STREET, "street", DISTRICT, box(-1, -1, 10, 10)),
    AreaRecord(COMMUNITY, "community", STREET, box(0, 0, 2, 2.5)),
    # G1 | G2 side by side, the irregular G3 on top of both (they all meet at (1, 1)).
    AreaRecord(G1, "grid", COMMUNITY, box(0, 0, 1, 1)),
    AreaRecord(G2, "grid", COMMUNITY, box(1, 0, 2, 1)),
    AreaRecord(G3, "grid", COMMUNITY, shape((0, 1), (2, 1), (2, 2), (1, 2.5), (0, 2))),
    AreaRecord(ORPHAN_GRID, "grid", None, box(5, 5, 6, 6)),
    # B1 has two units, west and east halves.
    AreaRecord("B1", "building", G1, box(0.1, 0.6, 0.5, 0.9)),
    AreaRecord("B1-U1", "unit", "B1", box(0.1, 0.6, 0.3, 0.9)),
    AreaRecord("B1-U2", "unit", "B1", box(0.3, 0.6, 0.5, 0.9)),
    # B2 straddles the G1|G2 edge, mostly in G1, so it belongs to G1.
    AreaRecord("B2", "building", G1, box(0.7, 0.2, 1.2, 0.4)),
    # B4 inside B3, and B5/B6 identical: overlaps resolve to the smaller, then lower code.
    AreaRecord("B3", "building", G2, box(1.3, 0.1, 1.9, 0.5)),
    AreaRecord("B4", "building", G2, box(1.5, 0.2, 1.6, 0.3)),
    AreaRecord("B6", "building", G3, box(0.2, 1.2, 0.4, 1.4)),
    AreaRecord("B5", "building", G3, box(0.2, 1.2, 0.4, 1.4)),
    # A building whose grid is not loaded keeps the chain it has.
    AreaRecord("B7", "building", "NOT-LOADED", box(8, 8, 8.2, 8.2)),
]


def chain(**codes: str) -> dict[str, str | None]:
    """Expected chain: the given levels, None elsewhere."""
    return {level: codes.get(level) for level in LEVELS}


def upper(grid: str) -> dict[str, str]:
    """The levels above and including a grid of COMMUNITY."""
    return {"grid": grid, "community": COMMUNITY, "street": STREET, "district": DISTRICT}


@pytest.fixture(scope="module")
def index() -> AreaIndex:
    return AreaIndex.build(RECORDS)


def test_building_routes_to_its_own_grid_across_a_grid_line(index):
    # (1.1, 0.3) is geometrically in G2, but inside B2, which belongs to G1.
    found = index.locate(*at(1.1, 0.3))
    assert found.method == "building"
    assert found.chain == chain(building="B2", **upper(G1))
    assert found.distance_m == 0.0


def test_building_boundary_counts_as_inside(index):
    assert index.locate(*at(1.2, 0.3)).chain["building"] == "B2"


@pytest.mark.parametrize(("x", "unit"), [(0.2, "B1-U1"), (0.4, "B1-U2")])
def test_unit_hit_includes_unit_and_building(index, x, unit):
    found = index.locate(*at(x, 0.7))
    assert found.method == "unit"
    assert found.chain == chain(unit=unit, building="B1", **upper(G1))


@pytest.mark.parametrize(
    ("x", "y", "building"),
    [(1.55, 0.25, "B4"), (1.35, 0.45, "B3"), (0.3, 1.3, "B5")],
)
def test_overlapping_buildings_pick_smallest_then_lowest_code(index, x, y, building):
    assert index.locate(*at(x, y)).chain["building"] == building


@pytest.mark.parametrize(("x", "y", "grid"), [(0.5, 0.1, G1), (1.5, 0.8, G2), (1.0, 2.2, G3)])
def test_inside_grid_only(index, x, y, grid):
    lon, lat = at(x, y)
    found = index.locate(lon, lat)
    assert found == Location(lon, lat, chain(**upper(grid)), "grid", 0.0)


def test_grid_without_parents_has_only_itself(index):
    assert index.locate(*at(5.5, 5.5)).chain == chain(grid=ORPHAN_GRID)


def test_building_of_unloaded_grid_places_no_point(index):
    """Its chain stops at the building (`chain_of`), but a point in it belongs to no grid
    and so to nobody: the grids decide, as for open ground (an area audit found such a
    report filed with no manager)."""
    with pytest.raises(OutsideManagedArea):
        index.locate(*at(8.1, 8.1))
    assert isinstance(index.locate_many(*zip(at(8.1, 8.1)))[0], OutsideManagedArea)


# (1, 0.5) is on the G1|G2 edge; (1, 1) is the vertex G1, G2 and G3 share; (0.5, 1) and
# (1.5, 1) are on the edges under G3. The lowest code wins each time.
SHARED = [((1.0, 0.5), G1), ((1.0, 1.0), G1), ((0.5, 1.0), G1), ((1.5, 1.0), G2)]


@pytest.mark.parametrize(("xy", "grid"), SHARED)
def test_shared_edges_and_vertices_take_the_lowest_code(xy, grid):
    for seed in range(10):
        records = RECORDS.copy()
        random.Random(seed).shuffle(records)
        found = AreaIndex.build(records).locate(*at(*xy))
        assert (found.method, found.chain["grid"]) == ("grid", grid)


def test_near_miss_snaps_to_nearest_grid(index):
    edge_lon, lat = at(2, 0.5)  # G2's east edge
    lon = edge_lon + 20 / (111_320 * np.cos(np.radians(lat)))  # about 20 m east of it
    expected = metres_between(lon, lat, edge_lon, lat)
    found = index.locate(lon, lat)
    assert found.method == "snapped"
    assert found.chain == chain(**upper(G2))
    assert found.distance_m == pytest.approx(expected, abs=1.0)
    assert 19 < found.distance_m < 21


def test_snapping_measures_diagonal_distances_in_metres(index):
    # North-east of G2's corner (2, 1) and east of G3: G3's edge (2, 1)-(2, 2) is nearest.
    edge_lon, lat = at(2, 1.5)
    lon = edge_lon + 25 / (111_320 * np.cos(np.radians(lat)))
    found = index.locate(lon, lat)
    assert (found.method, found.chain["grid"]) == ("snapped", G3)
    assert found.distance_m == pytest.approx(metres_between(lon, lat, edge_lon, lat), abs=1.0)


def test_too_far_raises_with_nearest_distance(index):
    edge_lon, lat = at(2, 0.5)
    lon = edge_lon + 45 / (111_320 * np.cos(np.radians(lat)))
    with pytest.raises(OutsideManagedArea) as err:
        index.locate(lon, lat)
    assert err.value.nearest_distance_m == pytest.approx(45, abs=1.0)
    assert err.value.tolerance_m == 30.0
    assert (err.value.lon, err.value.lat) == (lon, lat)
    assert "outside the managed area: nearest grid is 45 m away (tolerance 30 m)" in str(err.value)
    # A wider tolerance snaps the same point.
    assert index.locate(lon, lat, tolerance_m=50).method == "snapped"


def test_far_away_reports_the_true_nearest_distance(index):
    lon, lat = at(3, 0.5)  # 1 lattice step (~94 m) east of G2
    with pytest.raises(OutsideManagedArea) as err:
        index.locate(lon, lat)
    assert err.value.nearest_distance_m == pytest.approx(
        metres_between(lon, lat, *at(2, 0.5)), abs=1.0
    )


def test_outside_is_picklable():
    error = pickle.loads(pickle.dumps(OutsideManagedArea(118.0, 32.0, 123.4, 30.0)))
    assert str(error) == (
        "point (118.000000, 32.000000) is outside the managed area: "
        "nearest grid is 123 m away (tolerance 30 m)"
    )


def test_empty_index_locates_nothing():
    empty = AreaIndex.build([])
    assert len(empty) == 0
    with pytest.raises(OutsideManagedArea) as err:
        empty.locate(*at(0.5, 0.5))
    assert err.value.nearest_distance_m is None
    assert isinstance(empty.locate_many([LON0], [LAT0])[0], OutsideManagedArea)


def test_non_finite_point_is_rejected(index):
    with pytest.raises(ValueError):
        index.locate(float("nan"), LAT0)


def test_locate_many_equals_locate_pointwise(index):
    rng = np.random.default_rng(7)
    # Mostly inside the tree, some out past the tolerance, and the exact shared points.
    lons, lats = at(rng.uniform(-0.6, 2.6, 1000), rng.uniform(-0.6, 3.0, 1000))
    shared = np.array([at(*xy) for xy, _ in SHARED])
    lons, lats = np.r_[lons, shared[:, 0]], np.r_[lats, shared[:, 1]]
    results = index.locate_many(lons, lats)
    assert len(results) == len(lons)
    methods = set()
    for lon, lat, result in zip(lons.tolist(), lats.tolist(), results):
        try:
            expected = index.locate(lon, lat)
        except OutsideManagedArea as err:
            expected = err
        if isinstance(expected, OutsideManagedArea):
            assert isinstance(result, OutsideManagedArea)
            assert str(result) == str(expected)
            methods.add("outside")
        else:
            assert result == expected
            methods.add(result.method)
    assert methods == {"unit", "building", "grid", "snapped", "outside"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("B1-U2", chain(unit="B1-U2", building="B1", **upper(G1))),
        ("B2", chain(building="B2", **upper(G1))),
        (G3, chain(**upper(G3))),
        (COMMUNITY, chain(community=COMMUNITY, street=STREET, district=DISTRICT)),
        (DISTRICT, chain(district=DISTRICT)),
        (ORPHAN_GRID, chain(grid=ORPHAN_GRID)),
        ("B7", chain(building="B7")),
    ],
)
def test_chain_of(index, code, expected):
    assert index.chain_of(code) == expected


def test_tree_accessors(index):
    assert len(index) == len(RECORDS)
    assert index.level_of("B1-U1") == "unit"
    assert index.parent("B1-U1") == "B1"
    assert index.parent(DISTRICT) is None
    assert index.stats() == {
        "district": 1,
        "street": 1,
        "community": 1,
        "grid": 4,
        "building": 7,
        "unit": 2,
    }
    with pytest.raises(KeyError):
        index.level_of("nope")


def test_chains_handed_out_are_copies(index):
    index.locate(*at(0.5, 0.1)).chain["grid"] = "tampered"
    index.chain_of(G1)["grid"] = "tampered"
    assert index.locate(*at(0.5, 0.1)).chain["grid"] == G1


def test_from_arrays_matches_build():
    codes = np.array([r.code for r in RECORDS])  # numpy strings, not Python ones
    from_arrays = AreaIndex.from_arrays(
        codes,
        [r.level for r in RECORDS],
        [r.parent_code for r in RECORDS],
        shapely.from_wkb(shapely.to_wkb([r.geometry for r in RECORDS])),
    )
    assert from_arrays.locate(*at(1.1, 0.3)).chain == chain(building="B2", **upper(G1))


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (RECORDS + [AreaRecord(G1, "grid", None, box(0, 0, 1, 1))], "duplicate area code"),
        ([AreaRecord("X", "village", None, box(0, 0, 1, 1))], "unknown level 'village'"),
        (RECORDS + [AreaRecord("X", "grid", "B1", box(0, 0, 1, 1))], "not above it"),
    ],
)
def test_bad_trees_are_rejected(records, message):
    with pytest.raises(ValueError, match=message):
        AreaIndex.build(records)


def test_adjacent_grids_and_geometry():
    from tests.geodata import G1, G2, G3, square, tree_frame

    frame = tree_frame()
    index = AreaIndex.from_arrays(
        frame.code.tolist(), frame.level.tolist(),
        [None if p is None else p for p in frame.parent_code.tolist()], frame.geometry.values,
    )
    assert index.adjacent_grids(G1) == [G2]
    assert index.adjacent_grids(G2) == [G1, G3]  # both share a full 2-unit edge; code order
    assert index.geometry("B1").equals(square(0.2, 0.2, 0.6, 0.6))


def test_crowded_spots_are_answered_by_the_tree():
    from grids.cells import CROWDED

    # More overlapping footprints (and grids) in one place than the cells test one by one.
    pile = [AreaRecord(f"P{k:02d}", "building", G1, box(0.1, 0.1, 0.9, 0.9))
            for k in range(CROWDED + 2, 0, -1)]
    grids = [AreaRecord(f"G{k:02d}", "grid", None, box(0, 0, 1, 1)) for k in range(CROWDED + 2)]
    index = AreaIndex.build([*RECORDS[:4], *grids, *pile])
    found = index.locate(*at(0.5, 0.5))
    assert (found.method, found.chain["building"]) == ("building", "P01")
    assert index._fine_cells.hits(*at(0.5, 0.5)) is None  # it really took the tree path
    found = index.locate(*at(0.95, 0.95))
    assert (found.method, found.chain["grid"]) == ("grid", G1)  # lowest code on the pile
    assert index._grid_cells.hits(*at(0.95, 0.95)) is None
