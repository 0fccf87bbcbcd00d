"""The SLA clock end to end on the staffed world: amber, red, the escalation chain, pause,
restart idempotency, racing workers, leadership, the test-clock endpoint and the CLI."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select

from dispatch.app import create_app
from dispatch.cli import main
from dispatch.db import Database
from dispatch.incidents.models import Incident, IncidentEvent
from dispatch.incidents.service import rebuild_projection
from dispatch.sla.models import SlaWatch
from dispatch.sla.worker import Leadership, SlaWorker, run_forever, run_once
from tests.geodata import G3
from tests.world import B1_POINT, SHANGHAI, TUESDAY_10, build_world

SLA_EVENTS = ("sla_changed", "escalated")


def tick(world, db=None) -> dict:
    app = world.app
    return run_once(db=db or app.extensions["griddispatch.db"], clock=world.clock, tz=SHANGHAI,
                    index_cache=app.extensions["griddispatch.index"])


def report(world, **kwargs) -> dict:
    response = world.report(**kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def act(world, user, incident, action, **params) -> dict:
    world.tokens.clear()  # the clock may have run past the tokens' lifetime
    response = world.act(user, world.get("admin", incident), action, **params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def sla_events(world, incident) -> list[tuple]:
    """(type, sla_state or to_level, phase, step or fraction, notified) of each SLA event."""
    with world.app.extensions["griddispatch.db"].session() as s:
        timeline = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident["id"])
                             .order_by(IncidentEvent.seq)).all()
    out = []
    for e in timeline:
        d = e.data
        if e.type == "sla_changed":
            out.append(("sla_changed", d["sla_state"], d["phase"], d["fraction"]))
        elif e.type == "escalated" and d["reason"] == "sla_breach":
            out.append(("escalated", d["to_level"], d["phase"], d["step"], d["notified"]))
    return out


def test_burst_pipe_turns_amber_then_red_and_escalates_up_the_tree(world):
    pipe = report(world)  # 10:00: acknowledge in 5, arrive in 20 (wall clock)
    s1, d = world.users["committee-s1"], world.users["committee-d"]
    # The report scheduled its own first look (amber at 10:04): the worker has nothing to do.
    with world.app.extensions["griddispatch.db"].session() as s:
        watch = s.get(SlaWatch, pipe["id"])
        assert (watch.version, watch.check_at) == (pipe["version"], TUESDAY_10 + timedelta(minutes=4))
    assert tick(world) == {"evaluated": 0, "sla_changed": 0, "escalated": 0, "handed_over": 0}
    world.clock.advance(3)
    assert tick(world)["evaluated"] == 0  # nothing due before 10:04
    world.clock.advance(1)
    assert tick(world) == {"evaluated": 1, "sla_changed": 1, "escalated": 0, "handed_over": 0}
    assert world.get("admin", pipe)["sla_state"] == "amber"
    world.clock.advance(1)  # 10:05: breach
    assert tick(world) == {"evaluated": 1, "sla_changed": 1, "escalated": 1, "handed_over": 0}
    world.clock.advance(4)
    assert tick(world)["evaluated"] == 0
    world.clock.advance(1)  # 10:10: another full limit unmet
    tick(world)
    world.clock.advance(5)  # 10:15
    tick(world)
    world.clock.advance(5)  # 10:20: acknowledge stays at the district; arrival breaches
    tick(world)
    assert sla_events(world, pipe) == [
        ("sla_changed", "amber", "acknowledge", 0.8),
        ("sla_changed", "red", "acknowledge", 1.0),
        ("escalated", "community", "acknowledge", 1, []),
        ("escalated", "street", "acknowledge", 2, [s1]),
        ("escalated", "district", "acknowledge", 3, [d]),
        ("escalated", "district", "arrive", 1, [d]),
    ]
    current = world.get("admin", pipe)
    assert current["escalation_level"] == 3 and current["sla_state"] == "red"
    world.clock.advance(60)
    assert tick(world)["escalated"] == 0  # nothing left to climb
    board = world.client.get(f"/api/v1/incidents/{pipe['id']}", headers=world.headers("committee-d"))
    assert board.status_code == 200 and board.get_json()["sla_state"] == "red"


def test_meeting_the_deadlines_stops_the_clocks(world):
    pipe = report(world)
    world.clock.advance(4)
    tick(world)
    act(world, "m1", pipe, "acknowledge")
    act(world, "crew-a", pipe, "on_site")
    tick(world)  # only resolve runs now: 4 of 240 minutes
    assert world.get("admin", pipe)["sla_state"] == "green"
    world.clock.advance(60)
    act(world, "crew-a", pipe, "resolve")
    world.clock.advance(24 * 60 * 0.8)  # verify: 80 % of a day
    tick(world)
    assert sla_events(world, pipe) == [("sla_changed", "amber", "acknowledge", 0.8),
                                       ("sla_changed", "green", "resolve", round(4 / 240, 6)),
                                       ("sla_changed", "amber", "verify", 0.8)]


def test_a_worker_that_was_down_takes_every_missed_step_once(world):
    pipe = report(world)
    world.clock.advance(10)  # nobody looked at 10:04 or 10:05
    assert tick(world) == {"evaluated": 1, "sla_changed": 1, "escalated": 2, "handed_over": 0}
    assert tick(world) == {"evaluated": 0, "sla_changed": 0, "escalated": 0, "handed_over": 0}
    assert [e[:4] for e in sla_events(world, pipe)] == [
        ("sla_changed", "red", "acknowledge", 2.0),
        ("escalated", "community", "acknowledge", 1),
        ("escalated", "street", "acknowledge", 2),
    ]
    with world.app.extensions["griddispatch.db"].session() as s:
        stored, rebuilt = s.get(Incident, pipe["id"]), rebuild_projection(s, pipe["id"])
        for column in (c.key for c in inspect(Incident).mapper.column_attrs):
            assert getattr(rebuilt, column) == getattr(stored, column), column


def test_forgotten_schedule_repeats_nothing(world):
    """A worker restarting on an empty schedule reads what was done from the projection."""
    report(world)
    world.clock.advance(5)
    tick(world)
    with world.app.extensions["griddispatch.db"].session() as s:
        s.query(SlaWatch).delete()
    assert tick(world) == {"evaluated": 1, "sla_changed": 0, "escalated": 0, "handed_over": 0}


def test_two_racing_workers_escalate_once(world):
    pipe = report(world)
    tick(world)
    world.clock.advance(5)
    url = world.app.extensions["griddispatch.db"].url
    workers = [Database(url), Database(url)]
    results, errors = [], []
    barrier = threading.Barrier(2)

    def work(db):
        try:
            barrier.wait()
            results.append(tick(world, db))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(db,)) for db in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for db in workers:
        db.dispose()
    assert not errors, errors
    assert sum(r["escalated"] for r in results) == 1
    assert [e[0] for e in sla_events(world, pipe)] == ["sla_changed", "escalated"]


def test_pause_stops_the_clock_and_resume_moves_deadlines(world):
    pipe = report(world)
    world.clock.advance(2)
    missing = world.act("m1", world.get("admin", pipe), "pause")
    assert missing.status_code == 400 and missing.get_json()["error"]["details"]["field"] == "reason"
    paused = act(world, "m1", pipe, "pause", reason="等待居民开门")
    assert paused["paused"] == {"since": "2026-12-01T02:02:00+00:00", "reason": "等待居民开门"}
    again = world.act("m1", paused, "pause", reason="again")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_paused"
    world.clock.advance(60)
    assert tick(world)["sla_changed"] == 0  # 62 minutes in, but paused after 2
    resumed = act(world, "operator", pipe, "resume")
    assert resumed["paused"] is None
    assert resumed["deadlines"]["acknowledge_due"] == "2026-12-01T03:05:00+00:00"  # 10:05 + 60 min
    assert resumed["deadlines"]["arrive_due"] == "2026-12-01T03:20:00+00:00"
    assert resumed["deadlines"]["resolve_due"] == "2026-12-01T07:00:00+00:00"
    world.clock.advance(2)  # 4 minutes of clock used
    tick(world)
    assert sla_events(world, pipe) == [("sla_changed", "amber", "acknowledge", 0.8)]
    not_paused = world.act("m1", world.get("admin", pipe), "resume")
    assert not_paused.status_code == 409 and not_paused.get_json()["error"]["code"] == "not_paused"


def test_a_phase_that_ends_while_paused_is_on_time_by_the_clock_that_ran(world):
    """Found by an SLA audit: a noise report resolved during a three-day wait for the
    resident, and a fix verified during a two-day pause, counted as late in the on-time
    rates, though their clocks stood still (and the SLA state stayed green)."""
    noise = report(world, category="noise", point=B1_POINT)  # Tuesday 10:00: resolve in 8 service hours
    act(world, "m1", noise, "acknowledge")
    act(world, "m1", noise, "pause", reason="等居民在家")
    world.clock.advance(3 * 24 * 60)  # Friday 10:00
    act(world, "m1", noise, "on_site")
    resolved = act(world, "m1", noise, "resolve")  # still paused: 0 of 480 minutes used
    # Due Wednesday 10:00, moved on by the 24 service hours paused (to Friday 10:00): Monday 10:00.
    assert resolved["deadlines"]["resolve_due"] == "2026-12-07T02:00:00+00:00"
    act(world, "m1", noise, "resume")
    act(world, "m1", noise, "verify")
    pipe = report(world)  # a burst pipe, on the wall clock: verify within a day of the fix
    for step in ("on_site", "resolve"):
        act(world, "crew-a", pipe, step)
    act(world, "m1", pipe, "pause", reason="等居民确认")
    world.clock.advance(2 * 24 * 60)
    act(world, "m1", pipe, "verify")
    world.tokens.clear()
    rates = world.client.get("/api/v1/metrics/rates?group_by=category&min_sample=0&from=2026-12-01&to=2026-12-04",
                             headers=world.headers("admin")).get_json()
    by_category = {row["group"]: row for row in rates["rows"]}
    assert by_category["noise"]["on_time_resolve"] == 1.0
    assert by_category["burst_pipe"]["on_time_verify"] == 1.0


def test_a_pause_over_night_counts_only_service_hours(world):
    drain = report(world, category="blocked_drain")  # service hours: acknowledge in 30
    assert drain["deadlines"]["acknowledge_due"] == "2026-12-01T02:30:00+00:00"
    world.clock.advance(10)
    act(world, "m1", drain, "pause", reason="居民不在家")
    world.clock.set(datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI))
    resumed = act(world, "m1", drain, "resume")
    # 20 minutes were left at the pause, so 20 are left after it: Wednesday 10:20.
    assert resumed["deadlines"]["acknowledge_due"] == "2026-12-02T02:20:00+00:00"


def test_resuming_after_a_breach_does_not_repeat_it(world):
    pipe = report(world)
    world.clock.advance(5)
    tick(world)
    act(world, "m1", pipe, "pause", reason="等待")
    world.clock.advance(30)
    act(world, "m1", pipe, "resume")
    tick(world)
    world.clock.advance(5)  # a full limit after the (moved) deadline
    tick(world)
    assert [e[:4] for e in sla_events(world, pipe)] == [
        ("sla_changed", "red", "acknowledge", 1.0),
        ("escalated", "community", "acknowledge", 1),
        ("escalated", "street", "acknowledge", 2),
    ]


def _closed_on_time(world, pipe) -> None:
    world.clock.advance(3)
    act(world, "m1", pipe, "acknowledge")
    act(world, "crew-a", pipe, "on_site")
    world.clock.advance(57)
    act(world, "crew-a", pipe, "resolve")  # 11:00, of a 14:00 deadline
    act(world, "m1", pipe, "verify")
    act(world, "m1", pipe, "close")
    tick(world)


def test_a_job_sent_back_days_later_takes_no_back_dated_steps(world):
    """Found by an SLA audit: a rework two days after an on-time fix was a breach of 12 limits
    when it reopened, and one tick escalated it to the community, the street and the district
    for time it spent closed. It stays held to the deadline promised at the report (so it
    counts as late), but escalation climbs again from the grid at the next step only."""
    pipe = report(world)
    _closed_on_time(world, pipe)
    world.clock.set(datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI))
    reworked = act(world, "operator", pipe, "rate", rating=1)
    assert reworked["status"] == "dispatched" and reworked["escalation_level"] == 0
    assert reworked["deadlines"]["resolve_due"] == pipe["deadlines"]["resolve_due"]  # 12-01 14:00
    assert tick(world)["escalated"] == 0
    assert world.get("admin", pipe)["sla_state"] == "red"
    world.clock.advance(4 * 60)  # one more limit unmet: one step, to the community
    tick(world)
    assert [e[:4] for e in sla_events(world, pipe) if e[0] == "escalated"] == [
        ("escalated", "community", "resolve", 13)]
    assert world.get("admin", pipe)["escalation_level"] == 1


def test_a_pause_ends_with_the_work(world):
    """Found by an SLA audit: paused after the fix, then verified and closed, an incident kept
    its pause; reopened by a low rating it came back paused, with no clock running."""
    pipe = report(world)
    world.clock.advance(3)
    act(world, "m1", pipe, "acknowledge")
    act(world, "crew-a", pipe, "on_site")
    act(world, "crew-a", pipe, "resolve")
    act(world, "m1", pipe, "pause", reason="等居民确认")
    act(world, "m1", pipe, "verify")
    closed = act(world, "m1", pipe, "close")
    assert closed["paused"] is None
    world.clock.advance(24 * 60)
    reworked = act(world, "operator", closed, "rate", rating=1)
    assert reworked["paused"] is None and reworked["status"] == "dispatched"
    world.clock.advance(4 * 60)
    tick(world)
    assert world.get("admin", pipe)["sla_state"] == "red"  # its clock runs again
    cancelled = report(world, category="power_cut")
    act(world, "operator", cancelled, "pause", reason="等待")
    assert act(world, "operator", cancelled, "cancel", reason="误报")["paused"] is None


def test_a_reassignment_escalates_through_the_new_grids_tree(world):
    """Found by an SLA audit: escalated to G1's street, then moved to G3 (another street), the
    next breach went straight to the district; G3's community and street were never told."""
    drain = report(world, category="no_water")  # acknowledge in 15 (service hours)
    world.clock.advance(30)  # 10:30: two full limits: community, then street
    tick(world)
    assert world.get("admin", drain)["escalation_level"] == 2
    moved = act(world, "operator", drain, "reassign", grid_code=G3, reason="属于第3网格")
    assert moved["escalation_level"] == 0
    world.clock.advance(15)  # the new acknowledge deadline
    tick(world)
    last = sla_events(world, drain)[-1]
    assert last[:4] == ("escalated", "community", "acknowledge", 1)
    with world.app.extensions["griddispatch.db"].session() as s:
        escalation = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == drain["id"],
                                                           IncidentEvent.type == "escalated")
                               .order_by(IncidentEvent.seq.desc())).first()
        assert escalation.data["area_code"] == "320104002001"  # G3's community

    # At the district already, reassigned: the steps its other clocks owe since are not taken
    # back-dated, all at once (found in review: three escalations in one tick).
    late = report(world, category="no_water")
    world.clock.advance(4 * 60)
    tick(world)
    assert world.get("admin", late)["escalation_level"] == 3
    act(world, "operator", late, "reassign", grid_code=G3, reason="属于第3网格")
    before = len(sla_events(world, late))
    tick(world)
    assert [e for e in sla_events(world, late)[before:] if e[0] == "escalated"] == []


