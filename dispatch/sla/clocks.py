"""Deadlines: wall-clock minutes for urgent repairs, service-hour minutes for the rest."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from dispatch.routing import Calendar

SERVICE_START, SERVICE_END = time(9), time(17)  # weekday service hours (SPEC §1)
PLAIN_WEEK = Calendar()  # no holidays, no worked weekends
MAX_DAYS = 3660  # ten years of days bounds a bad calendar, never reached in practice


def is_service_day(day: date, calendar: Calendar) -> bool:
    """A weekday that is not a public holiday, or a weekend worked in lieu (调休)."""
    if day in calendar.extra_workdays:
        return True
    return day.weekday() < 5 and day not in calendar.holidays


def service_window(day: date, tz: tzinfo, calendar: Calendar) -> tuple[datetime, datetime] | None:
    """When the clock runs on a local date: 09:00 to 17:00 on a service day, never otherwise."""
    if not is_service_day(day, calendar):
        return None
    return datetime.combine(day, SERVICE_START, tz), datetime.combine(day, SERVICE_END, tz)


def deadline(start: datetime, minutes: float, *, kind: str, tz: tzinfo,
             calendar: Calendar = PLAIN_WEEK) -> datetime:
    """When `minutes` of the clock `kind` ("wall" or "service_hours") will have run from `start`;
    negative minutes count back: the earliest instant from which that much runs until `start`."""
    if kind == "wall":
        return start + timedelta(minutes=minutes)
    _check_kind(kind)
    if minutes < 0:
        return _service_before(start, timedelta(minutes=-minutes), tz, calendar)
    remaining = timedelta(minutes=minutes)
    local = start.astimezone(tz)
    day = local.date()
    # Walk day by day; each service day contributes its open window after `local`.
    for _ in range(MAX_DAYS):
        window = service_window(day, tz, calendar)
        if window:
            opens, closes = window
            begin = max(opens, local)
            if begin < closes:
                available = closes - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(start.tzinfo)
                remaining -= available
        day += timedelta(days=1)
        local = datetime.combine(day, time(0), tz)
    raise ValueError("no service hours found within ten years")


def _service_before(end: datetime, remaining: timedelta, tz: tzinfo, calendar: Calendar) -> datetime:
    local = end.astimezone(tz)
    day = local.date()
    for _ in range(MAX_DAYS):
        window = service_window(day, tz, calendar)
        if window:
            opens, closes = window
            finish = min(closes, local)
            # Strictly less: landing on an opening means the previous close is as early.
            if finish > opens and remaining < finish - opens:
                return (finish - remaining).astimezone(end.tzinfo)
            if finish > opens:
                remaining -= finish - opens
        local = datetime.combine(day, time(0), tz)
        day -= timedelta(days=1)
    raise ValueError("no service hours found within ten years")


def elapsed(start: datetime, end: datetime, *, kind: str, tz: tzinfo,
            calendar: Calendar = PLAIN_WEEK) -> float:
    """Minutes of the clock `kind` between two instants (negative when `end` is earlier):
    the inverse of deadline(), so deadline(start, elapsed(start, end)) is `end` or an
    instant the clock cannot tell from it (a night, a weekend)."""
    if end < start:
        return -elapsed(end, start, kind=kind, tz=tz, calendar=calendar)
    if kind == "wall":
        return (end - start).total_seconds() / 60
    _check_kind(kind)
    first, last = start.astimezone(tz), end.astimezone(tz)
    total = timedelta()
    for offset in range((last.date() - first.date()).days + 1):
        window = service_window(first.date() + timedelta(days=offset), tz, calendar)
        if window:
            begin, finish = max(window[0], first), min(window[1], last)
            if finish > begin:
                total += finish - begin
    return total.total_seconds() / 60


def _check_kind(kind: str) -> None:
    if kind != "service_hours":
        raise ValueError(f"unknown clock kind {kind!r}")
