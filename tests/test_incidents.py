"""Incidents end to end through the REST API: intake, routing, the lifecycle, and the event log."""

from __future__ import annotations

import geopandas as gpd
import pytest
from sqlalchemy import inspect, select

from dispatch.incidents.models import Incident
from dispatch.incidents.service import rebuild_projection
from dispatch.live import rooms_for_tracking
from grids.geometry import metres_between
from grids.io import import_file
from tests.geodata import G1, G2, G3, at, square, tree_frame
from tests.world import B1_POINT, B3_POINT, G2_POINT


def created(response) -> dict:
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def ok(response) -> dict:
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def event_types(world, incident, as_user="admin") -> list[str]:
    body = ok(world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                               headers=world.headers(as_user)))
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    return [e["type"] for e in body["events"]]


def test_burst_pipe_is_routed_and_auto_dispatched(world):
    report = created(world.report(reporter_phone="13912345678"))
    assert report["areas"]["unit"]["code"] == "B1-1"
    assert report["areas"]["grid"]["code"] == G1
    assert report["manager"]["display_name"] == "M1"
    assert report["crew"]["name"] == "plumbers A"  # urgent: the nearest plumber is sent at once
    assert report["status"] == "dispatched"
    assert report["tracking_token"] and report["tracking_url"].startswith("/track/")
    assert report["reporter"]["phone"] == "139****5678"  # an anonymous reporter sees it masked
    deadlines = report["deadlines"]
    assert deadlines["acknowledge_due"].startswith("2026-12-01T02:05")  # 10:05 Shanghai, in UTC
    assert deadlines["arrive_due"].startswith("2026-12-01T02:20")
    assert deadlines["resolve_due"].startswith("2026-12-01T06:00")
    assert event_types(world, report) == ["reported", "assigned", "dispatched"]

    incident = ok(world.act("m1", report, "acknowledge"))
    assert incident["status"] == "dispatched" and incident["times"]["acknowledged_at"]
    assert incident["reporter"]["phone"] == "13912345678"  # the assigned manager sees it whole
    world.clock.advance(8)
    incident = ok(world.act("crew-a", incident, "en_route"))
    world.clock.advance(9)
    incident = ok(world.act("crew-a", incident, "on_site"))
    assert incident["reporter"]["phone"] == "139****5678"  # the crew does not
    world.clock.advance(60)
    incident = ok(world.act("crew-a", incident, "resolve", note="换了一段管子"))
    incident = ok(world.act("m1", incident, "verify"))
    incident = ok(world.act("m1", incident, "close"))
    assert incident["status"] == "closed"
    assert event_types(world, incident) == [
        "reported", "assigned", "dispatched", "acknowledged", "en_route", "on_site", "resolved",
        "verified", "closed"]

    track = ok(world.client.get(report["tracking_url"].replace("/track/", "/api/v1/track/")))
    assert track["status"] == "closed" and "reporter" not in track and "description" not in track
    assert "phone" not in (track["manager"] or {})
    rated = ok(world.client.post(report["tracking_url"].replace("/track/", "/api/v1/track/") + "/rating",
                                 json={"rating": 5, "comment": "很快"}))
    assert rated["rating"] == 5 and rated["status"] == "closed"


def test_routine_category_recommends_and_manager_dispatches(world):
    report = created(world.report(category="rubbish", point=B3_POINT))
    assert report["status"] == "assigned" and report["crew"] is None
    assert report["manager"]["display_name"] == "M3"
    incident = world.get("m3", report)
    assert incident["recommended_crew"] is None or incident["recommended_crew"]["name"]
    events = ok(world.client.get(f"/api/v1/incidents/{report['id']}/events",
                                 headers=world.headers("m3")))["events"]
    recommendation = next(e for e in events if e["type"] == "crew_recommended")["data"]
    # Nobody has the sanitation skill in this world: the shortfall is recorded and escalated.
    assert recommendation["shortfall"] == "no_crew_available"
    assert {"reason": "lacks skill sanitation"}.items() <= recommendation["excluded"][0].items()
    assert event_types(world, report)[-1] == "escalated"


