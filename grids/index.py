"""The in-memory locate index: which unit, building and grid a point falls in.

Built once from the area table (and rebuilt when areas change), then queried on every
report, so building works on whole arrays and the locate path does as little Python
as possible: one STRtree query for buildings and units together, one for grids, and
chains of parent codes computed at build time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import shapely
from numpy.typing import ArrayLike
from shapely.geometry.base import BaseGeometry

from grids import LEVELS
from grids.cells import Cells
from grids.geometry import degrees_covering, metres_between

_RANK = {level: rank for rank, level in enumerate(LEVELS)}
_FINE_LEVELS = ("building", "unit")
# Never mutated: every chain handed out or derived is a copy.
_EMPTY_CHAIN: dict[str, str | None] = dict.fromkeys(LEVELS)
_ALLOW_NAN = np.intc(0)  # shapely.HandleNaN.allow


@dataclass(frozen=True)
class AreaRecord:
    """One area as the store hands it to the index (geometry in EPSG:4326)."""

    code: str
    level: str
    parent_code: str | None
    geometry: BaseGeometry


class Location(NamedTuple):
    """Where a WGS84 point belongs, from unit up to district."""

    # A NamedTuple rather than a frozen dataclass: it is built on every locate, and a
    # frozen dataclass's __init__ alone costs a fifth of a locate.

    lon: float
    lat: float
    chain: dict[str, str | None]  # every level in LEVELS -> code or None
    method: str  # "unit" | "building" | "grid" | "snapped"
    distance_m: float = 0.0  # metres to the grid when snapped


class OutsideManagedArea(Exception):
    """The point is in no grid and farther than the tolerance from every grid."""

    def __init__(
        self, lon: float, lat: float, nearest_distance_m: float | None, tolerance_m: float
    ) -> None:
        self.lon = lon
        self.lat = lat
        self.nearest_distance_m = nearest_distance_m
        self.tolerance_m = tolerance_m
        if nearest_distance_m is None:
            reason = "no grids are loaded"
        else:
            reason = f"nearest grid is {nearest_distance_m:.0f} m away"
        super().__init__(
            f"point ({lon:.6f}, {lat:.6f}) is outside the managed area: "
            f"{reason} (tolerance {tolerance_m:g} m)"
        )

    def __reduce__(self):
        # Keeps the exception picklable across worker processes despite the custom __init__.
        return type(self), (self.lon, self.lat, self.nearest_distance_m, self.tolerance_m)


class AreaIndex:
    """Point -> unit/building/grid chain lookups over one snapshot of the area tree."""

    @classmethod
    def build(cls, records: Iterable[AreaRecord]) -> AreaIndex:
        """Index AreaRecords."""
        records = list(records)
        return cls.from_arrays(
            [r.code for r in records],
            [r.level for r in records],
            [r.parent_code for r in records],
            [r.geometry for r in records],
        )

    @classmethod
    def from_arrays(
        cls,
        codes: Sequence[str] | ArrayLike,
        levels: Sequence[str] | ArrayLike,
        parent_codes: Sequence[str | None] | ArrayLike,
        geometries: Sequence[BaseGeometry] | ArrayLike,
    ) -> AreaIndex:
        """Index areas given as parallel arrays (the fast path for large trees)."""
        self = cls.__new__(cls)
        self._adjacent: dict[str, list[str]] = {}
        self._init_areas(codes, levels, parent_codes)
        self._init_trees(np.asarray(geometries, dtype=object))
        return self

    def _init_areas(self, codes, levels, parent_codes) -> None:
        """Positions, levels, parents and the chains of every area above building."""
        self._codes = np.asarray(codes, dtype=object)
        self._levels = np.asarray(levels, dtype=object)
        self._parents = np.asarray(parent_codes, dtype=object)
        n = len(self._codes)
        if not len(self._levels) == len(self._parents) == n:
            raise ValueError("codes, levels and parent codes must have the same length")
        self._position = dict(zip(self._codes.tolist(), range(n)))
        if len(self._position) != n:
            seen: set[str] = set()
            duplicate = next(c for c in self._codes.tolist() if c in seen or seen.add(c))
            raise ValueError(f"duplicate area code {duplicate!r}")

        rank = np.fromiter((_RANK.get(lv, -1) for lv in self._levels.tolist()), np.int8, n)
        if np.any(rank < 0):
            bad = int(np.flatnonzero(rank < 0)[0])
            raise ValueError(
                f"area {self._codes[bad]!r} has unknown level {self._levels[bad]!r}: "
                f"expected one of {', '.join(LEVELS)}"
            )
        get = self._position.get
        # -1 = parent not in the index (a tree may start at any level): chain stops there.
        parent_pos = np.fromiter((get(p, -1) for p in self._parents.tolist()), np.int64, n)
        has_parent = parent_pos >= 0
        upside_down = has_parent & (rank[parent_pos] >= rank)
        if np.any(upside_down):
            bad = int(np.flatnonzero(upside_down)[0])
            raise ValueError(
                f"area {self._codes[bad]!r} ({self._levels[bad]}) has parent "
                f"{self._parents[bad]!r} ({self._levels[parent_pos[bad]]}), which is not above it"
            )
        self._counts = {level: int(np.count_nonzero(rank == r)) for level, r in _RANK.items()}
        self._rank = rank
        self._parent_pos = parent_pos

        # Chain per position for areas above building, filled top-down so a parent's chain
        # exists before its children copy it. The extra last slot serves parent_pos == -1.
        self._upper_chain = np.empty(n + 1, dtype=object)
        self._upper_chain.fill(_EMPTY_CHAIN)
        upper = np.flatnonzero(rank < _RANK["building"])
        for i in upper[np.argsort(rank[upper], kind="stable")].tolist():
            chain = dict(self._upper_chain[parent_pos[i]])
            chain[self._levels[i]] = self._codes[i]
            self._upper_chain[i] = chain

    def _init_trees(self, geometries: np.ndarray) -> None:
        """One STRtree for grids and one for buildings and units together."""
        if len(geometries) != len(self._codes):
            raise ValueError("geometries must have the same length as codes")
        self._geometries = geometries
        grid = np.flatnonzero(self._rank == _RANK["grid"])
        self._grid_geoms = geometries[grid]
        self._grid_codes = self._codes[grid]
        self._grid_chain = self._upper_chain[grid].tolist()
        self._grid_tree = shapely.STRtree(self._grid_geoms)
        self._grid_cells = Cells(self._grid_geoms)

        fine = np.flatnonzero(self._rank >= _RANK["building"])
        fine_geoms = geometries[fine]
        is_unit = self._rank[fine] == _RANK["unit"]
        parent_pos = self._parent_pos[fine]
        # Units find their building by its position among the fine areas.
        to_fine = np.full(len(self._codes) + 1, -1, dtype=np.int64)
        to_fine[fine] = np.arange(len(fine))
        self._fine_codes = self._codes[fine].tolist()
        self._fine_area = shapely.area(fine_geoms).tolist()
        # One record per building or unit, in a plain list: a locate reads one or two, and
        # one tuple is fewer memory fetches than an item from each of several arrays.
        # Buildings start from their grid's chain (or whatever ancestor is indexed), units
        # from their building's position among the fine areas (-1 when not indexed).
        self._fine = list(zip(
            self._fine_codes,
            self._upper_chain[parent_pos].tolist(),
            is_unit.tolist(),
            np.where(is_unit, to_fine[parent_pos], -1).tolist(),
        ))
        self._fine_tree = shapely.STRtree(fine_geoms)
        self._fine_cells = Cells(fine_geoms)
        self._fine_pos = fine

    # -- locating -------------------------------------------------------------------

    def locate(self, lon: float, lat: float, *, tolerance_m: float = 30.0) -> Location:
        """Locate a WGS84 point; raises OutsideManagedArea beyond tolerance_m of every grid."""
        # Cells answer almost every point without making it a geometry; the trees take
        # crowded cells.
        hits = self._fine_cells.hits(lon, lat)
        if hits is None:
            hits = self._fine_tree.query(_point_array(lon, lat), predicate="intersects")[1]
            hits = hits.tolist()
        if hits:
            found = self._fine_location(lon, lat, hits)
            if found.chain.get("grid"):  # a building in no grid places nothing: grids decide
                return found
        hits = self._grid_cells.hits(lon, lat)
        if hits is None:
            hits = self._grid_tree.query(_point_array(lon, lat), predicate="intersects")[1]
            hits = hits.tolist()
        if hits:
            return self._grid_location(lon, lat, hits)
        result = self._beyond_grids(_point_array(lon, lat)[0], lon, lat, tolerance_m)
        if isinstance(result, OutsideManagedArea):
            raise result
        return result

    def locate_many(
        self, lons: ArrayLike, lats: ArrayLike, *, tolerance_m: float = 30.0
    ) -> list[Location | OutsideManagedArea]:
        """locate() for arrays of points, with the exception returned in place of raised."""
        lons = np.asarray(lons, dtype=float).ravel()
        lats = np.asarray(lats, dtype=float).ravel()
        points = shapely.points(lons, lats)
        results: list[Location | OutsideManagedArea | None] = [None] * len(points)

        for i, hits in _grouped(*self._fine_tree.query(points, predicate="intersects")):
            found = self._fine_location(float(lons[i]), float(lats[i]), hits.tolist())
            results[i] = found if found.chain.get("grid") else None
        rest = np.array([i for i, r in enumerate(results) if r is None], dtype=np.int64)
        for j, hits in _grouped(*self._grid_tree.query(points[rest], predicate="intersects")):
            i = int(rest[j])
            results[i] = self._grid_location(float(lons[i]), float(lats[i]), hits.tolist())
        for i in (i for i, r in enumerate(results) if r is None):
            results[i] = self._beyond_grids(points[i], float(lons[i]), float(lats[i]), tolerance_m)
        return results

    def _smallest_fine(self, candidates: list[int]) -> int:
        """Of overlapping buildings (or units) the smallest, then the lowest code."""
        if len(candidates) == 1:
            return candidates[0]
        area, codes = self._fine_area, self._fine_codes
        return min(candidates, key=lambda i: (area[i], codes[i]))

    def _fine_location(self, lon: float, lat: float, found: list[int]) -> Location:
        """The building (and unit) among fine hits; its own grid wins over geometry."""
        fine = self._fine
        if len(found) == 1:  # the common case: one building, or a unit poking out of it
            return Location(lon, lat, self._fine_chain(found[0]),
                            "unit" if fine[found[0]][2] else "building")
        # Hits are a handful of indices: plain Python beats numpy calls here.
        buildings = [i for i in found if not fine[i][2]]
        if not buildings:
            # The unit pokes out of its building's outline; it still names the building.
            return Location(lon, lat, self._fine_chain(self._smallest_fine(found)), "unit")
        building = self._smallest_fine(buildings)
        units = [i for i in found if fine[i][2] and fine[i][3] == building]
        if not units:
            return Location(lon, lat, self._fine_chain(building), "building")
        return Location(lon, lat, self._fine_chain(self._smallest_fine(units)), "unit")

    def _fine_chain(self, i: int) -> dict[str, str | None]:
        """Chain for the i-th building or unit."""
        code, base, is_unit, building = self._fine[i]
        if not is_unit:
            chain = base.copy()
            chain["building"] = code
            return chain
        chain = self._fine_chain(building) if building >= 0 else base.copy()
        chain["unit"] = code
        return chain

    def _grid_location(self, lon: float, lat: float, hits: list[int]) -> Location:
        """The grid among grid hits."""
        if len(hits) == 1:
            grid = hits[0]
        else:
            # On a shared edge or vertex every touching grid intersects the point: take the
            # lowest code, so the answer never depends on load order or tree layout.
            grid = min(hits, key=self._grid_codes.__getitem__)
        return Location(lon, lat, dict(self._grid_chain[grid]), "grid")

    def _beyond_grids(
        self, point: BaseGeometry, lon: float, lat: float, tolerance_m: float
    ) -> Location | OutsideManagedArea:
        """Snap a point that is in no grid to the nearest one within tolerance_m."""
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValueError(f"cannot locate non-finite point ({lon}, {lat})")
        nearest = self._nearest_grid(point, lon, lat, tolerance_m)
        if nearest is not None:
            grid, metres = nearest
            return Location(lon, lat, dict(self._grid_chain[grid]), "snapped", metres)
        if not len(self._grid_geoms):
            return OutsideManagedArea(lon, lat, None, tolerance_m)
        # Nearest in degrees is not always nearest in metres, but its distance bounds the
        # search radius for the exact answer.
        guess = int(self._grid_tree.query_nearest(point)[0])
        bound = float(self._metres_to_grids(lon, lat, np.array([guess]))[0])
        nearest = self._nearest_grid(point, lon, lat, bound)
        distance = nearest[1] if nearest is not None else bound
        return OutsideManagedArea(lon, lat, distance, tolerance_m)

    def _nearest_grid(
        self, point: BaseGeometry, lon: float, lat: float, within_m: float
    ) -> tuple[int, float] | None:
        """(grid, metres) of the grid nearest the point if within within_m, lowest code on ties."""
        radius = degrees_covering(within_m, lat)
        candidates = self._grid_tree.query(point, predicate="dwithin", distance=radius)
        if not candidates.size:
            return None
        metres = self._metres_to_grids(lon, lat, candidates)
        codes = self._grid_codes[candidates]
        best = min(range(len(candidates)), key=lambda k: (metres[k], codes[k]))
        if not metres[best] <= within_m:  # NaN (a point past a pole) is never near
            return None
        return int(candidates[best]), float(metres[best])

    def _metres_to_grids(self, lon: float, lat: float, grids: np.ndarray) -> np.ndarray:
        """Geodesic metres from a point to the closest point of each grid."""
        # Find the closest points in a local equirectangular frame (longitude scaled by
        # cos(lat)), where closest-in-degrees matches closest-in-metres, then measure the
        # geodesic distance to them.
        scale = np.array([max(math.cos(math.radians(lat)), 1e-6), 1.0])
        local = shapely.transform(self._grid_geoms[grids], lambda xy: xy * scale)
        lines = shapely.shortest_line(shapely.Point(lon * scale[0], lat), local)
        ends = shapely.get_coordinates(shapely.get_point(lines, 1)) / scale
        return metres_between(lon, lat, ends[:, 0], ends[:, 1])

    # -- the tree -------------------------------------------------------------------

    def level_of(self, code: str) -> str:
        """Level of an area; KeyError if the code is not indexed."""
        return self._levels[self._position[code]]

    def parent(self, code: str) -> str | None:
        """Parent code of an area as recorded (it may not be indexed)."""
        return self._parents[self._position[code]]

    def chain_of(self, code: str) -> dict[str, str | None]:
        """Chain from an area up to district (levels below it are None)."""
        i = self._position[code]
        if self._rank[i] < _RANK["building"]:
            return dict(self._upper_chain[i])
        return self._fine_chain(int(np.searchsorted(self._fine_pos, i)))

    def geometry(self, code: str) -> BaseGeometry:
        """The geometry of an area; KeyError if the code is not indexed."""
        return self._geometries[self._position[code]]

    def adjacent_grids(self, code: str) -> list[str]:
        """Grids whose polygons touch this grid's, longest shared edge first, then by code."""
        # Asked on every report, and the answer only changes with the map: keep it.
        known = self._adjacent.get(code)
        if known is None:
            known = self._adjacent[code] = self._find_adjacent_grids(code)
        return list(known)

    def _find_adjacent_grids(self, code: str) -> list[str]:
        grid = self.geometry(code)
        hits = self._grid_tree.query(grid, predicate="intersects")
        others = [int(i) for i in hits if self._grid_codes[i] != code]
        if not others:
            return []
        shared = shapely.length(shapely.intersection(grid.boundary, self._grid_geoms[others]))
        order = sorted(range(len(others)), key=lambda k: (-shared[k], self._grid_codes[others[k]]))
        return [str(self._grid_codes[others[k]]) for k in order]

    def stats(self) -> dict[str, int]:
        """Number of indexed areas per level."""
        return dict(self._counts)

    def __len__(self) -> int:
        return len(self._codes)


def _point_array(lon: float, lat: float) -> np.ndarray:
    """A one-element array holding Point(lon, lat), made as cheaply as shapely allows."""
    # A locate is a few microseconds, and the public shapely.Point / shapely.points
    # wrappers spend longer on argument handling than the tree search takes, as does
    # STRtree.query on a scalar geometry (it is wrapped into an array). So call the ufunc
    # behind shapely.points (shapely >= 2.1 signature: coords, handle_nan) and query
    # with an array.
    return shapely.lib.points(np.array(((lon, lat),)), _ALLOW_NAN)


def _grouped(inputs: np.ndarray, hits: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """Split a bulk STRtree.query result into (input index, its hits) pairs."""
    if not inputs.size:
        return []
    order = np.argsort(inputs, kind="stable")
    inputs, hits = inputs[order], hits[order]
    starts = np.flatnonzero(np.diff(inputs)) + 1
    return zip(inputs[np.r_[0, starts]].tolist(), np.split(hits, starts))
