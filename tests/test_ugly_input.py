"""Ugly input on every documented route: never a 500, always a JSON error naming what is wrong.

Driven by the OpenAPI document, so a route, query parameter or body field is swept as soon as
it is documented. The sweep found real 500s: a path id of "²" (str.isdigit accepts it, int does
not) or of 40 digits, a NUL character on PostgreSQL, a list where a grid code was expected;
and a fuzzing session more: a lone surrogate ("\\ud800") anywhere in a body, a body nested two
thousand deep, an integer of 400 digits as a coordinate, times at the ends of the calendar.
"""

from __future__ import annotations

import json

import pytest

from tests.geodata import G1
from tests.world import B1_POINT, B3_POINT, PASSWORD

EDGES_OF_TIME = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]
UGLY_VALUES = [None, "", "\x00", "x" * 100_000, 2**63, -(2**63), 1e308, -1, True, "²",
               [], {}, [None], [{}], [[]], "\ud800", {"\udfff": 1}, 10**400, *EDGES_OF_TIME]
UGLY_TEXT = ["²", "9" * 40, "-1", "%00", "nan", "1e309", "x" * 5000, "%E2%80%AE", "'; --", "%ED%A0%80",
             "0001-01-01", "9999-12-31", *EDGES_OF_TIME, "0" * 4301, "1_0", "%D9%A1"]
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


def _assert_answered(response, what, operation: dict | None = None) -> None:
    assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:300])
    if operation is not None:  # the answer is one the OpenAPI document gives for this operation
        assert str(response.status_code) in operation["responses"], (what, response.status_code,
                                                                      response.get_data(as_text=True)[:300])
    assert response.status_code != 401 or what[0] is None or "/auth/token" in str(what), what  # signed in all along
    if response.status_code >= 400:
        error = response.get_json(silent=True)
        assert isinstance(error, dict) and error["error"]["code"] and error["error"]["message"], what
        if error["error"]["code"] == "invalid_field":
            assert isinstance(error["error"]["details"]["field"], str), what


def _json(body) -> str:
    """JSON as a client may send it: a lone surrogate escaped ("\\ud800"), as JSON can spell it."""
    return json.dumps(body, ensure_ascii=True)


@pytest.fixture
def incident(world):
    created = world.report(as_user="operator")
    assert created.status_code == 201
    return created.get_json()


def _valid_bodies(world, incident) -> dict[tuple[str, str], dict]:
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
        ("POST", "/on-call"): {"user_id": world.users["m1"], "area_code": G1,
                               "starts_at": "2026-12-01T18:00:00+08:00", "ends_at": "2026-12-02T09:00:00+08:00"},
    }


@pytest.mark.parametrize("caller", ["admin", None])
def test_every_body_field_takes_ugly_values(world, incident, caller):
    headers = world.headers(caller)
    valid = _valid_bodies(world, incident)
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
                                             data=_json([sent] if listed else sent),
                                             content_type="application/json", headers=headers)
                _assert_answered(response, (caller, method, path, field, repr(value)[:40]), operation)
                swept += 1
    assert swept > 1000  # every documented body field was reached


@pytest.mark.parametrize("part", ["lon", "lat", "crs", "building_code", "unit_code"])
def test_every_part_of_a_report_location_takes_ugly_values(world, part):
    lon, lat = B1_POINT
    for value in UGLY_VALUES:
        location = {"lon": lon, "lat": lat, part: value} if part in ("lon", "lat", "crs") else {part: value}
        response = world.client.post("/api/v1/incidents", headers=world.headers("operator"),
                                     data=_json({"category": "burst_pipe", "location": location}),
                                     content_type="application/json")
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
                             (method, url[:120]), operation)
            swept += 1
    assert swept > 500


def _total(world) -> int:
    return world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"]


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/incidents"])
def test_a_body_nested_too_deep_is_refused(world, path):
    """Two thousand levels made the JSON decoder itself give up (a 500 on every route, /health
    too); forty parse but are deeper than any body of ours and every walk over them recurses."""
    before = _total(world)
    for depth in (2000, 40):
        body = {"category": "rubbish", "location": {"building_code": "x"}, "description": "[" * depth + "]" * depth}
        raw = '{"category": "rubbish", "location": ' + "[" * depth + "]" * depth + "}"
        for data in (raw, "[" * depth + "]" * depth):
            response = world.client.post(path, data=data, content_type="application/json")
            assert response.status_code == 400, (depth, response.get_data(as_text=True)[:200])
            error = response.get_json()["error"]
            assert "nests deeper than 32 levels" in error["message"], error
        assert world.client.post(path, json=body).status_code != 500  # as text, any depth is text
    assert _total(world) == before


