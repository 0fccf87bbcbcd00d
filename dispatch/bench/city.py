"""A synthetic city for benchmarks: a full area tree around Nanjing, built with numpy.

Grids tile a jittered lattice exactly: every lattice node is shared by the four cells
around it and every cell edge (a run of 2-9 wiggled vertices) by the two cells on either
side, so neighbouring grids share their coordinates and never overlap or leave gaps.
Grids have 12-40 vertices like real blocks. Buildings (5-12 vertices: chamfered
rectangles, L, T, U, stepped and cross shapes, scaled and rotated) sit in the disjoint
slots of an inner box that every grid contains whatever its jitter, so each building is
wholly inside exactly one grid and no two buildings touch. Communities are unions of
5 x 5 grid blocks, streets of 5 x 5 community blocks, and one district holds them all.

Everything is built in metres on a local plane and mapped linearly to degrees
(EPSG:4326) around Nanjing, which keeps the tiling exact. Deterministic for a seed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import shapely

# Centre of the city and the metres per degree there (equirectangular, fine at this size).
CENTRE_LON, CENTRE_LAT = 118.85, 32.05
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(CENTRE_LAT))

CELL_W, CELL_H = 190.0, 180.0  # metres; a real urban grid is a couple of hundred metres
NODE_JITTER = 0.15  # of the cell size, for interior lattice nodes
EDGE_WIGGLE = 0.03  # of the cell size, perpendicular offset of the vertices along an edge
EDGE_VERTICES = (2, 9)  # vertices inserted per grid edge (inclusive): 12-40 per grid
MARGIN = 0.2  # the box [MARGIN, 1 - MARGIN]^2 of each cell lies inside its grid
BLOCK = 5  # grids per community side, communities per street side

# Building outlines in [-1, 1]^2, 5 to 12 vertices each, counter-clockwise.
_TEMPLATES = [
    [(-1, -1), (1, -1), (1, 0.4), (0.4, 1), (-1, 1)],  # chamfered rectangle
    [(-1, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)],  # L
    [(-1, -1), (1, -1), (1, 0), (0, 0), (0, 0.6), (-0.4, 1), (-1, 1)],  # L, one corner cut
    [(-0.35, -1), (0.35, -1), (0.35, 0.3), (1, 0.3), (1, 1), (-1, 1), (-1, 0.3), (-0.35, 0.3)],  # T
    [(-1, -1), (1, -1), (1, 1), (0.4, 1), (0.4, -0.2), (-0.4, -0.2), (-0.4, 1), (-1, 1)],  # U
    [(-1, -1), (0.6, -1), (0.6, -0.6), (1, -0.6), (1, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6),
     (0.2, 1), (-1, 1)],  # stepped
    [(-0.4, -1), (0.4, -1), (0.4, -0.4), (1, -0.4), (1, 0.4), (0.4, 0.4), (0.4, 1), (-0.4, 1),
     (-0.4, 0.4), (-1, 0.4), (-1, -0.4), (-0.4, -0.4)],  # cross
]
_MAX_VERTICES = max(len(t) for t in _TEMPLATES)


@dataclass
class City:
    """The whole tree as parallel arrays, parents before children (district first)."""

    codes: np.ndarray  # object (str)
    names: np.ndarray  # object (str)
    levels: np.ndarray  # object (str)
    parents: np.ndarray  # object (str or None)
    geometries: np.ndarray  # object (shapely Polygon), EPSG:4326 degrees
    grids: slice  # positions of the grids in the arrays above
    buildings: slice  # positions of the buildings
    nx: int  # lattice columns
    ny: int  # lattice rows
    slots: tuple[int, int]  # building slots per grid (columns, rows)
    grid_cell: np.ndarray  # (n_grids, 2) lattice (column, row) of each grid
    building_slot: np.ndarray  # (n_buildings, 3) grid number, slot column, slot row

    def __len__(self) -> int:
        return len(self.codes)

    def counts(self) -> dict[str, int]:
        levels, counts = np.unique(self.levels.astype(str), return_counts=True)
        return dict(zip(levels.tolist(), counts.tolist()))


def to_degrees(x: np.ndarray, y: np.ndarray, nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """Local metres (origin at the south-west corner of the lattice) to lon/lat."""
    lon0 = CENTRE_LON - nx * CELL_W / 2 / M_PER_DEG_LON
    lat0 = CENTRE_LAT - ny * CELL_H / 2 / M_PER_DEG_LAT
    return lon0 + x / M_PER_DEG_LON, lat0 + y / M_PER_DEG_LAT


def _polygons(coords: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Polygons from padded vertex arrays (n, m, 2) with a (n, m) mask of real vertices."""
    flat = coords[mask]
    ring = np.repeat(np.arange(len(coords)), mask.sum(axis=1))
    rings = shapely.linearrings(flat, indices=ring)  # closes each ring
    return shapely.polygons(rings)


