"""SQLite: a write by another process (an import, the CLI, a second server) is waited for
without stopping the server. SQLite's own busy handler sleeps inside the C call, and under
gevent that froze every request, push and health check for as long as the lock was held."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import exc, text

from dispatch.cli import main
from dispatch.db import make_engine
from tests.server import running_server


def _hold_write_lock(path, seconds: float) -> threading.Thread:
    """Another connection (as another process would) takes the write lock for `seconds`."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release():
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_the_server_answers_while_another_process_writes(tmp_path):
    path = tmp_path / "shared.sqlite3"
    url = f"sqlite:///{path}"
    assert CliRunner().invoke(main, ["init-db"], env={"DATABASE_URL": url}).exit_code == 0
    with running_server(url) as base:
        holder = _hold_write_lock(path, 2.0)
        waited = {}

        def read_categories():  # waits for the lock, cooperatively, then answers
            started = time.monotonic()
            response = requests.get(f"{base}/api/v1/categories", timeout=30)
            waited["categories"] = (response.status_code, time.monotonic() - started)

        waiting = threading.Thread(target=read_categories)
        waiting.start()
        time.sleep(0.3)  # that request is now waiting for the lock
        started = time.monotonic()
        health = requests.get(f"{base}/api/v1/health", timeout=30)
        assert health.status_code == 200
        assert time.monotonic() - started < 1.0  # not held up until the lock is free (1.7 s on)
        holder.join()
        waiting.join()
        status, seconds = waited["categories"]
        assert status == 200 and seconds >= 1.5  # it waited for the other writer, then went on


def test_a_write_lock_held_too_long_is_an_error_after_the_wait(tmp_path):
    path = tmp_path / "shared.sqlite3"
    engine = make_engine(f"sqlite:///{path}", sqlite_write_wait_s=0.3)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = _hold_write_lock(path, 1.0)
    started = time.monotonic()
    with pytest.raises(exc.OperationalError, match="locked"), engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert 0.25 <= time.monotonic() - started < 0.9
    holder.join()
    # Once the lock is free the same engine writes, and another transaction in this process can
    # take its turn after it (the process's own writer lock was given back each time).
    for x in (2, 3):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})
    with engine.connect() as connection:
        assert connection.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [2, 3]
    engine.dispose()
