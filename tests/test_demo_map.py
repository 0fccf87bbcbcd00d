"""Checks on the bundled demo map (grids/demo/nanjing.gpkg) and its builder."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

import grids.demo
from grids import LEVELS, level_rank
from grids.demo.build import METADATA, build_demo_map

GPKG = Path(grids.demo.__file__).parent / "nanjing.gpkg"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METRIC_CRS = "EPSG:32650"


@pytest.fixture(scope="module")
def areas() -> gpd.GeoDataFrame:
    """The committed demo map, in stored coordinates."""
    return gpd.read_file(GPKG, layer="areas")


@pytest.fixture(scope="module")
def metric(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The demo map in UTM 50N, for areas in m²."""
    return areas.to_crs(METRIC_CRS)


def by_level(gdf: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    return gdf[gdf["level"] == level]


def require_shared_data() -> Path:
    if not (SHARED_DATA / "nanjing-central-osm.geojson").exists():
        pytest.skip(f"shared source data not found at {SHARED_DATA}")
    return SHARED_DATA


def test_file_is_small_and_in_wgs84(areas: gpd.GeoDataFrame) -> None:
    assert GPKG.stat().st_size < 5_000_000
    assert areas.crs.to_epsg() == 4326
    assert list(areas.columns) == [
        "code", "name", "level", "parent_code", "derived", "osm_id", "geometry"
    ]


def test_metadata_carries_attribution() -> None:
    meta = pyogrio.read_info(GPKG, layer="areas")["layer_metadata"]
    assert meta["attribution"] == METADATA["attribution"]
    assert "OpenStreetMap contributors" in meta["attribution"] and "ODbL" in meta["attribution"]
    assert meta["source"] == "OpenStreetMap extract of central Nanjing"
    assert "illustrative" in meta["partition"] and "derived" in meta["partition"]


def test_reading_leaves_no_sidecar_file() -> None:
    # GDAL writes a .aux.xml next to a GeoPackage carrying dataset-level metadata.
    pyogrio.read_dataframe(GPKG, layer="areas", max_features=1)
    assert not GPKG.with_name(GPKG.name + ".aux.xml").exists()


def test_codes_unique_and_levels_known(areas: gpd.GeoDataFrame) -> None:
    assert areas["code"].is_unique
    assert set(areas["level"]) == set(LEVELS)
    assert (by_level(areas, "district")["code"] == "320104").all()


def test_rows_are_top_down_and_parents_one_level_up(areas: gpd.GeoDataFrame) -> None:
    ranks = areas["level"].map(level_rank)
    assert ranks.is_monotonic_increasing
    district = by_level(areas, "district")
    assert len(district) == 1 and district["parent_code"].isna().all()
    rank_of = dict(zip(areas["code"], ranks, strict=True))
    seen: set[str] = set()
    for code, parent, rank in zip(areas["code"], areas["parent_code"], ranks, strict=True):
        if rank > 0:
            assert parent in seen, f"{code}: parent {parent} missing or after the child"
            assert rank_of[parent] == rank - 1, f"{code}: parent {parent} not one level up"
        seen.add(code)


def test_derived_and_osm_flags(areas: gpd.GeoDataFrame) -> None:
    assert set(areas["derived"]) <= {0, 1}
    buildings = by_level(areas, "building")
    assert (buildings["derived"] == 0).all()
    assert buildings["osm_id"].str.fullmatch(r"(way|relation)/\d+").all()
    assert (buildings["code"] == "B" + buildings["osm_id"].str[0] +
            buildings["osm_id"].str.split("/").str[1]).all()
    others = areas[areas["level"] != "building"]
    assert (others["derived"] == 1).all() and others["osm_id"].isna().all()


def test_geometries_valid_and_polygonal(areas: gpd.GeoDataFrame) -> None:
    geoms = areas.geometry.values
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    assert areas.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    # Grids, communities and streets are contiguous single polygons.
    upper = areas[areas["level"].isin(["district", "street", "community", "grid"])]
    assert (upper.geom_type == "Polygon").all()


def test_grids_tile_without_overlap(areas: gpd.GeoDataFrame, metric: gpd.GeoDataFrame) -> None:
    grids_m = by_level(metric, "grid").geometry.values
    tree = shapely.STRtree(grids_m)
    left, right = tree.query(grids_m, predicate="intersects")
    pairs = left < right
    overlaps = shapely.area(shapely.intersection(grids_m[left[pairs]], grids_m[right[pairs]]))
    assert overlaps.max(initial=0) < 1.0, f"grids overlap by up to {overlaps.max():.2f} m²"
    # Adjacent grids share edges, so every grid touches a neighbour in stored coordinates.
    grids_w = by_level(areas, "grid").geometry.values
    left, right = shapely.STRtree(grids_w).query(grids_w, predicate="touches")
    assert set(left) == set(range(len(grids_w)))


def test_buildings_belong_to_grid_of_largest_overlap(metric: gpd.GeoDataFrame) -> None:
    grids_m = by_level(metric, "grid")
    buildings = by_level(metric, "building")
    gcodes = grids_m["code"].to_numpy()
    bi, gi = shapely.STRtree(grids_m.geometry.values).query(
        buildings.geometry.values, predicate="intersects"
    )
    overlap = shapely.area(
        shapely.intersection(buildings.geometry.values[bi], grids_m.geometry.values[gi])
    )
    table = pd.DataFrame({"b": bi, "grid": gcodes[gi], "area": overlap})
    best = table.groupby("b")["area"].max()
    own = table[table["grid"].to_numpy() == buildings["parent_code"].to_numpy()[table["b"]]]
    own_area = own.set_index("b")["area"].reindex(best.index, fill_value=0.0)
    assert len(best) == len(buildings), "a building overlaps no grid"
    assert (own_area >= best - 1e-6).all(), "some building is not in its largest-overlap grid"


def test_units_lie_within_their_building(metric: gpd.GeoDataFrame) -> None:
    units = by_level(metric, "unit")
    buildings = by_level(metric, "building").set_index("code")
    outline = buildings.geometry.reindex(units["parent_code"]).values
    outside = shapely.area(shapely.difference(units.geometry.values, outline))
    # Coordinates are stored to 1e-7° (~1 cm); allow that rounding, nothing more.
    assert outside.max() < 0.05, f"a unit sticks out of its building by {outside.max():.3f} m²"
    assert units["name"].str.fullmatch(r"\d+单元").all()
    assert (units["code"] == units["parent_code"] + "-" + units["name"].str[:-2]).all()


@pytest.mark.parametrize("level", ["district", "street", "community"])
def test_parent_is_union_of_children(metric: gpd.GeoDataFrame, level: str) -> None:
    child_level = LEVELS[level_rank(level) + 1]
    children = by_level(metric, child_level)
    for code, geom in zip(*(by_level(metric, level)[c] for c in ("code", "geometry")), strict=True):
        union = shapely.union_all(children[children["parent_code"] == code].geometry.values)
        assert union.area == pytest.approx(geom.area, rel=1e-3), code
        assert shapely.symmetric_difference(union, geom).area < 1e-3 * geom.area, code


def test_buildings_per_grid(areas: gpd.GeoDataFrame) -> None:
    grid_codes = by_level(areas, "grid")["code"]
    per_grid = by_level(areas, "building").groupby("parent_code").size()
    per_grid = per_grid.reindex(grid_codes, fill_value=0)
    assert 15 <= per_grid.median() <= 80
    assert (grid_codes.str.len() == 15).all()
    assert (grid_codes.str[:12] == by_level(areas, "grid")["parent_code"]).all()


def test_streets_and_communities_are_real_divisions(areas: gpd.GeoDataFrame) -> None:
    data = require_shared_data()
    streets = pd.read_csv(data / "qinhuai-streets.csv", dtype=str)
    communities = pd.read_csv(data / "qinhuai-communities.csv", dtype=str)
    real_streets = dict(zip(streets["code"], streets["name"], strict=True))
    real_comms = {
        c: (n.removesuffix("居委会"), s)
        for c, n, s in zip(communities["code"], communities["name"], communities["streetCode"],
                           strict=True)
    }
    for code, name in zip(*(by_level(areas, "street")[c] for c in ("code", "name")), strict=True):
        assert real_streets.get(code) == name
    comms = by_level(areas, "community")
    for code, name, parent in zip(comms["code"], comms["name"], comms["parent_code"], strict=True):
        assert real_comms.get(code) == (name, parent)
        assert not name.endswith("居委会")


def test_rebuild_reproduces_committed_file(areas: gpd.GeoDataFrame) -> None:
    data = require_shared_data()
    rebuilt = build_demo_map(
        data / "nanjing-central-osm.geojson",
        data / "qinhuai-streets.csv",
        data / "qinhuai-communities.csv",
    )
    assert list(rebuilt["code"]) == list(areas["code"])
    assert list(rebuilt["parent_code"].fillna("")) == list(areas["parent_code"].fillna(""))
    assert list(rebuilt["name"]) == list(areas["name"])
    assert np.allclose(
        shapely.area(rebuilt.geometry.values), shapely.area(areas.geometry.values), rtol=1e-9
    )