def test_a_lone_surrogate_is_refused_wherever_it_is_and_named(world, incident):
    """JSON can spell "\\ud800", but it is not Unicode text: it could be neither hashed for the
    Idempotency-Key, nor stored, nor repeated in an error naming the field."""
    before = _total(world)
    for body, field in (({"category": "rubbish", "description": "\ud800",
                          "location": {"lon": B1_POINT[0], "lat": B1_POINT[1]}}, "description"),
                        ({"category": "rubbish", "location": {"\udfff": 1}}, "location.\\udfff")):
        response = world.client.post("/api/v1/incidents", data=_json(body), content_type="application/json",
                                     headers={"Idempotency-Key": "k1"})
        assert response.status_code == 400, response.get_data(as_text=True)[:200]
        error = response.get_json()["error"]
        assert error["details"]["field"] == field
        assert "lone surrogate" in error["message"]
    response = world.client.post("/api/v1/auth/token", data=_json({"username": "admin", "password": "\ud800"}),
                                 content_type="application/json")
    assert response.status_code == 400
    response = world.client.patch(f"/api/v1/people/{world.users['m1']}", data=_json({"display_name": "张\udfff"}),
                                  content_type="application/json", headers=world.headers("admin"))
    assert (response.status_code, response.get_json()["error"]["details"]["field"]) == (400, "display_name")
    assert world.get("admin", incident)["version"] == incident["version"]
    assert _total(world) == before


def test_a_coordinate_too_large_for_a_float_is_out_of_range(world):
    for where in ("lon", "lat"):
        location = {"lon": B1_POINT[0], "lat": B1_POINT[1], where: 10**400}
        response = world.client.post("/api/v1/incidents", json={"category": "rubbish", "location": location})
        assert response.status_code == 400
        assert response.get_json()["error"]["details"]["field"] == f"location.{where}"
    crew = world.crews["A"]
    response = world.client.post(f"/api/v1/crews/{crew}/position", json={"lon": 10**400, "lat": B1_POINT[1]},
                                 headers=world.headers("admin"))
    assert (response.status_code, response.get_json()["error"]["details"]["field"]) == (400, "lon")


def test_a_crew_id_is_an_integer_an_id_column_can_hold(world):
    incident = world.report(as_user="operator", category="burst_pipe", point=B3_POINT).get_json()
    for crew_id, status in ((True, 400), ("A", 400), (2**31, 422), (10**30, 422), (-(2**63) - 1, 422), (0, 422)):
        response = world.act("m3", incident, "dispatch", crew_id=crew_id)
        assert response.status_code == status, (crew_id, response.get_json())
        assert response.get_json()["error"]["details"]["field"] == "crew_id"
    assert world.get("admin", incident)["version"] == incident["version"]  # nothing done
    assert world.act("m3", incident, "dispatch", crew_id=world.crews["A"]).status_code == 200  # B is sent already


@pytest.mark.parametrize("query", [
    "to=0001-01-01", "to=9999-12-31", "from=0001-01-01&to=0001-01-02",
    "from=9999-12-01&to=9999-12-31&bucket=week"])
def test_metrics_dates_at_the_ends_of_the_calendar_are_refused(world, query):
    response = world.client.get(f"/api/v1/metrics/rates?group_by=grid&{query}", headers=world.headers("admin"))
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["details"]["field"] in ("from", "to")
    assert "1970 to 2999" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("when", EDGES_OF_TIME)
def test_times_at_the_ends_of_the_calendar_are_refused(world, when):
    response = world.client.get("/api/v1/incidents", query_string={"from": when}, headers=world.headers("admin"))
    assert (response.status_code, response.get_json()["error"]["details"]["field"]) == (400, "from")
    before = world.client.get("/api/v1/on-call", headers=world.headers("admin")).get_json()["on_call"]
    response = world.client.post("/api/v1/on-call", headers=world.headers("admin"), json={
        "user_id": world.users["m1"], "area_code": G1, "starts_at": when, "ends_at": "2026-12-02T09:00:00+08:00"})
    assert (response.status_code, response.get_json()["error"]["details"]["field"]) == (400, "starts_at")
    assert world.client.get("/api/v1/on-call", headers=world.headers("admin")).get_json()["on_call"] == before


