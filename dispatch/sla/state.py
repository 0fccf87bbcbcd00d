"""SLA state as pure functions of an incident, its category and the time: which phases run,
how much of each limit is used, the incident's colour, the breach steps due and when to
look again. No database, no clock: the worker and the tests pass all of it in."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from dispatch.incidents.models import OPEN_STATUSES, Category, Incident
from dispatch.routing import Calendar
from dispatch.sla.clocks import deadline, elapsed

AMBER, RED = 0.8, 1.0
STATES = ("green", "amber", "red")
TOP_LEVEL = 3  # district: breach steps stop climbing there


@dataclass(frozen=True)
class Phase:
    """One running clock: its name, deadline, limit (minutes) and when it started."""

    name: str  # acknowledge | arrive | resolve | verify
    due: datetime
    limit: int
    started: datetime


@dataclass(frozen=True)
class Reading:
    """A phase at one instant: the share of its limit used and the colour that gives."""

    phase: Phase
    fraction: float

    @property
    def state(self) -> str:
        return "red" if self.fraction >= RED else "amber" if self.fraction >= AMBER else "green"

    @property
    def breach_steps(self) -> int:
        """Breach steps due so far: one at the deadline, one more per full limit after it."""
        return math.floor(self.fraction) if self.fraction >= RED else 0


@dataclass(frozen=True)
class Clock:
    """How a category's time is counted: its kind, the time zone and the working calendar."""

    kind: str
    tz: tzinfo
    calendar: Calendar

    def minutes(self, start: datetime, end: datetime) -> float:
        return elapsed(start, end, kind=self.kind, tz=self.tz, calendar=self.calendar)

    def after(self, start: datetime, minutes: float) -> datetime:
        return deadline(start, minutes, kind=self.kind, tz=self.tz, calendar=self.calendar)


def running_phases(incident: Incident, category: Category) -> list[Phase]:
    """The phases whose clock runs: unmet, with a deadline, on an open (or resolved) incident."""
    if incident.status == "resolved":
        candidates = [("verify", incident.verify_due, category.verify_minutes, incident.resolved_at)]
    elif incident.status in OPEN_STATUSES:
        candidates = [
            ("acknowledge", None if incident.acknowledged_at else incident.acknowledge_due,
             category.acknowledge_minutes, incident.assigned_at or incident.created_at),
            ("arrive", None if incident.on_site_at or not category.needs_crew else incident.arrive_due,
             category.arrive_minutes, incident.created_at),
            ("resolve", incident.resolve_due, category.resolve_minutes, incident.created_at),
        ]
    else:
        return []
    return [Phase(name, due, limit, started) for name, due, limit, started in candidates
            if due is not None and limit > 0]


def read(phase: Phase, now: datetime, clock: Clock) -> Reading:
    """Used share of the limit: what ran since the start, told from how much is left to the deadline
    (so a pause, which moves the deadline, takes its time out)."""
    used = phase.limit - clock.minutes(now, phase.due)
    return Reading(phase, round(used / phase.limit, 6))


def worst(readings: list[Reading]) -> Reading | None:
    """The reading that decides the incident's colour: the most used phase."""
    return max(readings, key=lambda r: r.fraction, default=None)


def steps_taken(marks: dict[str, Any] | None, phase: Phase) -> int:
    """Breach steps already recorded for this phase's current deadline (a new deadline starts afresh)."""
    mark = (marks or {}).get(phase.name)
    if not mark or datetime.fromisoformat(mark["due"]) != phase.due:
        return 0
    return mark["steps"]


def moved_deadlines(incident: Incident, dues: dict[Phase, datetime]) -> dict[str, Any]:
    """The deadline columns for these phases' new deadlines, with the breach marks that were
    set against the old ones following them (a pause or a change of rules moves a deadline
    past which a step was already taken: the step stays taken)."""
    marks = dict(incident.sla_marks or {})
    changes: dict[str, Any] = {}
    for phase, due in dues.items():
        changes[f"{phase.name}_due"] = due
        mark = marks.get(phase.name)
        if mark and datetime.fromisoformat(mark["due"]) == phase.due:
            marks[phase.name] = {**mark, "due": due.isoformat()}
    if marks != (incident.sla_marks or {}):
        changes["sla_marks"] = marks
    return changes


def caught_up(marks: dict[str, Any] | None, phases: list[Phase], at: datetime, clock: Clock) -> dict[str, Any]:
    """The breach marks with every step already due by `at` recorded as taken. For a reset of
    the escalation level (a reassignment, a rework): escalation then climbs again from the
    next breach on, instead of taking at once every step a phase has owed since its deadline
    (the district, where steps stop climbing, takes but does not record them)."""
    marks = dict(marks or {})
    for phase in phases:
        steps = read(phase, at, clock).breach_steps
        if steps > steps_taken(marks, phase):
            marks[phase.name] = {"due": phase.due.isoformat(), "steps": steps}
    return marks


def steps_to_take(reading: Reading, marks: dict[str, Any] | None, level: int) -> list[int]:
    """Breach steps now due and not yet taken: the first always, later ones while below the top."""
    taken = steps_taken(marks, reading.phase)
    due = [step for step in range(taken + 1, reading.breach_steps + 1)]
    return [step for i, step in enumerate(due) if step == 1 or level + i < TOP_LEVEL]


def next_check(reading: Reading, clock: Clock, level: int) -> datetime | None:
    """The next instant this phase crosses a threshold: amber, red, or its next breach step."""
    phase = reading.phase
    if reading.fraction < AMBER:
        return clock.after(phase.due, -round((1 - AMBER) * phase.limit, 6))
    if reading.fraction < RED:
        return phase.due
    if level >= TOP_LEVEL:
        return None
    return clock.after(phase.due, reading.breach_steps * phase.limit)
