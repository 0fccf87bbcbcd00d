"""A live socket ends with its sign-in and follows its user's rooms: real Socket.IO clients
against a real running server (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests
import socketio

from tests.geodata import G2
from tests.live import RawSocket, Tablet, login, report, staffed_database, timeline_seqs
from tests.server import running_server
from tests.world import B1_POINT, B3_POINT

QUICK = {"GRIDDISPATCH_LIVE_SIGNIN_CHECK_SECONDS": "0.3"}


@pytest.fixture
def staffed(database_url, tmp_path):
    staffed_database(database_url, tmp_path)
    return database_url


def _sign_out(base, token, admin, database_url):
    response = requests.delete(f"{base}/api/v1/auth/token", timeout=10,
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204, response.text


def _disable_from_the_cli(base, token, admin, database_url):
    """Another process, with no server of its own, disables the account."""
    done = subprocess.run([sys.executable, "-m", "dispatch", "users", "disable", "m1"], timeout=60,
                          env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _let_it_run_out(base, token, admin, database_url):
    response = requests.post(f"{base}/api/v1/test-clock", json={"advance_minutes": 13 * 60}, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("end, code", [
    (_sign_out, "token_revoked"),
    (_disable_from_the_cli, "user_disabled"),
    (_let_it_run_out, "token_expired"),
])
def test_a_socket_is_told_and_let_go_when_its_sign_in_ends(staffed, end, code):
    with running_server(staffed, "--test-clock", env=QUICK) as base:
        admin = login(base, "admin")
        token = login(base, "m1")
        tablet = Tablet(token=token).connect(base)
        first = report(base, B1_POINT)
        tablet.wait_for_seq(timeline_seqs(base, admin, first)[-1])

        end(base, token, admin, staffed)
        tablet.wait(lambda: tablet.disconnects == 1, "the server to disconnect the socket")
        assert [(message, data["code"]) for message, data in tablet.ended] == [("signed_out", code)]
        assert tablet.ended[0][1]["message"]

        seen = tablet.seqs()
        admin = login(base, "admin")  # the clock may have moved past every token of before
        bystander = Tablet(token=login(base, "m1b")).connect(base)  # same grid, signed in
        later = report(base, B1_POINT, "power_cut", token=admin)
        bystander.wait_for_seq(timeline_seqs(base, admin, later)[-1])
        assert tablet.seqs() == seen  # nothing more reaches the ended session
        with pytest.raises(socketio.exceptions.ConnectionError):  # nor come back with that token
            tablet.connect(base)
        assert tablet.refused[-1]["data"]["code"] == code
        bystander.disconnect()


def test_a_changed_scope_moves_a_live_socket_into_its_new_rooms(staffed):
    with running_server(staffed, env=QUICK) as base:
        admin = login(base, "admin")
        board = Tablet(token=login(base, "committee-s1")).connect(base)  # street 320104001: G1, G2
        before = report(base, B1_POINT)
        board.wait_for_seq(timeline_seqs(base, admin, before)[-1])
        people = requests.get(f"{base}/api/v1/people?role=committee", timeout=10,
                              headers={"Authorization": f"Bearer {admin}"}).json()
        member = next(p for p in people["people"] if p["username"] == "committee-s1")

        moved = requests.patch(f"{base}/api/v1/people/{member['id']}", timeout=10,
                               json={"scope_area_code": "320104002"},  # the street of G3
                               headers={"Authorization": f"Bearer {admin}"})
        assert moved.status_code == 200, moved.text
        board.wait(lambda: board.disconnects == 1, "the server to disconnect the socket")
        assert [(message, data["code"]) for message, data in board.ended] == [("rooms_changed", "rooms_changed")]

        board.connect(base)  # as live.js does: the same sign-in, the rooms it now has
        in_g1, in_g3 = report(base, B1_POINT, "rubbish"), report(base, B3_POINT, "rubbish")
        g3_seqs = timeline_seqs(base, admin, in_g3)
        board.wait_for_seq(g3_seqs[-1])
        assert not set(timeline_seqs(base, admin, in_g1)) & set(board.seqs())
        assert set(g3_seqs) <= set(board.seqs())

        # A change to the directory that leaves its rooms as they are does not disturb it.
        renamed = requests.patch(f"{base}/api/v1/people/{member['id']}", timeout=10,
                                 json={"display_name": "街道委员"},
                                 headers={"Authorization": f"Bearer {admin}"})
        assert renamed.status_code == 200, renamed.text
        time.sleep(1.0)  # three looks and more
        again = report(base, B3_POINT, "noise")
        board.wait_for_seq(timeline_seqs(base, admin, again)[-1])
        assert board.disconnects == 1 and len(board.ended) == 1
        board.disconnect()


def test_a_staff_account_made_a_resident_loses_its_staff_rooms(staffed):
    """Found by fuzzing: the look skipped every user who is a resident now, so an operator
    made a resident went on receiving the whole district's events."""
    with running_server(staffed, env=QUICK) as base:
        admin = login(base, "admin")
        board = Tablet(token=login(base, "operator")).connect(base)
        first = report(base, B1_POINT)
        board.wait_for_seq(timeline_seqs(base, admin, first)[-1])
        people = requests.get(f"{base}/api/v1/people?role=operator", timeout=10,
                              headers={"Authorization": f"Bearer {admin}"}).json()
        operator = next(p for p in people["people"] if p["username"] == "operator")
        demoted = requests.patch(f"{base}/api/v1/people/{operator['id']}", timeout=10, json={"role": "resident", "scope_area_code": None},
                                 headers={"Authorization": f"Bearer {admin}"})
        assert demoted.status_code == 200, demoted.text
        board.wait(lambda: board.disconnects == 1, "the server to disconnect the socket")
        assert [(message, data["code"]) for message, data in board.ended] == [("rooms_changed", "rooms_changed")]
        seen = board.seqs()
        board.connect(base)  # as the resident it now is: its own reports, none of them
        later = report(base, B1_POINT, "power_cut", token=admin)
        witness = Tablet(token=admin).connect(base)
        witness.wait_for_seq(timeline_seqs(base, admin, later)[-1])
        assert board.seqs() == seen
        board.disconnect()
        witness.disconnect()