def test_plumbing_recommendation_explains_ranking(world):
    report = created(world.report(category="no_water", point=B3_POINT))
    incident = world.get("m3", report)
    assert incident["recommended_crew"]["name"] == "plumbers B"  # parked at B3, serves the street
    events = ok(world.client.get(f"/api/v1/incidents/{report['id']}/events",
                                 headers=world.headers("m3")))["events"]
    ranking = next(e for e in events if e["type"] == "crew_recommended")["data"]["ranking"]
    assert [r["name"] for r in ranking] == ["plumbers B", "plumbers A"]
    assert any("away" in reason for reason in ranking[0]["reasons"])
    incident = ok(world.act("m3", incident, "acknowledge"))
    assert incident["status"] == "acknowledged"
    incident = ok(world.act("m3", incident, "dispatch"))
    assert incident["crew"]["name"] == "plumbers B" and incident["crew"]["status"] == "busy"
    incident = ok(world.act("m3", incident, "dispatch", crew_id=world.crews["A"]))
    assert incident["crew"]["name"] == "plumbers A"
    freed = ok(world.client.get(f"/api/v1/incidents/{report['id']}/events", headers=world.headers("m3")))
    assert freed["events"][-1]["data"]["reason"] == "chosen_by_manager"


@pytest.mark.parametrize("as_user", [None, "resident"])
def test_a_residents_answer_names_the_people_but_gives_no_phone_or_id(world, as_user):
    answer = created(world.report(as_user=as_user))  # every staff member has a phone here
    assert answer["manager"] == {"display_name": "M1"}
    assert answer["crew"] == {"name": "plumbers A"}  # urgent: sent at once
    staff = created(world.report(as_user="operator"))  # a call taken by the hotline
    assert staff["manager"] == {"id": world.users["m1"], "display_name": "M1", "phone": "13800000000"}


def test_no_crew_category_is_handled_by_the_manager(world):
    report = created(world.report(category="neighbour_dispute"))
    assert report["crew"] is None and report["recommended_crew"] is None
    incident = ok(world.act("m1", report, "acknowledge"))
    response = world.act("m1", incident, "dispatch", crew_id=world.crews["A"])
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "no_crew_needed"
    incident = ok(world.act("m1", incident, "on_site"))
    incident = ok(world.act("m1", incident, "resolve"))
    incident = ok(world.act("m1", incident, "verify"))
    assert ok(world.act("m1", incident, "close"))["status"] == "closed"


def test_a_category_given_other_crew_rules_re_ranks_its_reports_waiting_for_a_crew(world):
    """Found by a lifecycle audit: a dispute made to need a plumber kept no ranking and no
    arrive deadline, and a category made to need none kept a crew that could not be sent."""
    admin = world.headers("admin")
    burst = world.get("m3", created(world.report(category="burst_pipe", point=B3_POINT)))
    assert burst["crew"]["id"] == world.crews["B"]  # urgent: sent at once (B is parked at B3)
    dispute = created(world.report(category="neighbour_dispute", point=B3_POINT))
    water = world.get("m3", created(world.report(category="no_water", point=B3_POINT)))
    assert water["recommended_crew"]["id"] == world.crews["A"] and water["deadlines"]["arrive_due"]

    changed = world.client.patch("/api/v1/categories/neighbour_dispute", headers=admin,
                                 json={"needs_crew": True, "skill": "plumbing"})
    assert changed.status_code == 200 and changed.get_json()["crews_ranked"] == 1, changed.get_json()
    dispute = world.get("m3", dispute)
    assert dispute["recommended_crew"]["id"] == world.crews["A"] and dispute["deadlines"]["arrive_due"]

    changed = world.client.patch("/api/v1/categories/no_water", headers=admin, json={"needs_crew": False})
    assert changed.get_json()["crews_ranked"] == 1
    water = world.get("m3", water)
    assert water["recommended_crew"] is None and water["deadlines"]["arrive_due"] is None
    water = ok(world.act("m3", water, "acknowledge"))
    assert ok(world.act("m3", water, "on_site"))["status"] == "on_site"  # the manager goes, as for a dispute

    changed = world.client.patch("/api/v1/categories/burst_pipe", headers=admin, json={"skill": "electrical"})
    assert changed.get_json()["crews_ranked"] == 0
    assert world.get("m3", burst)["crew"]["id"] == world.crews["B"]  # a crew on its way stays on its way
    assert ok(world.act("m3", dispute, "dispatch"))["crew"]["id"] == world.crews["A"]


