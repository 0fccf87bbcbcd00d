"""Build the bundled demo map (grids/demo/nanjing.gpkg) from real open data.

Inputs: an OpenStreetMap extract of central Nanjing (building footprints and roads) and
the official 秦淮区 street/community codes. Output: one GeoPackage layer ``areas`` holding
the whole area tree district > street > community > grid > building > unit in EPSG:4326.

What is real and what is not:
- buildings are real OSM footprints (derived=0);
- grids are road-bounded blocks, merged and split to hold a few dozen buildings;
- communities and streets group adjacent grids and carry REAL Qinhuai names and codes,
  but their boundaries are illustrative, not the official ones;
- units (单元) do not exist in OSM: they are slices of residential footprints.
Everything except the buildings is marked derived=1.

Usage::

    python -m grids.demo.build --osm ../shared/data/nanjing-central-osm.geojson \\
        --streets ../shared/data/qinhuai-streets.csv \\
        --communities ../shared/data/qinhuai-communities.csv --out grids/demo/nanjing.gpkg

The build is deterministic: no randomness, so re-running gives identical output.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import split as split_geometry

from grids import LEVELS

WGS84 = "EPSG:4326"
# All areas and lengths are computed in UTM 50N, which covers Nanjing (118.7 E).
METRIC_CRS = "EPSG:32650"

DISTRICT_CODE = "320104"
DISTRICT_NAME = "秦淮区"

LAYER = "areas"
METADATA = {
    "attribution": "© OpenStreetMap contributors, ODbL 1.0 "
    "(https://opendatacommons.org/licenses/odbl/)",
    "source": "OpenStreetMap extract of central Nanjing",
    "partition": "Streets and communities use real Qinhuai names and codes, but their "
    "boundaries, the grids and the units are illustrative, not official. Units are derived.",
    "codes": "National Bureau of Statistics division codes (2023) via china-division 2.7.0 (MIT)",
}

# Roads that bound city blocks. Service roads, footways, tracks and ramps (*_link) are
# left out: they cut blocks into parking-lot and courtyard slivers that are not blocks.
BLOCK_ROADS = frozenset(
    {"trunk", "primary", "secondary", "tertiary", "unclassified", "residential", "living_street"}
)

MIN_BUILDING_AREA = 4.0  # m²; smaller polygons are digitising slivers, not buildings
# The managed area is a concave hull of all building vertices (one polygon, so the grids
# are one contiguous tiling) widened so no footprint sticks out of it.
HULL_RATIO = 0.1
HULL_MARGIN = 25.0  # m

MIN_BUILDINGS_PER_GRID = 20  # blocks with fewer buildings merge into a neighbour
MAX_BUILDINGS_PER_GRID = 60  # grids with more are cut in two, recursively

COMMUNITY_GRIDS = (4, 5, 6)  # (min, target, max) grids per community
STREET_COMMUNITIES = (3, 4, 5)  # (min, target, max) communities per street

# Units: residential footprints of a plausible apartment-block size are sliced into
# 单元 about every 20 m along their long axis.
UNIT_BUILDING_TYPES = frozenset({"residential", "apartments", "yes"})
UNIT_MIN_AREA = 300.0  # m²; smaller buildings are houses/shops without stairwells
UNIT_MAX_AREA = 4000.0  # m²; larger "yes" footprints are malls and offices, not housing
UNIT_LENGTH = 20.0  # m per unit along the long axis
UNIT_COUNT_RANGE = (2, 6)
UNIT_MARGIN = 1.0  # m; strips overreach the footprint so clipping defines the outline

# Rough centres of the real street (街道) areas that this OSM extract covers. They only
# serve to give each illustrative street group a nearby real name; streets not listed
# here are used afterwards in code order.
STREET_ANCHORS = {
    "320104012": (118.772, 32.036),  # 朝天宫街道
    "320104006": (118.787, 32.043),  # 五老村街道
    "320104007": (118.790, 32.033),  # 洪武路街道
    "320104002": (118.790, 32.022),  # 夫子庙街道
    "320104004": (118.772, 32.020),  # 双塘街道
    "320104005": (118.780, 32.010),  # 中华门街道
}

COORD_PRECISION = 1e-7  # degrees (~1 cm): keeps the file small, shared vertices stay shared


# --------------------------------------------------------------------------------------
# Reading the sources
# --------------------------------------------------------------------------------------


def polygonal_part(geom: BaseGeometry | None) -> Polygon | MultiPolygon | None:
    """Return the valid polygonal part of ``geom`` (repairing it if needed), or None."""
    if geom is None or geom.is_empty:
        return None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [
        p
        for g in getattr(geom, "geoms", [geom])
        for p in getattr(g, "geoms", [g])
        if p.geom_type == "Polygon" and not p.is_empty
    ]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def read_osm(osm_path: str | Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Read the OSM extract; return (buildings, block roads), both in the metric CRS.

    Buildings keep ``osm_id``, ``building``, ``name`` and ``address`` columns and are
    sorted by OSM id so the build does not depend on the file's feature order.
    """
    # on_invalid="ignore": the extract holds truncated boundary relations (unclosed rings).
    # GDAL warns about them too; they are expected and dropped below (not buildings).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Non closed ring detected")
        osm = gpd.read_file(osm_path, on_invalid="ignore")
    osm = osm[osm.geometry.notna()]

    tags = osm.columns
    is_building = osm["building"].notna() if "building" in tags else False
    buildings = osm[is_building & osm.geom_type.isin(["Polygon", "MultiPolygon"])].copy()
    buildings = buildings.to_crs(METRIC_CRS)
    buildings["geometry"] = [polygonal_part(g) for g in buildings.geometry]
    buildings = buildings[buildings.geometry.notna()]
    buildings = buildings[buildings.area >= MIN_BUILDING_AREA]

    def tag(name: str) -> list[str | None]:
        """A tag's values as stripped strings, None where absent or blank."""
        if name not in buildings.columns:
            return [None] * len(buildings)
        return [str(v).strip() or None if not pd.isna(v) else None for v in buildings[name]]

    street, number, housename = tag("addr:street"), tag("addr:housenumber"), tag("addr:housename")
    address = [
        format_address(s, n, h) for s, n, h in zip(street, number, housename, strict=True)
    ]
    buildings = gpd.GeoDataFrame(
        {
            "osm_id": buildings["id"].astype(str),
            "building": buildings["building"].astype(str),
            "name": tag("name"),
            "address": address,
        },
        geometry=buildings.geometry.values,
        crs=METRIC_CRS,
    )
    buildings = buildings.sort_values("osm_id", key=_osm_sort_key).reset_index(drop=True)

    is_road = osm["highway"].isin(BLOCK_ROADS) if "highway" in tags else False
    roads = osm[is_road & osm.geom_type.isin(["LineString", "MultiLineString"])]
    roads = roads[["geometry"]].to_crs(METRIC_CRS).reset_index(drop=True)
    return buildings, roads


