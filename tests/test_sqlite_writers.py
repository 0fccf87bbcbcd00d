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
from dispatch.db import Database, make_engine
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

        def sign_in_wrongly():  # writes (it counts the failure): waits for the lock, cooperatively
            started = time.monotonic()
            response = requests.post(f"{base}/api/v1/auth/token", timeout=30,
                                     json={"username": "nobody", "password": "wrong"})
            waited["sign-in"] = (response.status_code, time.monotonic() - started)

        waiting = threading.Thread(target=sign_in_wrongly)
        waiting.start()
        time.sleep(0.3)  # that request is now waiting for the lock
        for path_ in ("/api/v1/health", "/api/v1/categories", "/api/v1/areas?level=grid"):
            started = time.monotonic()
            assert requests.get(f"{base}{path_}", timeout=30).status_code == 200
            # Not held up until the lock is free (1.7 s on): not the health check, which once
            # froze with the whole process, and not a read, which waits for no writer at all.
            assert time.monotonic() - started < 1.0, path_
        holder.join()
        waiting.join()
        status, seconds = waited["sign-in"]
        assert status == 401 and seconds >= 1.5  # it waited for the other writer, then went on


def test_a_read_session_takes_no_lock_and_cannot_write(tmp_path):
    path = tmp_path / "shared.sqlite3"
    db = Database(f"sqlite:///{path}")
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    holder = _hold_write_lock(path, 1.0)
    started = time.monotonic()
    with db.reading() as session:
        assert session.execute(text("SELECT x FROM t")).scalars().all() == [1]
        assert time.monotonic() - started < 0.5  # did not wait for the writer
        with pytest.raises(exc.OperationalError, match="readonly"):
            session.execute(text("INSERT INTO t VALUES (2)"))
    holder.join()
    # One snapshot per transaction: a commit made after its first read is not seen in it.
    with db.reading() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
        with db.session() as writer:
            writer.execute(text("INSERT INTO t VALUES (3)"))
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
    with db.reading() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 2
    db.dispose()


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
