"""The event log: every change to an incident is an event; the incident row is their projection.

An event's `data` holds the incident fields it changes (plus explanation such as reason
codes, which are not projected). `apply` is the only code that moves the projection, for
live writes and for rebuilding from the log alike, so the two cannot disagree.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.orm import Session

from dispatch.incidents.models import EventRoom, Incident, IncidentEvent
from dispatch.metrics import record as metrics

# Event type -> (status it moves to, timestamp column it stamps). None: status unchanged.
TRANSITIONS: dict[str, tuple[str | None, str | None]] = {
    "reported": ("reported", "created_at"),
    "assigned": ("assigned", "assigned_at"),
    "acknowledged": (None, "acknowledged_at"),  # status set in data: auto-dispatched work stays dispatched
    "dispatched": ("dispatched", "dispatched_at"),
    "en_route": ("en_route", "en_route_at"),
    "on_site": ("on_site", "on_site_at"),
    "resolved": ("resolved", "resolved_at"),
    "verified": ("verified", "verified_at"),
    "closed": ("closed", "closed_at"),
    "cancelled": ("cancelled", "cancelled_at"),
    "merged": ("merged", "closed_at"),
    "reassigned": ("assigned", "assigned_at"),
    "handed_over": (None, None),  # to another manager, its manager having left routing
    "crew_withdrawn": (None, None),  # back to its manager, its crew left with nobody: status in data
    "rework": (None, None),
    "rated": (None, None),
    "escalated": (None, None),
    "crew_recommended": (None, None),
    "duplicate_suspected": (None, None),
    "sla_changed": (None, None),
    "paused": (None, None),
    "resumed": (None, None),
    "duplicate_merged": (None, None),
    "deadlines_moved": (None, None),
}
_ALL_COLUMNS = [c.key for c in inspect(Incident).mapper.column_attrs]
_COLUMNS = set(_ALL_COLUMNS) - {"id", "version", "updated_at"}  # what an event's data may set
_TIME_COLUMNS = {key for key in _ALL_COLUMNS if key.endswith(("_at", "_due"))}

# Serialises event appends on PostgreSQL until commit, so `seq` order is commit order:
# a reader that has seen seq N can never later meet a newly committed seq below N.
# SQLite has a single writer already.
EVENT_LOG_LOCK = 0x67726964  # "grid"


def lock_event_log(session: Session) -> None:
    """Take the lock once per transaction (PostgreSQL frees it at commit or rollback)."""
    if holds_event_log(session):
        return
    # Without autoflush: nothing of this transaction needs to reach the database first,
    # and the events appended after the lock get their seq when they are flushed.
    with session.no_autoflush:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOG_LOCK})
    session.info["event_log_locked_by"] = session.get_transaction()


def holds_event_log(session: Session) -> bool:
    """Whether this transaction may write events now (always on SQLite: one writer at a time)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    transaction = session.get_transaction()  # None until the session has begun one
    return transaction is not None and session.info.get("event_log_locked_by") is transaction


def to_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def rooms_of(incident: Incident) -> set[str]:
    """The live rooms that may see this incident as it stands."""
    rooms = {"all", f"incident:{incident.id}"}
    for level in ("grid", "community", "street", "district"):
        code = getattr(incident, f"{level}_code")
        if code:
            rooms.add(f"area:{code}")
    if incident.manager_id:
        rooms.add(f"manager:{incident.manager_id}")
    if incident.crew_id:
        rooms.add(f"crew:{incident.crew_id}")
    return rooms


def apply(incident: Incident, event: IncidentEvent) -> None:
    """Move the projection by one event."""
    status, stamp = TRANSITIONS[event.type]
    if status:
        incident.status = status
    if stamp:
        setattr(incident, stamp, event.at)
    for key, value in event.data.items():
        if key in _COLUMNS:
            if key in _TIME_COLUMNS and isinstance(value, str):
                value = datetime.fromisoformat(value)
            setattr(incident, key, value)
    incident.version = event.version
    incident.updated_at = event.at