def format_address(street: str | None, number: str | None, housename: str | None) -> str | None:
    """A short Chinese address label: the house name, else street + number (e.g. 中山路18号)."""
    if housename:
        return housename
    if not number:
        return None
    suffix = "" if number.endswith("号") else "号"
    return f"{street or ''}{number}{suffix}"


def _osm_sort_key(ids: pd.Series) -> pd.Series:
    """Sort key for OSM ids like 'way/123': by type, then numerically by id."""
    parts = ids.str.split("/", n=1)
    return parts.str[0] + "/" + parts.str[1].str.zfill(20)


def read_divisions(streets_csv: str | Path, communities_csv: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the official street and community codes/names (codes kept as strings)."""
    streets = pd.read_csv(streets_csv, dtype=str)[["code", "name"]]
    communities = pd.read_csv(communities_csv, dtype=str)[["code", "name", "streetCode"]]
    # "蓝旗新村社区居委会" is the committee; the area it serves is "蓝旗新村社区".
    communities["name"] = communities["name"].str.removesuffix("居委会")
    return streets.sort_values("code"), communities.sort_values("code")


# --------------------------------------------------------------------------------------
# Grids: road-bounded blocks, merged and split
# --------------------------------------------------------------------------------------


def managed_area(buildings: Sequence[BaseGeometry]) -> Polygon:
    """One hole-free polygon covering all buildings: the area the grids must tile."""
    vertices = shapely.MultiPoint(shapely.get_coordinates(np.asarray(buildings)))
    hull = shapely.concave_hull(vertices, ratio=HULL_RATIO)
    area = shapely.union_all([hull, *shapely.buffer(np.asarray(buildings), HULL_MARGIN)])
    parts = sorted(getattr(area, "geoms", [area]), key=lambda p: -p.area)
    # Fill holes (courtyards, lakes): a grid system covers everything inside its outline.
    return Polygon(parts[0].exterior)


def road_blocks(roads: Sequence[BaseGeometry], area: Polygon) -> list[Polygon]:
    """Polygonize the roads together with the area's outline: blocks that tile ``area``."""
    clipped = shapely.intersection(np.asarray(roads), area)
    # unary_union nodes the lines (splits them at every crossing) so polygonize sees a
    # planar graph; roads that end mid-block are dangles and are simply ignored.
    lines = shapely.union_all([*clipped, area.exterior])
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(lines))))
    return [f for f in faces if f.area > 0 and area.contains(f.representative_point())]


