"""Live push with real Socket.IO clients against real running servers (SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
import json
import operator
import os
import subprocess
import sys
import time

import pytest
import requests

from tests.geodata import G1, G2
from tests.live import (
    PrivateRedis,
    RawSocket,
    Tablet,
    crew_login,
    login,
    report,
    set_crew_status,
    staffed_database,
    timeline_seqs,
)
from tests.server import children, holding_connections, running_server
from tests.world import B1_POINT, B3_POINT, G2_POINT


@pytest.fixture
def staffed(database_url, tmp_path):
    staffed_database(database_url, tmp_path)
    return database_url


def test_manager_gets_its_grid_live_and_exactly_the_missed_events_after_reconnect(staffed):
    with running_server(staffed) as base:
        admin = login(base, "admin")
        tablet = Tablet(token=login(base, "m1")).connect(base)
        first = report(base, B1_POINT)
        expected = timeline_seqs(base, admin, first)
        tablet.wait_for_seq(expected[-1])
        assert tablet.seqs() == expected
        assert tablet.events[0]["type"] == "reported"
        assert tablet.events[0]["incident"]["areas"]["grid"]["code"] == first["areas"]["grid"]["code"]
        tablet.disconnect()

        missed = [report(base, B1_POINT, "power_cut"), report(base, B3_POINT), report(base, B1_POINT, "lift_fault")]
        tablet.connect(base)
        want = expected + timeline_seqs(base, admin, missed[0]) + timeline_seqs(base, admin, missed[2])
        tablet.wait_for_seq(want[-1])
        assert tablet.seqs() == sorted(want)  # in order, no gap, no duplicate, nothing from G3
        assert tablet.replays[-1]["count"] == len(want) - len(expected)

        later = report(base, B1_POINT, "rubbish")  # and live again after the replay
        tablet.wait_for_seq(timeline_seqs(base, admin, later)[-1])
        assert tablet.seqs() == sorted(want + timeline_seqs(base, admin, later))
        tablet.disconnect()


def test_scopes_live_and_replayed(staffed):
    import requests

    with running_server(staffed) as base:
        admin = login(base, "admin")
        g1 = report(base, B1_POINT)
        pipe = report(base, B1_POINT, "burst_pipe")  # urgent: crew A is dispatched at once
        g3 = report(base, B3_POINT)
        g2 = report(base, G2_POINT)
        seqs = {name: timeline_seqs(base, admin, i) for name, i in
                (("g1", g1), ("pipe", pipe), ("g3", g3), ("g2", g2))}
        pipe_events = requests.get(f"{base}/api/v1/incidents/{pipe['id']}/events", timeout=10,
                                   headers={"Authorization": f"Bearer {admin}"}).json()["events"]
        dispatched = next(e["seq"] for e in pipe_events if e["type"] == "dispatched")
        tablets = {
            "m3": Tablet(token=login(base, "m3")),
            "committee-s1": Tablet(token=login(base, "committee-s1")),
            "crew-a": Tablet(token=login(base, "crew-a")),
            "admin": Tablet(token=admin),
            "resident": Tablet(tracking_token=g3["tracking_token"]),
        }
        for tablet in tablets.values():
            tablet.connect(base)  # everything so far comes as replay from seq 0
        late = report(base, B3_POINT, "rubbish")  # and this one live
        seqs["late"] = timeline_seqs(base, admin, late)
        expect = {
            "m3": seqs["g3"] + seqs["late"],
            "committee-s1": seqs["g1"] + seqs["pipe"] + seqs["g2"],  # street 320104001 only
            "crew-a": [s for s in seqs["pipe"] if s >= dispatched],  # from its dispatch on
            "admin": [s for values in seqs.values() for s in values],
            "resident": seqs["g3"],
        }
        # The last event everyone gets is the admin's newest; once it has arrived there,
        # each tablet has had its own share pushed too.
        tablets["admin"].wait_for_seq(max(seqs["late"]))
        for name, tablet in tablets.items():
            tablet.wait_for_seq(max(expect[name]))
            assert tablet.seqs() == sorted(expect[name]), name
        # Pushes never carry a whole phone number; the reporter sees no staff phone.
        assert all("*" in (e["incident"]["reporter"]["phone"] or "*") for e in tablets["admin"].events)
        assert all("phone" not in (e["incident"]["manager"] or {}) for e in tablets["resident"].events)
        for tablet in tablets.values():
            tablet.disconnect()


@pytest.mark.parametrize("auth, code", [
    ({"token": "forged"}, "invalid_token"),
    ({}, "authentication_required"),
    ({"tracking_token": "nope"}, "unknown_tracking_token"),
    ({"token": None, "since": -3}, "invalid_since"),
    # No token can be these (nor be hashed): refused, not left waiting for an answer.
    ({"token": "\ud800"}, "invalid_token"),
    ({"tracking_token": "x\x00"}, "invalid_token"),
])
def test_bad_connections_are_refused_with_a_reason(staffed, auth, code):
    import socketio

    with running_server(staffed) as base:
        client = socketio.Client(reconnection=False)
        refused = []
        client.on("connect_error", refused.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(base, auth=auth, transports=["websocket"], wait_timeout=5)
        assert refused, refused
        assert refused[0]["data"]["code"] == code and refused[0]["message"], refused


def test_server_killed_and_restarted_clients_miss_nothing(staffed):
    import signal

    from tests.server import free_port

    port = free_port()
    with running_server(staffed, port=port) as base:
        admin = login(base, "admin")
        tablet = Tablet(token=login(base, "m1"), reconnection=True).connect(base)
        first = report(base, B1_POINT)
        tablet.wait_for_seq(timeline_seqs(base, admin, first)[-1])
        server = running_server.last_process
        server.send_signal(signal.SIGKILL)
        server.wait()
        # Reports keep arriving through another server process while this one is down.
        with running_server(staffed) as other:
            during = [report(other, B1_POINT, "power_cut"), report(other, B1_POINT, "lift_fault")]
        with running_server(staffed, port=port):
            after = report(base, B1_POINT, "rubbish")
            want = sorted(functools.reduce(operator.iadd, (timeline_seqs(base, admin, i) for i in [first, *during, after]), []))
            tablet.wait_for_seq(want[-1], timeout=30)
            assert tablet.seqs() == want, (tablet.seqs(), want, tablet.replays, tablet.resyncs)
            tablet.disconnect()


@pytest.mark.parametrize("gunicorn", [False, True], ids=["serve", "gunicorn"])
def test_two_processes_share_rooms_through_redis(staffed, gunicorn):
    """Two `griddispatch serve` processes, and the README's two gunicorn commands."""
    redis = PrivateRedis().start()
    # A long poll proves the wake-up came through Redis, not from reading the log on a timer.
    env = {"REDIS_URL": redis.url, "GRIDDISPATCH_LIVE_POLL_SECONDS": "60"}
    try:
        with (running_server(staffed, env=env, gunicorn=gunicorn) as a,
              running_server(staffed, env=env, gunicorn=gunicorn) as b):
            admin = login(a, "admin")
            manager_on_b = Tablet(token=login(b, "m1")).connect(b)
            committee_on_a = Tablet(token=login(a, "committee-s1")).connect(a)
            posted_to_a = report(a, B1_POINT)
            manager_on_b.wait_for_seq(timeline_seqs(a, admin, posted_to_a)[-1], timeout=20)
            import requests

            acknowledged = requests.post(
                f"{b}/api/v1/incidents/{posted_to_a['id']}/actions", timeout=10,
                headers={"Authorization": f"Bearer {login(b, 'm1')}"},
                json={"action": "acknowledge", "expected_version": manager_on_b.events[-1]["incident"]["version"]})
            assert acknowledged.status_code == 200, acknowledged.text
            committee_on_a.wait_for_seq(timeline_seqs(a, admin, posted_to_a)[-1], timeout=20)
            assert committee_on_a.events[-1]["type"] == "acknowledged"
            # A crew's push (no event, no seq) goes through Redis too: crew A, serving the
            # whole district, goes off duty and back on A; G1's manager on B sees both.
            crew_token, crew_id = crew_login(a, "crew-a")
            for status in ("off", "available"):
                set_crew_status(a, crew_token, crew_id, status)
            manager_on_b.wait(lambda: [c["status"] for c in manager_on_b.crews if c["crew_id"] == crew_id]
                              [-2:] == ["off", "available"], "crew A's pushes, through Redis")

            # Redis restarts while both run: fan-out resumes by itself once it is back.
            redis.stop()
            while_down = report(a, B1_POINT, "power_cut")
            redis.start()
            manager_on_b.wait_for_seq(timeline_seqs(a, admin, while_down)[-1], timeout=30)
            # And a client that was away the whole time gets it by replay on reconnect.
            manager_on_b.disconnect()
            gone = report(b, B1_POINT, "lift_fault")
            manager_on_b.connect(a)
            manager_on_b.wait_for_seq(timeline_seqs(a, admin, gone)[-1])
            seqs = manager_on_b.seqs()
            assert seqs == sorted(set(seqs))
    finally:
        redis.stop()


