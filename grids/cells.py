"""A uniform grid of cells over geometries' bounding boxes, for locating one point fast.

A single locate through shapely's STRtree spends most of its few microseconds building a
Point geometry and wrapping arguments, not searching. Here the point never becomes a
geometry: two multiplications pick its cell, the cell holds the few geometries whose
bounding boxes reach into it, and ``intersects_xy`` tests exactly those (prepared, so the
test is an indexed point-in-polygon). The STRtree stays the answer for batches, for
nearest-grid searches, and for cells too crowded to test one by one.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

# Roughly where testing each candidate stops being cheaper than one STRtree search (both
# take a few microseconds there); crowded cells are rare in real maps.
CROWDED = 24
# Bounds on memory however the geometries are spread: cells, and cell memberships, per
# geometry (a few areas far apart, or a few huge ones, make the cells coarser instead).
CELLS_PER_GEOMETRY = 4
MEMBERSHIPS_PER_GEOMETRY = 8


class Cells:
    """Which geometries a point (x, y) intersects, by cell lookup then exact test."""

    def __init__(self, geometries: np.ndarray) -> None:
        geometries = np.asarray(geometries, dtype=object)
        bounds = shapely.bounds(geometries).reshape(-1, 4)
        usable = np.flatnonzero(~np.isnan(bounds[:, 0]))  # empty geometries hold no point
        if not usable.size:
            self._x0 = self._y0 = 0.0
            self._inv = 1.0
            self._nx = self._ny = 0
            return
        bounds = bounds[usable]
        self._x0, self._y0 = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        width = float(bounds[:, 2].max()) - self._x0
        height = float(bounds[:, 3].max()) - self._y0
        n = len(usable)
        # About one typical geometry per cell, and no more than about CELLS_PER_GEOMETRY
        # cells each: the product nx * ny stays below 3 * CELLS_PER_GEOMETRY * n.
        typical = float(np.median(np.maximum(bounds[:, 2] - bounds[:, 0],
                                             bounds[:, 3] - bounds[:, 1])))
        cell = max(typical, math.sqrt(width * height / (CELLS_PER_GEOMETRY * n)),
                   max(width, height) / (CELLS_PER_GEOMETRY * n), 1e-12)
        while True:
            self._inv = 1.0 / cell
            # Cells are numbered by the arithmetic hits() uses, so a point on a cell's edge
            # and a bounding box ending on that edge always land in the same cell.
            ix0, iy0 = self._column(bounds[:, 0]), self._row(bounds[:, 1])
            spans_x = self._column(bounds[:, 2]) - ix0 + 1
            spans_y = self._row(bounds[:, 3]) - iy0 + 1
            per_geometry = spans_x * spans_y
            if per_geometry.sum() <= MEMBERSHIPS_PER_GEOMETRY * n:
                break
            cell *= 2
        self._nx = int(width * self._inv) + 1
        self._ny = int(height * self._inv) + 1

        owner = np.repeat(np.arange(n), per_geometry)
        # The k-th cell of its geometry's rectangle of cells, row by row.
        k = np.arange(len(owner)) - np.repeat(np.cumsum(per_geometry) - per_geometry,
                                              per_geometry)
        cell_ids = ((iy0[owner] + k // spans_x[owner]) * self._nx
                    + ix0[owner] + k % spans_x[owner])
        order = np.argsort(cell_ids, kind="stable")
        members = usable[owner[order]]
        # memoryview indexing hands back Python ints without numpy scalar overhead.
        self._starts = memoryview(np.searchsorted(cell_ids[order],
                                                  np.arange(self._nx * self._ny + 1)))
        self._members = memoryview(members)
        shapely.prepare(geometries)
        self._geometries = geometries[members]  # cell by cell, for slicing

    def _column(self, x: np.ndarray) -> np.ndarray:
        return ((x - self._x0) * self._inv).astype(np.int64)

    def _row(self, y: np.ndarray) -> np.ndarray:
        return ((y - self._y0) * self._inv).astype(np.int64)

    def hits(self, x: float, y: float) -> list[int] | None:
        """Positions of the geometries the point intersects, or None when its cell is crowded."""
        fx = (x - self._x0) * self._inv
        fy = (y - self._y0) * self._inv
        # Outside every bounding box (or NaN, or infinite): nothing to intersect.
        if not (0.0 <= fx < self._nx and 0.0 <= fy < self._ny):
            return []
        cell = int(fy) * self._nx + int(fx)
        start, end = self._starts[cell], self._starts[cell + 1]
        if end - start > CROWDED:
            return None
        if start == end:
            return []
        inside = shapely.lib.intersects_xy(self._geometries[start:end], x, y).tolist()
        if len(inside) == 1:  # most cells: skip the comprehension
            return [self._members[start]] if inside[0] else []
        members = self._members
        return [members[start + k] for k, hit in enumerate(inside) if hit]