def shared_edge_length(a: BaseGeometry, b: BaseGeometry) -> float:
    """Length of the boundary two polygons share (0 when they only touch at points)."""
    return float(shapely.length(shapely.intersection(a.boundary, b.boundary)))


@dataclass
class Tiling:
    """A set of grid polygons tiling the managed area, with building overlaps.

    ``overlap[b][g]`` is the area building ``b`` shares with grid ``g``; each building
    belongs to the grid with the largest overlap (``owner``).
    """

    buildings: np.ndarray
    polys: dict[int, BaseGeometry] = field(default_factory=dict)
    overlap: list[dict[int, float]] = field(default_factory=list)
    adjacency: dict[int, set[int]] = field(default_factory=dict)
    next_id: int = 0

    @classmethod
    def from_polygons(cls, polys: Iterable[BaseGeometry], buildings: np.ndarray) -> Tiling:
        """Index ``polys`` as grids; compute adjacency and building overlaps."""
        tiling = cls(buildings=buildings)
        for p in polys:
            tiling.polys[tiling.next_id] = p
            tiling.next_id += 1
        tiling.rebuild_index()
        return tiling

    def rebuild_index(self) -> None:
        """Recompute adjacency (shared edges) and building overlaps from scratch."""
        ids = sorted(self.polys)
        geoms = np.array([self.polys[i] for i in ids], dtype=object)
        tree = shapely.STRtree(geoms)
        self.adjacency = {i: set() for i in ids}
        left, right = tree.query(geoms, predicate="intersects")
        for a, b in zip(left, right, strict=True):
            if a < b and shared_edge_length(geoms[a], geoms[b]) > 0:
                self.adjacency[ids[a]].add(ids[b])
                self.adjacency[ids[b]].add(ids[a])
        self.overlap = [{} for _ in range(len(self.buildings))]
        bi, gi = tree.query(self.buildings, predicate="intersects")
        areas = shapely.area(shapely.intersection(self.buildings[bi], geoms[gi]))
        for b, g, a in zip(bi, gi, areas, strict=True):
            if a > 0:
                self.overlap[b][ids[g]] = float(a)

    def owner(self, b: int) -> int | None:
        """The grid holding building ``b`` (largest overlap; ties to the lower id)."""
        ov = self.overlap[b]
        return min(ov, key=lambda g: (-ov[g], g)) if ov else None

    def members(self) -> dict[int, list[int]]:
        """Buildings of every grid, in building order."""
        out: dict[int, list[int]] = {g: [] for g in self.polys}
        for b in range(len(self.buildings)):
            g = self.owner(b)
            if g is not None:
                out[g].append(b)
        return out

    def merge(self, small: int, into: int) -> None:
        """Absorb grid ``small`` into its neighbour ``into``."""
        self.polys[into] = shapely.union(self.polys[into], self.polys.pop(small))
        for ov in self.overlap:
            if small in ov:
                ov[into] = ov.get(into, 0.0) + ov.pop(small)
        for n in self.adjacency.pop(small):
            self.adjacency[n].discard(small)
            if n != into:
                self.adjacency[n].add(into)
                self.adjacency[into].add(n)

    def replace(self, g: int, pieces: Sequence[BaseGeometry]) -> list[int]:
        """Replace grid ``g`` by ``pieces`` (adjacency is left stale until rebuild)."""
        self.polys.pop(g)
        new_ids = []
        for piece in pieces:
            self.polys[self.next_id] = piece
            new_ids.append(self.next_id)
            self.next_id += 1
        for b, ov in enumerate(self.overlap):
            if ov.pop(g, None) is not None:
                for nid in new_ids:
                    a = float(shapely.area(shapely.intersection(self.buildings[b], self.polys[nid])))
                    if a > 0:
                        ov[nid] = a
        return new_ids


