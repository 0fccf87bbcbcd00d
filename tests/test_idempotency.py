"""Idempotency-Key: a retried or doubled report or staff action gets the first answer, never a second change."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from dispatch.db import Database
from dispatch.incidents.categories import seed_categories
from dispatch.incidents.models import Incident
from grids.io import import_file
from tests.geodata import tree_file
from tests.server import running_server
from tests.world import B1_POINT


def test_retry_with_the_same_key_returns_the_first_result(world):
    first = world.report(key="tablet-42-report-1")
    again = world.report(key="tablet-42-report-1")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"] == 1


def test_same_key_for_a_different_report_is_refused(world):
    assert world.report(key="k-1").status_code == 201
    response = world.report(key="k-1", category="no_water")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["field"] == "Idempotency-Key"


def test_overlong_key(world):
    response = world.report(key="k" * 129)
    assert response.status_code == 400


@pytest.mark.parametrize("key", ["a\x00b", "tab\there", "\x7f"])
def test_a_key_with_control_characters_is_refused_and_files_nothing(world, key):
    """A NUL reached PostgreSQL as a 500 (its text cannot hold one); a key is for a machine, so
    any control character is a client's mistake."""
    response = world.report(key=key, as_user="operator")
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["field"] == "Idempotency-Key"
    assert world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"] == 0


@pytest.mark.parametrize("caller", [None, "crew-a", "m1"])
def test_a_report_key_replays_only_to_whoever_filed_it(world, caller):
    """An operator's answer shows the caller's whole phone and the tracking token: another
    caller who learnt the key (the same body and all) gets a 422, not that answer; another
    call-taker (carrying on a call kept on the device) gets the first answer."""
    first = world.report(key="call-7", as_user="operator", reporter_phone="13912345678")
    assert first.status_code == 201
    assert first.get_json()["reporter"]["phone"] == "13912345678"
    other = world.report(key="call-7", as_user=caller, reporter_phone="13912345678")
    assert other.status_code == 422, other.get_json()
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert "13912345678" not in other.get_data(as_text=True)
    again = world.report(key="call-7", as_user="operator", reporter_phone="13912345678")
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"] == 1
    carried_on = world.report(key="call-7", as_user="admin", reporter_phone="13912345678")  # a call-taker too
    assert carried_on.headers.get("Idempotent-Replayed") == "true"
    assert carried_on.get_json() == first.get_json()


