"""Deadlines and elapsed clock time across nights, weekends, Chinese public holidays and an
adjusted working Saturday (调休), for both clock kinds; and the calendar they come from."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from dispatch.people.models import CalendarDay
from dispatch.people.roster import Roster
from dispatch.routing import Calendar
from dispatch.sla.calendar import (
    coverage_warning,
    covered_years,
    merge,
    public_calendar,
    working_calendar,
)
from dispatch.sla.clocks import deadline, elapsed

SH = ZoneInfo("Asia/Shanghai")
OFFICIAL = public_calendar()


def t(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


@pytest.mark.parametrize("start, minutes, expected", [
    (t(12, 1, 10), 30, t(12, 1, 10, 30)),  # Tuesday, within the day
    (t(12, 1, 16), 120, t(12, 2, 10)),  # over a night
    (t(12, 1, 7), 30, t(12, 1, 9, 30)),  # reported before opening
    (t(12, 1, 18), 60, t(12, 2, 10)),  # reported after closing
    (t(12, 4, 16), 120, t(12, 7, 10)),  # Friday over the weekend to Monday
    (t(12, 5, 11), 60, t(12, 7, 10)),  # reported on a Saturday
    (t(12, 1, 16, 56), 4, t(12, 1, 17)),  # ends exactly at closing, not next morning
    (t(9, 30, 16), 120, t(10, 8, 10)),  # National Day: 1–7 October off, back on Thursday the 8th
    (t(10, 9, 16, 30), 60, t(10, 10, 9, 30)),  # Saturday 10 October is worked (调休)
    (t(9, 18, 16), 120, t(9, 20, 10)),  # so is Sunday 20 September
    (t(2, 13, 16), 600, t(2, 24, 10, 0)),  # Spring Festival 2026: Sat 14 Feb worked, 15–23 Feb off
    (t(12, 31, 16, year=2025), 120, t(1, 4, 10)),  # New Year 2026: 1–3 Jan off, Sunday 4 Jan worked
])
def test_service_hours_deadlines(start, minutes, expected):
    assert deadline(start, minutes, kind="service_hours", tz=SH, calendar=OFFICIAL) == expected
    assert elapsed(start, expected, kind="service_hours", tz=SH, calendar=OFFICIAL) == minutes
    assert elapsed(expected, start, kind="service_hours", tz=SH, calendar=OFFICIAL) == -minutes


@pytest.mark.parametrize("start, minutes, expected", [
    (t(12, 1, 16), 120, t(12, 1, 18)),
    (t(12, 4, 23, 50), 20, t(12, 5, 0, 10)),  # over midnight into a Saturday
    (t(9, 30, 16), 1440, t(10, 1, 16)),  # holidays do not stop the wall clock
])
def test_wall_clock_deadlines(start, minutes, expected):
    assert deadline(start, minutes, kind="wall", tz=SH, calendar=OFFICIAL) == expected
    assert elapsed(start, expected, kind="wall", tz=SH, calendar=OFFICIAL) == minutes


def test_elapsed_counts_only_open_service_hours():
    def service(a, b):
        return elapsed(a, b, kind="service_hours", tz=SH, calendar=OFFICIAL)

    assert service(t(12, 1, 18), t(12, 2, 8)) == 0  # a night
    assert service(t(12, 4, 17), t(12, 7, 9)) == 0  # a weekend
    assert service(t(10, 1, 9), t(10, 7, 17)) == 0  # a public holiday week
    assert service(t(10, 10, 8), t(10, 10, 20)) == 480  # a worked Saturday is a full day
    assert service(t(12, 1, 10, 15), t(12, 1, 10, 15)) == 0
    assert service(t(12, 1, 9), t(12, 8, 9)) == 5 * 480


@pytest.mark.parametrize("start, minutes", [
    (t(12, 1, 10, 7), 1), (t(12, 3, 15, 30), 600), (t(9, 29, 11), 1440), (t(10, 9, 16), 90),
])
def test_deadline_and_elapsed_are_inverses(start, minutes):
    end = deadline(start, minutes, kind="service_hours", tz=SH, calendar=OFFICIAL)
    assert elapsed(start, end, kind="service_hours", tz=SH, calendar=OFFICIAL) == minutes
    back = deadline(end, -minutes, kind="service_hours", tz=SH, calendar=OFFICIAL)
    assert elapsed(back, end, kind="service_hours", tz=SH, calendar=OFFICIAL) == minutes


def test_counting_back_lands_on_the_earliest_instant():
    # Four service minutes before Tuesday 09:04 began at Monday's close, not Tuesday's opening.
    assert deadline(t(12, 1, 9, 4), -4, kind="service_hours", tz=SH) == t(11, 30, 17)
    assert deadline(t(10, 8, 10), -120, kind="service_hours", tz=SH, calendar=OFFICIAL) == t(9, 30, 16)
    assert deadline(t(12, 1, 10), -5, kind="wall", tz=SH) == t(12, 1, 9, 55)


def test_unknown_clock_kind_is_refused():
    with pytest.raises(ValueError, match="clock kind"):
        elapsed(t(12, 1, 9), t(12, 1, 10), kind="lunar", tz=SH)


def test_the_library_covers_2004_to_2026():
    years = covered_years()
    assert years.start <= 2004 and years.stop - 1 >= 2026
    assert date(2026, 10, 1) in OFFICIAL.holidays and date(2026, 10, 10) in OFFICIAL.extra_workdays
    assert date(2026, 12, 1) not in OFFICIAL.holidays


def test_past_the_library_the_fixed_date_holidays_are_days_off_and_the_gap_is_said():
    """Found by an SLA audit: for 2027, which chinese-calendar 1.11 does not know, New Year's
    Day and National Day were working days, silently. The law fixes those by date; the lunar
    holidays need the year's announcement, so the gap is said, from two months before."""
    first_unknown = covered_years().stop
    for month, day in ((1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)):
        assert date(first_unknown, month, day) in OFFICIAL.holidays
        assert date(first_unknown + 5, month, day) in OFFICIAL.holidays
    new_year = date(first_unknown, 1, 1)
    next_workday = min(d for d in (date(first_unknown, 1, n) for n in range(2, 9))
                       if d.weekday() < 5 and d not in OFFICIAL.holidays)
    assert deadline(t(12, 31, 16, year=first_unknown - 1), 120, kind="service_hours", tz=SH, calendar=OFFICIAL) \
        == datetime.combine(next_workday, time(10), tzinfo=SH)
    assert new_year.weekday() >= 5 or next_workday > new_year

    assert coverage_warning(date(first_unknown - 1, 10, 31)) is None  # 61 days on: still known
    said = coverage_warning(date(first_unknown - 1, 11, 1))
    assert f"of {first_unknown} are not known" in said and "PUT /api/v1/calendar/<day>" in said
    assert f"of {first_unknown + 1} " in coverage_warning(date(first_unknown + 1, 3, 1))