def merge_small_grids(tiling: Tiling, min_buildings: int) -> None:
    """Merge grids holding fewer than ``min_buildings`` into the neighbour sharing the
    longest edge, smallest first, until every grid is big enough (or has no neighbour)."""
    counts = {g: 0 for g in tiling.polys}
    for g, members in tiling.members().items():
        counts[g] = len(members)
    stuck: set[int] = set()
    while True:
        small = [g for g in tiling.polys if counts[g] < min_buildings and g not in stuck]
        if not small:
            return
        g = min(small, key=lambda i: (counts[i], tiling.polys[i].area, i))
        neighbours = sorted(tiling.adjacency[g])
        if not neighbours:
            stuck.add(g)
            continue
        edges = {n: shared_edge_length(tiling.polys[g], tiling.polys[n]) for n in neighbours}
        target = max(neighbours, key=lambda n: (edges[n], -n))
        affected = [b for b, ov in enumerate(tiling.overlap) if g in ov or target in ov]
        before = {b: tiling.owner(b) for b in affected}
        tiling.merge(g, target)
        # Merging can also pull in buildings that straddled target and a third grid.
        for b in affected:
            after = tiling.owner(b)
            if before[b] != after:
                if before[b] in counts:
                    counts[before[b]] -= 1
                counts[after] += 1
        counts.pop(g)
        stuck.discard(target)


def long_axis(poly: BaseGeometry) -> tuple[np.ndarray, float, float]:
    """Unit vector along the long side of the minimum rotated rectangle, and the
    lengths of its long and short sides."""
    rect = shapely.minimum_rotated_rectangle(poly)
    corners = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = corners[1] - corners[0], corners[2] - corners[1]
    l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    if l1 >= l2:
        return e1 / l1, l1, l2
    return e2 / l2, l2, l1


def cut_in_two(poly: BaseGeometry, points: np.ndarray) -> list[Polygon]:
    """Cut ``poly`` by a straight line across its long axis, placed between the two middle
    ``points`` (building centroids) so each side gets about half the buildings."""
    axis, length, width = long_axis(poly)
    pos = points @ axis
    order = np.sort(pos)
    mid = len(order) // 2
    at = (order[mid - 1] + order[mid]) / 2
    # A point on the cut line: the polygon centroid moved along the axis to `at`.
    centre = np.asarray(poly.centroid.coords[0])
    origin = centre + axis * (at - centre @ axis)
    normal = np.array([-axis[1], axis[0]])
    reach = length + width
    cut = LineString([origin - normal * reach, origin + normal * reach])
    pieces = [p for p in shapely.get_parts(split_geometry(poly, cut).geoms) if p.area > 0]
    return pieces if len(pieces) > 1 else [poly]


def split_large_grids(tiling: Tiling, max_buildings: int) -> None:
    """Cut grids holding more than ``max_buildings`` in two, recursively."""
    centroids = shapely.get_coordinates(shapely.centroid(tiling.buildings))
    queue = sorted(g for g, m in tiling.members().items() if len(m) > max_buildings)
    while queue:
        g = queue.pop(0)
        members = tiling.members()[g]
        if len(members) <= max_buildings:
            continue
        pieces = cut_in_two(tiling.polys[g], centroids[members])
        if len(pieces) == 1:
            continue
        new_ids = tiling.replace(g, pieces)
        members_now = tiling.members()
        queue.extend(n for n in new_ids if len(members_now[n]) > max_buildings)


def retile(tiling: Tiling) -> Tiling:
    """Node all grid outlines together and rebuild each grid from the resulting faces.

    A cut adds vertices on one side of an edge only; after noding, neighbours share
    identical vertices again, so they keep touching exactly after rounding.
    """
    ids = sorted(tiling.polys)
    geoms = np.array([tiling.polys[i] for i in ids], dtype=object)
    lines = shapely.union_all(shapely.boundary(geoms))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    tree = shapely.STRtree(geoms)
    pieces: dict[int, list[BaseGeometry]] = {i: [] for i in ids}
    for face in faces:
        hits = tree.query(face, predicate="intersects")
        if len(hits) == 0:
            continue
        areas = shapely.area(shapely.intersection(face, geoms[hits]))
        best = hits[int(np.argmax(areas))]
        pieces[ids[best]].append(face)
    polys = [shapely.union_all(p) for i in ids if (p := pieces[i])]
    return Tiling.from_polygons(polys, tiling.buildings)


def build_grids(buildings: np.ndarray, roads: np.ndarray) -> list[BaseGeometry]:
    """Tile the managed area with grids of MIN..MAX buildings (metric CRS polygons)."""
    area = managed_area(buildings)
    tiling = Tiling.from_polygons(road_blocks(roads, area), buildings)
    merge_small_grids(tiling, MIN_BUILDINGS_PER_GRID)
    split_large_grids(tiling, MAX_BUILDINGS_PER_GRID)
    tiling = retile(tiling)
    merge_small_grids(tiling, MIN_BUILDINGS_PER_GRID)
    return [tiling.polys[i] for i in sorted(tiling.polys)]


# --------------------------------------------------------------------------------------
# Communities and streets: contiguous groups
# --------------------------------------------------------------------------------------


