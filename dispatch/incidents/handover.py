"""A grid manager who leaves routing hands their incidents on; a crew left with nobody hands
its jobs back.

Disabled, or given another role, a manager can no longer work the incidents routed to them,
and nobody else is told of them: a report acknowledged yesterday, or one a crew fixed that
waits for the manager's check, would sit until its deadline passed. So the change that takes
a manager out of routing routes each of their unfinished incidents afresh, in the same
transaction, and records why (`handed_over`). The incident keeps its status, crew and
deadlines: the resident was promised them, and staff changes do not move them.

A crew whose last active member is disabled, moved to another crew or given another role
can work nothing: no crew account could even see its jobs. So each of them goes back to its
manager in the same change (`crew_withdrawn`: acknowledged again, no crew) and the crews are
ranked afresh, as for a new report: an urgent one is sent the best crew left at once, the
others get a recommendation. The deadlines stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dispatch.db import Database
from dispatch.incidents import events
from dispatch.incidents.flows import (
    SYSTEM,
    Context,
    choose_for_grid,
    escalate,
    free_crew_if_idle,
    rank_afresh,
)
from dispatch.incidents.models import OPEN_STATUSES, Category, Incident
from dispatch.people.directory import active_members, crew_candidate
from dispatch.people.models import User, directory_revision
from dispatch.people.roster import Roster
from dispatch.people.service import update_user
from grids.index import AreaIndex

# Resolved and verified incidents still wait on a manager: to check the fix, then to close.
UNFINISHED = (*OPEN_STATUSES, "resolved", "verified")


def routable(user: User) -> bool:
    """Whether routing may give this account reports."""
    return user.role == "grid_manager" and bool(user.active)


def update_account(session: Session, user: User, *, now: datetime, tz: tzinfo, index: AreaIndex,
                   actor: dict[str, Any], **changes: Any) -> list[Incident]:
    """`people.service.update_user`, and when the change takes a grid manager out of routing,
    their unfinished incidents handed on, or when it leaves a crew with nobody, its jobs
    handed back; returns those."""
    crew_before = user.crew_id if user.role == "crew" and user.active else None
    was_routable = routable(user)
    if was_routable and (changes.get("active") is False or changes.get("role", "grid_manager") != "grid_manager"):
        # The log first, as every writer takes it, before any incident row is read; only
        # for a change that may hand work on. A report routed from the roster before this
        # commits, and written after, still names this manager: the SLA clock's next tick
        # hands it on (`hand_over_stranded`).
        events.lock_event_log(session)
    update_user(session=session, user=user, now=now, **changes)
    if crew_before is not None and (user.crew_id, user.role, user.active) != (crew_before, "crew", True):
        session.flush()
        return withdraw_unstaffed(_fresh_context(session, now=now, tz=tz, index=index), [crew_before], actor=actor)
    if not was_routable or routable(user):
        return []
    session.flush()
    return hand_over(_fresh_context(session, now=now, tz=tz, index=index), user, actor=actor)


def withdraw_unstaffed(ctx: Context, crew_ids: Iterable[int | None], *, actor: dict[str, Any]) -> list[Incident]:
    """Hand each open job of these crews that have no active member left back to its manager,
    and rank the crews for it afresh; returns those jobs."""
    withdrawn: list[Incident] = []
    for crew_id in sorted({c for c in crew_ids if c is not None}):
        if crew_candidate(ctx.session, crew_id).active_members:
            continue
        events.lock_event_log(ctx.session)
        jobs = list(ctx.session.scalars(
            select(Incident).where(Incident.crew_id == crew_id, Incident.status.in_(OPEN_STATUSES))
            .order_by(Incident.id).execution_options(populate_existing=True)))
        for incident in jobs:
            events.append(ctx.session, incident, "crew_withdrawn", at=ctx.now, **actor, data={
                "status": "acknowledged" if incident.acknowledged_at else "assigned",
                "crew_id": None, "withdrawn_crew_id": crew_id, "reason": "no_active_member"})
            category = ctx.session.get(Category, incident.category_code)
            rank_afresh(ctx, incident, category)
        free_crew_if_idle(ctx, crew_id)
        withdrawn += jobs
    return withdrawn


def unstaffed_crews(session: Session) -> list[int]:
    """Crews with open jobs and no active member left: a report that ranked a crew while its
    last member was being disabled, a rework sent back to a crew emptied meanwhile, a
    change made around the API. The SLA clock's tick hands their jobs back."""
    return list(session.scalars(
        select(Incident.crew_id).distinct()
        .where(Incident.status.in_(OPEN_STATUSES), Incident.crew_id.is_not(None),
               active_members(Incident.crew_id) == 0)))


