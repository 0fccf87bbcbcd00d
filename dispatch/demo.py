"""Demo people on the demo map: an admin, an operator, committee members, a manager per grid,
duty desks, an on-call rota, and repair crews with members. Every account's password is "demo".

Deterministic and idempotent: what exists already (by username, crew name, rota slot) is kept,
so running it again adds nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.incidents.categories import seed_categories
from dispatch.people.auth import hash_password
from dispatch.people.models import Crew, DutyDesk, GridAssignment, OnCallShift, User
from grids.store import Area

DEMO_PASSWORD = "demo"
DISTRICT = "320104"
ROTA_DAYS = 30
SERVICE_START, SERVICE_END = time(9), time(17)
NUMERALS = "一二三四五六七八九十"
SHANGHAI = ZoneInfo("Asia/Shanghai")
COUNTED = ("categories", "users", "grid_assignments", "duty_desks", "on_call_shifts", "crews")

# Crew lines: name, skills, teams, and whether each team serves the whole district or the
# streets are dealt out among its teams (so every street has each skill either way).
CREW_LINES = [
    ("水电抢修", ("plumbing", "electrical"), 3, "streets"),
    ("燃气抢修", ("gas",), 2, "district"),
    ("排水疏通", ("drainage",), 2, "streets"),
    ("环卫保洁", ("sanitation",), 2, "streets"),
    ("电梯维保", ("lift",), 2, "district"),
    ("综合维修", ("general",), 2, "streets"),
]


class _Seeder:
    """Get-or-create helpers that count what they add."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.counts = dict.fromkeys(COUNTED, 0)
        self.users = {u.username: u for u in session.scalars(select(User))}
        self._hash: str | None = None

    def password_hash(self) -> str:
        # Hashing is deliberately slow: once for every demo account, and only if one is new.
        if self._hash is None:
            self._hash = hash_password(DEMO_PASSWORD)
        return self._hash

    def user(self, username: str, role: str, display_name: str, *, scope: str | None = None,
             crew_id: int | None = None) -> User:
        user = self.users.get(username)
        if user is None:
            user = User(username=username, role=role, display_name=display_name,
                        password_hash=self.password_hash(), scope_area_code=scope, crew_id=crew_id,
                        active=True, created_at=self.now)
            self.session.add(user)
            self.session.flush()
            self.users[username] = user
            self.counts["users"] += 1
        return user

    def add_once(self, counter: str, model: type, **columns) -> None:
        """Add a row unless one with these column values exists."""
        query = select(model).where(*(getattr(model, k) == v for k, v in columns.items()))
        if self.session.scalar(query) is None:
            self.session.add(model(**columns))
            self.counts[counter] += 1


def seed_demo(session: Session, *, now: datetime, tz: tzinfo = SHANGHAI) -> dict[str, int]:
    """Seed demo people on the loaded map; returns how many of each were added. Does not commit."""
    seeder = _Seeder(session, now)
    seeder.counts["categories"] = seed_categories(session)
    areas = {a.code: a for a in session.scalars(
        select(Area).where(Area.level.in_(("district", "street", "community", "grid"))).order_by(Area.code))}
    by_level: dict[str, list[Area]] = defaultdict(list)
    for area in areas.values():
        by_level[area.level].append(area)
    district = DISTRICT if DISTRICT in areas else by_level["district"][0].code

    seeder.user("admin", "admin", "管理员")
    seeder.user("operator", "operator", "热线接线员", scope=district)
    seeder.user("committee", "committee", f"{areas[district].name}委员", scope=district)
    for street in by_level["street"]:
        seeder.user(f"committee-{street.code}", "committee", f"{street.name}委员", scope=street.code)

    managers = _seed_managers(seeder, by_level["grid"])
    for community in by_level["community"]:
        desk = seeder.user(f"desk-{community.code}", "grid_manager", f"{community.name}值班台")
        seeder.add_once("duty_desks", DutyDesk, user_id=desk.id, community_code=community.code)
        _seed_rota(seeder, community.code, managers.get(community.code, []), tz)
    _seed_crews(seeder, district, [s.code for s in by_level["street"]] or [district], areas)
    session.flush()
    return seeder.counts