def test_a_client_cannot_run_the_connect_or_disconnect_handler_again(staffed):
    """Found by fuzzing: python-socketio passes a client's event named "connect" or
    "disconnect" to those handlers. "disconnect" ended the sign-in checks of a socket that
    stayed connected (a revoked token went on receiving its grid); "connect" with another
    token joined that token's rooms too."""
    with running_server(staffed, env=QUICK) as base:
        admin, token = login(base, "admin"), login(base, "m1")
        raw = RawSocket(base)
        raw.send("40" + json.dumps({"token": token, "since": None}))
        assert raw.next().startswith("40")
        raw.events(lambda name, data: name == "replayed")
        raw.send('42["disconnect"]')
        raw.send("42" + json.dumps(["connect", {"token": admin, "since": None}]))  # an admin's rooms: "all"
        in_g3, in_g1 = report(base, B3_POINT), report(base, B1_POINT)
        g1_seqs = timeline_seqs(base, admin, in_g1)
        got = raw.events(lambda name, data: name == "incident_event" and data["seq"] == g1_seqs[-1])
        seqs = [data["seq"] for name, data in got if name == "incident_event"]
        assert seqs == g1_seqs  # G1's, not G3's: no admin rooms, and no second replay
        assert not set(seqs) & set(timeline_seqs(base, admin, in_g3))

        _sign_out(base, token, admin, staffed)  # still watched: the look ends it
        got = raw.events(lambda name, data: name == "signed_out")
        assert got[-1] == ["signed_out", {"code": "token_revoked", "message": got[-1][1]["message"]}]
        raw.close()