ILLEGAL = [
    ("en_route", "assigned"), ("on_site", "assigned"), ("resolve", "assigned"), ("verify", "assigned"),
    ("close", "assigned"), ("rework", "assigned"), ("rate", "assigned"),
    ("verify", "dispatched"), ("close", "dispatched"), ("reassign", "dispatched"),
    ("resolve", "dispatched"),
]


@pytest.mark.parametrize("action, state", ILLEGAL)
def test_illegal_transitions_change_nothing(world, action, state):
    category = "burst_pipe" if state == "dispatched" else "no_water"
    incident = created(world.report(category=category, point=B3_POINT))
    assert incident["status"] == state
    response = world.act("admin", incident, action, rating=3, grid_code=G1, reason="x")
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_transition" and error["details"]["status"] == state
    assert world.get("admin", incident)["version"] == incident["version"]


def test_acknowledge_twice_is_refused(world):
    incident = ok(world.act("m1", created(world.report()), "acknowledge"))
    response = world.act("m1", incident, "acknowledge")
    assert response.status_code == 409 and "already acknowledged" in response.get_json()["error"]["message"]


def test_stale_version_is_409_with_current_state(world):
    report = created(world.report())
    ok(world.act("m1", report, "acknowledge"))
    response = world.act("crew-a", report, "en_route")  # still holds the old version
    assert response.status_code == 409
    details = response.get_json()["error"]["details"]
    assert details == {"expected_version": report["version"], "version": report["version"] + 1}
    assert world.get("admin", report)["status"] == "dispatched"
    missing = world.client.post(f"/api/v1/incidents/{report['id']}/actions",
                                json={"action": "en_route"}, headers=world.headers("crew-a"))
    assert missing.status_code == 400
    assert missing.get_json()["error"]["details"]["field"] == "expected_version"


def fixed_report(world) -> dict:
    """A burst pipe reported by a resident and fixed by crew A: the answer to the report."""
    report = incident = created(world.report())
    for user, action in [("m1", "acknowledge"), ("crew-a", "en_route"), ("crew-a", "on_site"),
                         ("crew-a", "resolve")]:
        incident = ok(world.act(user, incident, action))
    return report


def test_low_rating_reopens_as_rework(world):
    report = fixed_report(world)
    track_url = "/api/v1/track/" + report["tracking_token"]
    track = ok(world.client.post(track_url + "/rating", json={"rating": 1, "comment": "还在漏"}))
    assert track["status"] == "dispatched" and track["rework_count"] == 1
    assert track["rating"] == 1
    assert [e["type"] for e in track["events"]][-2:] == ["rated", "rework"]
    bad = world.client.post(track_url + "/rating", json={"rating": 9})
    assert bad.status_code in (400, 409)
    # A second tap is told it was rated (it was told "cannot rate an incident that is dispatched").
    again = world.client.post(track_url + "/rating", json={"rating": 1})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_rated"


def test_a_fix_is_rated_once(world):
    """Found by an intake audit: the same fix could be rated again and again, so a 5 could
    become a rework days later, and a retried rating counted twice."""
    report = fixed_report(world)
    track_url = "/api/v1/track/" + report["tracking_token"]
    assert ok(world.client.post(track_url + "/rating", json={"rating": 5}))["rating"] == 5
    for again in (world.client.post(track_url + "/rating", json={"rating": 1}),
                  world.act("operator", world.get("admin", report), "rate", rating=1)):
        assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_rated"
    incident = world.get("admin", report)
    assert (incident["status"], incident["rating"], incident["rework_count"]) == ("resolved", 5, 0)
    # Sent back by the manager and fixed again, the new fix is rated afresh.
    incident = ok(world.act("m1", incident, "rework", reason="仍然漏水"))
    for user, action in [("crew-a", "on_site"), ("crew-a", "resolve")]:
        incident = ok(world.act(user, incident, action))
    assert ok(world.client.post(track_url + "/rating", json={"rating": 4}))["rating"] == 4


def test_verification_failure_sends_it_back(world):
    incident = created(world.report())
    for user, action in [("m1", "acknowledge"), ("crew-a", "on_site"), ("crew-a", "resolve")]:
        incident = ok(world.act(user, incident, action))
    incident = ok(world.act("m1", incident, "rework", reason="仍然漏水"))
    assert incident["status"] == "dispatched" and incident["times"]["resolved_at"] is None
    assert incident["crew"]["status"] == "busy"