def withdraw_stranded(db: Database, crew_ids: list[int], *, now: datetime, tz: tzinfo, index: AreaIndex) -> int:
    """Hand back the jobs of these `unstaffed_crews`, each crew in a transaction of its own;
    how many. A tick of the SLA clock runs it."""
    return _one_by_one(db, crew_ids, lambda ctx, crew_id: withdraw_unstaffed(ctx, [crew_id], actor=SYSTEM),
                       now=now, tz=tz, index=index)


def stranded_managers(session: Session) -> list[int]:
    """Accounts out of routing (disabled, or no longer grid managers) that still hold
    unfinished incidents: a report routed to one while it was being disabled, or an account
    changed around the API (edited in the database)."""
    return list(session.scalars(
        select(Incident.manager_id).distinct().join(User, User.id == Incident.manager_id)
        .where(Incident.status.in_(UNFINISHED), or_(User.active.is_(False), User.role != "grid_manager"))))


def hand_over_stranded(db: Database, user_ids: list[int], *, now: datetime, tz: tzinfo,
                       index: AreaIndex) -> int:
    """Hand on the unfinished incidents of these `stranded_managers`, each manager in a
    transaction of its own; how many. A tick of the SLA clock runs it."""
    return _one_by_one(db, user_ids, lambda ctx, user_id: hand_over(ctx, ctx.session.get(User, user_id), actor=SYSTEM),
                       now=now, tz=tz, index=index)


def _one_by_one(db: Database, ids: list[int], work: Callable[[Context, int], list[Incident]], *,
                now: datetime, tz: tzinfo, index: AreaIndex) -> int:
    """`work` for each id in a transaction of its own (one account's or crew's incidents
    never wait on another's), the event log locked first; how many incidents it moved."""
    moved = 0
    for id_ in ids:
        with db.session() as session:
            events.lock_event_log(session)
            moved += len(work(_fresh_context(session, now=now, tz=tz, index=index), id_))
    return moved


def _fresh_context(session: Session, *, now: datetime, tz: tzinfo, index: AreaIndex) -> Context:
    """A routing context whose roster is read in this transaction, not taken from the
    process's cache: the account change may not be committed yet, and the cache holds
    committed states only."""
    return Context(session, now=now, tz=tz, index=index, roster=Roster.load(session, directory_revision(session)))


def hand_over(ctx: Context, user: User, *, actor: dict[str, Any]) -> list[Incident]:
    """Route each of the user's unfinished incidents as a report in its grid would be now."""
    handed = list(ctx.session.scalars(
        select(Incident).where(Incident.manager_id == user.id, Incident.status.in_(UNFINISHED))
        .order_by(Incident.id).execution_options(populate_existing=True)))
    for incident in handed:
        decision = choose_for_grid(ctx, incident.grid_code, incident.community_code)
        events.append(ctx.session, incident, "handed_over", at=ctx.now, **actor, data={
            "manager_id": decision.user_id,
            "from_manager_id": user.id,
            "reason": decision.reason,
            "shortfall": decision.shortfall,
            "considered": list(decision.considered),
            "routed_to_grid": decision.grid_code,
        })
        if decision.user_id is None:
            escalate(ctx, incident, reason=decision.shortfall or "no_one_available", actor=SYSTEM)
    return handed
