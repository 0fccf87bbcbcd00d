"""Idempotency-Key: a retried or doubled submission gets the first answer, never a second incident."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from dispatch.db import Database
from dispatch.incidents.categories import seed_categories
from dispatch.incidents.models import Incident
from grids.io import import_file
from tests.geodata import tree_file
from tests.server import running_server
from tests.world import B1_POINT


def test_retry_with_the_same_key_returns_the_first_result(world):
    first = world.report(key="tablet-42-report-1")
    again = world.report(key="tablet-42-report-1")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()["total"] == 1


def test_same_key_for_a_different_report_is_refused(world):
    assert world.report(key="k-1").status_code == 201
    response = world.report(key="k-1", category="no_water")
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["field"] == "Idempotency-Key"


def test_overlong_key(world):
    response = world.report(key="k" * 129)
    assert response.status_code == 400


@pytest.mark.parametrize("copies", [8])
def test_concurrent_copies_against_a_running_server_make_one_incident(database_url, tmp_path, copies):
    database = Database(database_url)
    database.upgrade()
    with database.session() as s:
        import_file(s, tree_file(tmp_path))
        seed_categories(s)
    body = {"category": "burst_pipe", "description": "double tap",
            "location": {"lon": B1_POINT[0], "lat": B1_POINT[1]}}
    with running_server(database_url) as base:
        def post(_):
            return requests.post(f"{base}/api/v1/incidents", json=body, timeout=30,
                                 headers={"Idempotency-Key": "flaky-tablet-7"})

        with ThreadPoolExecutor(copies) as pool:
            responses = list(pool.map(post, range(copies)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert len({r.json()["public_id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in responses) == 1
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 1
    database.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_database_outage_is_a_503_and_the_retry_files_one_report(world, database_url):
    """The database refuses connections (a restart, a failover): the report is answered 503 with
    Retry-After, not 500, and sending it again with the same key once it is back files it once."""
    import sqlalchemy as sa

    from tests.conftest import PG_ADMIN_URL

    name = sa.make_url(database_url).database
    world.headers("operator")  # signed in before the outage
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
        refused = world.report(as_user="operator", key="call-0815")
        assert refused.status_code == 503, refused.get_json()
        assert refused.get_json()["error"]["code"] == "database_unavailable"
        assert refused.headers["Retry-After"] == "2"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    filed = world.report(as_user="operator", key="call-0815")
    again = world.report(as_user="operator", key="call-0815")
    assert filed.status_code == again.status_code == 201
    assert again.get_json()["id"] == filed.get_json()["id"]
    listed = world.client.get("/api/v1/incidents", headers=world.headers("admin")).get_json()
    assert listed["total"] == 1