def test_the_clock_counts_metric_days_in_the_apps_time_zone(db, tmp_path, monkeypatch):
    """Found by an SLA audit: the clock's loop ran outside the app's context, so the metrics
    an escalation moved counted days in the environment's zone, not the app's: a report at
    23:00 UTC (07:00 in Shanghai) moved to the next day on its first breach."""
    from dispatch.metrics.models import MetricFact

    monkeypatch.delenv("GRIDDISPATCH_TZ", raising=False)  # the environment says Shanghai
    app = create_app({"TESTING": True, "DATABASE_URL": db.url, "TEST_CLOCK": True, "GRIDDISPATCH_TZ": "UTC"})
    world = build_world(app, tmp_path)
    world.clock.set(datetime(2026, 12, 1, 23, 0, tzinfo=UTC))
    pipe = report(world)
    world.clock.advance(6)
    stop = threading.Event()
    clock = threading.Thread(target=run_forever, args=(app, 0.05), kwargs={"stop": stop})
    clock.start()
    try:
        deadline = time.monotonic() + 30
        while not any(e[0] == "escalated" for e in sla_events(world, pipe)):
            assert time.monotonic() < deadline, "the clock never escalated"
            time.sleep(0.05)
    finally:
        stop.set()
        clock.join(30)
    with app.extensions["griddispatch.db"].session() as s:
        assert s.get(MetricFact, pipe["id"]).day == date(2026, 12, 1)
    app.extensions["griddispatch.db"].dispose()


