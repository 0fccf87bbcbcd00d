"""The demo people on the bundled Nanjing map: complete, able to sign in, and seeded once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from dispatch.demo import seed_demo
from dispatch.incidents.models import Category
from dispatch.people.auth import password_matches
from dispatch.people.models import Crew, DutyDesk, GridAssignment, OnCallShift, User
from dispatch.people.roster import Roster
from grids.store import Area

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 3, 5, 4, 0, tzinfo=UTC)  # Wednesday 12:00 in Nanjing


@pytest.fixture
def seeded(demo_app):
    """A session on the demo database after one seed_demo, and the counts it returned."""
    db = demo_app.extensions["griddispatch.db"]
    with db.session() as s:
        counts = seed_demo(s, now=NOW)
    # SQLite holds its write lock for a whole transaction: close this session before any request.
    with db.session() as s:
        yield s, counts


def codes(session, level: str) -> list[str]:
    return list(session.scalars(select(Area.code).where(Area.level == level).order_by(Area.code)))


def test_one_primary_manager_per_grid_and_backups(seeded):
    session, counts = seeded
    grids = codes(session, "grid")
    primaries = session.execute(select(GridAssignment.grid_code, User.username)
                                .join(User, User.id == GridAssignment.user_id)
                                .where(GridAssignment.kind == "primary")).all()
    assert sorted(primaries) == [(code, f"manager-{code}") for code in grids]
    backups = session.scalar(select(func.count()).where(GridAssignment.kind == "backup"))
    assert len(grids) // 3 <= backups <= len(grids) // 3 + 1
    assert counts["grid_assignments"] == len(grids) + backups


def test_every_demo_account_signs_in_with_demo(demo_app, seeded):
    session, counts = seeded
    users = list(session.scalars(select(User)))
    assert counts["users"] == len(users)
    assert len({u.password_hash for u in users}) == 1  # hashed once, shared
    assert password_matches(users[0], "demo")
    grid = codes(session, "grid")[0]
    session.close()
    client = demo_app.test_client()
    for username in ("admin", "operator", "committee", f"manager-{grid}", "crew-1"):
        response = client.post("/api/v1/auth/token", json={"username": username, "password": "demo"})
        assert response.status_code == 201, username


def test_every_crew_skill_is_covered_twice_and_in_every_street(seeded):
    session, counts = seeded
    crews = list(session.scalars(select(Crew)))
    assert counts["crews"] == len(crews) >= 12
    skills = set(session.scalars(select(Category.skill).where(Category.needs_crew.is_(True))))
    per_skill = Counter(skill for crew in crews for skill in crew.skills)
    assert all(per_skill[skill] >= 2 for skill in skills), per_skill
    for street in codes(session, "street"):
        for skill in skills:
            assert any(skill in c.skills and {street, "320104"} & set(c.service_areas) for c in crews), \
                (street, skill)
    assert all(c.status == "available" and c.idle_since == NOW and c.lon is not None for c in crews)
    members = Counter(session.scalars(select(User.crew_id).where(User.role == "crew")))
    assert all(members[c.id] == 2 for c in crews)


def test_committee_per_street_and_desk_per_community(seeded):
    session, _ = seeded
    committee = dict(session.execute(select(User.username, User.scope_area_code)
                                     .where(User.role == "committee")).all())
    assert committee["committee"] == "320104"
    for street in codes(session, "street"):
        assert committee[f"committee-{street}"] == street
    desks = set(session.scalars(select(DutyDesk.community_code)))
    assert desks == set(codes(session, "community"))


def on_call(session, area_codes, when):
    """The rota entries routing would see (read fresh, not from a process's cache)."""
    return Roster.load(session, revision=0).on_call(area_codes, when)


@pytest.mark.parametrize("local", [
    datetime(2025, 3, 5, 20, 0),  # Wednesday evening
    datetime(2025, 3, 7, 8, 59),  # Friday before office hours
    datetime(2025, 3, 8, 13, 0),  # Saturday afternoon
    datetime(2025, 4, 1, 20, 0),  # the last evening of the 30 days
])
def test_on_call_rota_covers_evenings_and_weekends(seeded, local):
    session, _ = seeded
    when = local.replace(tzinfo=SHANGHAI)
    for community in codes(session, "community"):
        entries = on_call(session, [community], when)
        assert len(entries) == 1, (community, local)


def test_no_one_is_on_call_in_office_hours(seeded):
    session, _ = seeded
    when = datetime(2025, 3, 6, 10, 0, tzinfo=SHANGHAI)
    assert on_call(session, codes(session, "community"), when) == []


def test_second_run_adds_nothing(demo_app, seeded):
    session, _ = seeded
    before = {model: session.scalar(select(func.count()).select_from(model))
              for model in (User, GridAssignment, OnCallShift, DutyDesk, Crew, Category)}
    again = seed_demo(session, now=NOW)
    session.flush()
    assert set(again.values()) == {0}
    after = {model: session.scalar(select(func.count()).select_from(model)) for model in before}
    assert after == before


def test_a_later_run_extends_the_rota_without_changing_it(seeded):
    session, _ = seeded
    community = codes(session, "community")[0]
    tonight = datetime(2025, 3, 5, 20, 0, tzinfo=SHANGHAI)
    holder = on_call(session, [community], tonight)[0].user_id
    counts = seed_demo(session, now=NOW + timedelta(days=2))
    assert counts["on_call_shifts"] == 2 * len(codes(session, "community"))
    assert [e.user_id for e in on_call(session, [community], tonight)] == [holder]
