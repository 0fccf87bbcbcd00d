"""The roster: who works where and when, kept by each process until the directory changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import requests
from sqlalchemy import delete, update

from dispatch.db import Database
from dispatch.people.models import (
    Crew,
    DutyDesk,
    OnCallShift,
    User,
    WeeklyShift,
    directory_revision,
)
from dispatch.people.roster import RosterCache
from tests.geodata import G2, at
from tests.server import running_server


def revision(db: Database) -> int:
    with db.session() as session:
        return directory_revision(session)


def test_every_write_to_the_directory_moves_the_revision_and_nothing_else_does(world):
    db = world.app.extensions["griddispatch.db"]
    start = revision(db)
    with db.session() as session:  # through the ORM
        session.add(WeeklyShift(user_id=world.users["m2"], weekday=5, start=time(9), end=time(12)))
    after_orm = revision(db)
    assert after_orm > start
    with db.session() as session:  # a Core statement
        session.execute(delete(WeeklyShift).where(WeeklyShift.user_id == world.users["m2"]))
    after_core = revision(db)
    assert after_core > after_orm
    with db.session() as session:  # rolled back: the move goes with it
        session.add(DutyDesk(user_id=world.users["m2"], community_code="320104001001"))
        session.flush()
        session.rollback()
    assert revision(db) == after_core
    # Reports, crews and tokens change all the time and are not part of the roster.
    assert world.report().status_code == 201
    world.token("m1")
    with db.session() as session:
        session.execute(update(Crew).values(status="off"))
    assert revision(db) == after_core


def test_the_cache_reads_again_only_after_a_change(world):
    db = world.app.extensions["griddispatch.db"]
    cache = RosterCache()
    with db.session() as session:
        first = cache.get(session)
    with db.session() as session:
        assert cache.get(session) is first  # nothing changed: the same roster
    elsewhere = Database(db.url)  # another process's engine
    try:
        with elsewhere.session() as session:
            session.execute(update(User).where(User.id == world.users["m2"]).values(active=False))
    finally:
        elsewhere.dispose()
    with db.session() as session:
        second = cache.get(session)
    assert second is not first
    [m2] = second.grid_managers([G2])
    assert m2.user_id == world.users["m2"] and m2.active is False


def test_a_running_server_routes_by_a_rota_change_made_by_another_process(world):
    db = world.app.extensions["griddispatch.db"]
    operator = {"Authorization": f"Bearer {world.token('operator')}"}
    m2 = world.users["m2"]
    with running_server(db.url) as base:  # real clock; put everyone off duty first
        with db.session() as session:  # weekly hours of one minute, Mondays at midnight
            for user_id in world.users.values():
                session.add(WeeklyShift(user_id=user_id, weekday=0, start=time(0), end=time(0, 1)))

        def report(x: float, category: str) -> dict:
            lon, lat = at(x, 0.5)
            response = requests.post(f"{base}/api/v1/incidents", headers=operator, timeout=30, json={
                "category": category, "description": "路灯不亮", "location": {"lon": lon, "lat": lat}})
            assert response.status_code == 201, response.text
            return response.json()

        before = report(1.3, "street_light")
        assert (before["manager"] or {}).get("id") != m2
        now = datetime.now(UTC)
        with db.session() as session:  # as the admin API or the CLI in another process would
            session.add(OnCallShift(user_id=m2, area_code=G2, starts_at=now - timedelta(hours=1),
                                    ends_at=now + timedelta(hours=1)))
        after = report(1.7, "noise")
        assert after["manager"]["id"] == m2
        events = requests.get(f"{base}/api/v1/incidents/{after['id']}/events", headers=operator,
                              timeout=30).json()
        assert any(e["type"] == "assigned" and e["data"]["reason"] == "on_call"
                   for e in events["events"])


def test_category_changes_reach_the_next_report(world):
    """Categories are read from the roster too: a change moves the directory revision, so
    the very next report sees a renamed or retired category."""
    db = world.app.extensions["griddispatch.db"]
    admin = world.headers("admin")
    start = revision(db)
    renamed = world.client.patch("/api/v1/categories/burst_pipe", headers=admin,
                                 json={"name_en": "Burst main"})
    assert renamed.status_code == 200, renamed.get_json()
    assert revision(db) > start
    assert world.report(category="burst_pipe").get_json()["category_name"]["en"] == "Burst main"
    retired = world.client.patch("/api/v1/categories/burst_pipe", headers=admin, json={"active": False})
    assert retired.status_code == 200, retired.get_json()
    refused = world.report(category="burst_pipe")
    assert refused.status_code == 422 and refused.get_json()["error"]["details"]["field"] == "category"
