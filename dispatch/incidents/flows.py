"""Orchestration shared by intake and the lifecycle: routing a manager, recommending or
dispatching a crew, escalating, freeing crews. Each step is recorded as an event with its
reason code, so every assignment can be explained afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.incidents import events
from dispatch.incidents.models import OPEN_STATUSES, Category, Incident
from dispatch.people import directory
from dispatch.people.models import Crew
from dispatch.people.roster import Roster
from dispatch.routing import (
    Calendar,
    Exclusion,
    ManagerDecision,
    RankedCrew,
    choose_manager,
    rank_crews,
)
from dispatch.sla.clocks import deadline
from grids import LEVELS
from grids.index import AreaIndex

ESCALATION_LEVELS = ("grid", "community", "street", "district")
SYSTEM = {"actor_id": None, "actor_role": "system"}


@dataclass
class Context:
    """What every rule needs besides the incident: the session, the time and the map."""

    session: Session
    now: datetime
    tz: tzinfo
    index: AreaIndex
    roster: Roster  # who works where and when, as of this request or tick

    @property
    def calendar(self) -> Calendar:
        return self.roster.calendar


def due(ctx: Context, category: Category, start: datetime, minutes: int) -> datetime:
    return deadline(start, minutes, kind=category.clock_kind, tz=ctx.tz, calendar=ctx.calendar)


def choose_for_grid(ctx: Context, grid_code: str | None, community_code: str | None) -> ManagerDecision:
    """Who the routing rules give a report in this grid to, and why (reads only)."""
    roster = ctx.roster
    adjacent = ctx.index.adjacent_grids(grid_code) if grid_code else []
    return choose_manager(
        grid_code=grid_code or "",
        community_code=community_code,
        when=ctx.now,
        tz=ctx.tz,
        managers=roster.grid_managers([grid_code, *adjacent]) if grid_code else [],
        adjacent_grids=adjacent,
        on_call=roster.on_call([c for c in (grid_code, community_code) if c], ctx.now),
        duty_desk=roster.duty_desk(community_code),
        calendar=ctx.calendar,
    )


def route_manager(ctx: Context, incident: Incident, category: Category, decision: ManagerDecision, *,
                  actor: dict, event_type: str = "assigned", extra: dict | None = None) -> None:
    """Record the routing decision; escalate when nobody was found."""
    data = {
        **(extra or {}),
        "manager_id": decision.user_id,
        "reason": decision.reason,
        "shortfall": decision.shortfall,
        "considered": list(decision.considered),
        "routed_to_grid": decision.grid_code,
        "acknowledge_due": due(ctx, category, ctx.now, category.acknowledge_minutes),
    }
    events.append(ctx.session, incident, event_type, at=ctx.now, data=data, **actor)
    if decision.user_id is None:
        escalate(ctx, incident, reason=decision.shortfall or "no_one_available", actor=SYSTEM)


@dataclass
class CrewRanking:
    """Crews ranked for one report, and those left out with why (reads only)."""

    ranked: list[RankedCrew]
    excluded: list[Exclusion]

    def ranking(self) -> list[dict]:
        return [
            {"crew_id": r.crew_id, "name": r.name, "rank": r.rank,
             "distance_m": None if r.distance_m is None else round(r.distance_m, 1),
             "open_assignments": r.open_assignments, "reasons": list(r.reasons)}
            for r in self.ranked[:5]
        ]


def rank_for(ctx: Context, category: Category, *, lon: float, lat: float,
             chain: dict[str, str | None]) -> CrewRanking | None:
    """Rank the crews for a report of this category here; None when it needs no crew."""
    if not category.needs_crew:
        return None
    ranked, excluded = rank_crews(
        directory.crew_candidates(ctx.session),
        skill=category.skill or category.code,
        lon=lon, lat=lat,
        area_codes=area_codes(chain),
        when=ctx.now,
    )
    return CrewRanking(ranked, excluded)


def area_codes(chain: dict[str, str | None]) -> list[str]:
    """The codes of an area chain, smallest area first: what a crew's service area is held to."""
    return [chain[level] for level in reversed(LEVELS) if chain.get(level)]


