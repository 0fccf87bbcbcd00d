"""An admin changes the working calendar (a holiday announced late, a worked weekend):
each open incident on service hours keeps the service time it had left on each running
clock, counted from now in the new calendar. Otherwise a deadline set for a day that has
just become a holiday would be a breach there, with only minutes of service time run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from dispatch.incidents import events
from dispatch.incidents.flows import Context
from dispatch.incidents.models import Incident
from dispatch.routing import Calendar
from dispatch.sla.schedule import WATCHED_STATUSES
from dispatch.sla.state import Clock, running_phases


def move_deadlines(ctx: Context, calendar: Calendar, *, actor: dict) -> int:
    """Record a `deadlines_moved` event on each open incident whose deadlines the change to
    `calendar` (from `ctx.calendar`) moves; how many there were. A deadline already passed
    stays: its breach happened."""
    on_service_hours = [code for code, category in ctx.roster.categories.items()
                        if category.clock_kind == "service_hours"]
    if not on_service_hours or calendar == ctx.calendar:
        return 0
    before, after = (Clock("service_hours", ctx.tz, c) for c in (ctx.calendar, calendar))
    moved = 0
    for incident in ctx.session.scalars(select(Incident).where(
            Incident.status.in_(WATCHED_STATUSES), Incident.category_code.in_(on_service_hours))
            .order_by(Incident.id)):
        changes: dict[str, datetime] = {}
        marks = dict(incident.sla_marks or {})
        for phase in running_phases(incident, ctx.roster.categories[incident.category_code]):
            if phase.due <= ctx.now:
                continue
            due = after.after(ctx.now, before.minutes(ctx.now, phase.due))
            if due != phase.due:
                changes[f"{phase.name}_due"] = due
                mark = marks.get(phase.name)
                if mark and datetime.fromisoformat(mark["due"]) == phase.due:  # moved past a breach by a pause
                    marks[phase.name] = {**mark, "due": due.isoformat()}
        if changes:
            if marks != (incident.sla_marks or {}):
                changes["sla_marks"] = marks
            events.append(ctx.session, incident, "deadlines_moved", at=ctx.now,
                          data={**changes, "reason": "calendar_changed"}, **actor)
            moved += 1
    return moved
