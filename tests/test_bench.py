"""The locate benchmark on a tiny city: it runs, prints its table and JSON, and the city is sound.

No timing assertions: timings belong in docs/BENCHMARKS.md, not in a test.
"""

from __future__ import annotations

import json

import numpy as np
import shapely
from click.testing import CliRunner

from dispatch.bench.city import make_city, query_points
from dispatch.cli import main


def test_bench_locate_prints_table_and_json_line():
    result = CliRunner().invoke(
        main,
        ["bench", "locate", "--grids", "200", "--buildings", "2000", "--queries", "200",
         "--skip-import", "--postgis-url", ""],  # never PostGIS in tests
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert any(line.startswith("single locate p50 vs raw STRtree") for line in lines)
    figures = json.loads(lines[-1])
    assert figures["bench"] == "locate"
    assert (figures["grids"], figures["buildings"], figures["queries"]) == (200, 2000, 200)
    assert {"build_s", "single", "batch", "postgis", "import_s", "targets_met"} <= figures.keys()
    assert {"locate_p50_us", "strtree_p50_us", "ratio"} <= figures["single"].keys()
    assert {"locate_many_points_per_s", "strtree_points_per_s"} <= figures["batch"].keys()
    assert figures["postgis"] is None and figures["import_s"] is None
    assert set(figures["targets_met"]) == {"build_s", "single_ratio", "postgis_speedup", "import_s"}
    # Every query point got the answer the city was built to give.
    for kind, tally in figures["correct"].items():
        right, total = map(int, tally.split("/"))
        assert right == total, (kind, tally)


def test_city_grids_tile_and_each_building_lies_in_one_grid():
    city = make_city(300, 3000, seed=3)
    assert city.counts() == {"district": 1, "street": 1, "community": 15, "grid": 300,
                             "building": 3000}
    assert shapely.is_valid(city.geometries).all()
    grids = city.geometries[city.grids]
    buildings = city.geometries[city.buildings]
    vertices = shapely.get_num_coordinates(grids) - 1
    assert vertices.min() >= 12 and vertices.max() <= 40
    vertices = shapely.get_num_coordinates(buildings) - 1
    assert vertices.min() >= 5 and vertices.max() <= 12

    # Tiling: no two grids overlap, and together they cover the district with no gaps.
    tree = shapely.STRtree(grids)
    left, _ = tree.query(grids, predicate="overlaps")
    assert left.size == 0
    district = city.geometries[0]
    assert abs(shapely.area(grids).sum() - district.area) < 1e-9 * district.area
    assert shapely.difference(district, shapely.union_all(grids)).area < 1e-9 * district.area

    # Every building lies within exactly one grid: its parent.
    inside, grid = tree.query(buildings, predicate="within")
    assert np.array_equal(inside, np.arange(len(buildings)))
    assert (city.codes[city.grids][grid] == city.parents[city.buildings]).all()
    # ... and no two buildings overlap.
    b_tree = shapely.STRtree(buildings)
    a, b = b_tree.query(buildings, predicate="intersects")
    assert (a == b).all()

    # Parents are one level up and hold their children.
    codes = dict(zip(city.codes.tolist(), range(len(city))))
    for i in range(1, city.grids.stop):
        parent = city.geometries[codes[city.parents[i]]]
        assert parent.buffer(1e-9).contains(city.geometries[i])


def test_city_is_deterministic_and_queries_cover_every_kind():
    one, two = make_city(50, 400, seed=11), make_city(50, 400, seed=11)
    assert shapely.equals_exact(one.geometries, two.geometries, tolerance=0).all()
    queries = query_points(one, 100)
    assert set(queries.kind) == {"building", "grid", "snapped", "outside"}
