"""A real database outage for tests: PostgreSQL refuses the test database's new connections
and cuts the ones it has (as in a restart or a failover), until the block ends."""

from __future__ import annotations

from contextlib import contextmanager

import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL


def allow_connections(database_url: str, allowed: bool) -> None:
    name = sa.make_url(database_url).database
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
    finally:
        admin.dispose()


@contextmanager
def database_down(database_url: str):
    allow_connections(database_url, False)
    try:
        yield
    finally:
        allow_connections(database_url, True)
