"""Pausing the clock (waiting for the resident, say): on resume every running deadline moves
later by the paused time, counted in the category's own clock."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from dispatch.incidents.models import Category, Incident
from dispatch.routing import Calendar
from dispatch.sla.state import Clock, moved_deadlines, running_phases


def resumed_deadlines(incident: Incident, category: Category, *, now: datetime, tz: tzinfo,
                      calendar: Calendar, only: str | None = None) -> dict[str, Any]:
    """The deadline columns (and breach marks that follow them) as they stand after resuming
    now; with `only`, of that phase alone: one that ends while paused (resolved during a wait
    for the resident) is judged against its deadline moved by the pause so far, as on a
    resume, not against one the pause never pushed back."""
    if not incident.paused_at:
        return {}
    clock = Clock(category.clock_kind, tz, calendar)
    dues = {}
    for phase in running_phases(incident, category):
        if only is not None and phase.name != only:
            continue
        # A phase that started during the pause (resolved while paused, say) lost only its own part.
        stopped = clock.minutes(max(incident.paused_at, phase.started), now)
        if stopped > 0:
            dues[phase] = clock.after(phase.due, stopped)
    return moved_deadlines(incident, dues)
