"""Locate on the real demo map of central Nanjing."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from grids.geometry import metres_between, wgs84_to_gcj02
from grids.index import AreaIndex, OutsideManagedArea
from tests.conftest import DEMO_MAP

SHARED_OSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "nanjing-central-osm.geojson"


@pytest.fixture(scope="module")
def demo():
    frame = gpd.read_file(DEMO_MAP, engine="pyogrio")
    parents = [None if p is None or p != p else p for p in frame.parent_code]
    index = AreaIndex.from_arrays(frame.code.tolist(), frame.level.tolist(), parents,
                                  np.asarray(frame.geometry, dtype=object))
    return frame, index


def test_every_building_point_routes_to_that_building_and_its_grid(demo):
    frame, index = demo
    buildings = frame[frame.level == "building"]
    tree = shapely.STRtree(np.asarray(buildings.geometry, dtype=object))
    areas = shapely.area(np.asarray(buildings.geometry, dtype=object))
    codes = buildings.code.to_numpy()
    mismatches = []
    for code, parent, geometry in zip(buildings.code, buildings.parent_code, buildings.geometry):
        point = geometry.representative_point()
        found = index.locate(point.x, point.y)
        assert found.method in ("building", "unit")
        if found.chain["building"] != code:
            # Only when the point also lies in a smaller overlapping footprint (the tie rule).
            hits = tree.query(point, predicate="intersects")
            smallest = codes[hits[np.lexsort((codes[hits], areas[hits]))[0]]]
            assert found.chain["building"] == smallest
            mismatches.append(code)
            continue
        assert found.chain["grid"] == parent
    assert len(mismatches) < 20  # a handful of nested or duplicated OSM outlines


def test_points_on_shared_grid_edges_are_deterministic(demo):
    frame, index = demo
    grids = frame[frame.level == "grid"]
    shuffled = grids.sample(frac=1, random_state=7)
    others = frame[frame.level != "grid"]
    combined = gpd.GeoDataFrame(
        pd.concat([others[others.level.isin(["district", "street", "community"])], shuffled]), crs=4326)
    reordered = AreaIndex.from_arrays(
        combined.code.tolist(), combined.level.tolist(),
        [None if p != p else p for p in combined.parent_code], np.asarray(combined.geometry, dtype=object))
    checked = 0
    geoms = dict(zip(grids.code, grids.geometry))
    grid_tree = shapely.STRtree(np.asarray(grids.geometry, dtype=object))
    grid_codes = grids.code.to_numpy()
    for code in grids.code:
        for neighbour in index.adjacent_grids(code)[:2]:
            edge = shapely.intersection(geoms[code].boundary, geoms[neighbour].boundary)
            # A vertex of the shared edge: exactly on both outlines (an interpolated point
            # would fall a rounding error inside one of them).
            x, y = shapely.get_coordinates(edge)[0]
            point = shapely.Point(x, y)
            first = index.locate(x, y)
            if first.method != "grid":
                continue  # a building sits on the line; it decides
            holders = grid_codes[grid_tree.query(point, predicate="intersects")]
            assert len(holders) >= 2
            assert first.chain["grid"] == min(holders)
            assert reordered.locate(x, y).chain["grid"] == first.chain["grid"]
            checked += 1
    assert checked > 50


@pytest.mark.skipif(not SHARED_OSM.exists(), reason=f"shared OSM data not found at {SHARED_OSM}")
def test_points_on_roads_inside_the_map_return_a_grid(demo):
    frame, index = demo
    district = frame[frame.level == "district"].geometry.iloc[0]
    roads = gpd.read_file(SHARED_OSM, engine="pyogrio", on_invalid="ignore")
    roads = roads[roads.geometry.geom_type == "LineString"]
    roads = roads[roads.get("highway").notna()] if "highway" in roads else roads
    points = shapely.line_interpolate_point(np.asarray(roads.geometry, dtype=object), 0.5, normalized=True)
    inside = points[shapely.contains_xy(district, shapely.get_x(points), shapely.get_y(points))]
    assert len(inside) > 100
    for point in inside:
        found = index.locate(point.x, point.y)
        assert found.chain["grid"] is not None and found.chain["district"] == "320104"


def test_snapping_and_outside(demo):
    frame, index = demo
    district = frame[frame.level == "district"].geometry.iloc[0]
    west = district.bounds[0]
    row = shapely.intersection(district, shapely.box(west, 32.0, west + 0.0001, 32.06))
    lat = row.centroid.y
    edge_lon = shapely.get_coordinates(shapely.intersection(district.boundary, shapely.LineString(
        [(west - 0.01, lat), (west + 0.01, lat)]))).min(axis=0)[0]
    near = edge_lon - 0.0002  # ~19 m west of the map's edge
    found = index.locate(near, lat)
    assert found.method == "snapped"
    assert found.distance_m == pytest.approx(metres_between(near, lat, edge_lon, lat), abs=2)
    with pytest.raises(OutsideManagedArea) as info:
        index.locate(edge_lon - 0.002, lat)  # ~190 m out
    assert info.value.nearest_distance_m > 150


def test_api_locate_on_the_demo_map(demo_app, demo):
    client = demo_app.test_client()
    frame, index = demo
    named = frame[(frame.level == "building") & ~frame.name.str.contains("号楼")]
    # A named building that no other footprint overlaps at its representative point.
    building = next(b for b in named.itertuples()
                    if index.locate(*b.geometry.representative_point().coords[0]).chain["building"] == b.code)
    point = building.geometry.representative_point()
    body = client.get(f"/api/v1/locate?lon={point.x}&lat={point.y}").get_json()
    assert body["chain"]["building"]["code"] == building.code
    assert body["chain"]["district"]["name"] == "秦淮区"
    glon, glat = wgs84_to_gcj02(point.x, point.y)
    gcj = client.get(f"/api/v1/locate?lon={glon}&lat={glat}&crs=gcj02").get_json()
    assert gcj["chain"]["building"]["code"] == building.code
    plain = client.get(f"/api/v1/locate?lon={glon}&lat={glat}")
    assert plain.status_code == 422 or plain.get_json()["chain"]["building"] != building.code
    far = client.get("/api/v1/locate?lon=116.397&lat=39.909")
    assert far.status_code == 422 and far.get_json()["error"]["code"] == "outside_managed_area"
