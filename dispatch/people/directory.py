"""Who is who, read from the database into the plain values the routing rules take."""

from __future__ import annotations

import functools

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.incidents.models import OPEN_STATUSES, Incident
from dispatch.people.models import Crew, GridAssignment
from dispatch.routing import CrewCandidate


@functools.cache
def _crews_with_load():
    """Built once: every report ranks crews, and making the statement cost as much as running it."""
    load = (
        select(Incident.crew_id, func.count().label("open_assignments"))
        .where(Incident.crew_id.is_not(None), Incident.status.in_(OPEN_STATUSES))
        .group_by(Incident.crew_id)
        .subquery()
    )
    return select(Crew, load.c.open_assignments).outerjoin(load, load.c.crew_id == Crew.id).order_by(Crew.id)


def crew_candidates(session: Session) -> list[CrewCandidate]:
    """Every crew with its current load, for ranking (one statement)."""
    rows = session.execute(_crews_with_load())
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
