"""Roles and scopes (SPEC §7), bad input, masking and rate limits on the incident API."""

from __future__ import annotations

import pytest

from dispatch.app import create_app
from dispatch.incidents.access import ACTION_ROLES, mask_phone
from dispatch.incidents.lifecycle import ACTIONS
from dispatch.people.fields import caller_phone
from tests.geodata import G1
from tests.world import B1_POINT, B3_POINT, PASSWORD

# Who can see an incident in grid G1 that crew A was dispatched to.
IN_SCOPE = {"admin": True, "operator": True, "committee-s1": True, "committee-d": True,
            "m1": True, "m1b": True, "m2": False, "m3": False, "desk": False,
            "crew-a": True, "crew-b": False, "resident": False}
ROLE = {"admin": "admin", "operator": "operator", "committee-s1": "committee",
        "committee-d": "committee", "m1": "grid_manager", "m1b": "grid_manager",
        "m2": "grid_manager", "m3": "grid_manager", "desk": "grid_manager", "crew-a": "crew",
        "crew-b": "crew", "resident": "resident"}


@pytest.fixture
def g1_incident(world):
    response = world.report()
    assert response.status_code == 201
    return response.get_json()


def test_role_action_scope_matrix(world, g1_incident):
    """Every role × action × in/out of scope: a stale version shows the check passed without changing anything."""
    stale = {**g1_incident, "version": g1_incident["version"] - 1}
    failures = []
    for user, in_scope in IN_SCOPE.items():
        for action in ACTIONS:
            allowed = ROLE[user] in ACTION_ROLES[action] and in_scope
            status = world.act(user, stale, action).status_code
            expected = 409 if allowed else 403
            if status != expected:
                failures.append(f"{user} {action}: {status}, expected {expected}")
    assert not failures, failures
    assert world.get("admin", g1_incident)["version"] == g1_incident["version"]
    refused = world.act("operator", stale, "acknowledge").get_json()["error"]
    assert refused["message"] == "an operator may not acknowledge an incident"  # said as English is


@pytest.mark.parametrize("user, visible", sorted(IN_SCOPE.items()))
def test_reading_follows_scope(world, g1_incident, user, visible):
    response = world.client.get(f"/api/v1/incidents/{g1_incident['id']}", headers=world.headers(user))
    assert response.status_code == (200 if visible else 403)
    events = world.client.get(f"/api/v1/incidents/{g1_incident['id']}/events", headers=world.headers(user))
    assert events.status_code == (200 if visible else 403)
    listed = world.client.get("/api/v1/incidents", headers=world.headers(user)).get_json()
    assert (g1_incident["id"] in [i["id"] for i in listed["incidents"]]) == visible


def test_listing_filters(world, g1_incident):
    g3 = world.report(category="no_water", point=B3_POINT).get_json()
    admin = world.headers("admin")

    def ids(query: str, user: str = "admin") -> set[int]:
        response = world.client.get(f"/api/v1/incidents?{query}", headers=world.headers(user))
        assert response.status_code == 200, response.get_json()
        return {i["id"] for i in response.get_json()["incidents"]}

    assert ids("") == {g1_incident["id"], g3["id"]}
    assert ids(f"area={G1}") == {g1_incident["id"]}
    assert ids("area=320104002") == {g3["id"]}
    assert ids("category=no_water") == {g3["id"]}
    assert ids("status=dispatched") == {g1_incident["id"]}
    assert ids("status=assigned,dispatched") == {g1_incident["id"], g3["id"]}
    assert ids("open=false") == set()
    assert ids("mine=true", "m3") == {g3["id"]}
    assert ids("mine=true", "crew-a") == {g1_incident["id"]}
    assert ids(f"assignee={world.users['m1']}") == {g1_incident["id"]}
    assert ids("from=2026-12-01T09:00:00%2B08:00&to=2026-12-01T11:00:00%2B08:00") == {g1_incident["id"], g3["id"]}
    assert ids("from=2026-12-02T00:00:00%2B08:00") == set()
    lon, lat = B3_POINT
    assert ids(f"bbox={lon - 0.001},{lat - 0.001},{lon + 0.001},{lat + 0.001}") == {g3["id"]}
    page = world.client.get("/api/v1/incidents?limit=1", headers=admin).get_json()
    assert page["total"] == 2 and len(page["incidents"]) == 1


