"""Admin rules for people, shifts, crews and categories: plain functions on a session.

Every function validates what it is given and raises ApiError naming the field at fault;
none commits, so a caller's failed request leaves the database as it was.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dispatch.errors import MAX_ID, ApiError, a_or_an, bad_field
from dispatch.incidents import events
from dispatch.incidents.models import CLOCK_KINDS, PRIORITIES, Category
from dispatch.people import fields
from dispatch.people.auth import hash_password
from dispatch.people.models import (
    CREW_STATUSES,
    ROLES,
    ApiToken,
    CalendarDay,
    Crew,
    DutyDesk,
    GridAssignment,
    OnCallShift,
    User,
    WeeklyShift,
)
from dispatch.routing import KINDS
from dispatch.sla.calendar import public_calendar
from grids.geometry import to_wgs84
from grids.text import hidden_character

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # fullmatch
SCOPE_LEVELS = ("district", "street", "community")
SCOPED_ROLES = ("committee", "operator")
SERVICE_LEVELS = ("district", "street", "community", "grid")
CALENDAR_KINDS = ("holiday", "workday")
MAX_MINUTES = 366 * 24 * 60
Checks = dict[str, Callable[[Any], Any]]


def _apply(target: object, changes: dict[str, Any], checks: Checks, what: str,
           attributes: dict[str, str] | None = None) -> None:
    """Set each changed field after its check; a field with no check cannot be set."""
    for key, value in changes.items():
        if key not in checks:
            raise bad_field(key, f"is not a field of a {what} that can be set")
        setattr(target, (attributes or {}).get(key, key), checks[key](value))


def _one_at_a_time(session: Session) -> None:
    """Take the writers' lock (the event log's: every writer takes it first, so no order of
    locks can deadlock) before a check that a write depends on: a free username or crew
    name, another admin left, a desk not yet held, the grids a manager holds. On PostgreSQL
    two such requests at once both passed the check, then one failed on the unique index (a
    500), or both won (two accounts told apart only by capitals, a manager's grids merged
    from both). Admin writes are rare and short; a report waits for one a few ms."""
    events.lock_event_log(session)


def _not_found(what: str, key: object) -> ApiError:
    return ApiError(404, f"{what}_not_found", f"no {what.replace('_', ' ')} {key!r}", {what: key})


# -- users ---------------------------------------------------------------------------------


def _password(value: Any) -> str:
    if not isinstance(value, str) or not 4 <= len(value) <= 128:
        raise bad_field("password", "must be a string of 4 to 128 characters")
    return hash_password(value)


def _crew_id(session: Session, value: Any) -> int | None:
    if value is None:
        return None
    crew_id = fields.integer("crew_id", value, low=1, high=MAX_ID)
    if session.get(Crew, crew_id) is None:
        raise bad_field("crew_id", f"no crew with id {crew_id}", 422)
    return crew_id


def _user_checks(session: Session) -> Checks:
    return {
        "display_name": lambda v: fields.text("display_name", v, max_length=100),
        "role": lambda v: fields.choice("role", v, ROLES),
        "password": _password,
        "phone": lambda v: fields.phone("phone", v),
        "scope_area_code": lambda v: None if v is None else fields.area(
            session, "scope_area_code", v, SCOPE_LEVELS),
        "crew_id": lambda v: _crew_id(session, v),
        "active": lambda v: fields.flag("active", v),
    }


def _check_role_fields(user: User) -> None:
    """The fields that only make sense for some roles, checked on the final state."""
    if user.role == "committee" and not user.scope_area_code:
        raise bad_field("scope_area_code", "a committee member needs a scope: a district, street or community")
    if user.scope_area_code and user.role not in SCOPED_ROLES:
        raise bad_field("scope_area_code", f"only {' and '.join(SCOPED_ROLES)} accounts have a scope")
    if user.crew_id is not None and user.role != "crew":
        raise bad_field("crew_id", "only a crew account belongs to a crew")


def create_user(*, session: Session, now: datetime, username: Any = None, role: Any = None,
                password: Any = None, display_name: Any = None, **values: Any) -> User:
    """A new account; its username must be free (409), in any mix of capitals: "Admin" beside
    "admin" would be two accounts that a colleague, or a phishing message, could mistake."""
    username = fields.text("username", username, max_length=64)
    if not USERNAME.fullmatch(username):
        raise bad_field("username", "letters, digits and . _ @ - only, starting with a letter or digit")
    _check_username_free(session, username)  # before the slow hash, for a quick 409
    if role is None:
        raise bad_field("role", "is required")
    if password is None:
        raise bad_field("password", "is required")
    user = User(username=username, created_at=now, active=True)
    _apply(user, {"role": role, "display_name": username if display_name in (None, "") else display_name,
                  **values}, _user_checks(session), "user")
    _check_role_fields(user)
    # The password last: hashing is deliberately slow, so bad fields fail before it; and
    # before the writers' lock, so reports wait for no hash. The name is checked again
    # under the lock: another request may have taken it meanwhile.
    user.password_hash = _password(password)
    _one_at_a_time(session)
    _check_username_free(session, username)
    session.add(user)
    session.flush()
    return user


def _check_username_free(session: Session, username: str) -> None:
    taken = session.scalar(select(User.username).where(func.lower(User.username) == username.lower()))
    if taken is not None:
        raise ApiError(409, "username_taken", f"username {username!r} is taken"
                       + ("" if taken == username else f" (as {taken!r})"), {"field": "username"})


def update_user(*, session: Session, user: User, now: datetime, **changes: Any) -> User:
    """Change some fields of an account (`active=False` disables it and all its tokens).

    A new password signs the account out everywhere: it is changed because the old one may
    be known, and so may a token it got. A grid manager keeps the manager role while holding
    grids, a current on-call shift or a duty desk: routing would give reports to someone who
    may not see them."""
    # A new password is hashed (slow on purpose) before the writers' lock, so reports wait
    # for no hash; the lock is taken before anything of the account changes: a check below
    # that reads the database would flush the change first, and that write locks the
    # directory's revision row before the log's lock, the other order from every writer's.
    hashed = _password(changes.pop("password")) if changes.get("password") is not None else None
    _one_at_a_time(session)
    was_manager = user.role == "grid_manager"
    was_admin = user.role == "admin" and user.active
    _apply(user, changes, _user_checks(session), "user", {"password": "password_hash"})
    if hashed is not None:
        user.password_hash = hashed
    _check_role_fields(user)
    if was_manager and user.role != "grid_manager":
        _check_off_duty(session, user, now)
    if was_admin and not (user.role == "admin" and user.active):
        _check_another_admin(session, user)
    # Disabled, an account's tokens end too: enabled again, a lost tablet's token must not
    # come back to life.
    if hashed is not None or changes.get("active") is False:
        session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=now))
    return user


def _check_another_admin(session: Session, user: User) -> None:
    """409 when this is the last active admin: with none left, nobody could add, enable or
    repair an account over the API again."""
    others = session.scalar(select(func.count()).where(
        User.role == "admin", User.active.is_(True), User.id != user.id))
    if not others:
        field = "active" if not user.active else "role"
        raise ApiError(409, "last_admin", f"{user.username} is the last active admin: make another "
                       "admin first", {"field": field})


def _check_off_duty(session: Session, user: User, now: datetime) -> None:
    """409 naming what a grid manager still holds that only a grid manager may hold."""
    held = {
        "grids": session.scalar(select(func.count()).where(GridAssignment.user_id == user.id)),
        "on-call shifts": session.scalar(select(func.count()).where(
            OnCallShift.user_id == user.id, OnCallShift.ends_at > now)),
        "duty desks": session.scalar(select(func.count()).where(DutyDesk.user_id == user.id)),
    }
    held = {what: n for what, n in held.items() if n}
    if held:
        listed = ", ".join(f"{n} {what}" for what, n in held.items())
        raise ApiError(409, "still_on_duty",
                       f"{user.username} still holds {listed}: give them to another grid manager "
                       "(or remove them) before changing the role", {"field": "role", "held": held})


def get_user(*, session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise _not_found("user", user_id)
    return user


def user_by_username(*, session: Session, username: str) -> User:
    """The account of this username, in any mix of capitals (as usernames are taken)."""
    user = (session.scalar(select(User).where(User.username == username))
            or session.scalar(select(User).where(func.lower(User.username) == username.lower())))
    if user is None:
        raise _not_found("user", username)
    return user


def list_users(*, session: Session, role: str | None = None, crew_id: int | None = None) -> list[User]:
    """Accounts in username order, optionally of one role or one crew."""
    query = select(User).order_by(User.username)
    if role is not None:
        query = query.where(User.role == fields.choice("role", role, ROLES))
    if crew_id is not None:
        query = query.where(User.crew_id == crew_id)
    return list(session.scalars(query))


def _referenced_user(session: Session, field: str, user_id: Any, role: str, *, active: bool = False) -> User:
    """A user named in a body by id, who must hold `role` (422 otherwise), and with `active`
    be enabled."""
    user_id = fields.integer(field, user_id, low=1, high=MAX_ID)
    user = session.get(User, user_id)
    if user is None:
        raise bad_field(field, f"no user with id {user_id}", 422)
    _require_role(user, role, field)
    if active:
        _require_active(user, field)
    return user


def _require_active(user: User, field: str) -> None:
    """Routing passes disabled accounts by: a rota entry, desk or grid given to one would
    show cover that is not there."""
    if not user.active:
        raise bad_field(field, f"{user.username} is disabled: enable the account first", 422, reason="inactive")


def _require_role(user: User, role: str, field: str) -> None:
    if user.role != role:
        raise bad_field(field, f"{user.username} is {a_or_an(user.role)}, not {a_or_an(role)}",
                        422, role=user.role)


# -- grids and shifts ----------------------------------------------------------------------


def assign_grid(*, session: Session, user: User, grid_code: Any, kind: Any = "primary") -> GridAssignment:
    """Make a grid manager the primary or backup manager of a grid (or change which)."""
    _require_role(user, "grid_manager", "role")
    grid_code = fields.area(session, "grid_code", grid_code, ("grid",))
    kind = fields.choice("kind", kind, KINDS)
    row = session.scalar(select(GridAssignment).where(
        GridAssignment.user_id == user.id, GridAssignment.grid_code == grid_code))
    if row is None:
        _require_active(user, "grids")
        row = GridAssignment(user_id=user.id, grid_code=grid_code)
        session.add(row)
    row.kind = kind
    return row


def remove_grid(*, session: Session, user: User, grid_code: str) -> None:
    session.execute(delete(GridAssignment).where(
        GridAssignment.user_id == user.id, GridAssignment.grid_code == grid_code))


def set_grids(*, session: Session, user: User, grids: Any) -> list[GridAssignment]:
    """Replace a manager's grids with `[{grid_code, kind}]`."""
    _one_at_a_time(session)
    wanted: dict[Any, Any] = {}
    for entry in fields.items("grids", grids):
        if not isinstance(entry, dict) or not isinstance(entry.get("grid_code"), str):
            raise bad_field("grids", "each entry must be {\"grid_code\": ..., \"kind\": ...}")
        wanted[entry["grid_code"]] = entry.get("kind", "primary")
    for row in grid_assignments(session=session, user_ids=[user.id])[user.id]:
        if row.grid_code not in wanted:
            remove_grid(session=session, user=user, grid_code=row.grid_code)
    rows = [assign_grid(session=session, user=user, grid_code=code, kind=kind)
            for code, kind in wanted.items()]
    session.flush()
    return rows