def append(
    session: Session,
    incident: Incident,
    type_: str,
    *,
    at: datetime,
    actor_id: int | None,
    actor_role: str,
    data: dict[str, Any] | None = None,
) -> IncidentEvent:
    """Record one event and apply it to the incident, inside the caller's transaction."""
    if type_ not in TRANSITIONS:
        raise ValueError(f"unknown event type {type_!r}")
    if inspect(incident).persistent:
        # Before the incident is read any further: whoever changes an existing incident
        # takes the log first and its row second, as every writer does (no deadlock).
        lock_event_log(session)
    # A new incident's row is this transaction's alone: its events wait for the lock until
    # commit (_write_events_last), so the lock is held only for the last few statements.
    # Whoever could see the incident before the change or after it sees the change:
    # the old grid and manager learn of a reassignment, the old crew of a redispatch.
    rooms = rooms_of(incident) if incident.id is not None and incident.version else set()
    event = IncidentEvent(
        incident_id=incident.id,
        type=type_,
        at=at,
        actor_id=actor_id,
        actor_role=actor_role,
        version=(incident.version or 0) + 1,
        data={k: to_json(v) for k, v in (data or {}).items()},
    )
    apply(incident, event)
    rooms |= rooms_of(incident)
    # Not written here: the transaction's events go to the database at its next flush, in
    # the order they were appended, which is the order their seq numbers are handed out
    # (_write_events). The incident they moved is dirty, so that flush comes.
    session.info.setdefault("events_pending", []).append((event, sorted(rooms), incident))
    # Metrics hook: keep the incident's metric fact and its rollup cells in step with the log.
    metrics.record(session, incident, event)
    session.info["events_appended"] = True  # after commit, live push is woken (dispatch.live)
    return event


@sa_event.listens_for(Session, "before_flush")
def _lock_before_shared_rows(session: Session, _context, _instances) -> None:
    """A transaction whose events still wait for the lock (a new report's) takes it before a
    flush that changes rows other writers share (the crew an urgent report sends): the log
    first, the row second, as every writer does, or two could each hold what the other
    waits for. New rows are the transaction's own and need no lock."""
    if session.info.get("events_pending") and (session.dirty or session.deleted):
        lock_event_log(session)


@sa_event.listens_for(Session, "after_flush")
def _write_events(session: Session, _context) -> None:
    """The events appended since the last flush, then their rooms, as Core inserts after the
    ORM has written the incidents they belong to: a report's four events and some thirty
    rooms cost more as ORM objects (bookkeeping per object) than the database work."""
    if holds_event_log(session):
        _insert_pending(session)
    # else only new incidents' events so far: written at commit, under the lock


@sa_event.listens_for(Session, "before_commit", insert=True)  # before the metrics' rollups
def _write_events_last(session: Session) -> None:
    """Events still waiting for the lock: write every row they refer to first, then take the
    lock and write them. The rollups (dispatch.metrics.record) follow, still under the lock."""
    if not session.info.get("events_pending") or holds_event_log(session):
        return
    session.flush()
    _insert_pending(session)  # takes the lock in the same statement


