"""REST: health, OpenAPI coverage, areas as GeoJSON, locate, and JSON errors."""

from __future__ import annotations

import geopandas as gpd
import pytest

from grids.io import import_file
from tests.geodata import G1, G2, ROWS, at, tree_file


@pytest.fixture
def tree_client(app, client, tmp_path):
    with app.extensions["griddispatch.db"].session() as s:
        import_file(s, tree_file(tmp_path))
    return client


def test_health(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_openapi_documents_every_route(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    documented = {
        ("/api/v1" + path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is not in the OpenAPI document"


def test_list_areas_filters_and_pages(tree_client):
    everything = tree_client.get("/api/v1/areas?limit=5").get_json()
    assert everything["type"] == "FeatureCollection"
    assert everything["total"] == len(ROWS) and len(everything["features"]) == 5
    assert everything["next"]
    rest = tree_client.get(everything["next"]).get_json()
    assert rest["offset"] == 5 and len(rest["features"]) == 5

    grids = tree_client.get("/api/v1/areas?level=grid").get_json()
    assert [f["id"] for f in grids["features"]] == sorted([G1, G2, "320104002001001"])
    children = tree_client.get(f"/api/v1/areas?parent={G1}").get_json()
    assert [f["id"] for f in children["features"]] == ["B1"]

    named = tree_client.get("/api/v1/areas?q=第2网格").get_json()
    assert [f["id"] for f in named["features"]] == [G2]
    assert tree_client.get("/api/v1/areas?q=100%25").get_json()["total"] == 0  # % is literal

    (x0, y0), (x1, y1) = at(0.1, 0.1), at(0.7, 0.7)
    near_b1 = tree_client.get(f"/api/v1/areas?level=building&bbox={x0},{y0},{x1},{y1}").get_json()
    assert [f["id"] for f in near_b1["features"]] == ["B1"]


def test_area_geojson_round_trips_through_geopandas(tree_client):
    body = tree_client.get("/api/v1/areas?level=building").get_json()
    frame = gpd.GeoDataFrame.from_features(body["features"], crs=4326)
    assert frame.geometry.is_valid.all() and len(frame) == 3


def test_get_area_with_chain(tree_client):
    feature = tree_client.get("/api/v1/areas/B1-2").get_json()
    assert feature["properties"]["level"] == "unit"
    chain = feature["properties"]["chain"]
    assert chain["building"]["code"] == "B1" and chain["grid"]["code"] == G1
    assert chain["district"] == {"code": "320104", "name": "秦淮区"}


def test_locate(tree_client):
    lon, lat = at(0.3, 0.3)
    body = tree_client.get(f"/api/v1/locate?lon={lon}&lat={lat}").get_json()
    assert body["method"] == "unit"
    assert body["chain"]["unit"]["code"] == "B1-1"
    assert body["chain"]["street"]["name"] == "秦虹街道"


def test_locate_gcj02(tree_client):
    from grids.geometry import wgs84_to_gcj02

    lon, lat = at(3.0, 1.5)
    glon, glat = wgs84_to_gcj02(lon, lat)
    body = tree_client.get(f"/api/v1/locate?lon={glon}&lat={glat}&crs=gcj02").get_json()
    assert body["chain"]["grid"]["code"] == "320104002001001"
    assert body["lon"] == pytest.approx(lon, abs=1e-6)
    # The same numbers read as WGS84 are ~500 m away: outside the managed area.
    assert tree_client.get(f"/api/v1/locate?lon={glon}&lat={glat}").status_code == 422


@pytest.mark.parametrize(
    "url, status, field",
    [
        ("/api/v1/areas?level=block", 400, "level"),
        ("/api/v1/areas?limit=0", 400, "limit"),
        ("/api/v1/areas?limit=abc", 400, "limit"),
        ("/api/v1/areas?bbox=1,2,3", 400, "bbox"),
        ("/api/v1/areas?q=" + "x" * 101, 400, "q"),
        ("/api/v1/areas?bbox=3,2,1,4", 400, "bbox"),
        ("/api/v1/locate?lat=32", 400, "lon"),
        ("/api/v1/locate?lon=abc&lat=32", 400, "lon"),
        ("/api/v1/locate?lon=nan&lat=32", 400, "lon"),
        ("/api/v1/locate?lon=118&lat=95", 400, "lat"),
        ("/api/v1/locate?lon=118.78&lat=32.03&crs=bd42", 400, "crs"),
        # Found by an intake audit: BD-09's shift carried these past the pole, where every
        # distance was NaN and the point was "snapped" into a Nanjing grid.
        ("/api/v1/locate?lon=-180&lat=-90&crs=bd09", 400, "lon"),
        ("/api/v1/locate?lon=118.78&lat=-90&crs=bd09", 400, "lat"),
    ],
)
def test_bad_parameters_name_the_field(tree_client, url, status, field):
    response = tree_client.get(url)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["details"]["field"] == field and field in error["message"]


def test_outside_the_managed_area_is_422(tree_client):
    lon, lat = at(6, 1)  # ~190 m east of the district
    response = tree_client.get(f"/api/v1/locate?lon={lon}&lat={lat}")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "outside_managed_area"
    assert error["details"]["nearest_distance_m"] > 30


def test_a_point_near_a_pole_is_nowhere_near(tree_client):
    """Converted to WGS84 it is still on the globe, a world away: never a nearest grid."""
    for crs in ("bd09", "gcj02", "wgs84"):
        response = tree_client.get(f"/api/v1/locate?lon=118.78&lat=-89.99&crs={crs}")
        assert response.status_code == 422, (crs, response.get_json())
        assert response.get_json()["error"]["code"] == "outside_managed_area"


def test_snaps_within_tolerance(tree_client):
    lon, lat = at(4.2, 1.0)  # ~19 m east of G3
    body = tree_client.get(f"/api/v1/locate?lon={lon}&lat={lat}").get_json()
    assert body["method"] == "snapped" and 15 < body["distance_m"] < 25
    assert body["chain"]["grid"]["code"] == "320104002001001"


def test_unknown_area_and_route_are_json(tree_client):
    response = tree_client.get("/api/v1/areas/NOPE")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "area_not_found"
    response = tree_client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.get_json()
    response = tree_client.post("/api/v1/health")
    assert response.status_code == 405 and "error" in response.get_json()
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}  # RFC 9110 asks a 405 for it


def test_a_building_in_no_grid_places_nothing(app, client, tmp_path):
    """Found by an area audit: a building imported before any grid (so kept as a root)
    answered locate with no grid, and a report there was filed with no manager."""
    from dispatch.incidents.categories import seed_categories
    from dispatch.incidents.models import Incident
    from tests.geodata import square

    lonely = tmp_path / "lonely.geojson"
    gpd.GeoDataFrame({"code": ["BX", "BY"], "name": ["远处的楼", "网格里的楼"], "level": ["building", "building"]},
                     geometry=[square(10, 10, 10.5, 10.5), square(0.6, 0.6, 0.7, 0.7)],
                     crs=4326).to_file(lonely, engine="pyogrio")
    with app.extensions["griddispatch.db"].session() as s:
        import_file(s, lonely)  # nothing above them yet: roots
        import_file(s, tree_file(tmp_path))
        seed_categories(s)
    far = client.get("/api/v1/locate?lon={}&lat={}".format(*at(10.25, 10.25)))
    assert far.status_code == 422 and far.get_json()["error"]["code"] == "outside_managed_area"
    inside = client.get("/api/v1/locate?lon={}&lat={}".format(*at(0.65, 0.65))).get_json()
    assert inside["chain"]["grid"]["code"] == G1 and inside["chain"]["building"] is None
    assert inside["method"] == "grid"
    for code in ("BX", "BY"):
        report = client.post("/api/v1/incidents", json={"category": "no_water", "location": {"building_code": code}})
        assert report.status_code == 422, report.get_json()
        assert report.get_json()["error"]["details"]["field"] == "location.building_code"
    with app.extensions["griddispatch.db"].session() as s:
        assert s.query(Incident).count() == 0