def test_a_holiday_entered_late_moves_open_service_hours_deadlines(world):
    """Found by an SLA audit: a day made a holiday after reports were filed kept their
    deadlines on it, so at that hour on the holiday each read 100 % used, went red and
    escalated, with only 10 service minutes run. Each keeps the service time it had left."""
    world.clock.set(datetime(2026, 12, 1, 16, 50, tzinfo=SHANGHAI))
    drain = report(world, category="blocked_drain")  # service hours: acknowledge in 30
    pipe = report(world)  # wall clock: the calendar does not move it
    assert drain["deadlines"]["acknowledge_due"] == "2026-12-02T01:20:00+00:00"  # Wed 09:20
    world.tokens.clear()
    made = world.client.put("/api/v1/calendar/2026-12-02", headers=world.headers("admin"),
                            json={"kind": "holiday", "name": "临时调休"})
    assert made.status_code == 200 and made.get_json()["deadlines_moved"] == 1, made.get_json()
    moved = world.get("admin", drain)
    assert moved["deadlines"]["acknowledge_due"] == "2026-12-03T01:20:00+00:00"  # Thu 09:20
    assert world.get("admin", pipe)["deadlines"] == pipe["deadlines"]
    timeline = world.client.get(f"/api/v1/incidents/{drain['id']}/events",
                                headers=world.headers("admin")).get_json()["events"]
    assert timeline[-1]["type"] == "deadlines_moved" and timeline[-1]["actor"]["role"] == "admin"

    world.clock.set(datetime(2026, 12, 2, 9, 20, tzinfo=SHANGHAI))  # on the holiday
    world.tokens.clear()
    tick(world)
    assert [e for e in sla_events(world, drain) if e[0] == "escalated"] == []
    assert world.get("admin", drain)["sla_state"] == "green"
    # Taken back (before its hours run out), the day gives the time back.
    world.clock.set(datetime(2026, 12, 1, 17, 30, tzinfo=SHANGHAI))
    world.tokens.clear()
    assert world.client.delete("/api/v1/calendar/2026-12-02", headers=world.headers("admin")).status_code == 204
    assert world.get("admin", drain)["deadlines"]["acknowledge_due"] == "2026-12-02T01:20:00+00:00"