@pytest.mark.parametrize("query, field", [
    ("status=lost", "status"), ("open=maybe", "open"), ("limit=0", "limit"),
    ("from=yesterday", "from"), ("to=2026-12-01T10:00:00", "to"), ("assignee=me", "assignee"),
    ("bbox=1,2", "bbox"), ("assignee=%C2%B2", "assignee"), ("assignee=99999999999999999999", "assignee"),
    # Found by an intake audit: a range ending before it began was an empty 200.
    ("from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "to"),
])
def test_bad_filters(world, query, field):
    response = world.client.get(f"/api/v1/incidents?{query}", headers=world.headers("admin"))
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["field"] == field


def _count(world) -> int:
    return world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"]


LON, LAT = B1_POINT
BAD_REPORTS = [
    ({"description": "x", "location": {"lon": LON, "lat": LAT}}, 400, "category"),
    ({"category": "volcano", "location": {"lon": LON, "lat": LAT}}, 422, "category"),
    ({"category": "burst_pipe"}, 400, "location"),
    ({"category": "burst_pipe", "location": "here"}, 400, "location"),
    ({"category": "burst_pipe", "location": {"lon": "east", "lat": LAT}}, 400, "location.lon"),
    ({"category": "burst_pipe", "location": {"lon": LON, "lat": True}}, 400, "location.lat"),
    ({"category": "burst_pipe", "location": {"lon": LON, "lat": 95}}, 400, "location"),
    ({"category": "burst_pipe", "location": {"lon": LON, "lat": LAT, "crs": "mars"}}, 400, "location.crs"),
    ({"category": "burst_pipe", "location": {"lon": 116.4, "lat": 39.9}}, 422, "location"),
    ({"category": "burst_pipe", "location": {"building_code": "B99"}}, 422, "location.building_code"),
    ({"category": "burst_pipe", "location": {"building_code": G1}}, 422, "location.building_code"),
    ({"category": "burst_pipe", "location": {"unit_code": "B1"}}, 422, "location.unit_code"),
    ({"category": "burst_pipe", "description": "漏" * 2001, "location": {"lon": LON, "lat": LAT}}, 400, "description"),
    ({"category": "burst_pipe", "description": 42, "location": {"lon": LON, "lat": LAT}}, 400, "description"),
    ({"category": "burst_pipe", "reporter_phone": "call me", "location": {"lon": LON, "lat": LAT}}, 400, "reporter_phone"),
    ({"category": "burst_pipe", "address": "路" * 201, "location": {"lon": LON, "lat": LAT}}, 400, "address"),
    # PostgreSQL text cannot hold NUL: refused up front on both databases, named
    ({"category": "burst_pipe", "description": "漏\x00水", "location": {"lon": LON, "lat": LAT}}, 400, "description"),
    ({"category": "burst_pipe", "location": {"building_code": "B1\x00"}}, 400, "location.building_code"),
    ({"category": "burst_pipe", "photos": ["a", "\x00"], "location": {"lon": LON, "lat": LAT}}, 400, "photos.1"),
    # a field we do not know is refused, not dropped (the resident's words would be lost)
    ({"category": "burst_pipe", "desciption": "漏水", "location": {"lon": LON, "lat": LAT}}, 400, "desciption"),
    ({"category": "burst_pipe", "location": {"lon": LON, "lat": LAT, "latitude": LAT}}, 400, "location.latitude"),
    # one place, of the right type (found by a lifecycle audit: the point or the unit was dropped)
    ({"category": "burst_pipe", "location": {"unit_code": "B1-1", "building_code": "B3"}}, 400, "location"),
    ({"category": "burst_pipe", "location": {"building_code": "B1", "lon": LON, "lat": LAT}}, 400, "location"),
    ({"category": "burst_pipe", "location": {"building_code": False, "lon": LON, "lat": LAT}}, 400, "location"),
    ({"category": "burst_pipe", "location": {"unit_code": ["B1-1"]}}, 400, "location.unit_code"),
    ({"category": "burst_pipe", "location": {"building_code": 0}}, 400, "location.building_code"),
    ({"category": "burst_pipe", "location": {}}, 400, "location"),
]


@pytest.mark.parametrize("body, status, field", BAD_REPORTS)
def test_bad_reports_name_the_field_and_write_nothing(world, body, status, field):
    before = _count(world)
    response = world.client.post("/api/v1/incidents", json=body)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["details"]["field"] == field
    assert _count(world) == before


@pytest.mark.parametrize("data, content_type", [("not json", "application/json"), ("[1, 2]", "application/json"),
                                                ("category=burst_pipe", "application/x-www-form-urlencoded")])
def test_non_object_bodies(world, data, content_type):
    response = world.client.post("/api/v1/incidents", data=data, content_type=content_type)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_body"


@pytest.mark.parametrize("ref", ["%C2%B2", "9" * 40, "-1", "0"])  # ² passes str.isdigit, int refuses it
def test_ids_that_cannot_exist_are_404(world, g1_incident, ref):
    admin = world.headers("admin")
    for method, path in [("GET", f"/api/v1/incidents/{ref}"), ("GET", f"/api/v1/incidents/{ref}/events"),
                         ("POST", f"/api/v1/incidents/{ref}/actions"), ("GET", f"/api/v1/crews/{ref}"),
                         ("GET", f"/api/v1/people/{ref}")]:
        response = world.client.open(path, method=method, headers=admin,
                                     json={"action": "acknowledge", "expected_version": 1})
        assert response.status_code == 404, (method, path, response.get_json())
        assert response.get_json()["error"]["code"].endswith("_not_found")


@pytest.mark.parametrize("method, path, body, field", [
    ("GET", "/api/v1/incidents/%00", None, "path"),
    ("GET", "/api/v1/incidents?category=burst%00pipe", None, "category"),
    ("GET", "/api/v1/areas?q=%00", None, "q"),
    ("PATCH", "/api/v1/people/{m1}", {"phone": "\x00"}, "phone"),
    ("PATCH", "/api/v1/people/{m1}", {"display_name\x00": "x"}, "display_name\\x00"),
    ("PATCH", "/api/v1/crews/{crew}", {"name": "A\x00"}, "name"),
    ("POST", "/api/v1/incidents/{incident}/actions", {"action": "acknowledge", "expected_version": 1,
                                                      "note": "\x00"}, "note"),
])
def test_nul_characters_are_refused_and_change_nothing(world, g1_incident, method, path, body, field):
    admin = world.headers("admin")
    path = path.format(m1=world.users["m1"], crew=world.crews["A"], incident=g1_incident["id"])
    before = world.get("admin", g1_incident)
    response = world.client.open(path, method=method, json=body, headers=admin)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["details"]["field"] == field
    assert world.get("admin", g1_incident) == before


def test_bad_actions(world, g1_incident):
    assert world.act("m1", g1_incident, "teleport").get_json()["error"]["details"]["field"] == "action"
    assert world.act("m1", g1_incident, "dispatch", crew_id=999).status_code == 422
    assert world.act("m1", g1_incident, "dispatch", crew_id="A").status_code == 400  # not an id at all
    # A misspelt field is refused: dropped, it would send the recommended crew instead.
    misspelt = world.act("m1", g1_incident, "dispatch", crewid=world.crews["A"])
    assert misspelt.status_code == 400 and misspelt.get_json()["error"]["details"]["field"] == "crewid"
    assert world.act("m1", g1_incident, "merge").get_json()["error"]["details"]["field"] == "duplicate_of"
    assert world.act("m1", g1_incident, "merge", duplicate_of=g1_incident["public_id"]).status_code == 422
    # A reason a client can put in its own words (the message is English, for people).
    waiting = world.report(category="noise").get_json()  # not dispatched: it may still move grid
    reasons = {(field, world.act("m1", incident, action, **params).get_json()["error"]["details"]["reason"])
               for incident, action, field, params in [
                   (g1_incident, "dispatch", "crew_id", {"crew_id": 999}),
                   (g1_incident, "merge", "duplicate_of", {}),
                   (g1_incident, "merge", "duplicate_of", {"duplicate_of": g1_incident["public_id"]}),
                   (waiting, "reassign", "grid_code", {"grid_code": G1, "reason": "x"}),
                   (waiting, "reassign", "grid_code", {"grid_code": "320104001001"}),
                   (g1_incident, "cancel", "reason", {})]}
    assert reasons == {("crew_id", "unknown"), ("duplicate_of", "required"), ("duplicate_of", "same_incident"),
                       ("grid_code", "same_grid"), ("grid_code", "not_a_grid"), ("reason", "required")}
    too_long = world.act("m1", g1_incident, "en_route", note="n" * 501)
    assert too_long.status_code == 400 and too_long.get_json()["error"]["details"]["field"] == "note"
    response = world.client.post("/api/v1/incidents/999999/actions", json={"action": "cancel"},
                                 headers=world.headers("admin"))
    assert response.status_code == 404
    response = world.client.post(f"/api/v1/incidents/{g1_incident['id']}/actions", data="x",
                                 content_type="application/json", headers=world.headers("admin"))
    assert response.status_code == 400


@pytest.mark.parametrize("header, code", [
    ("Bearer forged-token", "invalid_token"), ("Basic abc", "invalid_token"), ("Bearer ", "invalid_token"),
])
def test_forged_tokens(world, header, code):
    response = world.client.get("/api/v1/incidents", headers={"Authorization": header})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == code


def test_expired_and_revoked_tokens(world):
    headers = world.headers("m1")
    assert world.client.get("/api/v1/auth/me", headers=headers).get_json()["grids"] == [G1]
    world.clock.advance(13 * 60)
    response = world.client.get("/api/v1/incidents", headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "token_expired"
    world.tokens.clear()
    headers = world.headers("m1")
    assert world.client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    response = world.client.get("/api/v1/incidents", headers=headers)
    assert response.get_json()["error"]["code"] == "token_revoked"


def test_wrong_password_and_missing_fields(world):
    response = world.client.post("/api/v1/auth/token", json={"username": "m1", "password": "nope"})
    assert response.status_code == 401
    response = world.client.post("/api/v1/auth/token", json={"username": "m1"})
    assert response.status_code == 400 and response.get_json()["error"]["details"]["field"] == "password"


def test_list_needs_a_token(world):
    assert world.client.get("/api/v1/incidents").status_code == 401


def test_committee_cannot_report(world):
    assert world.report(as_user="committee-d").status_code == 403


def test_phone_masking(world):
    report = world.report(reporter_phone="13912345678").get_json()
    seen = {user: world.get(user, report)["reporter"]["phone"]
            for user in ("admin", "operator", "m1", "m1b", "crew-a", "committee-d")}
    assert seen == {"admin": "13912345678", "operator": "13912345678", "m1": "13912345678",
                    "m1b": "139****5678", "crew-a": "139****5678", "committee-d": "139****5678"}
    events = world.client.get(f"/api/v1/incidents/{report['id']}/events",
                              headers=world.headers("crew-a")).get_json()["events"]
    assert events[0]["data"]["reporter_phone"] == "139****5678"
    assert "tracking_hash" not in events[0]["data"] and "client_key" not in events[0]["data"]


def test_a_short_phone_number_is_masked_more(world):
    """A mobile keeps its first 3 and last 4 digits; an 8-digit Nanjing landline kept 7 of
    its 8 (ten numbers to try) and a 5-digit service number all of them."""
    assert mask_phone("13912345678") == "139****5678"
    assert mask_phone("02588881234") == "025****1234"
    assert mask_phone("8613912345678") == "861******5678"
    assert mask_phone("88881234") == "******34"
    assert mask_phone("6543210") == "*****10"
    assert mask_phone("12345") == "*****"
    assert mask_phone(None) is None
    report = world.report(reporter_phone="8888-1234").get_json()
    assert report["reporter"]["phone"] == "******34"
    assert world.get("committee-d", report)["reporter"]["phone"] == "******34"
    assert world.get("operator", report)["reporter"]["phone"] == "88881234"


def test_a_resident_account_sees_its_report_as_the_reporter_does(world):
    """Its own report over REST, but not the manager's phone, the crews' ids or how the
    report was routed (found by a scope audit: the staff view was served)."""
    created = world.client.post("/api/v1/people", headers=world.headers("admin"), json={
        "username": "resident-r", "password": PASSWORD, "role": "resident", "display_name": "R"})
    assert created.status_code == 201, created.get_json()
    report = world.report(as_user="resident-r", category="noise").get_json()
    for body in (world.get("resident-r", report),
                 world.client.get("/api/v1/incidents", headers=world.headers("resident-r")).get_json()["incidents"][0]):
        assert body["id"] == report["id"] and body["manager"] == {"display_name": "M1"}, body
        assert set(body["recommended_crew"] or {}) <= {"name"}
    events = world.client.get(f"/api/v1/incidents/{report['id']}/events",
                              headers=world.headers("resident-r")).get_json()["events"]
    assert [e["type"] for e in events][:2] == ["reported", "assigned"]
    for event in events:
        assert set(event["actor"]) == {"role"}, event
        assert not {"considered", "manager_id", "reporter_user_id", "reporter_phone", "reason_code"} & set(event["data"])
    staff_events = world.client.get(f"/api/v1/incidents/{report['id']}/events",
                                    headers=world.headers("operator")).get_json()["events"]
    assert "manager_id" in staff_events[1]["data"]  # what was left out is there for staff


def test_anonymous_intake_is_rate_limited_per_phone(world):
    # One number however it is typed: spacing, dashes or the country code do not reset the count.
    typed = ["13700000000", "137 0000 0000", "+86 137-0000-0000", "0086 13700000000", "137-0000-0000"]
    for n, phone in enumerate(typed):
        point = (B1_POINT[0], B1_POINT[1]) if n % 2 else B3_POINT
        assert world.report(category="rubbish", point=point, reporter_phone=phone).status_code == 201
    response = world.report(category="rubbish", reporter_phone="86 137 0000 0000")
    assert response.status_code == 429
    details = response.get_json()["error"]["details"]
    assert details["field"] == "reporter_phone"
    # When one more may be filed: all five were filed this minute, so a whole window away.
    assert response.headers["Retry-After"] == str(details["retry_after_s"]) == str(details["window_minutes"] * 60)
    # An operator typing in a call is never limited, and such calls use up none of the number's
    # allowance.
    assert world.report(category="rubbish", reporter_phone="13700000000", as_user="operator").status_code == 201
    world.clock.advance(11)
    for _ in range(5):
        assert world.report(category="rubbish", reporter_phone="13700000000", as_user="operator").status_code == 201
    assert world.report(category="rubbish", reporter_phone="13700000000").status_code == 201


def test_operators_find_a_callers_reports_by_phone(world):
    """The call screen asks "has this number called before?": any spelling of the number finds
    it, stored as dialled at home; only roles that see every phone whole may ask."""
    first = world.report(reporter_phone="+86 139 1234 5678").get_json()
    second = world.report(category="no_water", point=B3_POINT, reporter_phone="139-1234-5678").get_json()
    world.report(category="rubbish", point=B3_POINT, reporter_phone="13912345679")
    world.report(category="noise")
    assert world.get("admin", first)["reporter"]["phone"] == "13912345678"

    def found(query: str, user: str = "operator"):
        return world.client.get(f"/api/v1/incidents?{query}", headers=world.headers(user))

    for spelling in ("13912345678", "139%201234%205678", "%2B8613912345678", "0086-139-1234-5678"):
        listed = found(f"phone={spelling}").get_json()
        assert [i["id"] for i in listed["incidents"]] == [second["id"], first["id"]], spelling
    assert found("phone=13912345678&category=no_water", "admin").get_json()["total"] == 1
    # A landline from abroad drops its trunk 0 (found by an intake audit: two numbers).
    landline = world.report(category="noise", point=B3_POINT, reporter_phone="+86 25 8456 7890").get_json()
    for spelling in ("025-8456-7890", "0086%2025%2084567890", "02584567890"):
        assert [i["id"] for i in found(f"phone={spelling}").get_json()["incidents"]] == [landline["id"]], spelling
    assert found("phone=13800000000").get_json()["total"] == 0
    assert found("phone=").get_json()["total"] == 5  # empty, like the other filters: no filter
    for user in ("m1", "committee-d", "crew-a", "resident"):
        response = found("phone=13912345678", user)
        assert response.status_code == 403, user
        assert response.get_json()["error"]["details"]["field"] == "phone"
    for bad in ("call-me", "1" * 30, "%20%2B"):
        response = found(f"phone={bad}")
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["details"]["field"] == "phone"


@pytest.mark.parametrize("typed, stored", [
    ("+86 25 8456 7890", "02584567890"), ("025-8456-7890", "02584567890"),
    ("+86 10 1234 5678", "01012345678"), ("010 1234 5678", "01012345678"),  # Beijing's 10 is no mobile
    ("+86 139 1234 5678", "13912345678"), ("86 139 1234 5678", "13912345678"),
    ("+86 400-810-8888", "4008108888"), ("400-810-8888", "4008108888"),  # service numbers take no 0
    ("+86 12345", "12345"), ("0086 512 6789 1234", "051267891234"),
    ("１３９１２３４５６７８", "13912345678"), ("＋８６ １３９－１２３４－５６７８", "13912345678"),  # full width (IME)
])
def test_a_callers_number_is_stored_as_dialled_at_home(typed, stored):
    assert caller_phone("reporter_phone", typed) == stored


def test_anonymous_intake_is_rate_limited_per_client(world):
    # Staff reports from the same address (an office network) use up none of it.
    for n in range(21):
        assert world.report(category="rubbish", reporter_phone=f"1370000{n:04d}", as_user="operator").status_code == 201
    for _ in range(20):
        assert world.report(category="rubbish").status_code == 201
    response = world.report(category="rubbish")
    assert response.status_code == 429 and "this client" in response.get_json()["error"]["message"]


def test_behind_a_trusted_proxy_each_resident_is_its_own_client(world):
    """Behind nginx every request comes from the proxy's address: with GRIDDISPATCH_TRUSTED_PROXIES
    the limit follows X-Forwarded-For; without it the header is ignored, so it cannot be spoofed."""
    def reports(client, forwarded_for):
        body = {"category": "rubbish", "location": {"lon": B1_POINT[0], "lat": B1_POINT[1]}}
        return client.post("/api/v1/incidents", json=body, headers={"X-Forwarded-For": forwarded_for})

    proxied = create_app({"TESTING": True, "DATABASE_URL": world.app.config["DATABASE_URL"],
                          "CLOCK": world.clock, "TRUSTED_PROXIES": 1})
    try:
        behind = proxied.test_client()
        for _ in range(20):
            assert reports(behind, "203.0.113.7").status_code == 201
        assert reports(behind, "203.0.113.7").status_code == 429
        assert reports(behind, "198.51.100.23").status_code == 201  # another resident
    finally:
        proxied.extensions["griddispatch.db"].dispose()
    direct = world.client  # no trusted proxy: all of these come from one address
    assert [reports(direct, f"192.0.2.{n}").status_code for n in range(21)] == [201] * 20 + [429]


def test_operator_and_patrol_channels(world):
    assert world.report(as_user="operator").get_json()["channel"] == "operator"
    assert world.report(as_user="m1", category="rubbish").get_json()["channel"] == "patrol"
    assert world.report().get_json()["channel"] == "resident"