def test_reassign_to_another_grid(world):
    incident = created(world.report(category="no_water"))
    response = world.act("m1", incident, "reassign", grid_code=G3)
    assert response.status_code == 400 and response.get_json()["error"]["details"]["field"] == "reason"
    incident = ok(world.act("m1", incident, "reassign", grid_code=G3, reason="属于钓鱼台社区"))
    assert incident["areas"]["grid"]["code"] == G3 and incident["areas"]["building"] is None
    assert incident["areas"]["street"]["code"] == "320104002"
    assert incident["manager"]["display_name"] == "M3" and incident["status"] == "assigned"
    # m1 no longer holds it.
    assert world.client.get(f"/api/v1/incidents/{incident['id']}", headers=world.headers("m1")).status_code == 403
    for grid, code in [("NOPE", 422), ("320104001001", 422), (G3, 409)]:
        response = world.act("m3", incident, "reassign", grid_code=grid, reason="x")
        assert response.status_code == code, grid


def test_a_report_moved_to_another_street_is_recommended_a_crew_that_serves_it(world):
    """Found by an audit: the crew ranked for the old grid stayed recommended after a
    reassignment, so the manager's "send the recommended crew" was refused as outside the
    service area, and nothing offered one that fits."""
    incident = world.get("m3", created(world.report(category="no_water", point=B3_POINT)))  # G3, street 320104002
    assert incident["recommended_crew"]["id"] == world.crews["B"]  # parked at B3, serves that street only
    moved = ok(world.act("m3", incident, "reassign", grid_code=G1, reason="管线属于G1"))  # street 320104001
    assert moved["recommended_crew"]["id"] == world.crews["A"]
    events = ok(world.client.get(f"/api/v1/incidents/{moved['id']}/events", headers=world.headers("m1")))["events"]
    ranked = [e for e in events if e["type"] == "crew_recommended"][-1]["data"]
    assert {"crew_id": world.crews["B"], "name": "plumbers B", "reason": "outside service area"} in ranked["excluded"]
    sent = ok(world.act("m1", moved, "dispatch"))
    assert sent["crew"]["id"] == world.crews["A"] and sent["status"] == "dispatched"


def test_duplicates_are_linked_and_merged(world):
    first = created(world.report(category="no_water"))
    near = (B1_POINT[0] + 0.0001, B1_POINT[1])  # same building
    second = created(world.report(category="no_water", point=near))
    assert second["suspected_duplicate_of"] == first["public_id"]
    other_kind = created(world.report(category="power_cut"))
    assert other_kind["suspected_duplicate_of"] is None
    merged = ok(world.act("m1", second, "merge", duplicate_of=first["public_id"]))
    assert merged["status"] == "merged" and merged["duplicate_of"] == first["public_id"]
    # The second reporter now follows the original's updates.
    track = ok(world.client.get("/api/v1/track/" + second["tracking_token"]))
    assert track["public_id"] == first["public_id"] and track["your_report"] == second["public_id"]
    assert "duplicate_merged" in event_types(world, first)
    response = world.act("m1", merged, "merge", duplicate_of=first["public_id"])
    assert response.status_code == 409
    # Into a report that is itself merged: into its original, where the work goes on.
    third = created(world.report(category="no_water", point=near))
    passed_on = ok(world.act("m1", third, "merge", duplicate_of=second["public_id"]))
    assert passed_on["duplicate_of"] == first["public_id"]
    # Nothing is merged into a cancelled report: a 409 that says what the original is now
    # (it was a 500: `status` was also bad_field's own argument).
    fourth = created(world.report(category="no_water", point=near))
    ok(world.act("m1", world.get("m1", first), "cancel", reason="测试"))
    refused = world.act("m1", fourth, "merge", duplicate_of=second["public_id"])
    assert refused.status_code == 409
    assert refused.get_json()["error"]["details"] == {
        "field": "duplicate_of", "reason": "original_ended", "status": "cancelled"}
    assert world.get("m1", fourth)["status"] == "assigned"


