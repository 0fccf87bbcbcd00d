"""Every routing branch through intake: who gets the report, why, and what fell short."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from dispatch.people.models import CalendarDay, DutyDesk, GridAssignment, OnCallShift, User
from tests.geodata import G1, G2, at
from tests.world import B3_POINT, G2_POINT, SHANGHAI


def routed(world, point=G2_POINT, category="no_water") -> tuple[dict, dict]:
    """Report at a point; the incident and its 'assigned' event data."""
    response = world.report(category=category, point=point)
    assert response.status_code == 201, response.get_json()
    incident = response.get_json()
    events = world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                              headers=world.headers("admin")).get_json()["events"]
    return incident, next(e for e in events if e["type"] == "assigned")["data"]


def add(world, *rows) -> None:
    with world.app.extensions["griddispatch.db"].session() as s:
        s.add_all(rows)


def on_call(world, user: str, area: str, start: datetime, hours: float = 16) -> OnCallShift:
    return OnCallShift(user_id=world.users[user], area_code=area, starts_at=start,
                       ends_at=start + timedelta(hours=hours))


def test_on_duty_primary(world):
    incident, data = routed(world)
    assert incident["manager"]["display_name"] == "M2"
    assert data["reason"] == "on_duty_primary" and data["shortfall"] is None
    assert any(G2 in line for line in data["considered"])


def test_evening_goes_to_on_call(world):
    evening = datetime(2026, 12, 1, 20, 0, tzinfo=SHANGHAI)
    world.clock.set(evening)
    add(world, on_call(world, "m1", "320104001001", evening - timedelta(hours=3)))
    incident, data = routed(world)
    assert incident["manager"]["display_name"] == "M1"
    assert (data["reason"], data["shortfall"]) == ("on_call", "grid_manager_off_duty")


def test_holiday_without_rota_goes_to_duty_desk(world):
    add(world, CalendarDay(day=date(2026, 12, 1), kind="holiday", name="test holiday"))
    incident, data = routed(world)
    assert data["reason"] == "community_duty_desk" and incident["manager"]["display_name"] == "DESK"


def test_worked_saturday_is_on_duty(world):
    world.clock.set(datetime(2026, 12, 5, 10, 0, tzinfo=SHANGHAI))
    add(world, CalendarDay(day=date(2026, 12, 5), kind="workday", name="调休"))
    assert routed(world)[1]["reason"] == "on_duty_primary"


def test_adjacent_grid_when_own_manager_is_gone(world):
    with world.app.extensions["griddispatch.db"].session() as s:
        s.get(User, world.users["m2"]).active = False
    incident, data = routed(world)
    # G2 touches G1 and G3; both are staffed and G1 comes first by code (equal shared edges).
    assert data["reason"] == "adjacent_grid" and data["routed_to_grid"] == G1
    assert data["shortfall"] == "no_grid_manager"  # its only manager is disabled
    assert incident["manager"]["display_name"] == "M1"
    # The adjacent manager can work it though it is not in its grid.
    assert world.act("m1", incident, "acknowledge").status_code == 200


def test_nobody_records_shortfall_and_escalates(world):
    world.clock.set(datetime(2026, 12, 6, 3, 0, tzinfo=SHANGHAI))  # Sunday night, no rota
    with world.app.extensions["griddispatch.db"].session() as s:
        s.get(User, world.users["desk"]).active = False
    incident, data = routed(world)
    assert incident["manager"] is None and incident["status"] == "assigned"
    assert data["shortfall"] == "no_one_available" and data["reason"] is None
    assert incident["escalation_level"] == 1
    events = world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                              headers=world.headers("admin")).get_json()["events"]
    escalated = next(e for e in events if e["type"] == "escalated")["data"]
    assert escalated["reason"] == "no_one_available" and escalated["to_level"] == "community"


def test_backup_when_primary_has_custom_hours(world):
    from datetime import time

    from dispatch.people.models import WeeklyShift

    add(world, WeeklyShift(user_id=world.users["m1"], weekday=5, start=time(8), end=time(12)))
    incident, data = routed(world, point=(118.7803, 32.0303))  # inside B1 (grid G1)
    assert data["reason"] == "on_duty_backup" and incident["manager"]["display_name"] == "M1B"


@pytest.mark.parametrize("hour, reason", [(9, "on_duty_primary"), (17, "community_duty_desk")])
def test_edges_of_the_working_day(world, hour, reason):
    world.clock.set(datetime(2026, 12, 1, hour, 0, tzinfo=SHANGHAI))
    assert routed(world)[1]["reason"] == reason


def test_grid_specific_rota_beats_community_rota(world):
    night = datetime(2026, 12, 1, 22, 0, tzinfo=SHANGHAI)
    world.clock.set(night)
    add(world, on_call(world, "m1", "320104001001", night - timedelta(hours=1)),
        on_call(world, "m3", G2, night - timedelta(hours=1)),
        GridAssignment(user_id=world.users["m3"], grid_code=G2, kind="backup"))
    assert routed(world)[0]["manager"]["display_name"] == "M3"


def test_names_and_committee_members_come_from_the_directory_as_it_stands(world):
    """The answer's manager name and an escalation's notified committee members are read
    from the per-process roster: a rename, a new member and a disabled one show at once."""
    db = world.app.extensions["griddispatch.db"]
    with db.session() as s:
        s.get(User, world.users["m2"]).display_name = "王网格员"
    incident, _ = routed(world)
    assert incident["manager"] == {"display_name": "王网格员"}  # the resident's answer
    assert world.get("admin", incident)["manager"] == {"id": world.users["m2"],
                                                       "display_name": "王网格员", "phone": "13800000000"}

    world.clock.set(datetime(2026, 12, 6, 3, 0, tzinfo=SHANGHAI))  # Sunday night, no rota
    world.tokens.clear()  # signed in again at the new time
    with db.session() as s:
        s.get(User, world.users["desk"]).active = False
        member = User(username="committee-c", display_name="社区委员", role="committee",
                      password_hash="x", scope_area_code="320104001001", active=True,
                      created_at=world.clock.now())
        s.add(member)
        s.flush()
        member_id = member.id

    def notified() -> list[int]:
        incident, _ = routed(world)
        events = world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                                  headers=world.headers("admin")).get_json()["events"]
        escalated = next(e for e in events if e["type"] == "escalated")["data"]
        assert escalated["area_code"] == "320104001001"
        return escalated["notified"]

    assert notified() == [member_id]
    with db.session() as s:
        s.get(User, member_id).active = False
    assert notified() == []


def _reassign(world, incident: dict, grid: str) -> dict:
    world.tokens.clear()  # the clock may have moved past the tokens' lifetime
    current = world.get("admin", incident)
    response = world.act("operator", current, "reassign", grid_code=grid, reason="交回本网格")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_report_the_desk_took_overnight_goes_back_to_its_grid_in_the_morning(world):
    """Found by a routing audit: a report at 08:59 went to the duty desk, and at 09:05, with
    its grid's manager on duty, reassigning it to its own grid was refused as the same grid."""
    world.clock.set(datetime(2026, 12, 1, 8, 59, tzinfo=SHANGHAI))
    incident, data = routed(world)
    assert data["reason"] == "community_duty_desk"
    world.clock.set(datetime(2026, 12, 1, 9, 5, tzinfo=SHANGHAI))
    moved = _reassign(world, incident, G2)
    assert moved["manager"]["display_name"] == "M2" and moved["areas"]["building"] == incident["areas"]["building"]
    again = world.act("operator", world.get("admin", moved), "reassign", grid_code=G2, reason="x")
    assert again.status_code == 409 and again.get_json()["error"]["details"]["reason"] == "same_grid"