def _edges(start: np.ndarray, end: np.ndarray, k: np.ndarray, amplitude: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Vertices inside each edge start->end: (n, K, 2), NaN-free, slots >= k unused."""
    kmax = EDGE_VERTICES[1]
    s = np.arange(kmax)[None, :]
    # Evenly spread over [0.1, 0.9] of the edge with a little jitter, always increasing.
    t = 0.1 + 0.8 * (s + 0.5 + rng.uniform(-0.3, 0.3, (len(k), kmax))) / k[:, None]
    d = end - start
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.hypot(d[:, 0], d[:, 1])[:, None]
    offset = rng.uniform(-1, 1, (len(k), kmax)) * amplitude[:, None]
    return start[:, None, :] + t[..., None] * d[:, None, :] + offset[..., None] * normal[:, None, :]


def _grid_polygons(nx: int, ny: int, cells: np.ndarray, rng: np.random.Generator):
    """Polygons (in metres) of the given lattice cells (n, 2 = column, row)."""
    i_nodes, j_nodes = np.meshgrid(np.arange(nx + 1), np.arange(ny + 1))
    x = i_nodes * CELL_W + rng.uniform(-NODE_JITTER, NODE_JITTER, i_nodes.shape) * CELL_W
    y = j_nodes * CELL_H + rng.uniform(-NODE_JITTER, NODE_JITTER, j_nodes.shape) * CELL_H
    # The outline of the city stays straight, so distances to it are known exactly.
    x[:, 0], x[:, -1] = 0.0, nx * CELL_W
    y[0, :], y[-1, :] = 0.0, ny * CELL_H
    nodes = np.stack([x, y], axis=-1)  # (ny + 1, nx + 1, 2)

    lo, hi = EDGE_VERTICES
    # Horizontal edges (j, i): node (j, i) -> (j, i + 1); vertical (j, i): (j, i) -> (j + 1, i).
    h_start, h_end = nodes[:, :-1].reshape(-1, 2), nodes[:, 1:].reshape(-1, 2)
    h_k = rng.integers(lo, hi + 1, len(h_start))
    h_amp = np.full(len(h_start), EDGE_WIGGLE * CELL_H)
    h_amp.reshape(ny + 1, nx)[[0, -1], :] = 0.0
    h_pts = _edges(h_start, h_end, h_k, h_amp, rng).reshape(ny + 1, nx, hi, 2)
    h_k = h_k.reshape(ny + 1, nx)
    v_start, v_end = nodes[:-1, :].reshape(-1, 2), nodes[1:, :].reshape(-1, 2)
    v_k = rng.integers(lo, hi + 1, len(v_start))
    v_amp = np.full(len(v_start), EDGE_WIGGLE * CELL_W)
    v_amp.reshape(ny, nx + 1)[:, [0, -1]] = 0.0
    v_pts = _edges(v_start, v_end, v_k, v_amp, rng).reshape(ny, nx + 1, hi, 2)
    v_k = v_k.reshape(ny, nx + 1)

    i, j = cells[:, 0], cells[:, 1]
    slot = np.arange(hi)[None, :]
    one = np.ones((len(cells), 1), dtype=bool)
    # Counter-clockwise: SW, bottom edge, SE, right edge, NE, top edge back, NW, left edge back.
    parts = [
        (nodes[j, i][:, None], one),
        (h_pts[j, i], slot < h_k[j, i][:, None]),
        (nodes[j, i + 1][:, None], one),
        (v_pts[j, i + 1], slot < v_k[j, i + 1][:, None]),
        (nodes[j + 1, i + 1][:, None], one),
        (h_pts[j + 1, i][:, ::-1], (slot < h_k[j + 1, i][:, None])[:, ::-1]),
        (nodes[j + 1, i][:, None], one),
        (v_pts[j, i][:, ::-1], (slot < v_k[j, i][:, None])[:, ::-1]),
    ]
    coords = np.concatenate([p for p, _ in parts], axis=1)
    mask = np.concatenate([m for _, m in parts], axis=1)
    return coords, mask


def _slot_layout(per_grid: float) -> tuple[int, int]:
    """Building slots per grid (columns, rows): room for ~1.2x the mean count."""
    need = max(1, math.ceil(per_grid * 1.2))
    rows = max(1, round(math.sqrt(need * CELL_H / CELL_W)))
    return math.ceil(need / rows), rows


def _building_polygons(centres: np.ndarray, radius: float, rng: np.random.Generator):
    """Buildings (in metres) each inside the circle of `radius` around its centre."""
    n = len(centres)
    templates = np.zeros((len(_TEMPLATES), _MAX_VERTICES, 2))
    tmask = np.zeros((len(_TEMPLATES), _MAX_VERTICES), dtype=bool)
    for t, outline in enumerate(_TEMPLATES):
        templates[t, : len(outline)] = outline
        tmask[t, : len(outline)] = True
    kind = rng.integers(0, len(_TEMPLATES), n)
    # Template points lie within sqrt(a^2 + b^2) <= 1 after scaling by (a, b) * radius.
    a = rng.uniform(0.45, 0.85, n)
    b = np.sqrt(1 - a**2) * rng.uniform(0.6, 1.0, n)
    angle = rng.uniform(0, math.pi, n)
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    local = templates[kind] * (np.stack([a, b], axis=1) * radius)[:, None, :]
    x = local[..., 0] * cos - local[..., 1] * sin + centres[:, 0:1]
    y = local[..., 0] * sin + local[..., 1] * cos + centres[:, 1:2]
    return np.stack([x, y], axis=-1), tmask[kind]


def _union_by(geoms: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Union of the geometries of each group 0..max (they form a coverage: shared edges)."""
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(groups.max() + 2))
    return np.array(
        [shapely.coverage_union_all(geoms[order[a:b]]) for a, b in itertools.pairwise(bounds)],
        dtype=object,
    )


