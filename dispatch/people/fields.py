"""Checks for the values an admin sends: each returns the clean value or raises a 400 naming the field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any

from sqlalchemy.orm import Session

from dispatch.errors import bad_field
from grids.store import areas_by_code

# Matched whole (fullmatch): "$" would let a trailing newline through.
SKILL = re.compile(r"[a-z][a-z0-9_]{0,31}")
PHONE = re.compile(r"\+?[0-9][0-9 -]{4,19}")  # 13912345678, +86 139 1234 5678, 025-8888-1234
END_OF_DAY = "24:00"


def text(field: str, value: Any, *, max_length: int, required: bool = True) -> str | None:
    """A string, stripped; None only when not required."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise bad_field(field, "is required")
        return None
    if not isinstance(value, str):
        raise bad_field(field, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if len(value) > max_length:
        raise bad_field(field, f"must be at most {max_length} characters")
    return value


def phone(field: str, value: Any) -> str | None:
    """A phone number (digits, spaces, dashes, a leading +), or None. Full-width digits, as a
    Chinese input method types them (１３９…), are read as the digits they are."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value)
    value = text(field, value, max_length=24, required=False)
    if value is not None and not PHONE.fullmatch(value):
        raise bad_field(field, f"is not a phone number, got {value!r}")
    return value


def caller_phone(field: str, value: Any) -> str | None:
    """A reporter's phone number as dialled at home: spaces and dashes dropped, and a +86 or
    0086 prefix, so that one caller is one number however it was typed (the per-phone limit
    and an operator's look-up of a caller's reports both match it exactly), or None."""
    value = phone(field, value)
    if value is None:
        return None
    digits = value.replace(" ", "").replace("-", "")
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix) and len(digits) > len(prefix) + 4:
            return _dialled_at_home(digits[len(prefix):])
    if len(digits) == 13 and digits.startswith("861"):  # a mobile written 86 139…, without the +
        return digits[2:]
    return digits


def _dialled_at_home(national: str) -> str:
    """A number written after +86 as dialled within China: a landline (area code and local
    number, 9 to 11 digits, Beijing's 10 included) takes back the trunk 0 it drops abroad;
    a mobile (11 digits from 1), a 400/800 service number or a short number does not."""
    mobile = len(national) == 11 and national.startswith("1")
    service = len(national) == 10 and national.startswith(("400", "800"))
    if mobile or service or national.startswith("0") or not 9 <= len(national) <= 11:
        return national
    return "0" + national


def choice(field: str, value: Any, allowed: Collection[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise bad_field(field, f"must be one of {', '.join(allowed)}, got {value!r}",
                        allowed=list(allowed))
    return value


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_field(field, f"must be true or false, got {value!r}")
    return value


def integer(field: str, value: Any, *, low: int, high: int) -> int:
    # bool is an int in Python; `true` is never a weekday or a number of minutes.
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_field(field, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise bad_field(field, f"must be between {low} and {high}, got {value}")
    return value


def number(field: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_field(field, f"must be a number, got {str(value)[:40]!r}")
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits: JSON allows it, a float cannot hold it
        raise bad_field(field, "is out of range") from None


def items(field: str, value: Any, of: type | None = None) -> list[Any]:
    """A JSON list; with `of`, every entry must be of that type (a bool is not an int)."""
    if not isinstance(value, list):
        raise bad_field(field, "must be a list")
    if of is not None:
        for entry in value:
            if not isinstance(entry, of) or isinstance(entry, bool):
                raise bad_field(field, f"each entry must be a {of.__name__}, got {entry!r}")
    return value


def skills(field: str, value: Any) -> list[str]:
    """Skill names like `plumbing`: lower-case letters, digits and underscores."""
    found = []
    for skill in items(field, value):
        if not isinstance(skill, str) or not SKILL.fullmatch(skill):
            raise bad_field(field, f"{skill!r} is not a skill name (lower-case letters, digits, _)")
        found.append(skill)
    return list(dict.fromkeys(found))


def area(session: Session, field: str, code: Any, levels: Collection[str]) -> str:
    """The code of a stored area of one of `levels`; 422 when there is none."""
    if not isinstance(code, str) or not code:
        raise bad_field(field, "must be an area code")
    found = areas_by_code(session, [code]).get(code)
    if found is None:
        raise bad_field(field, f"no area with code {code!r}", 422, code=code)
    if found.level not in levels:
        raise bad_field(field, f"{code} is a {found.level}, not a {' or '.join(levels)}", 422,
                        code=code, level=found.level)
    return code


def clock_time(field: str, value: Any) -> time:
    """`HH:MM` local time; `24:00` is the end of the day."""
    if value == END_OF_DAY:
        return time.max
    if isinstance(value, str) and re.fullmatch(r"[0-9]{2}:[0-9]{2}", value):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise bad_field(field, f"must be a time HH:MM (00:00 to 24:00), got {value!r}")


def format_clock_time(value: time) -> str:
    return END_OF_DAY if value == time.max else value.strftime("%H:%M")


YEARS = range(1970, 3000)  # the times a dispatch system can mean


def timestamp(field: str, value: Any) -> datetime:
    """An ISO-8601 time with a UTC offset (a shift boundary or a filter means nothing without a
    time zone) in YEARS: at the ends of the calendar, moving it to UTC or by a day overflows."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise bad_field(field, f"must be an ISO-8601 time with a UTC offset, e.g. "
                               f"2026-11-26T09:00:00+08:00, got {str(value)[:40]!r}")
    return within_years(field, parsed)


def within_years(field: str, value: date) -> date:
    if value.year not in YEARS:
        raise bad_field(field, f"must be in the years {YEARS.start} to {YEARS.stop - 1}, got {value.isoformat()}")
    return value


def day(field: str, value: Any) -> date:
    """A `YYYY-MM-DD` date."""
    try:
        if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            parsed = date.fromisoformat(value)
            return within_years(field, parsed)
    except ValueError:
        pass
    raise bad_field(field, f"must be a date YYYY-MM-DD, got {value!r}")
