"""Tables of the SLA clock: when each incident must next be looked at, and who runs the clock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dispatch.incidents.models import Incident
from grids.store import Base, UtcDateTime


class SlaWatch(Base):
    """The worker's schedule, not incident state: the incident version it last evaluated and
    the next instant a threshold falls due. A changed version or a passed instant brings the
    incident back; losing the table only costs one evaluation of every open incident."""

    __tablename__ = "sla_watch"

    incident_id: Mapped[int] = mapped_column(Integer, ForeignKey("incidents.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    check_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    incident: Mapped[Incident] = relationship(lazy="raise")  # written after it (see IdempotencyKey)


class WorkerLease(Base):
    """Leadership of a background worker on SQLite (PostgreSQL uses an advisory lock)."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