def grid_assignments(*, session: Session, user_ids: Iterable[int]) -> dict[int, list[GridAssignment]]:
    """Each user's grids, in grid order (one query for a whole page of users)."""
    found: dict[int, list[GridAssignment]] = defaultdict(list)
    for row in session.scalars(select(GridAssignment).where(GridAssignment.user_id.in_(list(user_ids)))
                               .order_by(GridAssignment.grid_code)):
        found[row.user_id].append(row)
    return found


def set_weekly_hours(*, session: Session, user: User, spans: Any) -> list[WeeklyShift]:
    """Replace a manager's weekly hours with `[{weekday, start, end}]`; [] means the default."""
    _require_role(user, "grid_manager", "role")
    rows = []
    for entry in fields.items("hours", spans):
        if not isinstance(entry, dict):
            raise bad_field("hours", "each entry must be {\"weekday\", \"start\", \"end\"}")
        weekday = fields.integer("weekday", entry.get("weekday"), low=0, high=6)
        start = fields.clock_time("start", entry.get("start"))
        end = fields.clock_time("end", entry.get("end"))
        if end <= start:
            raise bad_field("end", f"must be after start ({entry.get('start')})")
        rows.append(WeeklyShift(user_id=user.id, weekday=weekday, start=start, end=end))
    session.execute(delete(WeeklyShift).where(WeeklyShift.user_id == user.id))
    session.add_all(rows)
    session.flush()
    return rows