def recommend_crew(ctx: Context, incident: Incident, category: Category, crews: CrewRanking | None) -> None:
    """Record the crew recommendation: dispatch the best at once when urgent."""
    if crews is None:
        return
    ranking = crews.ranking()
    exclusions = [{"crew_id": e.crew_id, "name": e.name, "reason": e.reason} for e in crews.excluded]
    if not crews.ranked:
        events.append(ctx.session, incident, "crew_recommended", at=ctx.now,
                      data={"recommended_crew_id": None, "ranking": [], "excluded": exclusions,
                            "shortfall": "no_crew_available"}, **SYSTEM)
        escalate(ctx, incident, reason="no_crew_available", actor=SYSTEM)
        return
    best = crews.ranked[0]
    if category.auto_dispatch:
        dispatch_crew(ctx, incident, category, crew_id=best.crew_id, actor=SYSTEM,
                      reason="auto_dispatch_urgent", ranking=ranking)
    else:
        events.append(ctx.session, incident, "crew_recommended", at=ctx.now,
                      data={"recommended_crew_id": best.crew_id, "ranking": ranking,
                            "excluded": exclusions, "reason": "best_ranked"}, **SYSTEM)


def rank_afresh(ctx: Context, incident: Incident, category: Category) -> None:
    """`recommend_crew` for an incident as it now stands (its place, its category's rules), as
    for a new report there: after a move, a category change, or its crew left with nobody."""
    recommend_crew(ctx, incident, category,
                   rank_for(ctx, category, lon=incident.lon, lat=incident.lat, chain=incident.area_chain))


def dispatch_crew(ctx: Context, incident: Incident, category: Category, *, crew_id: int,
                  actor: dict, reason: str, ranking: list | None = None) -> None:
    """Send a crew: it becomes busy; the previous crew (if any) is freed."""
    previous = incident.crew_id
    data = {"crew_id": crew_id, "reason": reason}
    if ranking is not None:
        data["ranking"] = ranking
    events.append(ctx.session, incident, "dispatched", at=ctx.now, data=data, **actor)
    crew = ctx.session.get(Crew, crew_id)
    crew.status = "busy"
    crew_changed(ctx.session, crew)
    if previous and previous != crew_id:
        free_crew_if_idle(ctx, previous)


def free_crew_if_idle(ctx: Context, crew_id: int | None) -> None:
    """A crew with no open job left becomes available again, idle from now. One that marked
    itself available while still on the job is idle from now too, not from then: the
    ranking's "longest idle" would otherwise favour it over crews truly waiting."""
    if crew_id is None:
        return
    open_jobs = ctx.session.scalar(
        select(func.count()).select_from(Incident)
        .where(Incident.crew_id == crew_id, Incident.status.in_(OPEN_STATUSES))
    )
    crew = ctx.session.get(Crew, crew_id)
    if crew is not None and not open_jobs and crew.status in ("busy", "available"):
        crew.status = "available"
        crew.idle_since = ctx.now
        crew_changed(ctx.session, crew)


def crew_changed(session: Session, crew: Crew) -> None:
    """Remember a crew whose status moved, so its new status is pushed live after commit."""
    session.info.setdefault("crews_changed", {})[crew.id] = crew


def escalate(ctx: Context, incident: Incident, *, reason: str, actor: dict,
             extra: dict | None = None) -> None:
    """One level up the tree (grid → community → street → district), notifying who holds it."""
    level = min((incident.escalation_level or 0) + 1, len(ESCALATION_LEVELS) - 1)
    to_level = ESCALATION_LEVELS[level]
    area_code = getattr(incident, f"{to_level}_code")
    notified = ctx.roster.committee(area_code)
    events.append(ctx.session, incident, "escalated", at=ctx.now,
                  data={"escalation_level": level, "to_level": to_level, "area_code": area_code,
                        "reason": reason, "notified": notified, **(extra or {})}, **actor)
