"""Metric tables: one fact row per incident and rollups of the facts per day, week and month.

A fact is what the metrics need of one incident (its phase durations, on-time flags,
outcome), kept current by `dispatch.metrics.record` on every event. A rollup cell sums the
facts of the incidents reported on one local day (span "D"), ISO week (span "W", from its
Monday) or month (span "M") in one grid and category: counters, duration sums and a sparse
log-scale histogram of each phase's durations. Each fact is counted in cells of three
kinds: "area" (crew and manager 0), "crew" (per crew, manager 0) and "manager" (per
manager, crew 0), so a table grouped by area, crew or manager reads only the cells it needs.
Key columns use "" and 0 for "none" so that the primary key is the same on SQLite and
PostgreSQL (NULLs are never equal in a key).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from grids.store import Base

if TYPE_CHECKING:
    from dispatch.incidents.models import Incident

PHASES = ("acknowledge", "arrive", "resolve", "verify")


class MetricFact(Base):
    """One incident as the metrics see it; durations in whole seconds."""

    __tablename__ = "metric_facts"
    __table_args__ = (Index("ix_metric_facts_day_grid", "day", "grid_code"),)

    incident_id: Mapped[int] = mapped_column(Integer, ForeignKey("incidents.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date)  # the local date it was reported
    grid_code: Mapped[str] = mapped_column(String(64), default="")
    community_code: Mapped[str] = mapped_column(String(64), default="")
    street_code: Mapped[str] = mapped_column(String(64), default="")
    district_code: Mapped[str] = mapped_column(String(64), default="")
    category_code: Mapped[str] = mapped_column(String(32))
    crew_id: Mapped[int] = mapped_column(Integer, default=0)
    manager_id: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    acknowledge_s: Mapped[int | None] = mapped_column(Integer)
    arrive_s: Mapped[int | None] = mapped_column(Integer)
    resolve_s: Mapped[int | None] = mapped_column(Integer)
    verify_s: Mapped[int | None] = mapped_column(Integer)
    acknowledge_on_time: Mapped[bool | None] = mapped_column(Boolean)
    arrive_on_time: Mapped[bool | None] = mapped_column(Boolean)
    resolve_on_time: Mapped[bool | None] = mapped_column(Boolean)
    verify_on_time: Mapped[bool | None] = mapped_column(Boolean)
    resolved_ever: Mapped[bool] = mapped_column(Boolean, default=False)
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[int | None] = mapped_column(Integer)
    incident: Mapped[Incident] = relationship(lazy="raise")  # written after it (see IdempotencyKey)


class MetricRollup(Base):
    """The sum of the facts of one cell: kind × span × period × grid × category (× crew or manager)."""

    __tablename__ = "metric_rollups"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # area, crew or manager
    span: Mapped[str] = mapped_column(String(1), primary_key=True)  # D(ay), W(eek) or M(onth)
    period: Mapped[date] = mapped_column(Date, primary_key=True)  # the first day of the span
    grid_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    category_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    crew_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manager_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_code: Mapped[str] = mapped_column(String(64), default="")
    street_code: Mapped[str] = mapped_column(String(64), default="")
    district_code: Mapped[str] = mapped_column(String(64), default="")
    n: Mapped[int] = mapped_column(Integer, default=0)  # reported (merged duplicates left out)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    resolved: Mapped[int] = mapped_column(Integer, default=0)  # resolved at least once
    reworked: Mapped[int] = mapped_column(Integer, default=0)
    rated: Mapped[int] = mapped_column(Integer, default=0)
    satisfied: Mapped[int] = mapped_column(Integer, default=0)  # rated 4 or 5
    first_fix: Mapped[int] = mapped_column(Integer, default=0)  # verified with no rework
    acknowledge_n: Mapped[int] = mapped_column(Integer, default=0)
    acknowledge_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    acknowledge_due_n: Mapped[int] = mapped_column(Integer, default=0)
    acknowledge_on_time: Mapped[int] = mapped_column(Integer, default=0)
    arrive_n: Mapped[int] = mapped_column(Integer, default=0)
    arrive_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    arrive_due_n: Mapped[int] = mapped_column(Integer, default=0)
    arrive_on_time: Mapped[int] = mapped_column(Integer, default=0)
    resolve_n: Mapped[int] = mapped_column(Integer, default=0)
    resolve_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    resolve_due_n: Mapped[int] = mapped_column(Integer, default=0)
    resolve_on_time: Mapped[int] = mapped_column(Integer, default=0)
    verify_n: Mapped[int] = mapped_column(Integer, default=0)
    verify_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    verify_due_n: Mapped[int] = mapped_column(Integer, default=0)
    verify_on_time: Mapped[int] = mapped_column(Integer, default=0)
    histogram: Mapped[bytes] = mapped_column(LargeBinary, default=b"")  # see metrics.histogram


COUNTERS = ("n", "closed", "resolved", "reworked", "rated", "satisfied", "first_fix") + tuple(
    f"{phase}_{part}" for phase in PHASES for part in ("n", "sum", "due_n", "on_time"))
KEY = ("kind", "span", "period", "grid_code", "category_code", "crew_id", "manager_id")