def weekly_hours(*, session: Session, user: User) -> list[WeeklyShift]:
    return list(session.scalars(select(WeeklyShift).where(WeeklyShift.user_id == user.id)
                                .order_by(WeeklyShift.weekday, WeeklyShift.start)))


def add_on_call(*, session: Session, user_id: Any = None, area_code: Any = None,
                starts_at: Any = None, ends_at: Any = None) -> OnCallShift:
    """Put a grid manager on call for a grid or a whole community from `starts_at` to `ends_at`."""
    _one_at_a_time(session)  # the account is still an active manager when the entry lands
    user = _referenced_user(session, "user_id", user_id, "grid_manager", active=True)
    area_code = fields.area(session, "area_code", area_code, ("grid", "community"))
    start = fields.timestamp("starts_at", starts_at)
    end = fields.timestamp("ends_at", ends_at)
    if end <= start:
        raise bad_field("ends_at", "must be after starts_at")
    row = OnCallShift(user_id=user.id, area_code=area_code, starts_at=start, ends_at=end)
    session.add(row)
    session.flush()
    return row


def remove_on_call(*, session: Session, shift_id: int) -> None:
    row = session.get(OnCallShift, shift_id)
    if row is None:
        raise _not_found("on_call", shift_id)
    session.delete(row)


