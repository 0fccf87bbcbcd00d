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
