"""Who gets a report: the grid manager on duty (or the next in line), and which crew to send.

Pure functions of plain dataclasses and an injected time: the incident service gathers the
data from the database and records the decision; nothing here touches a database or Flask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

import numpy as np
from pyproj import Geod

KINDS = ("primary", "backup")  # seniority order: a primary on duty is chosen before a backup
TIE_TOLERANCE = 1.0  # metres (or seconds with travel_time): closer than this is a tie

_GEOD = Geod(ellps="WGS84")


# -- manager routing ---------------------------------------------------------------------


@dataclass(frozen=True)
class WeeklyHours:
    """One span of a manager's shift calendar in local time: on at `start`, off at `end`."""

    weekday: int  # 0 = Monday
    start: time
    end: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6, not {self.weekday}")
        if self.end <= self.start:
            raise ValueError(f"shift end {self.end} must be after its start {self.start}")

    def covers(self, weekday: int, moment: time) -> bool:
        """Whether this span covers a local weekday and time of day. A span to the end of
        the day (time.max, "24:00") covers its last microsecond too."""
        return self.weekday == weekday and self.start <= moment and (moment < self.end or self.end == time.max)


DEFAULT_HOURS = tuple(WeeklyHours(day, time(9), time(17)) for day in range(5))


@dataclass(frozen=True)
class GridManager:
    """A grid manager (网格员) assigned to one grid."""

    user_id: int
    grid_code: str
    kind: str  # "primary" | "backup"
    hours: tuple[WeeklyHours, ...] | None  # None → DEFAULT_HOURS; () → never on weekly hours
    active: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"manager kind must be one of {KINDS}, not {self.kind!r}")


@dataclass(frozen=True)
class OnCall:
    """One entry of the on-call rota; `area_code` is a grid or a whole community."""

    user_id: int
    area_code: str
    starts_at: datetime
    ends_at: datetime  # exclusive: at this instant the next entry takes over

    def __post_init__(self) -> None:
        _require_aware(self.starts_at, "starts_at")
        _require_aware(self.ends_at, "ends_at")
        if self.ends_at <= self.starts_at:
            raise ValueError(f"on-call for user {self.user_id} ends before it starts")


@dataclass(frozen=True)
class Calendar:
    """Public holidays and adjusted working days (调休), as local dates."""

    holidays: frozenset[date] = frozenset()  # nobody's weekly hours apply
    extra_workdays: frozenset[date] = frozenset()  # worked with each manager's Monday hours


@dataclass(frozen=True)
class ManagerDecision:
    """Who gets the report, why, what fell short, and every step tried."""

    user_id: int | None
    grid_code: str | None  # the grid whose manager was chosen; None when nobody was
    reason: str | None  # on_duty_primary | on_duty_backup | on_call | adjacent_grid | community_duty_desk
    shortfall: str | None  # grid_manager_off_duty | no_grid_manager | no_one_available
    considered: tuple[str, ...]


def on_duty(manager: GridManager, when: datetime, tz: tzinfo,
            calendar: Calendar = Calendar()) -> bool:
    """Whether an active manager's weekly hours cover `when` (09:00 is on, 17:00 is off)."""
    if not manager.active:
        return False
    local = _local(when, tz)
    hours = DEFAULT_HOURS if manager.hours is None else manager.hours
    return any(span.covers(weekday, local.time()) for weekday in _working_weekdays(local.date(), calendar)
               for span in hours)


def choose_manager(*, grid_code: str, community_code: str | None, when: datetime, tz: tzinfo,
                   managers: Sequence[GridManager], adjacent_grids: Sequence[str],
                   on_call: Sequence[OnCall], duty_desk: Sequence[int],
                   calendar: Calendar = Calendar()) -> ManagerDecision:
    """Route a report in the grid to the first available of: its manager on duty, the
    on-call manager, a manager on duty in an adjacent grid, the community duty desk."""
    considered = [_describe_time(_local(when, tz), tz, calendar)]
    chosen, line, staffed = _manager_on_duty(grid_code, managers, when, tz, calendar, "grid")
    considered.append(line)
    if chosen is not None:
        return ManagerDecision(chosen.user_id, grid_code, f"on_duty_{chosen.kind}", None,
                               tuple(considered))
    shortfall = "grid_manager_off_duty" if staffed else "no_grid_manager"

    rota, line = _on_call_for(grid_code, community_code, when, on_call)
    considered.append(line)
    if rota is not None:
        return ManagerDecision(rota.user_id, grid_code, "on_call", shortfall, tuple(considered))

    neighbours = list(dict.fromkeys(code for code in adjacent_grids if code != grid_code))
    if not neighbours:
        considered.append("adjacent grids: none given")
    for code in neighbours:
        chosen, line, _ = _manager_on_duty(code, managers, when, tz, calendar, "adjacent grid")
        considered.append(line)
        if chosen is not None:
            return ManagerDecision(chosen.user_id, code, "adjacent_grid", shortfall,
                                   tuple(considered))

    if duty_desk:
        desk_user = min(duty_desk)
        considered.append(f"community duty desk: user {desk_user}")
        return ManagerDecision(desk_user, grid_code, "community_duty_desk", shortfall,
                               tuple(considered))
    considered.append("community duty desk: nobody listed")
    return ManagerDecision(None, None, None, "no_one_available", tuple(considered))


