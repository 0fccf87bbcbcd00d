"""An admin changes what a category needs: a crew or not, and which skill. Its open incidents
still waiting for a crew are then treated as a new report of it would be, so none is left
with a recommendation that cannot be sent (409 `lacks_skill`, `no_crew_needed`) or, once it
needs a crew, with no ranking and no arrive deadline (found by a lifecycle audit).

A crew already sent stays on its job: the resident was told it is coming. With no crew that
fits the new rules (a skill no crew has yet), each waiting report is escalated as a
shortfall, as a new report of it would be: an admin gives crews a new skill first.
"""

from __future__ import annotations

from sqlalchemy import select

from dispatch.incidents import events
from dispatch.incidents.flows import Context, due, rank_afresh
from dispatch.incidents.models import Category, Incident

WAITING = ("reported", "assigned", "acknowledged")


def after_change(ctx: Context, before: Category, after: Category, *, actor: dict) -> int:
    """After a category's crew rules changed from `before` to `after`: how many of its
    incidents were ranked afresh (or, needing no crew now, lost their recommendation)."""
    if (before.needs_crew, before.skill) == (after.needs_crew, after.skill):
        return 0
    if not (before.needs_crew or after.needs_crew):
        return 0  # a skill named on a category no crew works
    events.lock_event_log(ctx.session)
    waiting = list(ctx.session.scalars(
        select(Incident).where(Incident.category_code == after.code, Incident.status.in_(WAITING),
                               Incident.crew_id.is_(None))
        .order_by(Incident.id).execution_options(populate_existing=True)))
    for incident in waiting:
        if not after.needs_crew:
            events.append(ctx.session, incident, "crew_recommended", at=ctx.now, **actor, data={
                "recommended_crew_id": None, "ranking": [], "excluded": [], "reason": "no_crew_needed",
                "arrive_due": None})
            continue
        if incident.arrive_due is None:  # the arrive clock starts now: none of it has run
            events.append(ctx.session, incident, "deadlines_moved", at=ctx.now, **actor, data={
                "arrive_due": due(ctx, after, ctx.now, after.arrive_minutes), "reason": "category_changed"})
        rank_afresh(ctx, incident, after)
    return len(waiting)
