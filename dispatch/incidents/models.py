"""Tables for incidents. The event rows are the truth; the incident row is their projection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from grids import LEVELS
from grids.store import Base, UtcDateTime

PRIORITIES = ("urgent", "high", "normal", "low")
CLOCK_KINDS = ("wall", "service_hours")
OPEN_STATUSES = ("reported", "assigned", "acknowledged", "dispatched", "en_route", "on_site")
CLOSED_STATUSES = ("resolved", "verified", "closed", "cancelled", "merged")
STATUSES = OPEN_STATUSES + CLOSED_STATUSES


class Category(Base):
    """What can be reported, who fixes it, how urgent it is and its SLA targets (minutes)."""

    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    skill: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    needs_crew: Mapped[bool] = mapped_column(Boolean, default=True)
    acknowledge_minutes: Mapped[int] = mapped_column(Integer, default=30)
    arrive_minutes: Mapped[int] = mapped_column(Integer, default=240)
    resolve_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    verify_minutes: Mapped[int] = mapped_column(Integer, default=1440)
    clock_kind: Mapped[str] = mapped_column(String(16), default="service_hours")
    icon: Mapped[str] = mapped_column(String(16), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def auto_dispatch(self) -> bool:
        """Urgent repairs go straight to the best crew; others wait for the manager's choice."""
        return self.needs_crew and self.priority == "urgent"


class Incident(Base):
    """The current state of one report, projected from its events."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_status_grid", "status", "grid_code"),
        Index("ix_incidents_lonlat", "lon", "lat"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    tracking_hash: Mapped[str] = mapped_column(String(64), unique=True)
    category_code: Mapped[str] = mapped_column(String(32), ForeignKey("categories.code"), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    locate_method: Mapped[str] = mapped_column(String(16))
    unit_code: Mapped[str | None] = mapped_column(String(64))
    building_code: Mapped[str | None] = mapped_column(String(64), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(64), index=True)
    community_code: Mapped[str | None] = mapped_column(String(64), index=True)
    street_code: Mapped[str | None] = mapped_column(String(64), index=True)
    district_code: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # resident | operator | patrol
    reporter_name: Mapped[str | None] = mapped_column(String(64))
    reporter_phone: Mapped[str | None] = mapped_column(String(32), index=True)
    reporter_user_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"))
    client_key: Mapped[str | None] = mapped_column(String(64), index=True)
    manager_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"), index=True)
    crew_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("crews.id"), index=True)
    recommended_crew_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("crews.id"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    sla_state: Mapped[str] = mapped_column(String(8), default="green")
    duplicate_of_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("incidents.id"))
    suspected_duplicate_of_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("incidents.id"))
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    en_route_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    on_site_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledge_due: Mapped[datetime | None] = mapped_column(UtcDateTime)
    arrive_due: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_due: Mapped[datetime | None] = mapped_column(UtcDateTime)
    verify_due: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # SLA (dispatch/sla): a paused incident's clocks stand still; breach steps already taken
    # per phase, as {phase: {"due": ISO time, "steps": n}}, so no step is taken twice.
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pause_reason: Mapped[str | None] = mapped_column(String(500))
    sla_marks: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    @property
    def area_chain(self) -> dict[str, str | None]:
        """The areas it lies in as they stand, district first (the shape locate answers)."""
        return {level: getattr(self, f"{level}_code") for level in LEVELS}


class IncidentEvent(Base):
    """One change to an incident. `seq` is global and strictly increasing across all incidents."""

    __tablename__ = "incident_events"
    # One event per version of an incident: a second change made from the same version is
    # refused by the database too, whatever the code in front of it does.
    __table_args__ = (Index("uq_incident_events_incident_version", "incident_id", "version", unique=True),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer, ForeignKey("incidents.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("users.id"))
    actor_role: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Written with Core after each flush, in append order (events._write_events).


class EventRoom(Base):
    """Who may see an event: one row per room it was pushed to (area:<code>, manager:<id>,
    crew:<id>, incident:<id>, all). Live push and replay after reconnect both read these,
    so a client never gets in a replay what it could not have seen live, nor misses it."""

    __tablename__ = "event_rooms"
    __table_args__ = (Index("ix_event_rooms_room_seq", "room", "seq"),)  # replay: a room's events after a seq

    seq: Mapped[int] = mapped_column(Integer, ForeignKey("incident_events.seq"), primary_key=True)
    room: Mapped[str] = mapped_column(String(80), primary_key=True)


class IdempotencyKey(Base):
    """The first answer to a report or action sent with an Idempotency-Key, replayed on retries
    (kept a day: see service.forget_old_keys)."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    incident_id: Mapped[int] = mapped_column(Integer, ForeignKey("incidents.id"))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # Never read through (lazy="raise"): declared so that a flush writes a new incident
    # before its key. The ORM orders inserts by relationships, not by foreign keys.
    incident: Mapped[Incident] = relationship(lazy="raise")