def _require_aware(value: datetime, name: str) -> None:
    """Reject naive datetimes: a shift boundary is meaningless without a time zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone-aware datetime")


def _local(when: datetime, tz: tzinfo) -> datetime:
    """`when` as local wall-clock time in the app's time zone."""
    _require_aware(when, "when")
    return when.astimezone(tz)


def _working_weekdays(day: date, calendar: Calendar) -> tuple[int, ...]:
    """The weekdays whose hours apply on a local date: none on a public holiday; on an
    adjusted working day (调休) Monday's as well as its own, so it takes nobody off duty
    who works that weekday anyway."""
    if day in calendar.holidays:
        return ()
    if day in calendar.extra_workdays:
        return tuple(dict.fromkeys((day.weekday(), 0)))
    return (day.weekday(),)


def _describe_time(local: datetime, tz: tzinfo, calendar: Calendar) -> str:
    """The trace's first line: the local time routing was decided for."""
    line = f"local time {local:%a %Y-%m-%d %H:%M} {tz}"
    if local.date() in calendar.holidays:
        return f"{line}, public holiday"
    if local.date() in calendar.extra_workdays:
        return f"{line}, adjusted working day (Monday's hours as well as its own)"
    return line


def _seniority(manager: GridManager) -> tuple[int, int]:
    return KINDS.index(manager.kind), manager.user_id


def _manager_on_duty(grid_code: str, managers: Sequence[GridManager], when: datetime,
                     tz: tzinfo, calendar: Calendar,
                     label: str) -> tuple[GridManager | None, str, bool]:
    """The grid's most senior manager on duty, a trace line, and whether it has any active one."""
    assigned = [m for m in managers if m.grid_code == grid_code]
    active = [m for m in assigned if m.active]
    inactive = len(assigned) - len(active)
    present = sorted((m for m in active if on_duty(m, when, tz, calendar)), key=_seniority)
    # A disabled manager passed over is named in the trace: "why not the primary?"
    skipped = f"{inactive} inactive" if inactive else ""
    if present:
        chosen = present[0]
        suffix = f" ({skipped})" if skipped else ""
        return chosen, f"{label} {grid_code}: {chosen.kind} user {chosen.user_id} on duty{suffix}", True
    counts = [f"{len(active)} off duty"] if active else []
    counts += [skipped] if skipped else []
    detail = "no manager on duty" if active else "no active manager"
    suffix = f" ({', '.join(counts)})" if counts else ""
    return None, f"{label} {grid_code}: {detail}{suffix}", bool(active)


def _on_call_for(grid_code: str, community_code: str | None, when: datetime,
                 rota: Sequence[OnCall]) -> tuple[OnCall | None, str]:
    """The rota entry covering `when` for the grid (preferred) or its community, and a trace line."""
    specificity = {community_code: 1} if community_code else {}
    specificity[grid_code] = 0
    covering = [r for r in rota
                if r.area_code in specificity and r.starts_at <= when < r.ends_at]
    if not covering:
        scope = f"grid {grid_code}" + (f" or community {community_code}" if community_code else "")
        return None, f"on-call: nobody covers {scope}"
    chosen = min(covering, key=lambda r: (specificity[r.area_code], r.starts_at, r.user_id))
    level = "grid" if chosen.area_code == grid_code else "community"
    return chosen, f"on-call: user {chosen.user_id} covers {level} {chosen.area_code}"


# -- crew recommendation -----------------------------------------------------------------

TravelTime = Callable[[float, float, float, float], float]  # (from lon, lat, to lon, lat) → s


@dataclass(frozen=True)
class CrewCandidate:
    """A repair crew as the recommender sees it."""

    crew_id: int
    name: str
    skills: frozenset[str]
    status: str  # "available" | "busy" | "off"
    service_areas: frozenset[str]  # area codes of any level
    lon: float | None  # last known position, WGS84
    lat: float | None
    open_assignments: int
    idle_since: datetime | None  # None = unknown, ranked as the most recently idle
    active_members: int = 1  # crew accounts that can work its jobs


@dataclass(frozen=True)
class RankedCrew:
    """An eligible crew at its place in the recommendation, with the reasons."""

    crew_id: int
    name: str
    rank: int  # 1 = recommended
    distance_m: float | None
    open_assignments: int
    idle_since: datetime | None
    reasons: tuple[str, ...]
    travel_time_s: float | None = None  # set when ranked by a travel-time function


@dataclass(frozen=True)
class Exclusion:
    """A crew that cannot take the job, and why."""

    crew_id: int
    name: str
    reason: str  # "lacks skill <skill>" | "busy" | "off" | "outside service area"