def grid_adjacency(polys: Sequence[BaseGeometry]) -> dict[int, dict[int, float]]:
    """Shared edge length between every pair of touching polygons."""
    geoms = np.asarray(polys, dtype=object)
    tree = shapely.STRtree(geoms)
    adj: dict[int, dict[int, float]] = {i: {} for i in range(len(geoms))}
    left, right = tree.query(geoms, predicate="intersects")
    for a, b in zip(left, right, strict=True):
        if a < b and (length := shared_edge_length(geoms[a], geoms[b])) > 0:
            adj[int(a)][int(b)] = adj[int(b)][int(a)] = length
    return adj


def group_adjacent(
    adjacency: dict[int, dict[int, float]],
    order: Callable[[int], Hashable],
    sizes: tuple[int, int, int],
) -> list[list[int]]:
    """Partition the nodes of a weighted adjacency graph into contiguous groups.

    Greedy region growing: seed at the node with the fewest free neighbours (an edge or
    corner of the map, so growth does not strand fragments), then add the free
    neighbour sharing the longest boundary with the group, up to the target size.
    Groups left below the minimum are folded into the adjacent group sharing the
    longest boundary. ``order`` breaks ties deterministically.
    """
    min_size, target, max_size = sizes
    free = set(adjacency)
    groups: list[list[int]] = []
    while free:
        seed = min(free, key=lambda n: (len(adjacency[n].keys() & free), order(n)))
        group = [seed]
        free.discard(seed)
        while len(group) < target:
            frontier: dict[int, float] = {}
            for m in group:
                for n, length in adjacency[m].items():
                    if n in free:
                        frontier[n] = frontier.get(n, 0.0) + length
            if not frontier:
                break
            best = max(frontier, key=lambda n: (frontier[n], _neg(order(n))))
            group.append(best)
            free.discard(best)
        groups.append(group)
    return _fold_small_groups(groups, adjacency, min_size, max_size)


def _neg(key: Hashable) -> Hashable:
    """Reverse a tuple-of-numbers sort key (so max() prefers the smallest key)."""
    return tuple(-k for k in key) if isinstance(key, tuple) else -key  # type: ignore[operator]


def _fold_small_groups(
    groups: list[list[int]], adjacency: dict[int, dict[int, float]], min_size: int, max_size: int
) -> list[list[int]]:
    """Dissolve groups smaller than ``min_size``: hand their members one by one to an
    adjacent group, preferring one below ``max_size``, then the longest shared boundary.

    Each member joins a group it touches, so every group stays contiguous.
    """
    groups = [list(g) for g in groups]
    stuck: set[int] = set()  # group indexes that touch no other group
    while True:
        small = [i for i, g in enumerate(groups) if 0 < len(g) < min_size and i not in stuck]
        if not small:
            return [g for g in groups if g]
        i = min(small, key=lambda k: (len(groups[k]), k))
        orphans, groups[i] = groups[i], []
        group_of = {n: k for k, g in enumerate(groups) for n in g}
        while orphans:
            options = []
            for m in orphans:
                shared: dict[int, float] = {}
                for n, length in adjacency[m].items():
                    if n in group_of:
                        shared[group_of[n]] = shared.get(group_of[n], 0.0) + length
                for k, length in shared.items():
                    options.append((len(groups[k]) >= max_size, -length, m, k))
            if not options:
                break
            _, _, m, k = min(options)
            groups[k].append(m)
            group_of[m] = k
            orphans.remove(m)
        if orphans:  # isolated from every other group: keep it as it is
            groups[i] = orphans
            stuck.add(i)


def contracted_adjacency(
    adjacency: dict[int, dict[int, float]], groups: Sequence[Sequence[int]]
) -> dict[int, dict[int, float]]:
    """Adjacency between groups: shared boundary summed over their members."""
    group_of = {n: i for i, g in enumerate(groups) for n in g}
    out: dict[int, dict[int, float]] = {i: {} for i in range(len(groups))}
    for a, nbrs in adjacency.items():
        for b, length in nbrs.items():
            ga, gb = group_of[a], group_of[b]
            if ga != gb:
                out[ga][gb] = out[ga].get(gb, 0.0) + length
    return out


