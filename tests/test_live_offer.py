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