def test_a_duplicate_suspected_across_a_grid_line_can_be_merged_by_its_manager(world):
    """One pile of rubbish on the line between G1 and G2, reported from both sides: m2 is
    told of G1's report and may merge into it, though it cannot open it; not into another."""
    first = created(world.report(category="rubbish", point=at(0.98, 1.7)))
    other = created(world.report(category="rubbish", point=at(0.2, 1.9)))  # 75 m away: another pile
    second = created(world.report(category="rubbish", point=at(1.02, 1.7)))
    assert (first["areas"]["grid"]["code"], second["areas"]["grid"]["code"]) == (G1, G2)
    assert second["suspected_duplicate_of"] == first["public_id"]
    assert world.client.get(f"/api/v1/incidents/{first['id']}", headers=world.headers("m2")).status_code == 403
    refused = world.act("m2", second, "merge", duplicate_of=other["public_id"])
    assert refused.status_code == 422 and refused.get_json()["error"]["details"]["reason"] == "unknown"
    merged = ok(world.act("m2", second, "merge", duplicate_of=first["public_id"]))
    assert merged["status"] == "merged" and merged["duplicate_of"] == first["public_id"]
    assert ok(world.client.get("/api/v1/track/" + second["tracking_token"]))["public_id"] == first["public_id"]
    # Named by way of its own merged report, the suspected original is still the one it was told of.
    third = created(world.report(category="rubbish", point=at(1.02, 1.7)))
    assert third["suspected_duplicate_of"] == first["public_id"]
    assert ok(world.act("m2", third, "merge", duplicate_of=second["public_id"]))["duplicate_of"] == first["public_id"]


def test_a_duplicate_whose_suspected_original_was_merged_follows_it(world):
    """Found by a lifecycle audit: once G1's report was merged into another G1 report, m2
    could merge its suspected duplicate into neither (one merged, one it cannot see)."""
    first = created(world.report(category="rubbish", point=at(0.98, 1.7)))
    kept = created(world.report(category="rubbish", point=at(0.90, 1.7)))
    second = created(world.report(category="rubbish", point=at(1.02, 1.7)))
    assert second["suspected_duplicate_of"] == first["public_id"]
    ok(world.act("m1", world.get("m1", first), "merge", duplicate_of=kept["public_id"]))
    merged = ok(world.act("m2", world.get("m2", second), "merge", duplicate_of=first["public_id"]))
    assert merged["duplicate_of"] == kept["public_id"]
    assert "duplicate_merged" in event_types(world, kept)
    assert ok(world.client.get("/api/v1/track/" + second["tracking_token"]))["public_id"] == kept["public_id"]
    # Through its own grid's merged report, m2 reaches no other grid's original it was not told of.
    elsewhere = created(world.report(category="rubbish", point=at(1.5, 0.3)))  # G2, suspected of nothing
    refused = world.act("m2", elsewhere, "merge", duplicate_of=second["public_id"])
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"]["reason"] == "original_out_of_scope"


def test_a_chain_of_merges_is_followed_to_the_work_still_going_on(world):
    """Found by an intake audit: A merged into B, then B into C, left A's reporter on B, a
    dead end, and after a reconnect out of C's room."""
    a, b, c = (created(world.report(category="rubbish", point=at(0.3 + k / 100, 0.3))) for k in range(3))
    ok(world.act("m1", a, "merge", duplicate_of=b["public_id"]))
    ok(world.act("m1", world.get("m1", b), "merge", duplicate_of=c["public_id"]))
    track = ok(world.client.get("/api/v1/track/" + a["tracking_token"]))
    assert (track["public_id"], track["your_report"]) == (c["public_id"], a["public_id"])
    with world.app.extensions["griddispatch.db"].session() as s:
        assert rooms_for_tracking(s, a["tracking_token"]) == {f"incident:{i['id']}" for i in (a, b, c)}


def test_nothing_is_merged_into_a_fixed_or_closed_report(world):
    """Found by an intake audit: a new report merged into a closed one was closed unworked."""
    original = created(world.report(category="neighbour_dispute"))
    for action in ("acknowledge", "on_site", "resolve"):
        original = ok(world.act("m1", original, action))
    for step, action in (("resolved", None), ("verified", "verify"), ("closed", "close")):
        if action:
            original = ok(world.act("m1", original, action))
        late = created(world.report(category="neighbour_dispute"))
        refused = world.act("m1", late, "merge", duplicate_of=original["public_id"])
        assert refused.status_code == 409, (step, refused.get_json())
        assert refused.get_json()["error"]["details"] == {
            "field": "duplicate_of", "reason": "original_ended", "status": step}
        ok(world.act("m1", world.get("m1", late), "cancel", reason="测试"))