def test_new_minutes_for_a_category_keep_the_time_its_open_clocks_used(world):
    """Found by an SLA audit: raised from 30 to 240 minutes, a drain's acknowledge clock was
    read against 240 while its deadline stayed at 30 (amber at 97.5 %, then red and an
    escalation at the old deadline, the next step 240 minutes on). Now the time used stays
    used and the rest of the new limit runs from the change; a cut below it is due now."""
    drain = report(world, category="blocked_drain")  # acknowledge in 30: 10:30
    world.clock.advance(24)
    tick(world)  # 10:24: amber
    world.tokens.clear()
    changed = world.client.patch("/api/v1/categories/blocked_drain", headers=world.headers("admin"),
                                 json={"acknowledge_minutes": 240})
    assert changed.status_code == 200 and changed.get_json()["deadlines_moved"] == 1, changed.get_json()
    assert world.get("admin", drain)["deadlines"]["acknowledge_due"] == "2026-12-01T06:00:00+00:00"  # 14:00
    world.clock.advance(6)  # 10:30, the old deadline
    tick(world)
    assert world.get("admin", drain)["sla_state"] == "green"  # 30 of 240 minutes
    assert [e for e in sla_events(world, drain) if e[0] == "escalated"] == []

    cut = world.client.patch("/api/v1/categories/blocked_drain", headers=world.headers("admin"),
                             json={"acknowledge_minutes": 20})
    assert cut.get_json()["deadlines_moved"] == 1
    assert world.get("admin", drain)["deadlines"]["acknowledge_due"] == "2026-12-01T02:30:00+00:00"  # now
    tick(world)
    # One step (above the crew shortfall's), not every one the cut would have taken so far.
    assert [e[2:4] for e in sla_events(world, drain) if e[0] == "escalated"] == [("acknowledge", 1)]
    unchanged = world.client.patch("/api/v1/categories/blocked_drain", headers=world.headers("admin"),
                                   json={"name_en": "Blocked drain"})
    assert unchanged.get_json()["deadlines_moved"] == 0


