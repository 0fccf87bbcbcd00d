"""Pausing the clock (waiting for the resident, say): on resume every running deadline moves
later by the paused time, counted in the category's own clock."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from dispatch.incidents.models import Category, Incident
from dispatch.routing import Calendar
from dispatch.sla.state import Clock, running_phases


def resumed_deadlines(incident: Incident, category: Category, *, now: datetime, tz: tzinfo,
                      calendar: Calendar) -> dict[str, Any]:
    """The deadline columns (and breach marks that follow them) as they stand after resuming now."""
    clock = Clock(category.clock_kind, tz, calendar)
    marks = dict(incident.sla_marks or {})
    changes: dict[str, Any] = {}
    for phase in running_phases(incident, category):
        # A phase that started during the pause (resolved while paused, say) lost only its own part.
        stopped = clock.minutes(max(incident.paused_at, phase.started), now)
        if stopped <= 0:
            continue
        moved = clock.after(phase.due, stopped)
        changes[f"{phase.name}_due"] = moved
        mark = marks.get(phase.name)
        if mark and datetime.fromisoformat(mark["due"]) == phase.due:
            marks[phase.name] = {**mark, "due": moved.isoformat()}
    if marks != (incident.sla_marks or {}):
        changes["sla_marks"] = marks
    return changes
