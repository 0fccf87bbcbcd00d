"""Live push of a process's own commits: handed to its tailer after each commit, pushed
without reading the event log back; the log is read for what was not handed over (another
process's commits, or a seq that a rolled-back transaction used up)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dispatch.incidents.models import IncidentEvent
from dispatch.live import Tailer


@pytest.fixture
def tailer(world):
    tailer = Tailer(world.app)  # not started: the test drains it by hand
    world.app.extensions["griddispatch.notifier"].local_tailers.append(tailer)
    tailer.look_in_log = False  # just read the log to find its cursor
    return tailer


def _log_reads_during(world, action) -> int:
    """How many statements read incident_events while `action` runs."""
    engine = world.app.extensions["griddispatch.db"].engine
    reads = []

    def record(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT") and "incident_events" in statement:
            reads.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return len(reads)


def _last_seq(world) -> int:
    with world.app.extensions["griddispatch.db"].session() as s:
        return s.scalar(sa.select(sa.func.max(IncidentEvent.seq)))


def test_own_commits_are_pushed_without_reading_the_log(world, tailer):
    for category in ("burst_pipe", "noise"):
        assert world.report(category=category).status_code == 201
    assert sorted(tailer.offered) == list(range(tailer.cursor + 1, _last_seq(world) + 1))
    assert _log_reads_during(world, tailer.drain) == 0
    assert tailer.cursor == _last_seq(world) and tailer.offered == {}


# SQLite gives a rolled-back insert's number to the next one: no hole in the seqs there.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_seq_that_never_commits_sends_the_tailer_to_the_log(world, tailer):
    engine = world.app.extensions["griddispatch.db"].engine
    with engine.connect() as conn:  # as a transaction that appended, then rolled back
        conn.execute(sa.text("SELECT nextval(pg_get_serial_sequence('incident_events', 'seq'))"))
        conn.commit()
    before = tailer.cursor
    assert world.report().status_code == 201
    assert min(tailer.offered) == before + 2  # the hole: never offered, never in the log
    assert _log_reads_during(world, tailer.drain) > 0
    assert tailer.cursor == _last_seq(world) and tailer.offered == {}
    assert world.report(category="noise").status_code == 201  # and on from memory again
    assert _log_reads_during(world, tailer.drain) == 0
    assert tailer.cursor == _last_seq(world)


def test_a_commit_announced_through_redis_pushes_the_same_as_one_read_from_the_log(world, tailer):
    """Other processes get a commit's events, rooms and incident in its Redis message and
    push from it: what they push is what reading the log would have given them."""
    from dispatch.live import Payloads, decode_commit, encode_commit

    assert world.report(reporter_phone="13912345678").status_code == 201
    written = [(event, rooms, incident) for rooms, event, incident, _ in tailer.offered.values()]
    sender, received = decode_commit(encode_commit("process-b", written))
    assert sender == "process-b" and len(received) == len(written) >= 3
    with world.app.extensions["griddispatch.db"].session() as s:
        from_log = Payloads(s, world.app)
        from_message = Payloads(s, world.app)
        for (event, rooms, _), (got, got_rooms, incident) in zip(written, received, strict=True):
            assert got_rooms == rooms
            stored = s.get(IncidentEvent, event.seq)
            assert from_message.staff(got, incident) == from_log.staff(stored)
            assert from_message.resident(got, incident) == from_log.resident(stored)


def test_a_commit_too_large_for_a_message_is_announced_without_its_events(world, tailer, monkeypatch):
    from dispatch import live

    assert world.report().status_code == 201
    written = [(event, rooms, incident) for rooms, event, incident, _ in tailer.offered.values()]
    monkeypatch.setattr(live, "MESSAGE_LIMIT", 200)
    assert live.decode_commit(live.encode_commit("process-b", written)) == ("process-b", [])
    assert live.decode_commit(b"1") == (None, [])  # not one of ours: read the log


def test_the_redis_listener_hands_over_others_commits_and_skips_its_own(world, tailer):
    import threading
    import time

    import redis as redis_client

    from dispatch.live import _listen_to_redis, encode_commit
    from tests.live import PrivateRedis

    assert world.report().status_code == 201
    written = [(event, rooms, incident) for rooms, event, incident, _ in tailer.offered.values()]
    tailer.offered.clear()
    server = PrivateRedis().start()
    stop = threading.Event()
    # Ended after the test: a listener left retrying a stopped Redis would live on in this
    # process, a gevent hub in a thread, until the interpreter tears it down at exit.
    listener = threading.Thread(target=_listen_to_redis, args=(server.url, tailer, "process-a"),
                                kwargs={"running": lambda: not stop.is_set()}, daemon=True)
    listener.start()
    try:
        deadline = time.monotonic() + 10
        while not tailer.look_in_log:  # subscribed: it reads the log once for what it missed
            assert time.monotonic() < deadline
            time.sleep(0.01)
        tailer.look_in_log = False
        publisher = redis_client.Redis.from_url(server.url)

        def wait_for(condition):
            deadline = time.monotonic() + 10
            while not condition():
                assert time.monotonic() < deadline
                time.sleep(0.01)

        publisher.publish("griddispatch:events", encode_commit("process-a", written))  # its own
        publisher.publish("griddispatch:events", encode_commit("process-b", written[:1]))
        wait_for(lambda: tailer.offered)
        assert list(tailer.offered) == [written[0][0].seq]  # its own was not handed over again
        assert not any(here for *_, here in tailer.offered.values()) and not tailer.look_in_log
        publisher.publish("griddispatch:events", b'{"origin": "process-b"}')  # without events
        wait_for(lambda: tailer.look_in_log)
    finally:
        stop.set()
        server.stop()  # the listener's connection drops, it sees `stop` and ends
        listener.join(15)
    assert not listener.is_alive()