def test_a_limit_cut_after_its_deadline_passed_brings_the_next_step_forward(world):
    """Found by an SLA audit: a deadline already passed stays, so nothing moved, and the clock
    kept the look it had scheduled under the old limit: the next step, owed 5 minutes after
    the deadline under the new one, waited for the old 30, then came with the ones after."""
    drain = report(world, category="blocked_drain")  # acknowledge in 30: 10:30
    world.clock.advance(31)
    tick(world)  # 10:31: red, the first step
    steps = [e for e in sla_events(world, drain) if e[0] == "escalated" and e[2] == "acknowledge"]
    assert [e[3] for e in steps] == [1]
    world.tokens.clear()
    cut = world.client.patch("/api/v1/categories/blocked_drain", headers=world.headers("admin"),
                             json={"acknowledge_minutes": 5})
    assert cut.get_json()["deadlines_moved"] == 0  # passed: it stays
    world.clock.advance(5)  # 10:36: 6 minutes past the deadline, more than one new limit
    tick(world)
    steps = [e for e in sla_events(world, drain) if e[0] == "escalated" and e[2] == "acknowledge"]
    assert [e[3] for e in steps] == [1, 2]


def test_a_weekend_day_made_a_workday_brings_a_step_owed_then_forward(world):
    """The same after a calendar change: a noise report whose resolve deadline (8 service
    hours) passed on Thursday owes its third step a working day after the second, on Monday;
    once Saturday is worked (调休) it is owed on Saturday."""
    world.clock.set(datetime(2026, 12, 3, 9, 0, tzinfo=SHANGHAI))  # Thursday
    noise = report(world, category="noise", point=B1_POINT)
    act(world, "m1", noise, "acknowledge")  # resolve by Thursday 17:00
    resolve_steps = lambda: [e[3] for e in sla_events(world, noise)  # noqa: E731
                             if e[0] == "escalated" and e[2] == "resolve"]
    for when in (datetime(2026, 12, 4, 9, 1, tzinfo=SHANGHAI), datetime(2026, 12, 4, 17, 1, tzinfo=SHANGHAI)):
        world.clock.set(when)
        tick(world)
    assert resolve_steps() == [1, 2]
    world.tokens.clear()
    changed = world.client.put("/api/v1/calendar/2026-12-05", headers=world.headers("admin"),
                               json={"kind": "workday", "name": "调休"})
    assert changed.status_code == 200 and changed.get_json()["deadlines_moved"] == 0  # passed: it stays
    world.clock.set(datetime(2026, 12, 5, 17, 1, tzinfo=SHANGHAI))
    tick(world)
    assert resolve_steps() == [1, 2, 3]


