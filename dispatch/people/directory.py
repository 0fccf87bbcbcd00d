"""Who is who, read from the database into the plain values the routing rules take."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.incidents.models import OPEN_STATUSES, Incident
from dispatch.people.models import (
    Crew,
    DutyDesk,
    GridAssignment,
    OnCallShift,
    User,
    WeeklyShift,
)
from dispatch.routing import Calendar, CrewCandidate, GridManager, OnCall, WeeklyHours
from dispatch.sla.calendar import working_calendar


def calendar(session: Session) -> Calendar:
    """Public holidays and worked weekends: the official schedule, overridden by an admin's days."""
    return working_calendar(session)


def grid_managers(session: Session, grid_codes: Collection[str]) -> list[GridManager]:
    """Every manager assigned to these grids, with their weekly hours (one statement)."""
    rows = session.execute(
        select(GridAssignment.user_id, GridAssignment.grid_code, GridAssignment.kind, User.active,
               WeeklyShift.id.label("shift_id"), WeeklyShift.weekday, WeeklyShift.start,
               WeeklyShift.end)
        .join(User, User.id == GridAssignment.user_id)
        .outerjoin(WeeklyShift, WeeklyShift.user_id == GridAssignment.user_id)
        .where(GridAssignment.grid_code.in_(list(grid_codes)))
        .order_by(GridAssignment.id, WeeklyShift.id)
    ).all()
    # One row per assignment and shift: gather the shifts back under each assignment.
    assignments: dict[tuple[int, str, str], bool] = {}
    hours: dict[int, list[WeeklyHours]] = defaultdict(list)
    seen: set[int] = set()  # a manager of two of these grids brings each shift twice
    for r in rows:
        assignments.setdefault((r.user_id, r.grid_code, r.kind), r.active)
        if r.shift_id is not None and r.shift_id not in seen:
            seen.add(r.shift_id)
            hours[r.user_id].append(WeeklyHours(r.weekday, r.start, r.end))
    return [
        GridManager(
            user_id=user_id,
            grid_code=grid_code,
            kind=kind,
            hours=tuple(hours[user_id]) if user_id in hours else None,
            active=active,
        )
        for (user_id, grid_code, kind), active in assignments.items()
    ]


def on_call(session: Session, area_codes: Collection[str], when: datetime) -> list[OnCall]:
    """Rota entries for these areas that cover `when`, held by active users."""
    rows = session.scalars(
        select(OnCallShift)
        .join(User, User.id == OnCallShift.user_id)
        .where(
            OnCallShift.area_code.in_(list(area_codes)),
            OnCallShift.starts_at <= when,
            OnCallShift.ends_at > when,
            User.active.is_(True),
        )
    )
    return [OnCall(r.user_id, r.area_code, r.starts_at, r.ends_at) for r in rows]


def duty_desk(session: Session, community_code: str | None) -> list[int]:
    """Active users staffing the community's duty desk."""
    if not community_code:
        return []
    return list(
        session.scalars(
            select(DutyDesk.user_id)
            .join(User, User.id == DutyDesk.user_id)
            .where(DutyDesk.community_code == community_code, User.active.is_(True))
            .order_by(DutyDesk.user_id)
        )
    )


def crew_candidates(session: Session) -> list[CrewCandidate]:
    """Every crew with its current load, for ranking (one statement)."""
    load = (
        select(Incident.crew_id, func.count().label("open_assignments"))
        .where(Incident.crew_id.is_not(None), Incident.status.in_(OPEN_STATUSES))
        .group_by(Incident.crew_id)
        .subquery()
    )
    rows = session.execute(
        select(Crew, load.c.open_assignments)
        .outerjoin(load, load.c.crew_id == Crew.id)
        .order_by(Crew.id)
    )
    return [
        CrewCandidate(
            crew_id=c.id,
            name=c.name,
            skills=frozenset(c.skills or ()),
            status=c.status,
            service_areas=frozenset(c.service_areas or ()),
            lon=c.lon,
            lat=c.lat,
            open_assignments=open_assignments or 0,
            idle_since=c.idle_since,
        )
        for c, open_assignments in rows
    ]


def managed_grids(session: Session, user_id: int) -> set[str]:
    """Grid codes a manager is assigned to (primary or backup)."""
    return set(session.scalars(select(GridAssignment.grid_code).where(GridAssignment.user_id == user_id)))