def _to_degrees_geoms(geoms: np.ndarray, nx: int, ny: int) -> np.ndarray:
    def affine(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_degrees(xy[:, 0], xy[:, 1], nx, ny)
        return np.stack([lon, lat], axis=1)

    return shapely.transform(geoms, affine)


def make_city(n_grids: int = 100_000, n_buildings: int = 1_000_000, *, seed: int = 20240601,
              progress=None) -> City:
    """Build the city. `progress(message)` is called before each step when given."""
    if n_grids < 1 or n_buildings < 0:
        raise ValueError("need at least one grid and no negative building count")
    say = progress or (lambda _message: None)
    rng = np.random.default_rng(seed)
    nx = max(1, math.ceil(math.sqrt(n_grids * CELL_H / CELL_W * 1.2)))
    ny = math.ceil(n_grids / nx)
    # Row by row from the south; the last row may be partly filled.
    cells = np.stack([np.arange(n_grids) % nx, np.arange(n_grids) // nx], axis=1)

    say(f"grids: {n_grids} on a {nx} x {ny} lattice")
    coords, mask = _grid_polygons(nx, ny, cells, rng)
    grid_geoms = _polygons(coords, mask)

    say(f"buildings: {n_buildings}")
    sx, sy = _slot_layout(n_buildings / n_grids)
    if n_buildings > n_grids * sx * sy:
        raise ValueError("too many buildings for the slots")
    taken = np.sort(rng.choice(n_grids * sx * sy, n_buildings, replace=False))
    grid_of, slot = np.divmod(taken, sx * sy)
    slot_i, slot_j = slot % sx, slot // sx
    box_w, box_h = (1 - 2 * MARGIN) * CELL_W, (1 - 2 * MARGIN) * CELL_H
    slot_w, slot_h = box_w / sx, box_h / sy
    centres = np.stack(
        [
            (cells[grid_of, 0] + MARGIN) * CELL_W + (slot_i + 0.5) * slot_w,
            (cells[grid_of, 1] + MARGIN) * CELL_H + (slot_j + 0.5) * slot_h,
        ],
        axis=1,
    )
    # Inside the slot's inscribed circle, with a gap: no two buildings touch.
    b_coords, b_mask = _building_polygons(centres, 0.45 * min(slot_w, slot_h), rng)
    building_geoms = _polygons(b_coords, b_mask)

    say("communities, streets and district")
    community_cols = math.ceil(nx / BLOCK)
    community_of = (cells[:, 1] // BLOCK) * community_cols + cells[:, 0] // BLOCK
    used, community_of = np.unique(community_of, return_inverse=True)
    community_geoms = _union_by(grid_geoms, community_of)
    # A community's lattice block, then its street's block.
    c_col, c_row = used % community_cols, used // community_cols
    street_of = (c_row // BLOCK) * math.ceil(community_cols / BLOCK) + c_col // BLOCK
    _, street_of = np.unique(street_of, return_inverse=True)
    street_geoms = _union_by(community_geoms, street_of)
    district_geom = shapely.coverage_union_all(street_geoms)

    say("to degrees")
    n_streets, n_communities = len(street_geoms), len(community_geoms)
    geoms = np.concatenate(
        [[district_geom], street_geoms, community_geoms, grid_geoms, building_geoms]
    ).astype(object)
    geoms = _to_degrees_geoms(geoms, nx, ny)

    street_codes = np.array([f"S{k:04d}" for k in range(1, n_streets + 1)], dtype=object)
    community_codes = np.array([f"C{k:06d}" for k in range(1, n_communities + 1)], dtype=object)
    grid_codes = np.array([f"G{k:06d}" for k in range(1, n_grids + 1)], dtype=object)
    building_codes = np.array([f"B{k:07d}" for k in range(1, n_buildings + 1)], dtype=object)
    codes = np.concatenate([["D1"], street_codes, community_codes, grid_codes, building_codes])
    parents = np.concatenate(
        [[None], np.full(n_streets, "D1", dtype=object), street_codes[street_of],
         community_codes[community_of], grid_codes[grid_of]]
    ).astype(object)
    counts = {"district": 1, "street": n_streets, "community": n_communities,
              "grid": n_grids, "building": n_buildings}
    levels = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    prefix = {"district": "Synthetic district", "street": "Street", "community": "Community",
              "grid": "Grid", "building": "Building"}
    names = np.array([f"{prefix[lv]} {c}" for lv, c in zip(levels, codes)], dtype=object)

    first_grid = 1 + n_streets + n_communities
    return City(
        codes=codes.astype(object),
        names=names,
        levels=levels,
        parents=parents,
        geometries=geoms,
        grids=slice(first_grid, first_grid + n_grids),
        buildings=slice(first_grid + n_grids, first_grid + n_grids + n_buildings),
        nx=nx,
        ny=ny,
        slots=(sx, sy),
        grid_cell=cells,
        building_slot=np.stack([grid_of, slot_i, slot_j], axis=1),
    )


@dataclass
class Queries:
    """Query points and what each should find."""

    lons: np.ndarray
    lats: np.ndarray
    kind: np.ndarray  # "building" | "grid" | "snapped" | "outside"
    expected: np.ndarray  # object: building code, grid code, or None (snapped/outside)


def query_points(city: City, n: int, *, seed: int = 7, in_building: float = 0.80,
                 in_grid: float = 0.15, snapped: float = 0.03) -> Queries:
    """n points: inside buildings, inside grids between buildings, within 30 m outside the
    city (snapped) and far outside (the rest), shuffled."""
    rng = np.random.default_rng(seed)
    n_b = round(n * in_building) if city.buildings.stop > city.buildings.start else 0
    n_g = round(n * in_grid)
    n_s = round(n * snapped)
    n_o = max(0, n - n_b - n_g - n_s)
    sx, sy = city.slots
    xs, ys, kinds, expected = [], [], [], []

    pick = rng.integers(city.buildings.start, city.buildings.stop, n_b)
    inside = shapely.get_coordinates(shapely.point_on_surface(city.geometries[pick]))
    xs.append(inside[:, 0]), ys.append(inside[:, 1])
    kinds += ["building"] * n_b
    expected += city.codes[pick].tolist()

    # A corner shared by four building slots is inside the box (so the grid) and
    # outside every slot's inscribed circle (so every building).
    grids = rng.integers(0, len(city.grid_cell), n_g)
    ci, cj = rng.integers(0, sx + 1, n_g), rng.integers(0, sy + 1, n_g)
    box_w, box_h = (1 - 2 * MARGIN) * CELL_W, (1 - 2 * MARGIN) * CELL_H
    gx = (city.grid_cell[grids, 0] + MARGIN) * CELL_W + ci * box_w / sx
    gy = (city.grid_cell[grids, 1] + MARGIN) * CELL_H + cj * box_h / sy
    lon, lat = to_degrees(gx, gy, city.nx, city.ny)
    xs.append(lon), ys.append(lat)
    kinds += ["grid"] * n_g
    expected += city.codes[city.grids][grids].tolist()

    # West of the straight west edge (full rows only), 5-25 m out: snapped.
    full_rows = max(1, city.ny - 1) if len(city.grid_cell) % city.nx else city.ny
    sy_m = rng.uniform(0.1, 0.9, n_s) * full_rows * CELL_H
    lon, lat = to_degrees(-rng.uniform(5, 25, n_s), sy_m, city.nx, city.ny)
    xs.append(lon), ys.append(lat)
    kinds += ["snapped"] * n_s
    expected += [None] * n_s

    # South of the city, 0.5-3 km out: outside the managed area.
    ox = rng.uniform(0, city.nx * CELL_W, n_o)
    lon, lat = to_degrees(ox, -rng.uniform(500, 3000, n_o), city.nx, city.ny)
    xs.append(lon), ys.append(lat)
    kinds += ["outside"] * n_o
    expected += [None] * n_o

    order = rng.permutation(n)
    return Queries(
        lons=np.concatenate(xs)[order],
        lats=np.concatenate(ys)[order],
        kind=np.array(kinds, dtype=object)[order],
        expected=np.array(expected, dtype=object)[order],
    )