def _insert_pending(session: Session) -> None:
    pending = session.info.pop("events_pending", None)
    if not pending:
        return
    connection = session.connection()
    rows = [{"incident_id": e.incident_id, "type": e.type, "at": e.at, "actor_id": e.actor_id,
             "actor_role": e.actor_role, "version": e.version, "data": e.data} for e, _, _ in pending]
    if connection.dialect.name == "postgresql":
        # The lock and the events in one round trip, and the rooms in one more: these are
        # the statements every other report waits for. Taking the lock again is harmless.
        payload = json.dumps([{**row, "at": row["at"].isoformat(), "n": n} for n, row in enumerate(rows)],
                             ensure_ascii=False)
        returned = connection.execute(_insert_events_postgresql(), {"key": EVENT_LOG_LOCK, "events": payload})
        seq_of = {(incident_id, version): seq for seq, incident_id, version in returned}
        for event, _, _ in pending:
            event.seq = seq_of[(event.incident_id, event.version)]
        session.info["event_log_locked_by"] = session.get_transaction()
        pairs = [(event.seq, room) for event, rooms, _ in pending for room in rooms]
        connection.execute(_insert_rooms_postgresql(), {"seqs": [seq for seq, _ in pairs],
                                                         "rooms": [room for _, room in pairs]})
    else:
        table = IncidentEvent.__table__
        seqs = connection.execute(insert(table).returning(table.c.seq, sort_by_parameter_order=True),
                                  rows).scalars().all()
        for (event, _, _), seq in zip(pending, seqs, strict=True):
            event.seq = seq
        connection.execute(insert(EventRoom.__table__), [
            {"seq": event.seq, "room": room} for event, rooms, _ in pending for room in rooms])
    # Kept, with their seqs, for live push once the transaction commits (dispatch.live: a
    # tailer need not read back what was handed to it).
    session.info.setdefault("events_written", []).extend(pending)


@functools.cache
def _insert_events_postgresql():
    """Take the event-log lock, then insert the events in append order (seq handed out in
    that order); each comes back as (seq, incident, version), which is unique per event."""
    return text(
        "INSERT INTO incident_events (incident_id, type, at, actor_id, actor_role, version, data) "
        "SELECT e.incident_id, e.type, e.at, e.actor_id, e.actor_role, e.version, e.data "
        "FROM (SELECT pg_advisory_xact_lock(:key)) AS locked "
        "CROSS JOIN json_to_recordset(CAST(:events AS json)) AS e(n integer, incident_id integer, "
        "type varchar, at timestamptz, actor_id integer, actor_role varchar, version integer, data json) "
        "ORDER BY e.n RETURNING seq, incident_id, version")


@functools.cache
def _insert_rooms_postgresql():
    return text("INSERT INTO event_rooms (seq, room) "
                "SELECT * FROM unnest(CAST(:seqs AS integer[]), CAST(:rooms AS varchar[]))")


@sa_event.listens_for(Session, "after_begin")
def _forget_written(session: Session, _transaction, _connection) -> None:
    session.info.pop("events_written", None)  # a session no live push watches (a CLI's, say)


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_events(session: Session, _previous) -> None:
    session.info.pop("events_pending", None)
    session.info.pop("events_written", None)


def incident_to_json(incident: Incident) -> dict[str, Any]:
    """The projection as JSON (for another process; incident_from_json reads it back)."""
    return {key: to_json(getattr(incident, key)) for key in _ALL_COLUMNS}


def incident_from_json(columns: dict[str, Any]) -> Incident:
    """A detached incident from incident_to_json's output."""
    return Incident(**{key: datetime.fromisoformat(value) if value is not None and key in _TIME_COLUMNS
                       else value for key, value in columns.items() if key in _ALL_COLUMNS})


def event_to_json(event: IncidentEvent) -> dict[str, Any]:
    return {"seq": event.seq, "incident_id": event.incident_id, "type": event.type,
            "at": event.at.isoformat(), "actor_id": event.actor_id, "actor_role": event.actor_role,
            "version": event.version, "data": event.data}


def event_from_json(fields: dict[str, Any]) -> IncidentEvent:
    return IncidentEvent(**{**fields, "at": datetime.fromisoformat(fields["at"])})


def project(events: Iterable[IncidentEvent]) -> Incident:
    """A fresh incident built from its events alone (not added to any session)."""
    incident = Incident()
    for event in events:
        if incident.id is None:
            incident.id = event.incident_id
        apply(incident, event)
    return incident


def events_of(session: Session, incident_id: int) -> list[IncidentEvent]:
    """An incident's timeline, oldest first."""
    return list(
        session.scalars(
            select(IncidentEvent).where(IncidentEvent.incident_id == incident_id).order_by(IncidentEvent.seq)
        )
    )