def test_the_areas_next_link_keeps_the_callers_parameters_as_they_came(world):
    """Names that url_for reads as its own (`endpoint`, `_method`, `_external`) were a 500
    or changed the link; they are the caller's parameters, kept as they came."""
    query = "limit=1&endpoint=x&_method=POST&_external=1&_anchor=a"
    page = world.client.get(f"/api/v1/areas?{query}")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    link = page.get_json()["next"]
    assert link.startswith("/api/v1/areas?") and "offset=1" in link
    assert all(part in link for part in query.split("&"))
    following = world.client.get(link)
    assert following.status_code == 200 and following.get_json()["offset"] == 1


@pytest.mark.parametrize("value", ["1_0", "\u0661", "0" * 4301, "1.0"])
def test_a_whole_number_in_a_query_is_ascii_digits(world, value):
    for url, name, more in (("/api/v1/areas", "limit", {}), ("/api/v1/incidents", "offset", {}),
                            ("/api/v1/metrics/rates", "min_sample", {"group_by": "grid"})):
        response = world.client.get(url, query_string={name: value, **more}, headers=world.headers("admin"))
        assert response.status_code == 400, (url, response.get_data(as_text=True)[:300])
        assert response.get_json()["error"]["details"]["field"] == name


def test_a_metrics_phase_asked_again_counts_once(world):
    """A phase named twice was summed twice; a thousand times, more columns than the
    database selects (answered as an outage, a 503 that apps retry for ever)."""
    incident = world.report(as_user="operator").get_json()
    assert world.act("m1", incident, "acknowledge").status_code == 200
    url = "/api/v1/metrics/response-times?group_by=grid&phase="
    once = world.client.get(url + "acknowledge", headers=world.headers("admin"))
    assert once.status_code == 200 and once.get_json()["rows"], once.get_json()
    for phases in ("acknowledge,acknowledge", ",".join(["acknowledge"] * 1000)):
        again = world.client.get(url + phases, headers=world.headers("admin"))
        assert again.status_code == 200, again.get_data(as_text=True)[:300]
        assert again.get_json() == once.get_json()


@pytest.mark.parametrize("gunicorn", [False, True], ids=["serve", "gunicorn"])
def test_what_the_http_server_refuses_unread_is_a_json_error_too(tmp_path, gunicorn):
    """Requests gevent's HTTP server refuses before the app sees them (an address over 8 KB, a
    request line that is not HTTP, a header line over 64 KB, a Content-Length that is not a
    number) got an empty answer with no JSON; now JSON like every other error, from
    `griddispatch serve` and from the README's gunicorn worker alike."""
    import socket
    from urllib.parse import urlsplit

    import requests
    from click.testing import CliRunner

    from dispatch.cli import main
    from tests.server import running_server

    url = f"sqlite:///{tmp_path / 'refused.sqlite3'}"
    assert CliRunner().invoke(main, ["init-db"], env={"DATABASE_URL": url}).exit_code == 0
    with running_server(url, gunicorn=gunicorn) as base:
        long = requests.get(f"{base}/api/v1/areas?level=grid&x={'y' * 9000}", timeout=5)
        assert long.status_code == 414
        assert long.headers["Content-Type"] == "application/json"
        assert long.json()["error"]["code"] == "uri_too_long"
        # Just under the limit the app answers, as for any other address.
        assert requests.get(f"{base}/api/v1/areas?x={'y' * 7000}", timeout=5).status_code == 200

        address = urlsplit(base)
        for raw in (b"NOT HTTP AT ALL\r\n\r\n",
                    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"z" * 70_000 + b"\r\n\r\n",
                    b"POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n"):
            with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
                sock.sendall(raw)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 "), (raw[:40], head)
            assert b"Content-Type: application/json" in head
            assert json.loads(body)["error"]["code"] == "malformed_request"