def test_new_minutes_reach_a_paused_incident_from_its_pause(world):
    """Found in review: a paused drain whose deadline passed during the pause was skipped
    (no breach while paused), then read against the new limit after resuming: amber after
    5 minutes of 240. Its clock stood at the pause: the time used then stays used."""
    drain = report(world, category="blocked_drain")  # acknowledge in 30: 10:30
    world.clock.advance(5)
    act(world, "m1", drain, "pause", reason="居民不在家")
    world.clock.advance(55)  # 11:00: the old deadline passed during the pause
    world.tokens.clear()
    changed = world.client.patch("/api/v1/categories/blocked_drain", headers=world.headers("admin"),
                                 json={"acknowledge_minutes": 240})
    assert changed.get_json()["deadlines_moved"] == 1
    world.clock.advance(30)  # 11:30
    resumed = act(world, "m1", drain, "resume")
    # 5 minutes used at the pause, 235 left from the resume: 15:25.
    assert resumed["deadlines"]["acknowledge_due"] == "2026-12-01T07:25:00+00:00"
    world.clock.advance(1)
    tick(world)
    assert world.get("admin", drain)["sla_state"] == "green"


def test_one_leader_at_a_time(world):
    db = world.app.extensions["griddispatch.db"]
    first, second = Leadership(db, holder="one"), Leadership(db, holder="two")
    try:
        assert first.acquire() and first.acquire()  # renewing
        assert not second.acquire()
        follower = SlaWorker(world.app)
        follower.leadership = second
        report(world)
        world.clock.advance(5)
        assert follower.tick() == {"leader": False}
        with db.session() as s:
            assert not s.scalars(select(IncidentEvent).where(IncidentEvent.type.in_(SLA_EVENTS))).all()
        first.release()
        assert follower.tick()["escalated"] == 1
    finally:
        first.release()
        second.release()


