"""A grid manager who leaves routing hands their incidents on.

Disabled, or given another role, a manager can no longer work the incidents routed to them,
and nobody else is told of them: a report acknowledged yesterday, or one a crew fixed that
waits for the manager's check, would sit until its deadline passed. So the change that takes
a manager out of routing routes each of their unfinished incidents afresh, in the same
transaction, and records why (`handed_over`). The incident keeps its status, crew and
deadlines: the resident was promised them, and staff changes do not move them.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dispatch.db import Database
from dispatch.incidents import events
from dispatch.incidents.flows import SYSTEM, Context, choose_for_grid, escalate
from dispatch.incidents.models import OPEN_STATUSES, Incident
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
    their unfinished incidents handed on; returns those."""
    was_routable = routable(user)
    if was_routable and (changes.get("active") is False or changes.get("role", "grid_manager") != "grid_manager"):
        # The log first, as every writer takes it, before any incident row is read; only
        # for a change that may hand work on. A report routed from the roster before this
        # commits, and written after, still names this manager: the SLA clock's next tick
        # hands it on (`hand_over_stranded`).
        events.lock_event_log(session)
    update_user(session=session, user=user, now=now, **changes)
    if not was_routable or routable(user):
        return []
    session.flush()
    # Read afresh, not from the process's roster cache: this transaction's change is not
    # committed, and the cache must hold committed states only.
    roster = Roster.load(session, directory_revision(session))
    return hand_over(Context(session, now=now, tz=tz, index=index, roster=roster), user, actor=actor)


def hand_over_stranded(db: Database, *, now: datetime, tz: tzinfo, index: AreaIndex) -> int:
    """Hand on the unfinished incidents of managers who have left routing, each manager in
    a transaction of its own; how many. A tick of the SLA clock runs it: it catches a report
    that was routed while its manager was being disabled, and any change made around the
    API (an account edited in the database)."""
    with db.session() as session:
        left = session.scalars(
            select(Incident.manager_id).distinct().join(User, User.id == Incident.manager_id)
            .where(Incident.status.in_(UNFINISHED),
                   or_(User.active.is_(False), User.role != "grid_manager"))).all()
    handed = 0
    for user_id in left:
        with db.session() as session:
            events.lock_event_log(session)
            roster = Roster.load(session, directory_revision(session))
            ctx = Context(session, now=now, tz=tz, index=index, roster=roster)
            handed += len(hand_over(ctx, session.get(User, user_id), actor=SYSTEM))
    return handed


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
