"""Tables for people: users and their tokens, who manages which grid and when, and crews."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

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