@pytest.mark.parametrize("copies", [8])
def test_concurrent_copies_against_a_running_server_make_one_incident(database_url, tmp_path, copies):
    database = Database(database_url)
    database.upgrade()
    with database.session() as s:
        import_file(s, tree_file(tmp_path))
        seed_categories(s)
    body = {"category": "burst_pipe", "description": "double tap",
            "location": {"lon": B1_POINT[0], "lat": B1_POINT[1]}}
    with running_server(database_url) as base:
        def post(_):
            return requests.post(f"{base}/api/v1/incidents", json=body, timeout=30,
                                 headers={"Idempotency-Key": "flaky-tablet-7"})

        with ThreadPoolExecutor(copies) as pool:
            responses = list(pool.map(post, range(copies)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert len({r.json()["public_id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in responses) == 1
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 1
    database.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_database_outage_is_a_503_and_the_retry_files_one_report(world, database_url):
    """The database refuses connections (a restart, a failover): the report is answered 503 with
    Retry-After, not 500, and sending it again with the same key once it is back files it once."""
    from tests.outage import database_down

    world.headers("operator")  # signed in before the outage
    with database_down(database_url):
        refused = world.report(as_user="operator", key="call-0815")
        assert refused.status_code == 503, refused.get_json()
        assert refused.get_json()["error"]["code"] == "database_unavailable"
        assert refused.headers["Retry-After"] == "2"
    filed = world.report(as_user="operator", key="call-0815")
    again = world.report(as_user="operator", key="call-0815")
    assert filed.status_code == again.status_code == 201
    assert again.get_json()["id"] == filed.get_json()["id"]
    listed = world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()
    assert listed["total"] == 1


# --- staff actions: a tablet whose answer was lost tries again with the same key ---

def _events(world, incident: dict, event_type: str) -> int:
    timeline = world.client.get(f"/api/v1/incidents/{incident['id']}/events",
                                headers=world.headers("admin")).get_json()["events"]
    return sum(e["type"] == event_type for e in timeline)


def test_action_retried_with_the_same_key_gets_the_first_answer(world):
    incident = world.report(category="noise").get_json()
    first = world.act("m1", incident, "acknowledge", key="tablet-m1-ack-1")
    again = world.act("m1", incident, "acknowledge", key="tablet-m1-ack-1")
    assert first.status_code == again.status_code == 200, again.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.get_json() == first.get_json()
    assert first.get_json()["status"] == "acknowledged"
    assert _events(world, incident, "acknowledged") == 1
    # Without a key the same retry is (rightly) a conflict: the version moved on.
    stale = world.act("m1", incident, "acknowledge")
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"


def test_action_key_replays_only_the_same_request(world):
    incident = world.report(category="noise").get_json()
    assert world.act("m1", incident, "acknowledge", key="k-7").status_code == 200
    for username, action in (("m1", "cancel"), ("m1b", "acknowledge"), ("admin", "acknowledge")):
        response = world.act(username, incident, action, key="k-7", reason="test")
        assert response.status_code == 422, (username, action, response.get_json())
        assert response.get_json()["error"]["details"]["field"] == "Idempotency-Key"
    # A report's key is not an action's.
    assert world.report(key="k-7").status_code == 422
    assert _events(world, incident, "acknowledged") == 1
    assert world.get("admin", incident)["status"] == "acknowledged"


def test_refused_action_stores_no_key(world):
    """An action that fails stores nothing: the key stays free for the corrected request."""
    incident = world.report().get_json()
    refused = world.act("m2", incident, "acknowledge", key="k-8")  # another grid's manager
    assert refused.status_code == 403
    done = world.act("m1", incident, "acknowledge", key="k-8")
    assert done.status_code == 200 and "Idempotent-Replayed" not in done.headers


@pytest.mark.parametrize("copies", [16])
def test_concurrent_copies_of_an_action_are_done_once(postgres_server_url, copies):
    """Copies of one tap reach two server processes on PostgreSQL at once: every copy answers
    200 with the same result, one of them did it, and the timeline has one event."""
    from tests.conftest import fresh_postgres
    from tests.web_helpers import Rest, report

    url = fresh_postgres(postgres_server_url)
    with running_server(url, command="demo") as first, running_server(url) as second:
        incident = report(first, "noise")
        admin = Rest(first, "admin")
        manager = admin.get(f"/incidents/{incident['id']}")["manager"]["id"]
        rest = Rest(first, admin.get(f"/people/{manager}")["username"])
        body = {"action": "acknowledge", "expected_version": rest.get(f"/incidents/{incident['id']}")["version"]}

        def post(copy: int):
            base = (first, second)[copy % 2]
            return requests.post(f"{base}/api/v1/incidents/{incident['id']}/actions", json=body, timeout=30,
                                 headers={**rest.headers, "Idempotency-Key": "manager-tablet-ack"})

        with ThreadPoolExecutor(copies) as pool:
            responses = list(pool.map(post, range(copies)))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        assert len({r.json()["version"] for r in responses}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in responses) == 1
        timeline = rest.get(f"/incidents/{incident['id']}/events")["events"]
        assert sum(e["type"] == "acknowledged" for e in timeline) == 1


def test_different_actions_sent_at_once_on_one_version_change_it_once(database_url):
    """Found by fuzzing: on PostgreSQL two actions sent at once with the same expected_version
    (a manager's acknowledge, an operator's escalate) both answered 200, with two events at
    the same version, and the incident showed only one of them: the version was checked
    against the incident as read before the event-log lock. Now one wins, the other gets
    the 409 its tablet knows how to show; on two server processes, with no Idempotency-Key."""
    import threading

    from tests.web_helpers import Rest, report

    with running_server(database_url, command="demo") as first, running_server(database_url) as second:
        admin, operator = Rest(first, "admin"), Rest(second, "operator")

        def act(start: threading.Barrier, rest: Rest, incident_id: int, body: dict):
            start.wait()  # both requests leave together
            return requests.post(f"{rest.base}/incidents/{incident_id}/actions", timeout=30,
                                 headers=rest.headers, json=body)

        for _ in range(8):
            incident = report(first, "blocked_drain")
            version = admin.get(f"/incidents/{incident['id']}")["version"]
            start = threading.Barrier(2)
            with ThreadPoolExecutor(2) as pool:
                answers = [pool.submit(act, start, admin, incident["id"],
                                       {"action": "acknowledge", "expected_version": version}),
                           pool.submit(act, start, operator, incident["id"],
                                       {"action": "escalate", "reason": "water in the street",
                                        "expected_version": version})]
                responses = [answer.result() for answer in answers]
            assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
            refused = next(r for r in responses if r.status_code == 409).json()["error"]
            assert refused["code"] == "stale_version" and refused["details"]["version"] == version + 1
            timeline = admin.get(f"/incidents/{incident['id']}/events")["events"]
            assert [e["version"] for e in timeline] == list(range(1, version + 2))
            won = next(r for r in responses if r.status_code == 200).json()
            assert admin.get(f"/incidents/{incident['id']}")["version"] == won["version"] == version + 1


def test_keys_are_forgotten_after_a_day(world):
    """The clock forgets day-old keys (every tap stores a whole incident view); until then a
    retry is answered, after it the key is free for a new request."""
    from dispatch.sla.worker import SlaWorker

    first = world.report(category="noise", key="day-old-report").get_json()
    assert world.act("m1", first, "acknowledge", key="day-old-ack").status_code == 200
    clock = SlaWorker(world.app)
    world.clock.advance(23 * 60)
    assert clock.tick()["keys_forgotten"] == 0
    assert world.report(category="noise", key="day-old-report").headers.get("Idempotent-Replayed") == "true"
    world.clock.advance(2 * 60)
    assert clock.tick()["keys_forgotten"] == 2
    again = world.report(category="noise", key="day-old-report")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != first["id"]