def test_gunicorn_workers_on_one_port_share_rooms_through_redis(staffed):
    """`gunicorn -w 2` on one port: a tablet's socket stays with the worker it landed on, and
    each report is taken by either worker. Tablets on both workers get every report."""
    redis = PrivateRedis().start()
    env = {"REDIS_URL": redis.url, "GRIDDISPATCH_LIVE_POLL_SECONDS": "60"}
    try:
        with running_server(staffed, env=env, gunicorn=True, workers=2) as base:
            port = int(base.rsplit(":", 1)[1])
            workers = children(running_server.last_process.pid)
            deadline = time.monotonic() + 60
            while len(workers) < 2 and time.monotonic() < deadline:  # the second may still boot
                time.sleep(0.2)
                workers = children(running_server.last_process.pid)
            tablets = []
            while holding_connections(workers, port) != set(workers):
                assert len(tablets) < 40, "every tablet landed on one worker"
                tablets.append(Tablet(token=login(base, "m1")).connect(base))
            admin = login(base, "admin")
            posted = [report(base, B1_POINT, category) for category in
                      ("no_water", "power_cut", "lift_fault", "rubbish", "noise", "blocked_drain")]
            want = sorted(seq for incident in posted for seq in timeline_seqs(base, admin, incident))
            for tablet in tablets:
                tablet.wait_for_seq(want[-1], timeout=20)
                assert tablet.seqs() == want
                tablet.disconnect()
    finally:
        redis.stop()