def list_on_call(*, session: Session, area_code: str | None = None, user_id: int | None = None,
                 at: datetime | None = None) -> list[OnCallShift]:
    """Rota entries in start order, optionally for one area, one user, or covering one moment."""
    query = select(OnCallShift).order_by(OnCallShift.starts_at, OnCallShift.area_code)
    if area_code:
        query = query.where(OnCallShift.area_code == area_code)
    if user_id is not None:
        query = query.where(OnCallShift.user_id == user_id)
    if at is not None:
        query = query.where(OnCallShift.starts_at <= at, OnCallShift.ends_at > at)
    return list(session.scalars(query))


def set_calendar_day(*, session: Session, day: date, kind: Any = None, name: Any = "") -> CalendarDay:
    """Mark a date as a public holiday or a worked weekend day (调休), replacing what was there.
    The writers' lock first, as for a category: open deadlines follow in this transaction."""
    kind = fields.choice("kind", kind, CALENDAR_KINDS)
    _one_at_a_time(session)
    if kind == "workday" and day.weekday() < 5 and day not in public_calendar().holidays:
        # A worked day (调休) is a weekend day worked to make up a holiday, or an official
        # holiday the district works after all; an ordinary Wednesday marked so would put
        # managers of Monday's hours on duty too.
        raise bad_field("kind", f"{day.isoformat()} is a {day.strftime('%A')} and no holiday: only a "
                        "weekend day or an official holiday can be made a worked day", reason="not_a_weekend")
    row = session.get(CalendarDay, day) or CalendarDay(day=day)
    row.kind = kind
    row.name = fields.text("name", name, max_length=100, required=False) or ""
    session.add(row)
    session.flush()
    return row


