"""Open deadlines that move when the rules under them change, so that each running clock
keeps the time it has used:

- an admin changes the working calendar (a holiday announced late, a worked weekend): each
  open incident on service hours keeps the service time it had left, counted from now in
  the new calendar. Otherwise a deadline set for a day that has just become a holiday
  would be a breach there, with only minutes of service time run;
- an admin changes a category's minutes or clock kind: each open incident of it keeps the
  time it has used, and the rest of the new limit runs from now on the new clock. Otherwise
  its colour would be read against a limit its deadline was not set with (amber at 97.5 %
  of a limit raised from 30 to 240 minutes, then red with the next step 240 minutes on).

A deadline already passed stays: its breach happened. A limit cut below the time already
used falls due now. A paused incident's clocks stood still at the pause: its time is
counted to then, and resuming moves the deadlines on by the pause as always. Each move is
a `deadlines_moved` event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from dispatch.incidents import events
from dispatch.incidents.flows import Context
from dispatch.incidents.models import Category, Incident
from dispatch.routing import Calendar
from dispatch.sla.models import SlaWatch
from dispatch.sla.schedule import WATCHED_STATUSES
from dispatch.sla.state import Clock, Phase, moved_deadlines, running_phases


def for_calendar(ctx: Context, calendar: Calendar, *, actor: dict) -> int:
    """After the calendar changed from `ctx.calendar` to `calendar`: how many incidents moved."""
    on_service_hours = [code for code, category in ctx.roster.categories.items()
                        if category.clock_kind == "service_hours"]
    if not on_service_hours or calendar == ctx.calendar:
        return 0
    before, after = (Clock("service_hours", ctx.tz, c) for c in (ctx.calendar, calendar))
    moved = 0
    for incident in _open(ctx, on_service_hours):
        category = ctx.roster.categories[incident.category_code]
        at = incident.paused_at or ctx.now
        moved += _move(ctx, incident, at, {
            phase: _kept(phase, at, before, after, phase.limit)
            for phase in running_phases(incident, category)}, "calendar_changed", actor)
    _look_again(ctx, on_service_hours)
    return moved


def for_category(ctx: Context, before: Category, after: Category, *, actor: dict) -> int:
    """After a category's rules changed from `before` to `after`: how many incidents moved."""
    limits = {phase: getattr(after, f"{phase}_minutes") for phase in ("acknowledge", "arrive", "resolve", "verify")}
    if before.clock_kind == after.clock_kind and all(
            getattr(before, f"{phase}_minutes") == limit for phase, limit in limits.items()):
        return 0
    old, new = Clock(before.clock_kind, ctx.tz, ctx.calendar), Clock(after.clock_kind, ctx.tz, ctx.calendar)
    moved = 0
    for incident in _open(ctx, [after.code]):
        at = incident.paused_at or ctx.now
        moved += _move(ctx, incident, at, {
            phase: _kept(phase, at, old, new, limits[phase.name])
            for phase in running_phases(incident, before) if limits[phase.name] > 0}, "category_changed", actor)
    _look_again(ctx, [after.code])
    return moved


def _look_again(ctx: Context, categories: list[str]) -> None:
    """Have the SLA clock look at the open incidents of these categories at its next tick.
    A deadline already passed does not move, so nothing else tells the clock, which would
    keep the look it had scheduled under the old rules: a breach step the new ones owe
    earlier (a limit cut, a weekend day made a workday) would wait for it, then come with
    the next ones at once (found by an SLA audit)."""
    ctx.session.execute(update(SlaWatch).where(SlaWatch.incident_id.in_(
        select(Incident.id).where(Incident.status.in_(WATCHED_STATUSES), Incident.category_code.in_(categories))))
        .values(check_at=ctx.now))


def _open(ctx: Context, categories: list[str]):
    """The open incidents of these categories as the last writer left them: the event log's
    lock first, then the rows read afresh, as every writer of an existing incident does."""
    events.lock_event_log(ctx.session)
    return ctx.session.scalars(select(Incident).where(
        Incident.status.in_(WATCHED_STATUSES), Incident.category_code.in_(categories))
        .order_by(Incident.id).execution_options(populate_existing=True))


def _kept(phase: Phase, at: datetime, old: Clock, new: Clock, limit: float) -> datetime:
    """The deadline that leaves this phase the time it had used at `at` (now, or the pause),
    under the new clock and limit; no earlier than `at` (a limit cut below the time used is
    due at once: one breach step, not every step the new limit would have taken so far)."""
    used = phase.limit - old.minutes(at, phase.due)
    return max(new.after(at, limit - used), at)


def _move(ctx: Context, incident: Incident, at: datetime, dues: dict[Phase, datetime], reason: str,
          actor: dict) -> int:
    changes = moved_deadlines(incident, {phase: due for phase, due in dues.items()
                                         if phase.due > at and due != phase.due})
    if not changes:
        return 0
    events.append(ctx.session, incident, "deadlines_moved", at=ctx.now, data={**changes, "reason": reason}, **actor)
    return 1