def test_crew_status_and_position_are_pushed(staffed):
    """A crew's pushes reach every client of an area it works in: the areas above its service
    areas (their incidents' rooms) and the areas under them (served from above)."""
    import requests

    with running_server(staffed) as base:
        crew_token, a_crew = crew_login(base, "crew-a")  # crew A serves the whole district
        board = Tablet(token=login(base, "committee-d")).connect(base)
        other_street = Tablet(token=login(base, "committee-s1")).connect(base)  # street 320104001
        m1 = Tablet(token=login(base, "m1")).connect(base)  # grid G1, in street 320104001
        m3 = Tablet(token=login(base, "m3")).connect(base)  # grid G3, in street 320104002
        report(base, B1_POINT, "burst_pipe")  # dispatches crew A: it turns busy
        for watcher in (board, other_street, m1, m3):
            watcher.wait(lambda w=watcher: any(c["crew_id"] == a_crew and c["status"] == "busy"
                                               for c in w.crews), "crew A busy")
        response = requests.post(f"{base}/api/v1/crews/{a_crew}/position", timeout=10,
                                 headers={"Authorization": f"Bearer {crew_token}"},
                                 json={"lon": B3_POINT[0], "lat": B3_POINT[1]})
        assert response.status_code == 200, response.text
        board.wait(lambda: any(c["lon"] == B3_POINT[0] for c in board.crews), "the new position")

        # Crew B serves street 320104002: the district's board and G3's manager see it go off
        # duty; the other street's board and G1's manager never do.
        b_token, b_crew = crew_login(base, "crew-b")
        set_crew_status(base, b_token, b_crew, "off")
        for watcher in (board, m3):
            watcher.wait(lambda w=watcher: any(c["crew_id"] == b_crew and c["status"] == "off" for c in w.crews),
                         "crew B off duty")
        time.sleep(0.5)
        assert not [c for c in other_street.crews + m1.crews if c["crew_id"] == b_crew]

        # An admin moves crew B to street 320104001 and back on duty (found by a people audit:
        # an edit was pushed to nobody): the street it joins hears, and G3, which it leaves.
        response = requests.patch(f"{base}/api/v1/crews/{b_crew}", timeout=10,
                                  headers={"Authorization": f"Bearer {login(base, 'admin')}"},
                                  json={"status": "available", "service_areas": ["320104001"]})
        assert response.status_code == 200, response.text
        for watcher in (board, other_street, m1, m3):
            watcher.wait(lambda w=watcher: any(c["crew_id"] == b_crew and c["status"] == "available"
                                               for c in w.crews), "crew B moved and back on duty")
        for watcher in (board, other_street, m1, m3):
            watcher.disconnect()