def get_calendar_day(*, session: Session, day: date) -> CalendarDay:
    row = session.get(CalendarDay, day)
    if row is None:
        raise _not_found("calendar_day", day.isoformat())
    return row


def remove_calendar_day(*, session: Session, day: date) -> None:
    _one_at_a_time(session)  # as set_calendar_day
    session.delete(get_calendar_day(session=session, day=day))


def list_calendar_days(*, session: Session, start: date | None = None,
                       end: date | None = None) -> list[CalendarDay]:
    """Exceptions to the working week in date order, optionally from `start` to `end` inclusive."""
    query = select(CalendarDay).order_by(CalendarDay.day)
    if start is not None:
        query = query.where(CalendarDay.day >= start)
    if end is not None:
        query = query.where(CalendarDay.day <= end)
    return list(session.scalars(query))


def add_duty_desk(*, session: Session, user_id: Any = None, community_code: Any = None) -> DutyDesk:
    """Put a grid-manager account on a community's duty desk, the last resort of routing."""
    user = _referenced_user(session, "user_id", user_id, "grid_manager", active=True)
    community_code = fields.area(session, "community_code", community_code, ("community",))
    _one_at_a_time(session)
    if session.scalar(select(DutyDesk.id).where(DutyDesk.user_id == user.id,
                                                DutyDesk.community_code == community_code)):
        raise ApiError(409, "already_on_desk", f"{user.username} already staffs {community_code}",
                       {"field": "user_id"})
    row = DutyDesk(user_id=user.id, community_code=community_code)
    session.add(row)
    session.flush()
    return row


def remove_duty_desk(*, session: Session, desk_id: int) -> None:
    row = session.get(DutyDesk, desk_id)
    if row is None:
        raise _not_found("duty_desk", desk_id)
    session.delete(row)


def list_duty_desks(*, session: Session, community_code: str | None = None) -> list[DutyDesk]:
    query = select(DutyDesk).order_by(DutyDesk.community_code, DutyDesk.user_id)
    if community_code:
        query = query.where(DutyDesk.community_code == community_code)
    return list(session.scalars(query))


# -- crews ---------------------------------------------------------------------------------


def _crew_name(session: Session, crew: Crew, value: Any) -> str:
    """A free crew name, in any mix of capitals: "Plumbers A" beside "plumbers a" would be
    two crews a manager picking from a list could not tell apart."""
    name = fields.text("name", value, max_length=100)
    hidden = hidden_character(name)
    if hidden is not None:  # "水电抢修\u200b一队" beside "水电抢修一队" (found by a people audit)
        raise bad_field("name", f"must not contain {hidden!r} (U+{ord(hidden):04X}): it does not show, "
                        "and the crew would look like another", reason="invalid")
    # Folded here, not in SQL: SQLite's lower() folds ASCII only ("Équipe" ≠ "équipe").
    taken = next((other for other in session.scalars(select(Crew.name).where(Crew.id != crew.id))
                  if other.casefold() == name.casefold()), None)
    if taken is not None:
        raise ApiError(409, "crew_name_taken", f"a crew is already called {taken!r}", {"field": "name"})
    return name


def _crew_checks(session: Session, crew: Crew) -> Checks:
    return {
        "name": lambda v: _crew_name(session, crew, v),
        "skills": lambda v: fields.skills("skills", v),
        "service_areas": lambda v: [fields.area(session, "service_areas", code, SERVICE_LEVELS)
                                    for code in dict.fromkeys(fields.items("service_areas", v, str))],
        "phone": lambda v: fields.phone("phone", v),
    }


