"""When the SLA clock must next look at an incident, and what it does when it looks.

`evaluate` brings one incident's SLA state and breach steps up to `ctx.now` and writes its
next look into the `sla_watch` schedule. The worker calls it for every incident that
changed since it was last looked at or whose next threshold has passed; the intake calls
it for a new report in the report's own transaction, so the worker does not come back
for every report a few seconds later only to find it green (a report is always green
when it is made: no time has run on any of its clocks).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from dispatch.incidents import events
from dispatch.incidents.flows import SYSTEM, Context, escalate
from dispatch.incidents.models import OPEN_STATUSES, Category, Incident
from dispatch.sla import state
from dispatch.sla.models import SlaWatch

WATCHED_STATUSES = (*OPEN_STATUSES, "resolved")  # resolved: the verify clock runs


def evaluate(ctx: Context, incident: Incident, *, new: bool = False) -> dict[str, int]:
    """Bring one incident's SLA state and breach steps up to `ctx.now`, then schedule its next
    look. `new`: the incident is being created in this transaction, so it has no watch yet."""
    category = (ctx.roster.categories.get(incident.category_code)
                or ctx.session.get(Category, incident.category_code))
    clock = state.Clock(category.clock_kind, ctx.tz, ctx.calendar)
    readings = [] if incident.paused_at else [
        state.read(phase, ctx.now, clock) for phase in state.running_phases(incident, category)
    ]
    done = {"sla_changed": 0, "escalated": 0}
    top = state.worst(readings)
    if top is not None and top.state != incident.sla_state:
        events.append(ctx.session, incident, "sla_changed", at=ctx.now, data={
            "sla_state": top.state, "phase": top.phase.name, "fraction": top.fraction}, **SYSTEM)
        done["sla_changed"] += 1
    for reading in readings:
        for step in state.steps_to_take(reading, incident.sla_marks, incident.escalation_level):
            marks = {**(incident.sla_marks or {}),
                     reading.phase.name: {"due": reading.phase.due.isoformat(), "steps": step}}
            escalate(ctx, incident, reason="sla_breach", actor=SYSTEM,
                     extra={"phase": reading.phase.name, "step": step, "fraction": reading.fraction,
                            "sla_marks": marks})
            done["escalated"] += 1
    checks = [state.next_check(r, clock, incident.escalation_level) for r in readings]
    watch = None if new else ctx.session.get(SlaWatch, incident.id)
    if watch is None:
        watch = SlaWatch(incident_id=incident.id)
        ctx.session.add(watch)
    watch.version = incident.version
    watch.check_at = min((c for c in checks if c is not None), default=None)
    return done


def due_for_evaluation(now: datetime):
    """Incidents to look at: changed since last evaluated, never evaluated, or past their next threshold."""
    return (
        select(Incident.id)
        .outerjoin(SlaWatch, SlaWatch.incident_id == Incident.id)
        .where(Incident.status.in_(WATCHED_STATUSES),
               or_(SlaWatch.incident_id.is_(None), SlaWatch.version != Incident.version,
                   SlaWatch.check_at <= now))
        .order_by(Incident.id)
    )