def test_a_crew_freed_by_the_cli_is_pushed_by_the_servers_through_redis(staffed):
    """Found by a live audit: a crew whose status the CLI (or the SLA worker on its own)
    changed was pushed by nobody, so boards showed it busy until its next change. Such a
    process says which crews moved through Redis, and each server pushes them, once."""
    from tests.live import PrivateRedis

    redis = PrivateRedis().start()
    try:
        env = {"REDIS_URL": redis.url}
        with running_server(staffed, env=env) as a, running_server(staffed, env=env) as b:
            board_a, board_b = (Tablet(token=login(a, "committee-d")).connect(base) for base in (a, b))
            _, a_crew = crew_login(a, "crew-a")
            report(a, B1_POINT, "burst_pipe")  # dispatches crew A: it turns busy
            board_b.wait(lambda: any(c["crew_id"] == a_crew and c["status"] == "busy" for c in board_b.crews),
                         "crew A busy")
            done = subprocess.run([sys.executable, "-m", "dispatch", "users", "disable", "crew-a"], timeout=60,
                                  env={**os.environ, "DATABASE_URL": staffed, "REDIS_URL": redis.url},
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            for board in (board_a, board_b):
                board.wait(lambda w=board: w.crews[-1]["crew_id"] == a_crew and w.crews[-1]["status"] == "available",
                           "crew A freed, pushed")
            time.sleep(1)
            for board in (board_a, board_b):  # once each, not once per server
                assert [c["status"] for c in board.crews if c["crew_id"] == a_crew].count("available") == 1
                board.disconnect()
    finally:
        redis.stop()


def test_position_pushes_are_throttled(staffed):
    import requests

    from tests.browser import set_clock

    with running_server(staffed, "--test-clock") as base:
        set_clock(base, "2026-12-01T10:00:00+08:00")
        crew_token, crew_id = crew_login(base, "crew-b")
        board = Tablet(token=login(base, "admin")).connect(base)

        def move(lon: float) -> None:
            response = requests.post(f"{base}/api/v1/crews/{crew_id}/position", timeout=10,
                                     headers={"Authorization": f"Bearer {crew_token}"},
                                     json={"lon": lon, "lat": B3_POINT[1]})
            assert response.status_code == 200, response.text

        move(B3_POINT[0])
        board.wait(lambda: len(board.crews) == 1, "the first position")
        set_clock(base, advance_minutes=0.05)  # 3 s later: held back
        move(B3_POINT[0] + 0.0001)
        set_clock(base, advance_minutes=0.2)  # 15 s after the first: pushed
        move(B3_POINT[0] + 0.0002)
        board.wait(lambda: len(board.crews) == 2, "the third position")
        assert [c["lon"] for c in board.crews] == [B3_POINT[0], B3_POINT[0] + 0.0002]
        # Held back is not dropped: the last of a burst is pushed when the window ends, once.
        set_clock(base, advance_minutes=0.1)  # 6 s after the third: held
        move(B3_POINT[0] + 0.0003)
        move(B3_POINT[0] + 0.0004)
        board.wait(lambda: len(board.crews) == 3, "the last position, at the window's end", timeout=15)
        time.sleep(1)
        assert [c["lon"] for c in board.crews][2:] == [B3_POINT[0] + 0.0004]
        board.disconnect()


def _act(base: str, token: str, incident: dict, action: str, **fields) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    version = requests.get(f"{base}/api/v1/incidents/{incident['id']}", timeout=10, headers=headers).json()["version"]
    response = requests.post(f"{base}/api/v1/incidents/{incident['id']}/actions", timeout=10, headers=headers,
                             json={"action": action, "expected_version": version, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_resident_account_hears_of_a_report_it_files_while_connected(staffed):
    """A resident signed in with an account joins its reports' rooms when it connects; one it
    files afterwards is followed live from its first event on, not only after reconnecting."""
    with running_server(staffed) as base:
        admin, manager, resident_token = login(base, "admin"), login(base, "m1"), login(base, "resident")
        before = report(base, B1_POINT, "power_cut", token=resident_token)
        resident = Tablet(token=resident_token).connect(base)
        neighbour = report(base, B1_POINT, "lift_fault")  # someone else's: never theirs
        filed = report(base, B1_POINT, token=resident_token)
        resident.wait_for_seq(timeline_seqs(base, admin, filed)[-1])
        _act(base, manager, filed, "acknowledge")
        acknowledged = timeline_seqs(base, admin, filed)[-1]
        resident.wait_for_seq(acknowledged)
        assert {e["incident"]["id"] for e in resident.events} == {before["id"], filed["id"]}  # replayed, live
        assert [e["seq"] for e in resident.events if e["incident"]["id"] == filed["id"]] == \
            timeline_seqs(base, admin, filed)
        assert all(e["incident"]["id"] != neighbour["id"] for e in resident.events)
        assert all("phone" not in (e["incident"]["manager"] or {}) for e in resident.events)
        resident.disconnect()

        # Merged into another report, theirs is followed into that one after a reconnect as
        # well, as with a tracking token (found by a live audit: the replay stopped at "merged").
        original = report(base, B1_POINT)
        _act(base, manager, filed, "merge", duplicate_of=original["public_id"])
        _act(base, manager, original, "acknowledge")
        again = Tablet(token=resident_token).connect(base)
        again.wait_for_seq(timeline_seqs(base, admin, original)[-1])
        assert {e["incident"]["id"] for e in again.events} == {before["id"], filed["id"], original["id"]}
        again.disconnect()


def test_a_resident_account_hears_of_a_report_it_files_through_another_process_without_redis(staffed):
    """Found by a live audit: read from the log (another process's commit, no Redis), a new
    report's events had no listener here yet, so the resident's socket was never joined to
    it and heard nothing of it until it reconnected."""
    env = {"GRIDDISPATCH_LIVE_POLL_SECONDS": "1"}  # b reads a's commits from the log, a second's worth at once
    with running_server(staffed, env=env) as a, running_server(staffed, env=env) as b:
        admin, manager, resident_token = login(a, "admin"), login(a, "m1"), login(a, "resident")
        resident = Tablet(token=resident_token).connect(b)
        filed = report(a, B1_POINT, token=resident_token)
        _act(a, manager, filed, "acknowledge")
        resident.wait_for_seq(timeline_seqs(a, admin, filed)[-1])
        assert [e["seq"] for e in resident.events] == timeline_seqs(a, admin, filed)
        resident.disconnect()
        # The same for a reporter whose report is merged: the original's events that follow
        # in the same read of the log reach it too.
        original, duplicate = report(a, B3_POINT), report(a, B3_POINT)
        follower = Tablet(tracking_token=duplicate["tracking_token"]).connect(b)
        _act(a, login(a, "m3"), duplicate, "merge", duplicate_of=original["public_id"])
        _act(a, login(a, "m3"), original, "acknowledge")
        follower.wait_for_seq(timeline_seqs(a, admin, original)[-1])
        assert timeline_seqs(a, admin, original)[-1] in follower.seqs()
        follower.disconnect()


def test_a_reporter_follows_the_original_live_once_its_report_is_merged(staffed):
    """Merged as a duplicate, a report's reporter follows the original's updates from then on
    (as a reconnect would: rooms_for_tracking), live, without reconnecting."""
    with running_server(staffed) as base:
        admin, manager = login(base, "admin"), login(base, "m1")
        original = report(base, B1_POINT)
        duplicate = report(base, B1_POINT)
        resident = Tablet(tracking_token=duplicate["tracking_token"]).connect(base)
        bystander = Tablet(tracking_token=report(base, B1_POINT, "power_cut")["tracking_token"]).connect(base)

        _act(base, manager, duplicate, "merge", duplicate_of=original["public_id"])
        resident.wait_for_seq(timeline_seqs(base, admin, duplicate)[-1])
        assert "merged" in [e["type"] for e in resident.events]
        _act(base, manager, original, "acknowledge")
        acknowledged = timeline_seqs(base, admin, original)[-1]
        resident.wait_for_seq(acknowledged)
        last = resident.events[-1]
        assert (last["seq"], last["type"], last["incident"]["id"]) == (acknowledged, "acknowledged", original["id"])
        assert "phone" not in (last["incident"]["manager"] or {})  # a reporter's view of it
        assert all(e["incident"]["id"] != original["id"] for e in bystander.events)  # nobody else's
        resident.disconnect()
        bystander.disconnect()


def test_merged_reporters_never_see_each_others_name_phone_or_words(staffed):
    """Found by a scope audit: the duplicate's reporter followed the original with its
    reporter's name, phone digits and description, on the tracking page and live."""
    with running_server(staffed) as base:
        admin, manager = login(base, "admin"), login(base, "m1")
        original = requests.post(f"{base}/api/v1/incidents", timeout=10, json={
            "category": "no_water", "location": {"lon": B1_POINT[0], "lat": B1_POINT[1]},
            "reporter_name": "Alice Wang", "reporter_phone": "13955557777",
            "description": "Alice's flat 302, key under the mat", "address": "Alice's flat 302"}).json()
        duplicate = report(base, B1_POINT)
        resident = Tablet(tracking_token=duplicate["tracking_token"]).connect(base)
        first = Tablet(tracking_token=original["tracking_token"]).connect(base)
        _act(base, manager, duplicate, "merge", duplicate_of=original["public_id"])
        _act(base, manager, original, "acknowledge")
        acknowledged = timeline_seqs(base, admin, original)[-1]
        for follower in (resident, first):
            follower.wait_for_seq(acknowledged)
        replayed = Tablet(tracking_token=duplicate["tracking_token"]).connect(base)
        tracked = requests.get(f"{base}/api/v1/track/{duplicate['tracking_token']}", timeout=10).json()
        assert tracked["id"] == original["id"] and tracked["status"] == "acknowledged"
        seen = json.dumps([resident.events, replayed.events, tracked, first.events], ensure_ascii=False)
        for private in ("Alice", "7777", "1395", "flat 302"):
            assert private not in seen, private
        for tablet in (resident, first, replayed):
            tablet.disconnect()


def test_who_loses_an_incident_is_told_only_that_it_left(staffed):
    """Found by a scope audit: a reassignment's old grid and a redispatch's old crew were
    pushed the incident as it now stands (the new manager's phone, the new crew), and could
    read it again at any time by replaying from 0, while REST answered them 403."""
    with running_server(staffed) as base:
        admin, operator = login(base, "admin"), login(base, "operator")
        # m1 is G1's primary and now also G2's backup: it still sees an incident moved to G2.
        m1 = requests.get(f"{base}/api/v1/auth/me", timeout=10, headers={"Authorization": f"Bearer {login(base, 'm1')}"})
        grids = requests.put(f"{base}/api/v1/people/{m1.json()['id']}/grids", timeout=10,
                             headers={"Authorization": f"Bearer {admin}"},
                             json=[{"grid_code": G1, "kind": "primary"}, {"grid_code": G2, "kind": "backup"}])
        assert grids.status_code == 200, grids.text
        backup = Tablet(token=login(base, "m1b")).connect(base)  # G1's backup only
        both = Tablet(token=login(base, "m1")).connect(base)
        incident = report(base, B1_POINT)
        _act(base, operator, incident, "reassign", grid_code=G2, reason="the pipe is on G2's side")
        until_moved = timeline_seqs(base, admin, incident)
        until_moved = until_moved[:len(until_moved) - 1]  # its crews ranked afresh for G2 after
        _act(base, login(base, "m2"), incident, "acknowledge")
        seqs = timeline_seqs(base, admin, incident)
        both.wait_for_seq(seqs[-1])
        backup.wait_for_seq(until_moved[-1])
        stub = {"id": incident["id"], "public_id": incident["public_id"], "version": len(seqs),
                "in_scope": False}

        time.sleep(0.5)
        assert backup.seqs() == until_moved  # nothing after it left
        gone = backup.events[-1]
        assert (gone["type"], gone["data"], gone["incident"]) == ("reassigned", {}, {**stub, "version": len(until_moved) + 1})  # as it stood at the commit
        # In a room that left and one that still sees it: the full push, once.
        assert both.arrivals == seqs and both.events[len(until_moved) - 1]["incident"]["areas"]["grid"]["code"] == G2
        # Replayed from the start, the old grid's manager learns only that it left.
        again = Tablet(token=login(base, "m1b")).connect(base)
        assert again.seqs() == until_moved
        assert all(e["incident"] == stub and e["data"] == {} for e in again.events), again.events

        # A redispatch: the first crew hears that the job left it, and no more.
        crews = {}
        for name in ("crew-a", "crew-b"):
            token, crew_id = crew_login(base, name)
            crews[crew_id] = Tablet(token=token).connect(base)
        urgent = report(base, B3_POINT, "burst_pipe")  # dispatched at once to the nearest plumber
        sent = requests.get(f"{base}/api/v1/incidents/{urgent['id']}", timeout=10,
                            headers={"Authorization": f"Bearer {admin}"}).json()["crew"]["id"]
        other = next(crew for crew in crews if crew != sent)
        _act(base, login(base, "m3"), urgent, "dispatch", crew_id=other)
        seqs = timeline_seqs(base, admin, urgent)
        crews[other].wait_for_seq(seqs[-1])
        crews[sent].wait_for_seq(seqs[-1])
        assert crews[sent].events[-1]["incident"]["in_scope"] is False
        assert crews[other].events[-1]["incident"]["crew"]["id"] == other
        for tablet in (backup, both, again, *crews.values()):
            tablet.disconnect()


def test_unreadable_packets_are_refused_or_ignored_without_a_traceback(staffed):
    """Found by fuzzing: a frame of bad or too deeply nested JSON, or an event that is not
    [name, ...], logged a traceback per frame, and a connect so spoiled got no answer at all."""
    import json

    with running_server(staffed) as base:
        RawSocket(base).send("4")  # an empty Socket.IO packet, before any connect (a live audit)
        for frame in ('40{"token":', "40" + "[" * 5000 + "]" * 5000, '40[1,2]', '40"x"'):
            raw = RawSocket(base)
            raw.send(frame)
            answer = raw.next()
            assert answer.startswith("44"), (frame[:20], answer)
            assert json.loads(answer[2:])["data"]["code"] == "invalid_packet"
            raw.close()
        admin = login(base, "admin")
        raw = RawSocket(base)
        raw.send("40" + json.dumps({"token": admin, "since": None}))
        assert raw.next().startswith("40")
        raw.events(lambda name, data: name == "replayed")
        for frame in ('42[{"a":1}]', "42[]", '42"x"', "42{}", "42" + "[" * 5000 + "]" * 5000, '42["x"',
                      '451-["x",{"_placeholder":true,"num":0}]', '44{"message":"x"}', "49", "4x", "4"):
            raw.send(frame)
        posted = report(base, B1_POINT)  # and the socket goes on as before
        last = timeline_seqs(base, admin, posted)[-1]
        raw.events(lambda name, data: name == "incident_event" and data["seq"] == last)
        raw.close()
        output = running_server.last_output
        output.seek(0)
        logged = output.read()
    assert "Traceback" not in logged and "handler error" not in logged, logged[-3000:]