def test_the_document_gives_the_answers_the_server_gives(world):
    """Found by running schemathesis against the document: answers it did not list."""
    document = world.client.get("/api/v1/openapi.json").get_json()
    paths = document["paths"]

    # Anyone may report, but a token that is sent must be valid, and committee members watch.
    reporting = paths["/incidents"]["post"]
    assert reporting["security"] == [{}, {"bearer": []}] and {"401", "403"} <= reporting["responses"].keys()
    assert world.report(as_user="committee-s1").status_code == 403
    world.tokens["nobody"] = "not-a-token"
    assert world.report(as_user="nobody").status_code == 401

    # Retired categories are for admins; a value that is neither true nor false is a 400.
    listing = paths["/categories"]["get"]
    assert {"400", "401", "403"} <= listing["responses"].keys()
    assert world.client.get("/api/v1/categories?include_inactive=1").status_code == 401
    assert world.client.get("/api/v1/categories?include_inactive=1",
                            headers=world.headers("operator")).status_code == 403
    junk = world.client.get("/api/v1/categories?include_inactive=maybe")
    assert junk.status_code == 400 and junk.get_json()["error"]["details"]["field"] == "include_inactive"

    # A username is not changed: the document does not offer it, and the server refuses it.
    assert "username" not in paths["/people/{user_id}"]["patch"]["requestBody"]["content"]["application/json"][
        "schema"]["properties"]
    renamed = world.client.patch(f"/api/v1/people/{world.users['m1']}", headers=world.headers("admin"),
                                 json={"username": "m1-new"})
    assert renamed.status_code == 400

    # A 204 has no body; metrics come as CSV too.
    for path, method in (("/auth/token", "delete"), ("/on-call/{shift_id}", "delete"),
                         ("/calendar/{day}", "delete")):
        assert "content" not in paths[path][method]["responses"]["204"]
    signed_out = world.client.delete("/api/v1/auth/token", headers=world.headers("committee-s1"))
    world.tokens.pop("committee-s1")
    for answer in (signed_out, world.client.get("/favicon.ico")):
        assert answer.status_code == 204 and answer.data == b"" and "Content-Type" not in answer.headers
    for path in ("/metrics/rates", "/metrics/response-times"):
        assert "text/csv" in paths[path]["get"]["responses"]["200"]["content"]
        csv = world.client.get(f"/api/v1{path}?group_by=grid&format=csv", headers=world.headers("admin"))
        assert csv.status_code == 200 and csv.mimetype == "text/csv"

    # Every 405 says what the address takes.
    refused = world.client.put("/api/v1/health")
    assert refused.status_code == 405 and "GET" in refused.headers["Allow"]


def test_the_limits_the_document_gives_are_the_servers(world, incident):
    """A client (or schemathesis) may trust the document's bounds: an empty required text
    field and an integer just past a documented bound are refused naming them; at the bound
    the integer is taken."""
    admin = world.headers("admin")
    valid = {**_valid_bodies(world, incident),
             ("PATCH", "/people/{user_id}"): {"password": "a-new-password"},
             ("PUT", "/people/{user_id}/grids"): [{"grid_code": G1, "kind": "primary"}],
             ("PUT", "/people/{user_id}/hours"): [{"weekday": 0, "start": "09:00", "end": "17:00"}],
             ("POST", "/duty-desks"): {"user_id": world.users["m1"], "community_code": "320104001001"},
             ("POST", "/categories"): {"code": "kerb", "name_zh": "路缘石", "name_en": "Kerb"}}
    emptied = bounded = 0
    for path, method, operation in _operations(world):
        body = operation.get("requestBody")
        if body:
            schema = body["content"]["application/json"]["schema"]
            listed = schema["type"] == "array"
            for field, spec in (schema["items"] if listed else schema)["properties"].items():
                if not spec.get("minLength"):
                    continue
                sent = {**(valid[(method, path)][0] if listed else valid[(method, path)]), field: ""}
                response = world.client.open(_real_path(world, path, incident), method=method,
                                             json=[sent] if listed else sent, headers=admin)
                what = (method, path, field)
                assert response.status_code in (400, 422), (what, response.get_json())
                assert response.get_json()["error"]["details"]["field"].endswith(field), what
                emptied += 1
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] != "query" or schema.get("type") != "integer" or "maximum" not in schema:
                continue
            url = _real_path(world, path, incident) + f"?group_by=grid&{parameter['name']}="
            for value, taken in ((schema["minimum"] - 1, False), (schema["minimum"], True),
                                 (schema["maximum"], True), (schema["maximum"] + 1, False)):
                response = world.client.open(url + str(value), method=method, headers=admin)
                what = (method, path, parameter["name"], value)
                if taken:
                    assert response.status_code == 200, (what, response.get_json())
                else:
                    assert response.status_code == 400, what
                    assert response.get_json()["error"]["details"]["field"] == parameter["name"], what
                bounded += 1
    assert emptied >= 15 and bounded >= 20
