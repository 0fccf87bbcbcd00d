"""Ugly input on every documented route: never a 500, always a JSON error naming what is wrong.

Driven by the OpenAPI document, so a route, query parameter or body field is swept as soon as
it is documented. The sweep found real 500s: a path id of "²" (str.isdigit accepts it, int does
not) or of 40 digits, a NUL character on PostgreSQL, a list where a grid code was expected.
"""

from __future__ import annotations

import pytest

from tests.world import B1_POINT, PASSWORD

UGLY_VALUES = [None, "", "\x00", "x" * 100_000, 2**63, -(2**63), 1e308, -1, True, "²",
               [], {}, [None], [{}], [[]]]
UGLY_TEXT = ["²", "9" * 40, "-1", "%00", "nan", "1e309", "x" * 5000, "%E2%80%AE", "'; --"]
UGLY_PATH_IDS = ["%C2%B2", "9" * 40, "-1", "%00", "%20"]


def _operations(world):
    document = world.client.get("/api/v1/openapi.json").get_json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method.upper(), operation


def _real_path(world, path: str, incident: dict) -> str:
    ids = {"incident_ref": incident["id"], "crew_id": world.crews["A"], "user_id": world.users["m1"],
           "code": "burst_pipe", "day": "2026-12-25", "token": "not-a-tracking-token", "shift_id": 1}
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    return "/api/v1" + path


def _assert_answered(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:300])
    assert response.status_code != 401 or what[0] is None or "/auth/token" in str(what), what  # signed in all along
    if response.status_code >= 400:
        error = response.get_json(silent=True)
        assert isinstance(error, dict) and error["error"]["code"] and error["error"]["message"], what
        if error["error"]["code"] == "invalid_field":
            assert isinstance(error["error"]["details"]["field"], str), what


@pytest.fixture
def incident(world):
    created = world.report(as_user="operator")
    assert created.status_code == 201
    return created.get_json()


def _valid_bodies(incident) -> dict[tuple[str, str], dict]:
    """A valid body for the routes whose checks run only once the required fields are there:
    each ugly value replaces one field of it, so the sweep reaches the later checks too."""
    lon, lat = B1_POINT
    return {
        ("POST", "/incidents"): {"category": "burst_pipe", "location": {"lon": lon, "lat": lat}},
        ("POST", "/incidents/{incident_ref}/actions"): {"action": "acknowledge",
                                                        "expected_version": incident["version"]},
        ("POST", "/people"): {"username": "ugly", "password": "pw-pw", "role": "admin"},
        ("POST", "/crews"): {"name": "ugly crew"},
        ("POST", "/auth/token"): {"username": "admin", "password": PASSWORD},
        ("POST", "/track/{token}/rating"): {"rating": 5},
    }


@pytest.mark.parametrize("caller", ["admin", None])
def test_every_body_field_takes_ugly_values(world, incident, caller):
    headers = world.headers(caller)
    valid = _valid_bodies(incident)
    swept = 0
    for path, method, operation in _operations(world):
        body = operation.get("requestBody")
        if not body:
            continue
        schema = body["content"]["application/json"]["schema"]
        listed = schema["type"] == "array"
        for field in (schema["items"] if listed else schema).get("properties", {}):
            for value in UGLY_VALUES:
                sent = {**valid.get((method, path), {}), field: value}
                response = world.client.open(_real_path(world, path, incident), method=method,
                                             json=[sent] if listed else sent, headers=headers)
                _assert_answered(response, (caller, method, path, field, repr(value)[:40]))
                swept += 1
    assert swept > 1000  # every documented body field was reached


@pytest.mark.parametrize("part", ["lon", "lat", "crs", "building_code", "unit_code"])
def test_every_part_of_a_report_location_takes_ugly_values(world, part):
    lon, lat = B1_POINT
    for value in UGLY_VALUES:
        location = {"lon": lon, "lat": lat, part: value} if part in ("lon", "lat", "crs") else {part: value}
        response = world.client.post("/api/v1/incidents", headers=world.headers("operator"),
                                     json={"category": "burst_pipe", "location": location})
        _assert_answered(response, (part, repr(value)[:40]))
        if response.status_code >= 400 and part in ("lon", "lat"):
            assert response.get_json()["error"]["details"]["field"].startswith("location"), value


def test_a_body_over_a_megabyte_is_refused_unread(world):
    before = world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"]
    response = world.client.post("/api/v1/incidents", data=b'{"description": "' + b"x" * (1 << 20) + b'"}',
                                 content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"] == before


def test_every_query_parameter_and_path_id_takes_ugly_text(world, incident):
    headers = {**world.headers("admin"), "Idempotency-Key": "x" * 5000}
    swept = 0
    for path, method, operation in _operations(world):
        urls = [f"{_real_path(world, path, incident)}?{parameter['name']}={text}"
                for parameter in operation.get("parameters", []) if parameter["in"] == "query"
                for text in UGLY_TEXT]
        if "{" in path:  # one path parameter per route: replace it
            head, tail = path.split("{", 1)[0], path.split("}", 1)[1]
            urls += [_real_path(world, head + text + tail, incident) for text in UGLY_PATH_IDS + UGLY_TEXT]
        for url in urls:
            _assert_answered(world.client.open(url, method=method, headers=headers, json={}),
                             (method, url[:120]))
            swept += 1
    assert swept > 500
