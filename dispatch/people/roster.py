"""Who works where and when, kept by each process between changes.

Routing a report reads a grid's managers and their weekly hours, the on-call rota, the
community duty desks and the working calendar. Admins change them rarely; every report
reads them. So each process keeps them in memory and reads them again only when the
directory revision has moved: every write to those tables, through the ORM or Core,
moves it inside the writer's own transaction (`dispatch.people.models`), so a change is
seen by every process on the first request after it commits, as with the area index.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.incidents.models import Category
from dispatch.people.models import (
    DutyDesk,
    GridAssignment,
    OnCallShift,
    User,
    WeeklyShift,
    directory_revision,
)
from dispatch.routing import Calendar, GridManager, OnCall, WeeklyHours
from dispatch.sla.calendar import working_calendar


@dataclass(frozen=True)
class Roster:
    """One committed state of the who-works-where tables."""

    revision: int
    managers_by_grid: dict[str, tuple[GridManager, ...]]
    on_call_by_area: dict[str, tuple[OnCall, ...]]  # active grid managers only
    desk_by_community: dict[str, tuple[int, ...]]  # active grid managers only
    calendar: Calendar
    staff: dict[int, tuple[str, str | None]]  # every account but residents: display name, phone
    committee_by_area: dict[str, tuple[int, ...]]  # active committee members by scope
    categories: dict[str, Category]  # transient copies, never attached to a session

    @classmethod
    def load(cls, session: Session, revision: int) -> Roster:
        hours: dict[int, list[WeeklyHours]] = defaultdict(list)
        for user_id, weekday, start, end in session.execute(
            select(WeeklyShift.user_id, WeeklyShift.weekday, WeeklyShift.start, WeeklyShift.end)
            .order_by(WeeklyShift.id)
        ):
            hours[user_id].append(WeeklyHours(weekday, start, end))
        managers: dict[str, list[GridManager]] = defaultdict(list)
        for user_id, grid_code, kind, active in session.execute(
            select(GridAssignment.user_id, GridAssignment.grid_code, GridAssignment.kind, User.active)
            .join(User, User.id == GridAssignment.user_id)
            .where(User.role == "grid_manager")  # only a grid manager may be given reports
            .order_by(GridAssignment.id)
        ):
            managers[grid_code].append(GridManager(
                user_id=user_id, grid_code=grid_code, kind=kind,
                hours=tuple(hours[user_id]) if user_id in hours else None, active=active))
        on_call: dict[str, list[OnCall]] = defaultdict(list)
        for user_id, area_code, starts_at, ends_at in session.execute(
            select(OnCallShift.user_id, OnCallShift.area_code, OnCallShift.starts_at, OnCallShift.ends_at)
            .join(User, User.id == OnCallShift.user_id)
            .where(User.active.is_(True), User.role == "grid_manager")
            .order_by(OnCallShift.id)
        ):
            on_call[area_code].append(OnCall(user_id, area_code, starts_at, ends_at))
        desks: dict[str, list[int]] = defaultdict(list)
        for community_code, user_id in session.execute(
            select(DutyDesk.community_code, DutyDesk.user_id)
            .join(User, User.id == DutyDesk.user_id)
            .where(User.active.is_(True), User.role == "grid_manager")
            .order_by(DutyDesk.user_id)
        ):
            desks[community_code].append(user_id)
        staff: dict[int, tuple[str, str | None]] = {}
        committee: dict[str, list[int]] = defaultdict(list)
        for user_id, name, phone, role, scope, active in session.execute(
            select(User.id, User.display_name, User.phone, User.role, User.scope_area_code, User.active)
            .where(User.role != "resident")
            .order_by(User.id)
        ):
            staff[user_id] = (name, phone)
            if role == "committee" and active and scope:
                committee[scope].append(user_id)
        table = Category.__table__
        categories = {row.code: Category(**row._mapping) for row in session.execute(select(table))}
        return cls(
            revision=revision,
            managers_by_grid={g: tuple(m) for g, m in managers.items()},
            on_call_by_area={a: tuple(s) for a, s in on_call.items()},
            desk_by_community={c: tuple(u) for c, u in desks.items()},
            calendar=working_calendar(session),
            staff=staff,
            committee_by_area={a: tuple(u) for a, u in committee.items()},
            categories=categories,
        )

    def grid_managers(self, grid_codes: Collection[str]) -> list[GridManager]:
        """Every manager assigned to these grids, with their weekly hours."""
        return [m for code in dict.fromkeys(grid_codes) for m in self.managers_by_grid.get(code, ())]

    def on_call(self, area_codes: Collection[str], when: datetime) -> list[OnCall]:
        """Rota entries for these areas that cover `when`, held by active users."""
        return [s for code in dict.fromkeys(area_codes) for s in self.on_call_by_area.get(code, ())
                if s.starts_at <= when < s.ends_at]

    def duty_desk(self, community_code: str | None) -> list[int]:
        """Active users staffing the community's duty desk."""
        return list(self.desk_by_community.get(community_code, ())) if community_code else []

    def committee(self, area_code: str | None) -> list[int]:
        """Active committee members whose scope is exactly this area (escalations notify them)."""
        return list(self.committee_by_area.get(area_code, ())) if area_code else []


class RosterCache:
    """The roster of one process: read again only when the directory revision moved."""

    def __init__(self) -> None:
        self.roster: Roster | None = None
        self._lock = threading.Lock()

    def get(self, session: Session, revision: int | None = None) -> Roster:
        """The roster as of `revision` (read from the database when not given)."""
        if revision is None:
            revision = directory_revision(session)
        roster = self.roster
        if roster is None or roster.revision != revision:
            with self._lock:
                roster = self.roster
                if roster is None or roster.revision != revision:
                    # Tagged with the revision read before the tables: if a change commits
                    # in between, the next request sees a newer revision and reads again.
                    roster = self.roster = Roster.load(session, revision)
        return roster