def test_an_admin_day_wins_over_the_library():
    mine = merge(OFFICIAL, {date(2026, 10, 7): "workday", date(2026, 10, 10): "holiday",
                            date(2026, 12, 1): "holiday"})
    assert date(2026, 10, 7) not in mine.holidays and date(2026, 10, 7) in mine.extra_workdays
    assert date(2026, 10, 10) in mine.holidays and date(2026, 10, 10) not in mine.extra_workdays
    assert deadline(t(9, 30, 16), 120, kind="service_hours", tz=SH, calendar=mine) == t(10, 7, 10)
    assert deadline(t(10, 9, 16, 30), 60, kind="service_hours", tz=SH, calendar=mine) == t(10, 12, 9, 30)
    assert merge(Calendar(), {}) == Calendar()


def test_routing_and_deadlines_read_the_same_calendar(db):
    with db.session() as session:
        session.add(CalendarDay(day=date(2026, 12, 1), kind="holiday", name="演练"))
    with db.session() as session:
        calendar = working_calendar(session)
        assert Roster.load(session, revision=0).calendar == calendar
    assert date(2026, 12, 1) in calendar.holidays and date(2026, 10, 1) in calendar.holidays
    assert deadline(t(12, 1, 10), 60, kind="service_hours", tz=SH, calendar=calendar) == t(12, 2, 10)
