"""Who is who, read from the database into the plain values the routing rules take."""

from __future__ import annotations

import functools

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from dispatch.incidents.models import OPEN_STATUSES, Incident
from dispatch.people.models import Crew, GridAssignment, User
from dispatch.routing import CrewCandidate


@functools.cache
def _crews_with_load():
    """Built once: every report ranks crews, and making the statement cost as much as running it.

    Each crew's load is counted through the crew_id index (a correlated count); a grouped
    count over the open incidents made SQLite walk every open incident on every report."""
    load = (
        select(func.count()).select_from(Incident)
        .where(Incident.crew_id == Crew.id, Incident.status.in_(OPEN_STATUSES))
        .correlate(Crew)
        .scalar_subquery()
    )
    # Who can work its jobs: a crew with no active member is recommended to nobody.
    return select(Crew, load.label("open_assignments"), active_members(Crew.id).label("members")).order_by(Crew.id)


def active_members(crew_id: InstrumentedAttribute[int | None]):
    """How many active accounts work in the crew `crew_id` names, a column of the outer
    query (a correlated count): with none, no crew account can see its jobs."""
    return (select(func.count()).select_from(User)
            .where(User.crew_id == crew_id, User.role == "crew", User.active.is_(True))
            .correlate(crew_id.class_).scalar_subquery())


def crew_candidates(session: Session) -> list[CrewCandidate]:
    """Every crew with its current load, for ranking (one statement).

    The crews stay referenced from the session until it closes: the session's identity map
    holds them only weakly, and the report then dispatches one of them and names the crew
    in its answer, which would otherwise read it again (and flush early to do so)."""
    rows = session.execute(_crews_with_load()).all()
    session.info["crews_read"] = [crew for crew, _load, _members in rows]
    return [_candidate(*row) for row in rows]


def _candidate(c: Crew, open_assignments: int | None, members: int) -> CrewCandidate:
    return CrewCandidate(
        crew_id=c.id,
        name=c.name,
        skills=frozenset(c.skills or ()),
        status=c.status,
        service_areas=frozenset(c.service_areas or ()),
        lon=c.lon,
        lat=c.lat,
        open_assignments=open_assignments or 0,
        idle_since=c.idle_since,
        active_members=members,
    )


def crew_candidate(session: Session, crew_id: int) -> CrewCandidate:
    """One crew as the ranking sees it, with its load and active members."""
    return _candidate(*session.execute(_crews_with_load().where(Crew.id == crew_id)).one())


def managed_grids(session: Session, user_id: int) -> set[str]:
    """Grid codes a manager is assigned to (primary or backup)."""
    return set(session.scalars(select(GridAssignment.grid_code).where(GridAssignment.user_id == user_id)))
