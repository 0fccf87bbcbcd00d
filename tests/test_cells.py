"""The cell lookup behind single-point locate (grids.cells) against shapely's STRtree."""

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from grids import cells as cells_module
from grids.cells import Cells


def strtree_hits(tree: shapely.STRtree, x: float, y: float) -> list[int]:
    return sorted(tree.query(shapely.Point(x, y), predicate="intersects").tolist())


def random_polygons(rng: np.random.Generator, n: int) -> np.ndarray:
    """Irregular, partly overlapping polygons of varied sizes around Nanjing."""
    centres = rng.uniform((118.70, 31.95), (118.90, 32.10), size=(n, 2))
    shapes = []
    for (cx, cy), size in zip(centres, rng.lognormal(-7, 0.8, n)):
        angles = np.sort(rng.uniform(0, 2 * math.pi, rng.integers(4, 12)))
        radii = size * rng.uniform(0.4, 1.0, len(angles))
        shapes.append(Polygon(np.c_[cx + radii * np.cos(angles), cy + radii * np.sin(angles)]))
    return np.array(shapes, dtype=object)


def test_hits_match_the_strtree_inside_near_and_on_edges():
    rng = np.random.default_rng(3)
    geometries = random_polygons(rng, 3000)
    tree = shapely.STRtree(geometries)
    cells = Cells(geometries)
    # Random points, points inside each polygon, and every vertex (exactly on an edge).
    points = list(rng.uniform((118.69, 31.94), (118.91, 32.11), size=(5000, 2)))
    points += [(p.x, p.y) for p in shapely.point_on_surface(geometries)]
    points += [tuple(xy) for xy in shapely.get_coordinates(geometries[:300])]
    # Bounding-box corners: the extremes where a cell edge and a box edge meet.
    points += [tuple(b[:2]) for b in shapely.bounds(geometries[:300])]
    points += [tuple(b[2:]) for b in shapely.bounds(geometries[:300])]
    checked = hit = 0
    for x, y in points:
        found = cells.hits(float(x), float(y))
        if found is None:  # crowded: the caller asks the tree
            continue
        expected = strtree_hits(tree, x, y)
        assert sorted(found) == expected, (x, y)
        checked += 1
        hit += bool(expected)
    assert checked > 0.95 * len(points) and hit > 3000


def test_points_outside_every_box_and_non_finite_points_hit_nothing():
    cells = Cells(np.array([box(0, 0, 1, 1), box(2, 2, 3, 3)], dtype=object))
    for x, y in [(-0.1, 0.5), (3.1, 2.5), (0.5, 3.5), (1.5, 1.5),
                 (math.nan, 0.5), (0.5, math.inf), (-math.inf, 0.0)]:
        assert cells.hits(x, y) == []
    assert cells.hits(3.0, 3.0) == [1]  # the far corner of the extent is inside
    assert cells.hits(1.0, 0.0) == [0]


def test_empty_inputs():
    assert Cells(np.array([], dtype=object)).hits(0.0, 0.0) == []
    only_empty = Cells(np.array([Polygon()], dtype=object))
    assert only_empty.hits(0.0, 0.0) == []
    mixed = Cells(np.array([Polygon(), box(0, 0, 1, 1)], dtype=object))
    assert mixed.hits(0.5, 0.5) == [1]


def test_crowded_cells_defer_to_the_tree():
    stacked = [box(0, 0, 1, 1)] * (cells_module.CROWDED + 1) + [box(5, 5, 6, 6)]
    cells = Cells(np.array(stacked, dtype=object))
    assert cells.hits(0.5, 0.5) is None
    assert cells.hits(5.5, 5.5) == [len(stacked) - 1]


@pytest.mark.parametrize("layout", ["far_apart", "a_few_huge"])
def test_memory_stays_bounded_for_awkward_layouts(layout):
    rng = np.random.default_rng(5)
    small = random_polygons(rng, 500)
    if layout == "far_apart":
        extra = [box(-170, -80, -169.99, -79.99)]
    else:  # polygons over everything: without coarser cells each would be in all of them
        extra = [box(118.5 + d, 31.8, 119.1, 32.3) for d in (0, 0.01, 0.02, 0.03, 0.04)]
    geometries = np.append(small, np.array(extra, dtype=object))
    cells = Cells(geometries)
    assert len(cells._starts) - 1 <= 3 * cells_module.CELLS_PER_GEOMETRY * len(geometries)
    assert len(cells._members) <= cells_module.MEMBERSHIPS_PER_GEOMETRY * len(geometries)
    tree = shapely.STRtree(geometries)
    for p in shapely.point_on_surface(small[:200]):
        found = cells.hits(p.x, p.y)
        if found is not None:
            assert sorted(found) == strtree_hits(tree, p.x, p.y)