def _events(world, incident: dict) -> list[dict]:
    return world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                            headers=world.headers("admin")).get_json()["events"]


def _disable(world, username: str) -> dict:
    world.tokens.clear()
    response = world.client.patch(f"/api/v1/people/{world.users[username]}", headers=world.headers("admin"),
                                  json={"active": False})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_disabling_a_manager_hands_their_unfinished_incidents_on(world):
    """Found by a routing audit: a disabled manager kept the reports routed to them,
    acknowledged, dispatched or fixed and waiting for their check, and nobody else was told."""
    waiting = world.report(category="no_water").get_json()  # at B1, in G1: M1
    acknowledged = world.report(category="street_light", point=at(0.7, 0.7)).get_json()
    acknowledged = world.act("m1", acknowledged, "acknowledge").get_json()
    fixed = world.report(category="safety_hazard", point=at(0.2, 0.8)).get_json()
    fixed = world.act("m1", fixed, "dispatch", crew_id=world.crews["A"]).get_json()
    for step in ("en_route", "on_site", "resolve"):
        fixed = world.act("crew-a", fixed, step).get_json()
    closed = world.report(category="noise", point=at(0.8, 0.2)).get_json()
    closed = world.act("m1", closed, "cancel", reason="已处理").get_json()
    assert {i["manager"]["display_name"] for i in (waiting, acknowledged, fixed, closed)} == {"M1"}
    before = {i["id"]: world.get("admin", i) for i in (waiting, acknowledged, fixed)}

    answer = _disable(world, "m1")

    assert sorted(answer["handed_over"]) == sorted(i["public_id"] for i in (waiting, acknowledged, fixed))
    for incident in (waiting, acknowledged, fixed):
        now = world.get("admin", incident)
        assert now["manager"]["display_name"] == "M1B"  # the grid's backup, on duty
        unchanged = ("status", "crew", "deadlines", "escalation_level")
        assert {k: now[k] for k in unchanged} == {k: before[incident["id"]][k] for k in unchanged}
        last = _events(world, incident)[-1]
        assert last["type"] == "handed_over" and last["actor"]["role"] == "admin"
        assert last["data"]["reason"] == "on_duty_backup" and last["data"]["from_manager_id"] == world.users["m1"]
        assert any("1 inactive" in line for line in last["data"]["considered"])
    assert world.get("admin", closed)["version"] == closed["version"]  # finished: left alone
    # The backup can now check the fix, which only a manager of the incident may do.
    assert world.act("m1b", world.get("m1b", fixed), "verify").status_code == 200
    assert _disable(world, "m1")["handed_over"] == []  # nothing left to hand on


