"""Database engine, sessions and schema migrations.

SQLite (the default, a file in the instance folder) runs in WAL mode, with one writer at a
time and readers that never wait for it, so the server, the CLI and the SLA worker can
share one file. PostgreSQL is reached through psycopg 3 (`postgresql://...` URLs are
mapped to the psycopg driver).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or none)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# How long a SQLite transaction waits for another process's write to end before the
# request gets a 503 (database_unavailable) and is sent again.
SQLITE_WRITE_WAIT_S = 30.0
# SQLite's own busy handler, for the rare waits once a transaction holds the write lock.
_BUSY_TIMEOUT_S = 30
# Every SQLite connection: the busy handler above, and greenlets of one process share a pool.
_SQLITE_CONNECT_ARGS = {"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False}


def make_engine(url: str, *, sqlite_write_wait_s: float = SQLITE_WRITE_WAIT_S) -> Engine:
    """An engine for this URL, with SQLite tuned for several processes on one file."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args=_SQLITE_CONNECT_ARGS)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # Let SQLAlchemy, not the driver, open transactions (see _begin_immediate).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        # One writer at a time in this process, waited for cooperatively: a greenlet that
        # yields inside a transaction (reading a request body, say) must not leave another
        # one spinning in SQLite's busy handler, which blocks the whole gevent process.
        # (threading.Lock is gevent's lock once the server has monkey-patched.)
        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection) -> None:
            writer.acquire()
            connection.info["holds_writer"] = True
            # Take the write lock up front: a deferred transaction that reads and then
            # writes fails at once (no busy wait) if another process wrote in between.
            try:
                _begin_immediate_waiting(connection, sqlite_write_wait_s)
            except BaseException:
                _release(connection)
                raise

        def _release(connection, *_args) -> None:
            if connection.info.pop("holds_writer", False):
                writer.release()

        # The COMMIT or ROLLBACK runs right after these events, without yielding.
        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_read_engine(url: str) -> Engine:
    """SQLite: an engine for transactions that only read. They begin deferred and take no
    lock, neither this process's writer lock nor SQLite's: in WAL mode a reader sees the last
    commit before its first read and never waits for a writer, so a list, a replay or a
    sign-in look goes on while an import or another process writes. `query_only` makes a
    write through it an error rather than a write that skipped the writer lock."""
    engine = create_engine(normalise_url(url), connect_args=_SQLITE_CONNECT_ARGS)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA query_only=ON")

    @event.listens_for(engine, "begin")
    def _begin_deferred(connection) -> None:
        # One snapshot for the whole transaction (without a BEGIN each statement sees its own).
        connection.exec_driver_sql("BEGIN")

    return engine


def _begin_immediate_waiting(connection, wait_s: float) -> None:
    """BEGIN IMMEDIATE, waiting for another process's write to end with `time.sleep`, not in
    SQLite's busy handler: that one sleeps inside the C call, which under gevent stops the
    whole server (every request, push and health check) for as long as an import or a
    second server process holds the lock. `time.sleep` is gevent's once the server has
    monkey-patched, so there the other greenlets run meanwhile. Once the lock is held no
    statement of the transaction waits on another writer (WAL), so the busy handler stays
    on for the rare waits left (a WAL recovery, say)."""
    driver = connection.connection.driver_connection
    deadline = time.monotonic() + wait_s
    delay = 0.0005
    driver.execute("PRAGMA busy_timeout=0")
    try:
        while time.monotonic() + delay < deadline:
            try:
                driver.execute("BEGIN IMMEDIATE")  # straight to the driver: a refusal costs microseconds
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    break
            time.sleep(delay)
            # Polled, not slept on at length: the lock is taken soon after it is free.
            delay = min(delay * 2, 0.005)
        # The last try through SQLAlchemy, so that its refusal is raised as its error (a 503).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        driver.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}")


class Database:
    """One engine and its session factory; `app.extensions["griddispatch.db"]` holds it."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Read-only work (GET requests, live push's reads) on SQLite goes through its own
        # engine, which waits for no writer; PostgreSQL's reads never wait for writers anyway.
        if self.url.startswith("sqlite"):
            self.read_engine = make_read_engine(self.url)
            self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        else:
            self.read_engine, self.read_sessions = self.engine, self.sessions

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reading only; on SQLite a write through it is an error."""
        session = self.read_sessions()
        try:
            yield session
        finally:
            session.close()  # rolls back: nothing to keep

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        upgrade_schema(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` on this engine."""
    command.upgrade(alembic_config(engine), revision)


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Run Alembic migrations down to `revision` on this engine."""
    command.downgrade(alembic_config(engine), revision)
