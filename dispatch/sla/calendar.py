"""The working calendar: China's public holidays and adjusted working weekends (调休), from the
maintained `chinese-calendar` library, with an admin's CalendarDay rows winning over it.

The library ships the State Council's schedules as offline data, one release per year's
announcement (1.11: 2004 to 2026). For a year it does not know yet only weekends are
days off until an admin enters that year's days or the library is upgraded.
"""

from __future__ import annotations

from datetime import date
from functools import cache

from chinese_calendar import constants
from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.people.models import CalendarDay
from dispatch.routing import Calendar


@cache
def public_calendar() -> Calendar:
    """The official holidays and worked weekends, as the library knows them."""
    return Calendar(holidays=frozenset(constants.holidays), extra_workdays=frozenset(constants.workdays))


def covered_years() -> range:
    """The years whose official schedule the installed library carries."""
    days = [*constants.holidays, *constants.workdays]
    return range(min(days).year, max(days).year + 1)


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
