"""Shared fixtures: the app on a fresh database, on SQLite and on PostgreSQL.

Tests that need PostgreSQL (or Redis, or Chromium) skip with the reason when the service
is not reachable; with GRIDDISPATCH_REQUIRE_SERVICES=1 (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from dispatch.app import create_app
from dispatch.db import Database

pytest_plugins = ["tests.browser"]

PG_ADMIN_URL = os.environ.get(
    "GRIDDISPATCH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("GRIDDISPATCH_REQUIRE_SERVICES") == "1"
DEMO_MAP = Path(__file__).resolve().parent.parent / "grids" / "demo" / "nanjing.gpkg"


def service_missing(reason: str) -> None:
    """Skip, or fail when CI says every service must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (GRIDDISPATCH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server_url():
    """A throwaway PostgreSQL database for this test run, dropped at the end."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"griddispatch_test_{uuid.uuid4().hex[:10]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        service_missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc.orig}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_postgres(url: str) -> str:
    """Empty the test database's schema so each test starts from nothing."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """A URL for an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'griddispatch.sqlite3'}"
    return fresh_postgres(request.getfixturevalue("postgres_server_url"))


@pytest.fixture
def db(database_url):
    """A migrated, empty database."""
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def app(db, tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": db.url})
    yield app
    app.extensions["griddispatch.db"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def demo_sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file with the demo map loaded once per run; tests get copies."""
    from grids.io import import_file

    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    with database.session() as session:
        import_file(session, DEMO_MAP)
    database.dispose()
    return path


@pytest.fixture
def demo_app(demo_sqlite_template, tmp_path):
    """The app on a private copy of the demo map (SQLite)."""
    path = tmp_path / "demo.sqlite3"
    shutil.copy(demo_sqlite_template, path)
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{path}"})
    yield app
    app.extensions["griddispatch.db"].dispose()


@pytest.fixture
def world(db, tmp_path):
    """The staffed hand-made world on a fresh database of each kind, clock at Tuesday 10:00."""
    from tests.world import build_world

    app = create_app({"TESTING": True, "DATABASE_URL": db.url, "TEST_CLOCK": True})
    yield build_world(app, tmp_path)
    app.extensions["griddispatch.db"].dispose()


# -- ending the run ------------------------------------------------------------------------

_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave at once with the run's status, once pytest has said everything. A full run
    once died of SIGSEGV in interpreter teardown after every test had passed: a Redis
    listener thread a test had left running a gevent hub was the likely cause (now ended
    by that test), and greenlet has had teardown crashes on Python 3.11 before
    (python-greenlet/greenlet#411, #507). The result is decided by then; tearing down
    third-party threads and extensions must not turn it into a crash."""
    status = config.stash.get(_EXIT_STATUS, None)
    if status is None:  # no session ran (--help, --collect-only stops earlier, ...)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
