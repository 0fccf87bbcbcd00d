"""Seq order is commit order: a reader that has seen seq N never later meets a new event below N."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from dispatch.incidents import events
from dispatch.incidents.models import Incident
from tests.live import Tablet, login, report, staffed_database
from tests.server import running_server
from tests.world import B1_POINT, B3_POINT, G2_POINT


def _waiting_on_advisory_lock(engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).scalar())


def test_appends_wait_for_the_earlier_transaction_to_commit(postgres_server_url, tmp_path):
    from tests.conftest import fresh_postgres

    url = fresh_postgres(postgres_server_url)
    staffed_database(url, tmp_path)
    from dispatch.db import Database

    db = Database(url)
    first = db.sessions()
    incident = first.scalars(sa.select(Incident)).first()
    if incident is None:
        with running_server(url) as base:
            report(base, B1_POINT)
            report(base, B3_POINT)
        incident = first.scalars(sa.select(Incident)).first()
    other_id = first.scalars(sa.select(Incident.id).where(Incident.id != incident.id)).first()
    now = incident.updated_at
    early = events.append(first, incident, "escalated", at=now, actor_id=None, actor_role="system",
                          data={"reason": "test"})  # holds the event-log lock, not committed
    first.flush()
    result = {}

    def second_writer():
        with db.session() as second:
            other = second.get(Incident, other_id)
            appended = events.append(second, other, "escalated", at=now, actor_id=None,
                                     actor_role="system", data={"reason": "test"})
            second.flush()
            result["seq"] = appended.seq

    thread = threading.Thread(target=second_writer)
    thread.start()
    deadline = time.monotonic() + 20
    while not _waiting_on_advisory_lock(db.engine):
        assert time.monotonic() < deadline, "the second writer never queued behind the first"
        time.sleep(0.02)
    assert "seq" not in result  # it is blocked until the first commits
    first.commit()
    thread.join(20)
    assert result["seq"] > early.seq
    first.close()
    db.dispose()


def test_concurrent_writers_reach_a_listener_in_seq_order_without_loss(postgres_server_url, tmp_path):
    from tests.conftest import fresh_postgres

    url = fresh_postgres(postgres_server_url)
    staffed_database(url, tmp_path)
    points = [B1_POINT, B3_POINT, G2_POINT]
    with running_server(url) as a, running_server(url) as b:
        tablet = Tablet(token=login(a, "admin")).connect(a)
        out_of_order, arrivals = [], []
        original = tablet._on_event

        def watch(data):
            arrivals.append((data["seq"], data["type"], data["incident_id"]))
            if tablet.since is not None and data["seq"] <= tablet.since:
                out_of_order.append(data["seq"])
            original(data)

        tablet.client.handlers["/"]["incident_event"] = watch
        operator = login(a, "operator")  # operators are not rate-limited like anonymous callers

        def post(n: int) -> dict:
            category = ("no_water", "power_cut", "rubbish")[n % 3]
            return report((a, b)[n % 2], points[n % 3], category, token=operator)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(48)))
        from dispatch.db import Database

        db = Database(url)
        with db.session() as s:
            all_seqs = list(s.scalars(sa.select(events.IncidentEvent.seq).order_by(events.IncidentEvent.seq)))
        db.dispose()
        tablet.wait_for_seq(all_seqs[-1], timeout=30)
        assert out_of_order == [], arrivals
        assert tablet.seqs() == all_seqs
        tablet.disconnect()


def _statements_during(world, action):
    """What `action` sends to the database, in order, with whitespace collapsed."""
    engine = world.app.extensions["griddispatch.db"].engine
    seen = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        response = action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 201, response.get_json()
    return seen


def _lock_position(seen: list[str]) -> int:
    """Where the transaction first takes the event-log lock (taking it again changes nothing)."""
    locks = [i for i, statement in enumerate(seen) if "pg_advisory_xact_lock" in statement]
    assert locks, seen
    return locks[0]


# SQLite lets one writer in at a time: it has no event-log lock to order.
POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@POSTGRES_ONLY
def test_a_new_report_holds_the_event_log_only_for_its_last_writes(world):
    """Every report waits for the one before it to commit while it holds the log, so the
    report's own rows go first and only the events, their rooms and the rollups after it."""
    seen = _statements_during(world, lambda: world.report(category="no_water"))
    lock = _lock_position(seen)
    for table in ("incidents", "metric_facts", "sla_watch"):
        assert any(s.startswith(f"INSERT INTO {table} ") for s in seen[:lock]), (table, seen)
    # The statement taking the lock writes the events, or is followed by the one that does.
    after = seen[lock:] if seen[lock].startswith("INSERT INTO incident_events ") else seen[lock + 1:]
    assert after and after[0].startswith("INSERT INTO incident_events "), after
    assert all(s.startswith(("INSERT INTO incident_events ", "INSERT INTO event_rooms ",
                             "INSERT INTO metric_rollups ")) for s in after), after


@POSTGRES_ONLY
def test_an_urgent_report_takes_the_event_log_before_the_crew_it_sends(world):
    """A crew's row is shared with every other writer: the log first, the row second, as
    everywhere else, or two writers could each hold what the other waits for."""
    from dispatch.people.models import Crew

    with world.app.extensions["griddispatch.db"].session() as s:
        s.get(Crew, world.crews["A"]).skills = ["plumbing", "gas"]  # gas smells are sent at once
    seen = _statements_during(world, lambda: world.report(category="gas_smell"))
    crew_updates = [i for i, s in enumerate(seen) if s.startswith("UPDATE crews ")]
    assert crew_updates and _lock_position(seen) < crew_updates[0], seen
