"""Pausing the clock (waiting for the resident, say): on resume every running deadline moves
later by the paused time, counted in the category's own clock."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from dispatch.incidents.models import Category, Incident
from dispatch.routing import Calendar
from dispatch.sla.state import Clock, moved_deadlines, running_phases


def resumed_deadlines(incident: Incident, category: Category, *, now: datetime, tz: tzinfo,
                      calendar: Calendar) -> dict[str, Any]:
    """The deadline columns (and breach marks that follow them) as they stand after resuming now."""
    clock = Clock(category.clock_kind, tz, calendar)
    dues = {}
    for phase in running_phases(incident, category):
        # A phase that started during the pause (resolved while paused, say) lost only its own part.
        stopped = clock.minutes(max(incident.paused_at, phase.started), now)
        if stopped > 0:
            dues[phase] = clock.after(phase.due, stopped)
    return moved_deadlines(incident, dues)
