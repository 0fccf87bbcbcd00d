"""The working calendar: China's public holidays and adjusted working weekends (调休), from the
maintained `chinese-calendar` library, with an admin's CalendarDay rows winning over it.

The library ships the State Council's schedules as offline data, one release per year's
announcement (1.11: 2004 to 2026). For a later year the holidays the law fixes by date
(全国年节及纪念日放假办法: 1 January, 1–2 May, 1–3 October) are days off as well as
weekends; the lunar holidays and that year's worked weekends are known once an admin enters
them (PUT /api/v1/calendar/<day>) or the library is upgraded. `coverage_warning` says so,
and servers log it, from two months before such a year begins.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

from chinese_calendar import constants
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.people.models import CalendarDay
from dispatch.routing import Calendar

# Holidays on fixed dates (month, day), as the law has them since 2025; the others follow
# the lunar calendar or solar terms and are placed by each year's announcement.
FIXED_DATE_HOLIDAYS = ((1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3))
YEARS_AHEAD = 20  # how far past the library's last year the fixed-date holidays are known
WARN_AHEAD = timedelta(days=61)


@cache
def public_calendar() -> Calendar:
    """The official holidays and worked weekends as the library knows them, and the
    fixed-date holidays of the years after."""
    last = covered_years().stop
    fixed = {date(year, month, day) for year in range(last, last + YEARS_AHEAD)
             for month, day in FIXED_DATE_HOLIDAYS}
    return Calendar(holidays=frozenset(constants.holidays) | fixed,
                    extra_workdays=frozenset(constants.workdays))


@cache
def covered_years() -> range:
    """The years whose official schedule the installed library carries (read once: every
    SLA tick asks, through `coverage_warning`)."""
    days = [*constants.holidays, *constants.workdays]
    return range(min(days).year, max(days).year + 1)


def coverage_warning(today: date) -> str | None:
    """What to tell an operator when the official schedule of this year, or of the next one
    within two months, is not known: routing and service-hours deadlines will treat its lunar
    holidays as working days until someone enters them."""
    years = sorted({today.year, (today + WARN_AHEAD).year} - set(covered_years()))
    if not years:
        return None
    return (f"the official holidays of {', '.join(map(str, years))} are not known (chinese-calendar "
            f"{covered_years().start}–{covered_years().stop - 1}): only weekends and 1 January, "
            "1–2 May and 1–3 October are days off; enter the State Council's schedule with "
            "PUT /api/v1/calendar/<day> (holiday or workday), or upgrade chinese-calendar")


def merge(official: Calendar, overrides: dict[date, str]) -> Calendar:
    """The official calendar with each overridden day ("holiday" or "workday") taking the admin's kind."""
    overridden = frozenset(overrides)
    return Calendar(
        holidays=(official.holidays - overridden)
        | {day for day, kind in overrides.items() if kind == "holiday"},
        extra_workdays=(official.extra_workdays - overridden)
        | {day for day, kind in overrides.items() if kind == "workday"},
    )


def working_calendar(session: Session) -> Calendar:
    """The calendar routing and SLA deadlines share: official days, then the admin's rows."""
    overrides = dict(session.execute(select(CalendarDay.day, CalendarDay.kind)).all())
    return merge(public_calendar(), overrides)