def test_duplicates_reach_across_a_large_building_and_50_m_of_open_ground(world, tmp_path):
    """A 170 m long building (think of a mall) is one place however far apart its two reports
    are; off any building, 50 m is the reach: 45 m is a duplicate, 60 m is not."""
    frame = tree_frame()
    mall = gpd.GeoDataFrame({"code": ["B4"], "name": ["4号楼"], "level": ["building"], "parent_code": [G3]},
                            geometry=[square(2.1, 0.1, 3.9, 0.4)], crs=frame.crs)
    mall.to_file(tmp_path / "mall.gpkg", engine="pyogrio")
    with world.app.extensions["griddispatch.db"].session() as s:
        import_file(s, tmp_path / "mall.gpkg")
    west, east = at(2.15, 0.25), at(3.85, 0.25)
    assert metres_between(*west, *east) > 150
    first = created(world.report(category="blocked_drain", point=west))
    assert first["areas"]["building"]["code"] == "B4"
    across = created(world.report(category="blocked_drain", point=east))
    assert across["suspected_duplicate_of"] == first["public_id"]

    open_ground = at(1.5, 1.7)  # in G2, on no building
    lon, lat = open_ground
    original = created(world.report(category="rubbish", point=open_ground))
    near_point, far_point = (lon + 0.00047, lat), (lon, lat - 0.00054)
    assert 40 < metres_between(lon, lat, *near_point) < 50 < 55 < metres_between(lon, lat, *far_point) < 65
    near = created(world.report(category="rubbish", point=near_point))
    far = created(world.report(category="rubbish", point=far_point))
    assert near["suspected_duplicate_of"] == original["public_id"]
    assert far["suspected_duplicate_of"] is None


def test_cancel_needs_a_reason_and_frees_the_crew(world):
    incident = created(world.report())
    assert world.act("operator", incident, "cancel").status_code == 400
    incident = ok(world.act("operator", incident, "cancel", reason="误报"))
    assert incident["status"] == "cancelled" and incident["crew"]["status"] == "available"


def test_escalate_by_hand_notifies_the_committee(world):
    incident = created(world.report(category="no_water"))
    ok(world.act("m1", incident, "escalate", reason="需要街道协调"))
    events = ok(world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                                 headers=world.headers("admin")))["events"]
    escalated = events[-1]["data"]
    assert escalated["to_level"] == "community" and escalated["escalation_level"] == 1
    # Up to the district, and no further (found by an intake audit: each try at the top
    # told the district again).
    for _ in range(2):
        incident = ok(world.act("m1", world.get("m1", incident), "escalate"))
    assert incident["escalation_level"] == 3
    top = world.act("m1", incident, "escalate")
    assert top.status_code == 409 and top.get_json()["error"]["code"] == "already_at_top"


def test_a_reason_of_spaces_or_numbers_is_refused_by_name(world):
    """Found by an intake audit: "   " passed as a required reason and was stored empty; a
    number was called too long, and a numeric action "required"."""
    incident = created(world.report(category="no_water"))
    for value, reason in (("   ", "required"), (5, "invalid"), ("x" * 501, "too_long")):
        response = world.act("operator", incident, "cancel", reason=value)
        assert response.status_code == 400, value
        assert response.get_json()["error"]["details"]["reason"] == reason, value
    numeric = world.client.post(f"/api/v1/incidents/{incident['id']}/actions", headers=world.headers("m1"),
                                json={"action": 5, "expected_version": incident["version"]})
    assert numeric.status_code == 400 and "required" not in numeric.get_json()["error"]["message"]
    assert world.get("admin", incident)["version"] == incident["version"]


def test_projection_rebuilt_from_events_is_identical(world):
    ids = []
    incident = created(world.report())
    for user, action, params in [("m1", "acknowledge", {}), ("crew-a", "en_route", {}),
                                 ("crew-a", "on_site", {}), ("crew-a", "resolve", {}),
                                 ("m1", "rework", {"reason": "no"}), ("crew-a", "on_site", {})]:
        incident = ok(world.act(user, incident, action, **params))
    ids.append(incident["id"])
    second = created(world.report(category="no_water", point=B3_POINT))
    ok(world.act("m3", second, "reassign", grid_code=G1, reason="wrong grid"))
    ids.append(second["id"])
    ids.append(created(world.report(category="no_water", point=(B1_POINT[0], B1_POINT[1] + 0.0001)))["id"])
    columns = [c.key for c in inspect(Incident).mapper.column_attrs]
    with world.app.extensions["griddispatch.db"].session() as s:
        for incident_id in ids:
            stored = s.get(Incident, incident_id)
            rebuilt = rebuild_projection(s, incident_id)
            for column in columns:
                assert getattr(rebuilt, column) == getattr(stored, column), column
        assert len(s.scalars(select(Incident)).all()) == 3