def assign_streets(
    street_centres: Sequence[tuple[float, float]],
    street_sizes: Sequence[int],
    streets: pd.DataFrame,
    communities: pd.DataFrame,
) -> list[str]:
    """Give each street group a real street code that has enough communities.

    Groups are served largest first; each takes the nearest anchored street (see
    STREET_ANCHORS), else the first unused street in code order.
    """
    available = communities.groupby("streetCode").size().to_dict()
    codes = list(streets["code"])
    chosen: dict[int, str] = {}
    for i in sorted(range(len(street_sizes)), key=lambda k: (-street_sizes[k], k)):
        fits = [c for c in codes if c not in chosen.values() and available.get(c, 0) >= street_sizes[i]]
        if not fits:
            raise ValueError(f"no real street left with {street_sizes[i]} communities")
        anchored = [c for c in fits if c in STREET_ANCHORS]
        x, y = street_centres[i]
        if anchored:
            chosen[i] = min(anchored, key=lambda c: math.dist((x, y), STREET_ANCHORS[c]))
        else:
            chosen[i] = fits[0]
    return [chosen[i] for i in range(len(street_sizes))]


# --------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------


def is_unit_building(kind: str, area: float) -> bool:
    """Whether a footprint looks like an apartment block with stairwell units."""
    return kind in UNIT_BUILDING_TYPES and UNIT_MIN_AREA <= area <= UNIT_MAX_AREA


def unit_strips(footprint: BaseGeometry) -> list[Polygon]:
    """Strips across the long axis of the footprint's minimum rotated rectangle, about
    UNIT_LENGTH m wide; a unit is a strip intersected with the footprint.

    The caller does that intersection in the stored (snapped) coordinates so units lie
    inside the stored building; the outer sides of the strips reach UNIT_MARGIN beyond
    the rectangle so snapping cannot leave slivers of the building outside every unit.
    Strips that would cover less than 1 m² of the footprint (notches) are left out.
    """
    rect = shapely.minimum_rotated_rectangle(footprint)
    corners = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = corners[1] - corners[0], corners[3] - corners[0]
    if np.hypot(*e1) < np.hypot(*e2):
        e1, e2 = e2, e1
    length, width = float(np.hypot(*e1)), float(np.hypot(*e2))
    u1, u2 = e1 / length, e2 / width
    lo, hi = UNIT_COUNT_RANGE
    n = min(max(round(length / UNIT_LENGTH), lo), hi)
    # Cut positions along the long axis; the two ends pushed outwards by the margin.
    cuts = [length * i / n for i in range(n + 1)]
    cuts[0], cuts[-1] = -UNIT_MARGIN, length + UNIT_MARGIN
    strips = []
    for t0, t1 in itertools.pairwise(cuts):
        a, b = corners[0] + u1 * t0 - u2 * UNIT_MARGIN, corners[0] + u1 * t1 - u2 * UNIT_MARGIN
        across = u2 * (width + 2 * UNIT_MARGIN)
        strip = Polygon([a, b, b + across, a + across])
        if shapely.intersection(footprint, strip).area >= 1.0:
            strips.append(strip)
    return strips


# --------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------


def to_wgs84(geoms: Sequence[BaseGeometry], snap: bool = True) -> np.ndarray:
    """Reproject metric geometries to WGS84 and (by default) snap them to COORD_PRECISION."""
    if len(geoms) == 0:
        return np.array([], dtype=object)
    projected = gpd.GeoSeries(list(geoms), crs=METRIC_CRS).to_crs(WGS84).values
    # Reprojection can push nearly coincident vertices across each other; repair those
    # few so that snapping to the coordinate grid works.
    if not snap:
        return np.asarray(projected, dtype=object)
    repaired = [g if g.is_valid else polygonal_part(g) for g in projected]
    snapped = shapely.set_precision(np.asarray(repaired, dtype=object), COORD_PRECISION)
    return np.array([simplest(g) for g in snapped], dtype=object)


def simplest(geom: BaseGeometry) -> BaseGeometry:
    """A one-part MultiPolygon as a plain Polygon; anything else unchanged."""
    if geom.geom_type == "MultiPolygon" and len(geom.geoms) == 1:
        return geom.geoms[0]
    return geom


def north_west_first(geom: BaseGeometry) -> tuple[float, float]:
    """Reading-order sort key: north to south in 50 m bands, then west to east."""
    c = geom.centroid
    return (-math.floor(c.y / 50.0), c.x)