def create_crew(*, session: Session, now: datetime, name: Any = None, skills: Any = None,
                service_areas: Any = None, status: Any = "available", members: Any = None,
                **values: Any) -> Crew:
    """A new crew: what it can fix (skills), where it works (area codes), who is in it."""
    _one_at_a_time(session)
    crew = Crew()
    _apply(crew, {"name": name, "skills": [] if skills is None else skills,
                  "service_areas": [] if service_areas is None else service_areas, **values},
           _crew_checks(session, crew), "crew")
    session.add(crew)
    set_crew_status(crew=crew, status=status, now=now)
    session.flush()
    if members is not None:
        set_crew_members(session=session, crew=crew, members=members)
    return crew


def update_crew(*, session: Session, crew: Crew, now: datetime, **changes: Any) -> Crew:
    """Change some of a crew's fields; `members` replaces its member list."""
    _one_at_a_time(session)
    if "status" in changes:
        set_crew_status(crew=crew, status=changes.pop("status"), now=now)
    if "members" in changes:
        set_crew_members(session=session, crew=crew, members=changes.pop("members"))
    _apply(crew, changes, _crew_checks(session, crew), "crew")
    return crew


def set_crew_status(*, crew: Crew, status: Any = None, now: datetime) -> Crew:
    """Available, busy or off; becoming available starts the idle time used to rank crews."""
    status = fields.choice("status", status, CREW_STATUSES)
    if status == "available" and (crew.status != "available" or crew.idle_since is None):
        crew.idle_since = now
    crew.status = status
    return crew


def set_crew_members(*, session: Session, crew: Crew, members: Any) -> list[User]:
    """Make exactly these crew accounts (user ids) the crew's members."""
    users = [_referenced_user(session, "members", user_id, "crew")
             for user_id in dict.fromkeys(fields.items("members", members, int))]
    for user in list_users(session=session, crew_id=crew.id):
        user.crew_id = None
    for user in users:
        user.crew_id = crew.id
    session.flush()
    return users


def report_crew_position(*, crew: Crew, lon: Any = None, lat: Any = None, crs: Any = None,
                         now: datetime) -> Crew:
    """Store where a crew's tablet says it is, converted to WGS84 from GCJ-02 or BD-09."""
    lon, lat = fields.number("lon", lon), fields.number("lat", lat)
    try:
        wgs_lon, wgs_lat = to_wgs84(lon, lat, crs)
    except ValueError as exc:
        message = str(exc)
        field = "crs" if "crs" in message else ("lon" if "longitude" in message else "lat")
        raise bad_field(field, message) from None
    crew.lon, crew.lat, crew.position_at = float(wgs_lon), float(wgs_lat), now
    return crew


def get_crew(*, session: Session, crew_id: int) -> Crew:
    crew = session.get(Crew, crew_id)
    if crew is None:
        raise _not_found("crew", crew_id)
    return crew


def list_crews(*, session: Session, status: str | None = None, skill: str | None = None,
               crew_id: int | None = None, area: str | None = None,
               chain_of: Callable[[str], dict[str, str | None]] | None = None) -> list[Crew]:
    """Crews in id order, optionally only one status, one skill, one crew, or those serving
    `area` (`chain_of` gives an area's chain up to the district)."""
    query = select(Crew).order_by(Crew.id)
    if status is not None:
        query = query.where(Crew.status == fields.choice("status", status, CREW_STATUSES))
    if crew_id is not None:
        query = query.where(Crew.id == crew_id)
    crews = list(session.scalars(query))
    # Skills and service areas are JSON lists; filtering here keeps the query the same on
    # SQLite and PostgreSQL.
    return [c for c in crews if (skill is None or skill in (c.skills or ()))
            and (area is None or serves(c, area, chain_of))]


def serves(crew: Crew, area: str, chain_of: Callable[[str], dict[str, str | None]]) -> bool:
    """Whether a crew works in `area`: a service area at or under it (a street's crew works
    in its district) or above it (a district-wide crew works in every street and grid).
    A board of `area` shows these crews, and its live room hears them (`live.crew_rooms`)."""
    try:
        around = {code for code in chain_of(area).values() if code}
    except KeyError:  # an area no longer on the map
        around = {area}
    return any(code in around for code in crew.service_areas or ()) or area in areas_watching(crew, chain_of)