def test_every_incident_event_seq_is_global_and_increasing(world):
    created(world.report())
    created(world.report(category="no_water", point=B3_POINT))
    body = ok(world.client.get("/api/v1/incidents", headers=world.headers("admin")))
    seqs = []
    for incident in body["incidents"]:
        events = ok(world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                                     headers=world.headers("admin")))["events"]
        seqs.extend(e["seq"] for e in events)
    assert len(set(seqs)) == len(seqs)


def test_report_by_building_and_unit_code(world):
    by_building = created(world.client.post("/api/v1/incidents", json={
        "category": "lift_fault", "location": {"building_code": "B3"}}))
    assert by_building["areas"]["building"]["code"] == "B3"
    assert by_building["location"]["method"] == "building"
    by_unit = created(world.client.post("/api/v1/incidents", json={
        "category": "noise", "location": {"unit_code": "B1-2"}}))
    assert by_unit["areas"]["unit"]["code"] == "B1-2" and by_unit["areas"]["grid"]["code"] == G1


def test_gcj02_report_lands_in_the_right_grid(world):
    from grids.geometry import wgs84_to_gcj02

    lon, lat = wgs84_to_gcj02(*G2_POINT)
    report = created(world.client.post("/api/v1/incidents", json={
        "category": "rubbish", "location": {"lon": lon, "lat": lat, "crs": "gcj02"}}))
    assert report["areas"]["grid"]["name"] == "中牌楼社区第2网格"


def test_the_crew_already_sent_is_not_sent_again(world):
    """Found by an intake audit: dispatching the crew already on its way moved the job back to
    "dispatched" and overwrote when it was first sent."""
    incident = created(world.report(point=B3_POINT))  # a burst pipe: crew B, there, sent at once
    incident = ok(world.act("crew-b", incident, "en_route"))
    again = world.act("m3", incident, "dispatch", crew_id=world.crews["B"])
    assert again.status_code == 409
    assert again.get_json()["error"]["details"] == {"field": "crew_id", "reason": "already_dispatched",
                                                     "crew": "plumbers B"}
    assert world.get("admin", incident)["status"] == "en_route"
    moved = ok(world.act("m3", incident, "dispatch", crew_id=world.crews["A"]))  # another crew: fine
    assert moved["crew"]["id"] == world.crews["A"]


def test_a_crew_sent_by_hand_is_held_to_what_the_ranking_holds_every_crew_to(world):
    """Found by a people audit: a manager's dispatch sent a crew without the skill, one that
    serves another street (and then set its status: off duty there), or the recommended crew
    after its members left, so that no crew account could see the job."""
    incident = world.get("m1", created(world.report(category="no_water")))  # at B1 in G1
    assert incident["recommended_crew"]["id"] == world.crews["A"]
    for crew, reason, why in (("E", "lacks_skill", "lacks skill plumbing"),
                              ("B", "outside_service_area", "outside service area")):
        refused = world.act("m1", incident, "dispatch", crew_id=world.crews[crew])
        assert refused.status_code == 409
        assert refused.get_json()["error"]["details"]["reason"] == reason
        assert why in refused.get_json()["error"]["message"]
    _disable_account(world, "crew-a")
    refused = world.act("m1", incident, "dispatch")  # the recommendation, stale now
    assert refused.status_code == 409 and refused.get_json()["error"]["details"] == {
        "field": "crew_id", "reason": "no_active_member", "crew": "plumbers A"}
    assert world.get("admin", incident)["version"] == incident["version"]  # nothing done


def _disable_account(world, username: str) -> None:
    response = world.client.patch(f"/api/v1/people/{world.users[username]}", headers=world.headers("admin"),
                                  json={"active": False})
    assert response.status_code == 200, response.get_json()