def build_demo_map(
    osm_path: str | Path, streets_csv: str | Path, communities_csv: str | Path
) -> gpd.GeoDataFrame:
    """Build the whole demo area tree (see module docstring) as a GeoDataFrame in EPSG:4326."""
    buildings, roads = read_osm(osm_path)
    streets, communities = read_divisions(streets_csv, communities_csv)
    b_geoms = np.asarray(buildings.geometry.values, dtype=object)

    grid_polys = build_grids(b_geoms, np.asarray(roads.geometry.values))
    # Snap grids first and derive everything above them from the snapped shapes, so
    # parents are exactly the union of their children in the stored coordinates.
    grid_wgs = to_wgs84(grid_polys)

    adjacency = grid_adjacency(grid_polys)
    order = {i: north_west_first(p) for i, p in enumerate(grid_polys)}
    comm_groups = group_adjacent(adjacency, order.__getitem__, COMMUNITY_GRIDS)
    comm_polys = [shapely.union_all([grid_polys[i] for i in g]) for g in comm_groups]
    comm_order = {i: north_west_first(p) for i, p in enumerate(comm_polys)}
    street_groups = group_adjacent(
        contracted_adjacency(adjacency, comm_groups), comm_order.__getitem__, STREET_COMMUNITIES
    )
    # Streets in reading order of their first community, communities in reading order.
    street_groups = [sorted(g, key=comm_order.__getitem__) for g in street_groups]
    street_groups.sort(key=lambda g: comm_order[g[0]])

    def union_wgs(parts: Iterable[BaseGeometry]) -> BaseGeometry:
        return shapely.union_all(list(parts), grid_size=COORD_PRECISION)

    comm_wgs = [union_wgs(grid_wgs[i] for i in g) for g in comm_groups]
    street_wgs = [union_wgs(comm_wgs[c] for c in g) for g in street_groups]
    centres = [(s.centroid.x, s.centroid.y) for s in street_wgs]
    street_codes = assign_streets(centres, [len(g) for g in street_groups], streets, communities)

    rows: dict[str, list[dict]] = {level: [] for level in LEVELS}

    def add(level: str, code: str, name: str, parent: str | None, geom: BaseGeometry,
            derived: int = 1, osm_id: str | None = None) -> None:
        rows[level].append(
            {"code": code, "name": name, "level": level, "parent_code": parent,
             "derived": derived, "osm_id": osm_id, "geometry": geom}
        )

    add("district", DISTRICT_CODE, DISTRICT_NAME, None, union_wgs(street_wgs))
    street_names = dict(zip(streets["code"], streets["name"], strict=True))
    grid_code: dict[int, tuple[str, str]] = {}
    for s, (street_code, group) in enumerate(zip(street_codes, street_groups, strict=True)):
        add("street", street_code, street_names[street_code], DISTRICT_CODE, street_wgs[s])
        real = communities[communities["streetCode"] == street_code]
        for c, (code, name) in zip(group, zip(real["code"], real["name"], strict=False), strict=False):
            add("community", code, name, street_code, comm_wgs[c])
            for k, g in enumerate(sorted(comm_groups[c], key=order.__getitem__), start=1):
                grid_code[g] = (f"{code}{k:03d}", f"{name}第{k}网格")
    for g in sorted(grid_code, key=lambda g: grid_code[g][0]):
        code, name = grid_code[g]
        add("grid", code, name, code[:12], grid_wgs[g])

    b_wgs = to_wgs84(b_geoms)
    b_owner = reassign_buildings(b_wgs, grid_wgs)
    units = building_units(buildings, b_geoms)
    for g in sorted(grid_code, key=lambda g: grid_code[g][0]):
        gcode, gname = grid_code[g]
        mine = [b for b in range(len(b_geoms)) if b_owner[b] == g]
        for n, b in enumerate(sorted(mine, key=lambda b: north_west_first(b_geoms[b])), start=1):
            rec = buildings.iloc[b]
            type_letter, osm_num = rec["osm_id"][0], rec["osm_id"].split("/", 1)[1]
            bcode = f"B{type_letter}{osm_num}"
            name = _text(rec["name"]) or _text(rec["address"]) or f"{gname}-{n}号楼"
            add("building", bcode, name, gcode, b_wgs[b], derived=0, osm_id=rec["osm_id"])
            # Clip again in the stored coordinates so every unit lies inside its building.
            for u, piece in enumerate(_clip_all(units.get(b, []), b_wgs[b]), start=1):
                add("unit", f"{bcode}-{u}", f"{u}单元", bcode, piece)

    records = [r for level in LEVELS for r in rows[level]]
    gdf = gpd.GeoDataFrame(records, geometry="geometry", crs=WGS84)
    gdf["derived"] = gdf["derived"].astype("int32")
    return gdf


def building_units(buildings: gpd.GeoDataFrame, b_geoms: np.ndarray) -> dict[int, list[BaseGeometry]]:
    """Unit slices (in WGS84, not yet clipped) of every apartment-like building."""
    owners: list[int] = []
    slices: list[BaseGeometry] = []
    for b, (kind, geom) in enumerate(zip(buildings["building"], b_geoms, strict=True)):
        if is_unit_building(kind, geom.area):
            pieces = unit_strips(geom)
            owners.extend([b] * len(pieces))
            slices.extend(pieces)
    out: dict[int, list[BaseGeometry]] = {}
    for b, piece in zip(owners, to_wgs84(slices, snap=False), strict=True):
        out.setdefault(b, []).append(piece)
    return out