def test_an_expired_lease_passes_on(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'lease.sqlite3'}")
    db.upgrade()
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    first = Leadership(db, holder="one", ttl_s=30, now=lambda: now[0])
    second = Leadership(db, holder="two", ttl_s=30, now=lambda: now[0])
    assert first.acquire() and not second.acquire()
    now[0] += timedelta(seconds=29)
    assert not second.acquire()
    now[0] += timedelta(seconds=2)  # the first stopped renewing
    assert second.acquire() and not first.acquire()
    db.dispose()


def test_a_gunicorn_worker_runs_the_clock(database_url):
    """The README's gunicorn deployment runs the clock in its worker, as `griddispatch serve`
    does (it did not: deadlines never turned amber there unless `griddispatch worker` ran).
    While the worker leads, no one else can take the lead."""
    import time

    from tests.server import running_server

    db = Database(database_url)
    db.upgrade()
    outsider = Leadership(db, holder="outsider")
    try:
        with running_server(database_url, gunicorn=True):
            deadline = time.monotonic() + 20
            while outsider.acquire():  # the worker's first tick may be a moment away
                outsider.release()
                assert time.monotonic() < deadline, "the gunicorn worker never took the lead"
                time.sleep(0.2)
    finally:
        outsider.release()
        db.dispose()


def test_test_clock_endpoint(world):
    client = world.client
    assert client.get("/api/v1/test-clock").get_json() == {"now": TUESDAY_10.astimezone(UTC).isoformat()}
    pipe = report(world)
    moved = client.post("/api/v1/test-clock", json={"advance_minutes": 5})
    assert moved.status_code == 200 and moved.get_json()["now"] == "2026-12-01T02:05:00+00:00"
    current = world.get("admin", pipe)
    assert current["sla_state"] == "red" and current["escalation_level"] == 1
    moved = client.post("/api/v1/test-clock", json={"now": "2026-12-01T10:10:00+08:00"})
    assert moved.get_json()["now"] == "2026-12-01T02:10:00+00:00"
    assert world.get("admin", pipe)["escalation_level"] == 2
    for body, field in [({"now": "yesterday"}, "now"), ({"now": "2026-12-01T10:00:00"}, "now"),
                        ({"now": 5}, "now"), ({"advance_minutes": "5"}, "advance_minutes"),
                        ({"advance_minutes": -1}, "advance_minutes"),
                        ({"advance_minutes": 2**63}, "advance_minutes"), ({"advance_minutes": 1e308}, "advance_minutes"),
                        ({"now": "2026-12-01T10:00:00+08:00", "advance_minutes": 1}, "advance_minutes")]:
        response = client.post("/api/v1/test-clock", json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["details"]["field"] == field, body
    assert client.post("/api/v1/test-clock", json={}).status_code == 400
    assert client.post("/api/v1/test-clock", data="x").status_code == 400
    assert "/test-clock" in client.get("/api/v1/openapi.json").get_json()["paths"]


def test_test_clock_is_absent_by_default(client):
    assert client.get("/api/v1/test-clock").status_code == 404
    assert client.post("/api/v1/test-clock", json={"advance_minutes": 5}).status_code == 404
    assert "/test-clock" not in client.get("/api/v1/openapi.json").get_json()["paths"]


def test_worker_command_once(world):
    pipe = report(world)
    world.clock.advance(5)
    act(world, "m1", pipe, "acknowledge")  # changed since its last look: the worker looks again
    # The command runs on the real clock: the world's Tuesday lies ahead of it, all green.
    url = world.app.extensions["griddispatch.db"].url
    runner = CliRunner()
    result = runner.invoke(main, ["worker", "--once"], env={"DATABASE_URL": url},
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert '"leader": true' in result.output and '"evaluated": 1' in result.output
    again = runner.invoke(main, ["worker", "--once"], env={"DATABASE_URL": url})
    assert '"evaluated": 0' in again.output


@pytest.mark.parametrize("test_clock", [True, False])
def test_the_app_clock_follows_the_config(db, test_clock):
    app = create_app({"TESTING": True, "DATABASE_URL": db.url, "TEST_CLOCK": test_clock})
    status = app.test_client().get("/api/v1/test-clock").status_code
    assert status == (200 if test_clock else 404)
    app.extensions["griddispatch.db"].dispose()
