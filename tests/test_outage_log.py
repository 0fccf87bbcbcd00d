"""A database outage is logged so that it can be seen, without flooding the log."""

from __future__ import annotations

import logging
import time

import pytest

from dispatch.failures import Failures
from tests.server import running_server


def test_a_run_of_failures_logs_the_first_whole_then_a_line_now_and_then(caplog):
    failures = Failures(logging.getLogger("griddispatch.test"), "reading")
    with caplog.at_level(logging.INFO, logger="griddispatch.test"):
        for n in range(1, 10):
            try:
                raise ConnectionError(f"refused {n}\nsecond line")
            except ConnectionError as exc:
                failures.failed(exc)
        failures.succeeded()
        failures.succeeded()  # nothing more to say
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ("ERROR", "reading failed; retrying", True),
        ("WARNING", "reading still failing (2 times in a row): refused 2", False),
        ("WARNING", "reading still failing (4 times in a row): refused 4", False),
        ("WARNING", "reading still failing (8 times in a row): refused 8", False),
        ("WARNING", "reading works again after 9 failures", False),
    ]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_server_logs_an_outage_once_and_its_end(database_url):
    """The live tailer reads the log twice a second and the SLA worker ticks: an 8 s outage
    leaves one traceback each, not one per try, and the tailer says when the database is back."""
    from tests.outage import database_down

    with running_server(database_url):
        output = running_server.last_output
        with database_down(database_url):
            time.sleep(8)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            output.seek(0)
            log = output.read()
            if "live push: reading the event log works again" in log:
                break
            time.sleep(0.2)
    assert "live push: reading the event log works again" in log, log[-3000:]
    assert log.count("live push: reading the event log failed; retrying") == 1, log[-3000:]
    assert "live push: reading the event log still failing (8 times in a row)" in log
    # One traceback for the tailer and at most one for the SLA tick; the rest one line each
    # at the 2nd, 4th, 8th… failure (about 16 tries in 8 s).
    assert log.count("failed; retrying") <= 2, log[-3000:]
    assert log.count("still failing") <= 8, log[-3000:]


def test_a_redis_outage_is_logged_once_and_its_end(tmp_path):
    """Every commit publishes to Redis, and so does every crew push: ten reports and four crew
    status changes during an outage leave one traceback for publishing and one for
    listening, and both say when Redis is back. A tablet that connects meanwhile gets its
    replay, which never goes through Redis (its socket is this process's own)."""
    from tests.live import (
        PrivateRedis,
        Tablet,
        crew_login,
        login,
        report,
        set_crew_status,
        staffed_database,
    )
    from tests.world import B1_POINT

    database_url = f"sqlite:///{tmp_path / 'redis-outage.sqlite3'}"
    staffed_database(database_url, tmp_path)
    redis = PrivateRedis().start()
    try:
        with running_server(database_url, env={"REDIS_URL": redis.url}) as base:
            output = running_server.last_output
            crew_token, crew_id = crew_login(base, "crew-b")
            board = Tablet(token=login(base, "admin")).connect(base)
            redis.stop()
            for _ in range(10):
                report(base, B1_POINT)  # filed all the same: the log is the truth, Redis a wake-up
            for status in ("off", "available", "off", "available"):
                set_crew_status(base, crew_token, crew_id, status)
            board.wait(lambda: len(board.crews) == 4, "the crew pushes, here without Redis")
            late = Tablet(token=login(base, "admin")).connect(base)  # replays the ten reports
            assert len(late.events) >= 10 and late.seqs() == board.seqs(), (late.seqs(), board.seqs())
            redis.start()
            deadline = time.monotonic() + 15
            log = ""
            while time.monotonic() < deadline and "listening to Redis works again" not in log:
                time.sleep(0.2)
                output.seek(0)
                log = output.read()
            report(base, B1_POINT)
            time.sleep(0.5)
            output.seek(0)
            log = output.read()
            board.disconnect()
            late.disconnect()
    finally:
        redis.stop()
    assert log.count("live push: publishing to Redis failed; retrying") == 1, log[-3000:]
    assert "live push: publishing to Redis still failing (8 times in a row)" in log, log[-3000:]
    # Ten commits and four crew pushes; a replayed event published would be one more.
    assert "live push: publishing to Redis works again after 14 failures" in log, log[-3000:]
    assert log.count("live push: listening to Redis failed; retrying") == 1, log[-3000:]
    assert "live push: listening to Redis works again" in log, log[-3000:]
    assert "could not publish" not in log  # no line per report
    assert "Cannot publish to redis" not in log, log[-3000:]  # nor per crew push