def _text(value: object) -> str | None:
    """A cell as text, None when missing (pandas stores missing strings as NaN)."""
    return None if value is None or pd.isna(value) else str(value)


def _clip_all(pieces: Iterable[BaseGeometry], outline: BaseGeometry) -> list[BaseGeometry]:
    """Intersect each piece with ``outline``; drop empty results and crumbs.

    Deliberately not snapped to the coordinate grid: a snapped cut point lands up to
    half a grid step off the building's edge, making the unit stick out of it. Units
    keep the building's (snapped) vertices; only the cut points carry full precision.
    """
    out = []
    for p in pieces:
        clipped = polygonal_part(shapely.intersection(p, outline))
        if clipped is None:
            continue
        # Drop crumbs: a slice through a notch of the footprint leaves sub-m² bits.
        parts = [q for q in shapely.get_parts(clipped) if _area_m2(q) >= 1.0]
        if parts:
            out.append(parts[0] if len(parts) == 1 else MultiPolygon(parts))
    return out


def _area_m2(geom: BaseGeometry) -> float:
    """Approximate area in m² of a small WGS84 geometry (equirectangular at its latitude)."""
    lat = math.radians(geom.centroid.y)
    return geom.area * (111_320.0**2) * math.cos(lat)


def reassign_buildings(buildings_wgs: np.ndarray, grids_wgs: np.ndarray) -> list[int]:
    """Owner grid of each building by largest overlap, measured on the stored (snapped)
    geometries in the metric CRS -- the same way a consumer of the file would check it."""
    b = gpd.GeoSeries(buildings_wgs, crs=WGS84).to_crs(METRIC_CRS).values
    g = gpd.GeoSeries(grids_wgs, crs=WGS84).to_crs(METRIC_CRS).values
    return largest_overlap(b, g)


def largest_overlap(items: np.ndarray, containers: np.ndarray) -> list[int]:
    """Index of the container each item overlaps most (-1 when it overlaps none)."""
    tree = shapely.STRtree(containers)
    ii, cc = tree.query(items, predicate="intersects")
    areas = shapely.area(shapely.intersection(items[ii], containers[cc]))
    best = [-1] * len(items)
    best_area = [0.0] * len(items)
    for i, c, a in zip(ii, cc, areas, strict=True):
        if a > best_area[i] or (a == best_area[i] and a > 0 and c < best[i]):
            best[i], best_area[i] = int(c), float(a)
    return best


def write_gpkg(gdf: gpd.GeoDataFrame, out: str | Path) -> None:
    """Write ``gdf`` as the ``areas`` layer with attribution metadata (overwriting)."""
    out = Path(out)
    out.unlink(missing_ok=True)
    # Layer metadata only: GDAL re-reads GeoPackage *dataset* metadata as "changed" and
    # then leaves a nanjing.gpkg.aux.xml next to the file on every read.
    # promote_to_multi=False keeps single polygons as Polygon (the layer type is generic).
    pyogrio.write_dataframe(
        gdf, out, layer=LAYER, driver="GPKG", layer_metadata=METADATA,
        promote_to_multi=False, geometry_type="Unknown",
    )


def summarize(gdf: gpd.GeoDataFrame) -> str:
    """Counts per level and the buildings-per-grid distribution, as text."""
    counts = gdf["level"].value_counts()
    lines = ["areas per level: " + ", ".join(f"{lv} {counts.get(lv, 0)}" for lv in LEVELS)]
    per_grid = gdf[gdf["level"] == "building"].groupby("parent_code").size()
    per_grid = per_grid.reindex(gdf.loc[gdf["level"] == "grid", "code"], fill_value=0)
    q = per_grid.quantile([0, 0.1, 0.5, 0.9, 1]).round(1).tolist()
    lines.append(
        "buildings per grid: min {} / p10 {} / median {} / p90 {} / max {}".format(*q)
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--osm", required=True, help="OSM extract (GeoJSON)")
    parser.add_argument("--streets", required=True, help="qinhuai-streets.csv")
    parser.add_argument("--communities", required=True, help="qinhuai-communities.csv")
    parser.add_argument("--out", required=True, help="output GeoPackage")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    gdf = build_demo_map(args.osm, args.streets, args.communities)
    write_gpkg(gdf, args.out)
    elapsed = time.perf_counter() - started
    size = Path(args.out).stat().st_size
    print(summarize(gdf))
    print(f"wrote {args.out} ({size / 1e6:.2f} MB) in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