def test_a_manager_nobody_can_replace_hands_on_with_a_shortfall(world):
    """A disabled manager's report with no one to take it escalates, as a report would."""
    incident, _ = routed(world)  # in G2: M2
    with world.app.extensions["griddispatch.db"].session() as s:
        s.query(DutyDesk).delete()
    world.clock.set(datetime(2026, 12, 1, 20, 0, tzinfo=SHANGHAI))  # neighbours off duty, no rota
    _disable(world, "m2")
    now = world.get("admin", incident)
    assert now["manager"] is None and now["escalation_level"] == 1
    handed, escalated = _events(world, incident)[-2:]
    assert (handed["type"], handed["data"]["shortfall"]) == ("handed_over", "no_one_available")
    assert (escalated["type"], escalated["data"]["reason"]) == ("escalated", "no_one_available")


def test_a_manager_given_another_role_hands_on_the_reports_of_neighbouring_grids(world):
    """A manager with no grid of their own may take another role; the reports routed to
    them from a neighbouring grid go to whoever covers that grid now."""
    incident, _ = routed(world)  # in G2: M2
    with world.app.extensions["griddispatch.db"].session() as s:
        s.query(GridAssignment).filter_by(user_id=world.users["m2"]).delete()
    response = world.client.patch(f"/api/v1/people/{world.users['m2']}", headers=world.headers("admin"),
                                  json={"role": "operator", "scope_area_code": "320104"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["handed_over"] == [incident["public_id"]]
    assert _events(world, incident)[-1]["data"]["reason"] == "adjacent_grid"


def test_a_crew_with_no_active_member_is_sent_nowhere(world):
    """Found by a routing audit: a crew whose only member was disabled was still
    auto-dispatched to an urgent report, which nobody could then work."""
    with world.app.extensions["griddispatch.db"].session() as s:
        s.get(User, world.users["crew-a"]).active = False
    response = world.report(category="burst_pipe")  # at B1: crew A is the plumber serving it
    assert response.status_code == 201
    events = world.client.get(f"/api/v1/incidents/{response.get_json()['id']}/events",
                              headers=world.headers("admin")).get_json()["events"]
    assert all(e["type"] != "dispatched" for e in events)
    excluded = {e["crew_id"]: e["reason"] for event in events for e in event["data"].get("excluded", [])}
    assert excluded[world.crews["A"]] == "no active member"


def test_a_manager_sets_the_status_of_a_crew_on_their_incident_in_a_neighbouring_grid(world):
    """A grid manager sets the status of crews working in its grids, and of a crew on one of
    its incidents: here one routed to it from a neighbouring grid whose manager is away."""
    _disable(world, "m3")
    incident = world.report(category="no_water", point=B3_POINT).get_json()  # in G3
    manager = "m2" if incident["manager"]["display_name"] == "M2" else "m1"
    status = f"/api/v1/crews/{world.crews['B']}/status"  # crew B serves street 320104002 only
    refused = world.client.post(status, headers=world.headers(manager), json={"status": "busy"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "out_of_scope"
    assert world.act(manager, incident, "dispatch", crew_id=world.crews["B"]).status_code == 200
    allowed = world.client.post(status, headers=world.headers(manager), json={"status": "busy"})
    assert allowed.status_code == 200, allowed.get_json()


def test_a_crew_available_before_its_job_ends_is_idle_from_the_end(world):
    """Found by a routing audit: a crew that marked itself available mid-job kept that
    moment as its idle start, and so outranked crews that had waited longer."""
    incident = world.report(category="no_water").get_json()
    incident = world.act("m1", incident, "dispatch", crew_id=world.crews["A"]).get_json()
    status = f"/api/v1/crews/{world.crews['A']}/status"
    assert world.client.post(status, headers=world.headers("crew-a"), json={"status": "available"}).status_code == 200
    world.clock.set(world.clock.now() + timedelta(minutes=40))
    for step in ("en_route", "on_site", "resolve"):
        incident = world.act("crew-a", incident, step).get_json()
    crew = world.client.get(f"/api/v1/crews/{world.crews['A']}", headers=world.headers("admin")).get_json()
    assert datetime.fromisoformat(crew["idle_since"]) == world.clock.now()
    assert crew["status"] == "available"


def test_the_clock_hands_on_a_report_that_reached_a_manager_as_they_were_disabled(world):
    """Found by a review: on PostgreSQL a report routed from the roster just before its
    manager's disabling committed, and written just after, kept the disabled manager. The
    SLA clock's tick hands such reports on (here the account is changed around the API, as
    that race leaves it)."""
    from dispatch.sla.worker import run_once

    incident = world.report(category="no_water").get_json()  # in G1: M1
    with world.app.extensions["griddispatch.db"].session() as s:
        s.get(User, world.users["m1"]).active = False
    app = world.app
    totals = run_once(db=app.extensions["griddispatch.db"], clock=world.clock, tz=SHANGHAI,
                      index_cache=app.extensions["griddispatch.index"])
    assert totals["handed_over"] == 1
    now = world.get("admin", incident)
    assert now["manager"]["display_name"] == "M1B"
    last = _events(world, incident)[-1]
    assert (last["type"], last["actor"]["role"], last["data"]["reason"]) == ("handed_over", "system", "on_duty_backup")
    again = run_once(db=app.extensions["griddispatch.db"], clock=world.clock, tz=SHANGHAI,
                     index_cache=app.extensions["griddispatch.index"])
    assert again["handed_over"] == 0


def test_a_crew_left_with_nobody_hands_its_jobs_back_and_they_are_sent_afresh(world):
    """Found by a people audit: a crew whose last member was disabled, or moved to another
    crew, kept its jobs, which no crew account could then see; nothing was said."""
    pipe = world.report(category="burst_pipe", point=B3_POINT).get_json()  # crew B, there, sent at once
    assert world.get("admin", pipe)["crew"]["id"] == world.crews["B"]
    world.act("crew-b", world.get("admin", pipe), "en_route")
    answer = _disable(world, "crew-b")
    assert answer["handed_over"] == [pipe["public_id"]]
    events = _events(world, pipe)
    withdrawn = next(e for e in events if e["type"] == "crew_withdrawn")["data"]
    assert withdrawn["withdrawn_crew_id"] == world.crews["B"] and withdrawn["reason"] == "no_active_member"
    # Urgent: the best crew left is sent at once, by the ranking, which leaves B out now.
    assert [e["type"] for e in events][-2:] == ["crew_withdrawn", "dispatched"]
    now = world.get("crew-a", pipe)  # crew A's member can see it
    assert (now["status"], now["crew"]["id"]) == ("dispatched", world.crews["A"])
    assert now["deadlines"]["arrive_due"] == pipe["deadlines"]["arrive_due"]  # promised: it stays

    # Crew A's only member moved to crew E: A's job goes back, and nobody plumbing is left.
    response = world.client.patch(f"/api/v1/crews/{world.crews['E']}", headers=world.headers("admin"),
                                  json={"members": [world.users["crew-a"], world.users["crew-e"]]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["handed_over"] == [pipe["public_id"]]
    now = world.get("admin", pipe)
    assert (now["status"], now["crew"]) == ("assigned", None)  # never acknowledged
    assert [e["type"] for e in _events(world, pipe)][-3:] == ["crew_withdrawn", "crew_recommended", "escalated"]
    quiet = world.client.patch(f"/api/v1/crews/{world.crews['E']}", headers=world.headers("admin"),
                               json={"name": "electricians E2"})
    assert quiet.get_json()["handed_over"] == []


def test_the_sla_clock_hands_back_the_jobs_of_a_crew_emptied_around_the_api(world):
    """A change the account routes never saw (a member disabled in the database, as in a
    report ranked while its crew's last member was being disabled): the clock's next tick
    hands the jobs back, as it hands on a manager's (found by a review)."""
    from dispatch.sla.worker import run_once

    pipe = world.report(category="burst_pipe", point=B3_POINT).get_json()  # crew B sent at once
    app = world.app
    with app.extensions["griddispatch.db"].session() as s:
        s.get(User, world.users["crew-b"]).active = False
    totals = run_once(db=app.extensions["griddispatch.db"], clock=world.clock, tz=SHANGHAI,
                      index_cache=app.extensions["griddispatch.index"])
    assert totals["handed_over"] == 1
    assert [e["type"] for e in _events(world, pipe)][-2:] == ["crew_withdrawn", "dispatched"]
    assert world.get("admin", pipe)["crew"]["id"] == world.crews["A"]
    again = run_once(db=app.extensions["griddispatch.db"], clock=world.clock, tz=SHANGHAI,
                     index_cache=app.extensions["griddispatch.index"])
    assert again["handed_over"] == 0