def rank_crews(candidates: Sequence[CrewCandidate], *, skill: str, lon: float, lat: float,
               area_codes: Collection[str], when: datetime,
               travel_time: TravelTime | None = None,
               ) -> tuple[list[RankedCrew], list[Exclusion]]:
    """Eligible crews nearest first (or quickest, with `travel_time`), then least loaded,
    then longest idle, then by id; and the excluded ones with their reason."""
    chain = _ordered_codes(area_codes)
    eligible: list[CrewCandidate] = []
    excluded: list[Exclusion] = []
    for crew in candidates:
        reason = _exclusion_reason(crew, skill, chain)
        if reason is None:
            eligible.append(crew)
        else:
            excluded.append(Exclusion(crew.crew_id, crew.name, reason))

    distances = _distances_m(eligible, lon, lat)
    seconds = ([None] * len(eligible) if travel_time is None else
               [None if d is None else travel_time(c.lon, c.lat, lon, lat)
                for c, d in zip(eligible, distances)])
    tiers = _tiers(distances if travel_time is None else seconds)
    order = sorted(range(len(eligible)), key=lambda i: (
        tiers[i], eligible[i].open_assignments, _idle_key(eligible[i]), eligible[i].crew_id))
    ranked = []
    for rank, i in enumerate(order, start=1):
        crew = eligible[i]
        reasons = _reasons(crew, skill, chain, distances[i], seconds[i], when)
        ranked.append(RankedCrew(crew.crew_id, crew.name, rank, distances[i],
                                 crew.open_assignments, crew.idle_since, reasons, seconds[i]))
    return ranked, sorted(excluded, key=lambda e: e.crew_id)


def _ordered_codes(area_codes: Collection[str]) -> list[str]:
    """The incident's chain, most specific first: as given, or for a set longest code first
    (lower levels have longer division codes), so the order never depends on hashing."""
    if isinstance(area_codes, str):
        raise TypeError("area_codes must be a collection of codes, not one code")
    if isinstance(area_codes, Sequence):
        return list(area_codes)
    return sorted(area_codes, key=lambda code: (-len(code), code))


def unfit_for(crew: CrewCandidate, skill: str, area_codes: Collection[str]) -> str | None:
    """Why a crew cannot do this job at all, whatever its status (what a manager choosing a
    crew by hand is held to too), or None."""
    if skill not in crew.skills:
        return f"lacks skill {skill}"
    if not crew.active_members:
        return "no active member"
    if crew.service_areas.isdisjoint(area_codes):
        return "outside service area"
    return None


def _exclusion_reason(crew: CrewCandidate, skill: str, chain: list[str]) -> str | None:
    """Why a crew cannot take the job now, or None when it can."""
    return unfit_for(crew, skill, chain) or (crew.status if crew.status != "available" else None)


def _distances_m(crews: Sequence[CrewCandidate], lon: float, lat: float) -> list[float | None]:
    """Geodesic metres from each crew's last position to the incident; None when unknown."""
    known = [i for i, c in enumerate(crews) if c.lon is not None and c.lat is not None]
    distances: list[float | None] = [None] * len(crews)
    if known:
        lons = np.array([crews[i].lon for i in known], dtype=float)
        lats = np.array([crews[i].lat for i in known], dtype=float)
        _, _, metres = _GEOD.inv(lons, lats, np.full_like(lons, lon), np.full_like(lats, lat))
        for i, value in zip(known, np.atleast_1d(metres)):
            distances[i] = float(value)
    return distances


def _tiers(costs: Sequence[float | None]) -> list[float]:
    """Group costs into ties: each tier starts at its nearest member and spans TIE_TOLERANCE,
    so GPS jitter does not decide between two crews at the same spot; unknown ranks last."""
    tiers = [math.inf] * len(costs)
    tier, leader = -1, -math.inf
    for cost, i in sorted((c, i) for i, c in enumerate(costs) if c is not None):
        if cost - leader > TIE_TOLERANCE:
            tier, leader = tier + 1, cost
        tiers[i] = tier
    return tiers


def _idle_key(crew: CrewCandidate) -> tuple[bool, datetime | None]:
    """Earliest idle_since first; unknown counts as just became free, so last."""
    return crew.idle_since is None, crew.idle_since


def _reasons(crew: CrewCandidate, skill: str, chain: list[str], distance_m: float | None,
             travel_s: float | None, when: datetime) -> tuple[str, ...]:
    """Human reasons for a crew's place in the list."""
    served = next(code for code in chain if code in crew.service_areas)
    reasons = [f"skill {skill}", "available", f"serves {served}"]
    reasons.append("position unknown" if distance_m is None else _format_distance(distance_m))
    if travel_s is not None:
        reasons.append(f"{_format_minutes(travel_s)} travel (ranked by travel time)")
    load = crew.open_assignments
    reasons.append("no open jobs" if load == 0 else f"{load} open job{'s' if load != 1 else ''}")
    if crew.idle_since is None:
        reasons.append("idle time unknown")
    else:
        reasons.append(f"idle {_format_minutes((when - crew.idle_since).total_seconds())}")
    return tuple(reasons)


def _format_distance(metres: float) -> str:
    return f"{metres:.0f} m away" if metres < 1000 else f"{metres / 1000:.1f} km away"


def _format_minutes(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))  # a clock running slightly ahead must not show -1 min
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
