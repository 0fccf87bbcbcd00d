"""Tables for people: users and their tokens, who manages which grid and when, and crews."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Time,
    UniqueConstraint,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.dml import UpdateBase

from grids.store import Base, UtcDateTime

ROLES = ("resident", "operator", "grid_manager", "crew", "committee", "admin")
CREW_STATUSES = ("available", "busy", "off")


class Crew(Base):
    """A repair crew: what it can fix, where it works, where it is, whether it is free."""

    __tablename__ = "crews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    service_areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="available")
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    position_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    idle_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    phone: Mapped[str | None] = mapped_column(String(32))


class User(Base):
    """Anyone who signs in. A committee member's or operator's reach is `scope_area_code`."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    phone: Mapped[str | None] = mapped_column(String(32))
    scope_area_code: Mapped[str | None] = mapped_column(String(64), ForeignKey("areas.code"))
    crew_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("crews.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, so a database leak does not leak sessions."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SignInFailure(Base):
    """A wrong username or password, counted to slow down guessing (dispatch.people.auth)."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)  # as typed, cut to 64
    client_key: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class GridAssignment(Base):
    """A grid manager's grid, as its primary or backup manager."""

    __tablename__ = "grid_assignments"
    __table_args__ = (UniqueConstraint("user_id", "grid_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(64), ForeignKey("areas.code"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="primary")


class WeeklyShift(Base):
    """One span of a manager's weekly hours; a manager without any works the default."""

    __tablename__ = "weekly_shifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start: Mapped[time] = mapped_column(Time)
    end: Mapped[time] = mapped_column(Time)


class OnCallShift(Base):
    """The rota outside service hours: who answers for a grid or a whole community, when."""

    __tablename__ = "on_call_shifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    area_code: Mapped[str] = mapped_column(String(64), ForeignKey("areas.code"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CalendarDay(Base):
    """An exception to the working week: a public holiday, or a weekend worked (调休)."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "holiday" | "workday"
    name: Mapped[str] = mapped_column(String(100), default="")


class DutyDesk(Base):
    """Who staffs a community's duty desk: the last resort when no grid manager can be found."""

    __tablename__ = "duty_desks"
    __table_args__ = (UniqueConstraint("user_id", "community_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    community_code: Mapped[str] = mapped_column(String(64), ForeignKey("areas.code"), index=True)


def public_user(user: User) -> dict[str, Any]:
    """What anyone signed in may know of a user."""
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "role": user.role}


class DirectoryRevision(Base):
    """Moves with every write to the tables routing reads (see `dispatch.people.roster`)."""

    __tablename__ = "directory_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


# What routing reads through the roster. Crews are not among them: their status and load
# change with every dispatch, so routing reads them fresh each time.
DIRECTORY_TABLES = frozenset({
    User.__tablename__, GridAssignment.__tablename__, WeeklyShift.__tablename__,
    OnCallShift.__tablename__, DutyDesk.__tablename__, CalendarDay.__tablename__,
    "categories",  # what can be reported and its SLA targets: every report reads them too
})


def directory_revision(session: Session) -> int:
    """The directory revision now committed (0 before any change)."""
    return session.scalar(select(DirectoryRevision.revision).where(DirectoryRevision.id == 1)) or 0


@event.listens_for(Engine, "before_execute")
def _directory_changed(connection, statement, multiparams, params, execution_options) -> None:
    """Move the directory revision in the same transaction as any write to its tables.

    Hooked on every engine, below the ORM: ORM flushes, bulk and Core statements all pass
    here, so no write path can forget it.
    """
    if not isinstance(statement, UpdateBase):
        return
    table = getattr(statement, "table", None)
    if table is None or getattr(table, "name", None) not in DIRECTORY_TABLES:
        return
    revisions = DirectoryRevision.__table__
    moved = connection.execute(
        update(revisions).where(revisions.c.id == 1).values(revision=revisions.c.revision + 1)
    ).rowcount
    if not moved:  # a database made before the row existed
        connection.execute(insert(revisions).values(id=1, revision=1))