def _seed_managers(seeder: _Seeder, grids: list[Area]) -> dict[str, list[User]]:
    """One primary manager per grid; every third grid also gets the next grid's manager as backup."""
    by_community: dict[str, list[User]] = defaultdict(list)
    for grid in grids:
        manager = seeder.user(f"manager-{grid.code}", "grid_manager", f"网格员 {grid.name}")
        seeder.add_once("grid_assignments", GridAssignment, user_id=manager.id, grid_code=grid.code,
                        kind="primary")
        by_community[grid.parent_code or ""].append(manager)
    for i, grid in enumerate(grids):
        neighbours = by_community[grid.parent_code or ""]
        if i % 3 == 0 and len(neighbours) > 1:
            mine = neighbours.index(seeder.users[f"manager-{grid.code}"])
            backup = neighbours[(mine + 1) % len(neighbours)]
            seeder.add_once("grid_assignments", GridAssignment, user_id=backup.id,
                            grid_code=grid.code, kind="backup")
    return by_community


def _seed_rota(seeder: _Seeder, community_code: str, managers: list[User], tz: tzinfo) -> None:
    """Evenings (17:00–09:00) and weekends for ROTA_DAYS, one entry per local day."""
    if not managers:
        return
    today = seeder.now.astimezone(tz).date()
    # Start the day before so the small hours of today are covered too.
    for offset in range(-1, ROTA_DAYS):
        day = today + timedelta(days=offset)
        starts = SERVICE_START if day.weekday() >= 5 else SERVICE_END
        starts_at = datetime.combine(day, starts, tz)
        ends_at = datetime.combine(day + timedelta(days=1), SERVICE_START, tz)
        if ends_at <= seeder.now:
            continue
        # Rotating by date, not by loop position, so a later run continues the same rotation.
        manager = managers[day.toordinal() % len(managers)]
        seeder.add_once("on_call_shifts", OnCallShift, user_id=manager.id, area_code=community_code,
                        starts_at=starts_at, ends_at=ends_at)


def _seed_crews(seeder: _Seeder, district: str, streets: list[str], areas: dict[str, Area]) -> None:
    """The CREW_LINES, each member `crew-<n>`, parked at a building of the area it serves."""
    buildings = _buildings_by_region(seeder.session, set(streets), areas)
    everywhere = [point for street in streets for point in buildings[street]]
    member_number = 0
    for line, skills, teams, coverage in CREW_LINES:
        for team in range(teams):
            name = f"{line}{NUMERALS[team]}队"
            served = [district] if coverage == "district" else streets[team::teams]
            crew = seeder.session.scalar(select(Crew).where(Crew.name == name))
            if crew is None:
                spots = buildings.get(served[0]) or everywhere
                lon, lat = spots[(7 * member_number) % len(spots)] if spots else (None, None)
                crew = Crew(name=name, skills=list(skills), service_areas=served, status="available",
                            idle_since=seeder.now, lon=lon, lat=lat,
                            position_at=seeder.now if lon is not None else None)
                seeder.session.add(crew)
                seeder.session.flush()
                seeder.counts["crews"] += 1
            for seat in (1, 2):
                member_number += 1
                seeder.user(f"crew-{member_number}", "crew", f"{name}队员{seat}", crew_id=crew.id)


def _buildings_by_region(session: Session, regions: set[str],
                         areas: dict[str, Area]) -> dict[str, list[tuple[float, float]]]:
    """Representative points of buildings, by the street (or district) they lie in, in code order."""
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    rows = session.execute(select(Area.parent_code, Area.geom_wkb).where(Area.level == "building")
                           .order_by(Area.code)).all()
    for parent, wkb in rows:
        code = parent
        while code is not None and code not in regions:
            code = areas[code].parent_code if code in areas else None
        if code is not None:
            point = shapely.from_wkb(wkb).representative_point()
            found[code].append((point.x, point.y))
    return found