def areas_watching(crew: Crew, chain_of: Callable[[str], dict[str, str | None]]) -> set[str]:
    """Each of a crew's service areas and every area above one, up to the district
    (`chain_of` gives an area's chain): the areas a crew works in by being under them."""
    watching: set[str] = set()
    for code in crew.service_areas or ():
        try:
            watching.update(above for above in chain_of(code).values() if above)
        except KeyError:  # a service area no longer on the map
            watching.add(code)
    return watching


# -- categories ----------------------------------------------------------------------------

CATEGORY_DEFAULTS: dict[str, Any] = {
    "skill": None, "priority": "normal", "needs_crew": True, "acknowledge_minutes": 30,
    "arrive_minutes": 240, "resolve_minutes": 1440, "verify_minutes": 1440,
    "clock_kind": "service_hours", "icon": "", "active": True,
}
CATEGORY_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")  # fullmatch


def _minutes(field: str) -> Callable[[Any], int]:
    return lambda v: fields.integer(field, v, low=1, high=MAX_MINUTES)


CATEGORY_CHECKS: Checks = {
    "name_zh": lambda v: fields.text("name_zh", v, max_length=64),
    "name_en": lambda v: fields.text("name_en", v, max_length=64),
    "skill": lambda v: None if v is None else fields.skills("skill", [v])[0],
    "priority": lambda v: fields.choice("priority", v, PRIORITIES),
    "needs_crew": lambda v: fields.flag("needs_crew", v),
    **{f"{phase}_minutes": _minutes(f"{phase}_minutes")
       for phase in ("acknowledge", "arrive", "resolve", "verify")},
    "clock_kind": lambda v: fields.choice("clock_kind", v, CLOCK_KINDS),
    "icon": lambda v: fields.text("icon", v, max_length=16, required=False) or "",
    "active": lambda v: fields.flag("active", v),
}


def _check_category(category: Category) -> None:
    if category.needs_crew and not category.skill:
        raise bad_field("skill", "a category that needs a crew needs the skill that fixes it")


def create_category(*, session: Session, code: Any = None, **values: Any) -> Category:
    """A new category; unset fields take the usual defaults (normal priority, service hours)."""
    code = fields.text("code", code, max_length=32)
    if not CATEGORY_CODE.fullmatch(code):
        raise bad_field("code", "lower-case letters, digits and _ only, starting with a letter")
    _one_at_a_time(session)
    if session.get(Category, code) is not None:
        raise ApiError(409, "category_exists", f"category {code!r} exists", {"field": "code"})
    for field in ("name_zh", "name_en"):
        if field not in values:
            raise bad_field(field, "is required")
    category = Category(code=code)
    _apply(category, {**CATEGORY_DEFAULTS, **values}, CATEGORY_CHECKS, "category")
    _check_category(category)
    session.add(category)
    session.flush()
    return category


def update_category(*, session: Session, code: str, **changes: Any) -> Category:
    """Change SLA minutes, priority, skill, whether a crew is needed, or retire it (active).
    The writers' lock first: its open incidents' deadlines and crews follow in the same
    transaction (under that lock), and the change itself writes the directory revision; taken
    in the other order, another admin write could hold one while waiting for the other."""
    _one_at_a_time(session)
    category = get_category(session=session, code=code)
    _apply(category, changes, CATEGORY_CHECKS, "category")
    _check_category(category)
    return category


def get_category(*, session: Session, code: str, fresh: bool = False) -> Category:
    """`fresh`: read again from the database, not taken from the session."""
    category = session.get(Category, code, populate_existing=fresh)
    if category is None:
        raise _not_found("category", code)
    return category


def list_categories(*, session: Session, include_inactive: bool = False) -> list[Category]:
    query = select(Category).order_by(Category.code)
    if not include_inactive:
        query = query.where(Category.active.is_(True))
    return list(session.scalars(query))