def test_a_look_at_many_sockets_lets_pushes_go_on_between_its_statements(database_url, tmp_path):
    """The look at a server's sockets reads their sign-ins a hundred at a time and pauses
    between the reads, and after judging every hundred (the server yields to its pushes
    there), and finds every ended sign-in whichever read it falls in."""
    from datetime import UTC, datetime, timedelta

    from dispatch.app import create_app
    from dispatch.live import rooms_for_user
    from dispatch.live_signins import CHUNK, SignedIn, SignIns
    from dispatch.people.auth import issue_token
    from dispatch.people.models import User, directory_revision

    users = staffed_database(database_url, tmp_path)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    now = datetime.now(UTC)
    signins = SignIns(rooms_for_user)
    sockets = 2 * CHUNK + 50
    ended_at = {7, CHUNK + 3, 2 * CHUNK + 49}
    with app.extensions["griddispatch.db"].session() as session:
        manager = session.get(User, users["m1"])
        revision = directory_revision(session)
        rooms = frozenset(rooms_for_user(session, manager))
        rows = {}
        for n in range(sockets):
            _token, rows[n] = issue_token(session, user=manager, now=now)
            signins.joined(f"sid-{n}", SignedIn(rows[n].token_hash, manager.id, rooms, revision))
        session.flush()
        for n in ended_at:
            rows[n].revoked_at = now
        session.commit()

        pauses = []
        ended = signins.check(session, now + timedelta(seconds=1), pause=lambda: pauses.append(len(pauses)))
        assert len(pauses) == 4  # between the three reads, and twice in judging the 250
        assert sorted(sid for sid, _message, _data in ended) == sorted(f"sid-{n}" for n in ended_at)
        assert {(message, data["code"]) for _sid, message, data in ended} == {("signed_out", "token_revoked")}
    app.extensions["griddispatch.db"].dispose()


def test_a_sign_in_ended_or_moved_is_seen_at_once_in_every_process(staffed):
    """Found by a live audit: between a token's revocation (or a manager moved off a grid)
    and the next regular look, up to 5 s, the socket went on receiving the old grid's events.
    A commit that may end a sign-in or move its rooms now wakes the look: in its own process,
    and in the others through Redis, the CLI's included. The regular look here is a minute
    away, so only the wake-up can be what tells them."""
    from tests.live import PrivateRedis

    redis = PrivateRedis().start()
    try:
        env = {"REDIS_URL": redis.url, "GRIDDISPATCH_LIVE_SIGNIN_CHECK_SECONDS": "60"}
        with running_server(staffed, env=env) as a, running_server(staffed, env=env) as b:
            admin = login(a, "admin")
            m1 = login(a, "m1")
            signed_out = Tablet(token=m1).connect(a)  # told by its own process
            moved = Tablet(token=login(a, "m3")).connect(b)  # by another, through Redis
            disabled = Tablet(token=login(a, "m2")).connect(b)  # by the CLI, through Redis
            started = time.monotonic()
            assert requests.delete(f"{a}/api/v1/auth/token", timeout=10,
                                   headers={"Authorization": f"Bearer {m1}"}).status_code == 204
            people = requests.get(f"{a}/api/v1/people?role=grid_manager", timeout=10,
                                  headers={"Authorization": f"Bearer {admin}"}).json()["people"]
            m3 = next(p["id"] for p in people if p["username"] == "m3")
            regridded = requests.put(f"{a}/api/v1/people/{m3}/grids", timeout=10,
                                     json=[{"grid_code": G2, "kind": "backup"}],
                                     headers={"Authorization": f"Bearer {admin}"})
            assert regridded.status_code == 200, regridded.text
            done = subprocess.run([sys.executable, "-m", "dispatch", "users", "disable", "m2"], timeout=60,
                                  env={**os.environ, "DATABASE_URL": staffed, "REDIS_URL": redis.url},
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            for tablet, said in ((signed_out, ("signed_out", "token_revoked")),
                                 (moved, ("rooms_changed", "rooms_changed")),
                                 (disabled, ("signed_out", "user_disabled"))):
                tablet.wait(lambda t=tablet: t.disconnects == 1, f"{said} at once", timeout=20)
                assert [(message, data["code"]) for message, data in tablet.ended] == [said]
            assert time.monotonic() - started < 30  # well before the regular look
    finally:
        redis.stop()
