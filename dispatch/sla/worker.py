"""The SLA clock: turns incidents amber and red and escalates breaches, as events.

One worker leads across processes (an advisory lock on PostgreSQL, a lease row on SQLite).
Each tick evaluates only the incidents that changed since they were last looked at or whose
next threshold has passed (the `sla_watch` schedule, which the intake fills in for a new
report), each in its own transaction together with its events. What was already done is
read from the projection (sla_state, escalation level, breach marks), so a restart, a
second worker or a repeated tick never repeats a step, and a worker that was down takes
every step it missed, in order.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import text

from dispatch.clock import Clock
from dispatch.db import Database
from dispatch.failures import Failures
from dispatch.incidents.events import lock_event_log
from dispatch.incidents.flows import Context
from dispatch.incidents.handover import (
    hand_over_stranded,
    stranded_managers,
    unstaffed_crews,
    withdraw_stranded,
)
from dispatch.incidents.models import Incident
from dispatch.incidents.service import forget_old_keys
from dispatch.people.auth import forget_old_sign_in_failures
from dispatch.people.roster import RosterCache
from dispatch.sla.calendar import coverage_warning
from dispatch.sla.models import WorkerLease
from dispatch.sla.schedule import due_for_evaluation, evaluate
from grids.store import IndexCache

log = logging.getLogger(__name__)

LEASE_NAME = "sla"
SLA_LOCK = 0x736C6121  # "sla!"


def run_once(*, db: Database, clock: Clock, tz: tzinfo, index_cache: IndexCache,
             roster_cache: RosterCache | None = None) -> dict[str, int]:
    """One tick: every incident whose next threshold has passed, each in its own transaction."""
    now = clock.now()
    totals = {"evaluated": 0, "sla_changed": 0, "escalated": 0, "handed_over": 0}
    with db.session() as session:
        index = index_cache.get(session)
        stranded, unstaffed = stranded_managers(session), unstaffed_crews(session)
    totals["handed_over"] = (hand_over_stranded(db, stranded, now=now, tz=tz, index=index)
                             + withdraw_stranded(db, unstaffed, now=now, tz=tz, index=index))
    with db.session() as session:
        ids = list(session.scalars(due_for_evaluation(now)))
        if not ids:
            return totals
        roster = (roster_cache or RosterCache()).get(session)  # calendar, and whom escalations notify
    for incident_id in ids:
        # Let requests in between incidents: inside `griddispatch serve` this loop shares one
        # gevent hub with the intake, and SQLite calls never yield on their own, so a tick of
        # a hundred new incidents would otherwise hold every report back for its whole run.
        time.sleep(0)
        with db.session() as session:
            # The event-log lock first, as every writer takes it (taking a row lock first
            # deadlocks against an action in flight). A racing worker waits here, then reads
            # the incident with this one's events applied and has nothing left to do.
            lock_event_log(session)
            incident = session.get(Incident, incident_id, populate_existing=True)
            done = evaluate(Context(session, now=now, tz=tz, index=index, roster=roster), incident)
        totals["evaluated"] += 1
        for key, count in done.items():
            totals[key] += count
    return totals


class Leadership:
    """Whether this process runs the clock: exactly one holder across processes."""

    def __init__(self, db: Database, *, holder: str | None = None, ttl_s: float = 30,
                 now=lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ttl = timedelta(seconds=ttl_s)
        self.now = now  # real time, even under a test clock: leases must expire
        self._connection = None

    def acquire(self) -> bool:
        """Take or keep the lead; False while another worker holds it."""
        if self.db.engine.dialect.name == "postgresql":
            return self._advisory_lock()
        with self.db.session() as session:
            lease = session.get(WorkerLease, LEASE_NAME)
            now = self.now()
            if lease is None:
                session.add(WorkerLease(name=LEASE_NAME, holder=self.holder, expires_at=now + self.ttl))
                return True
            if lease.holder != self.holder and lease.expires_at > now:
                return False
            lease.holder, lease.expires_at = self.holder, now + self.ttl
            return True

    def _advisory_lock(self) -> bool:
        # Held by a dedicated connection for as long as it leads; if that connection dies,
        # PostgreSQL frees the lock and another worker takes over.
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except Exception:
                self._drop_connection()
        connection = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": SLA_LOCK}):
            self._connection = connection
            return True
        connection.close()
        return False

    def _drop_connection(self) -> None:
        try:
            self._connection.invalidate()
        finally:
            self._connection = None

    def release(self) -> None:
        """Give up the lead so another worker can take it at once."""
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SLA_LOCK})
                self._connection.close()
            except Exception:
                self._drop_connection()  # a dead connection has lost the lock already
            self._connection = None
        elif self.db.engine.dialect.name != "postgresql":
            with self.db.session() as session:
                lease = session.get(WorkerLease, LEASE_NAME)
                if lease is not None and lease.holder == self.holder:
                    session.delete(lease)


class SlaWorker:
    """The clock of one app: a tick runs the SLA pass, and forgets day-old Idempotency-Keys,
    when this process leads."""

    def __init__(self, app: Flask, *, interval_s: float = 5, holder: str | None = None) -> None:
        self.db: Database = app.extensions["griddispatch.db"]
        self.clock: Clock = app.extensions["griddispatch.clock"]
        self.index_cache: IndexCache = app.extensions["griddispatch.index"]
        self.roster_cache: RosterCache = app.extensions["griddispatch.roster"]
        self.tz = ZoneInfo(app.config["GRIDDISPATCH_TZ"])
        self.interval_s = interval_s
        self.leadership = Leadership(self.db, holder=holder, ttl_s=max(30, 3 * interval_s))

    def tick(self) -> dict[str, Any]:
        if not self.leadership.acquire():
            return {"leader": False}
        totals = run_once(db=self.db, clock=self.clock, tz=self.tz, index_cache=self.index_cache,
                          roster_cache=self.roster_cache)
        with self.db.session() as session:
            totals["keys_forgotten"] = forget_old_keys(session, self.clock.now())
            totals["sign_in_failures_forgotten"] = forget_old_sign_in_failures(session, self.clock.now())
        return {"leader": True, **totals}


def run_forever(app: Flask, interval_s: float = 5, *, stop: threading.Event | None = None) -> None:
    """Tick every `interval_s` seconds until `stop` is set; a failed tick is logged and retried."""
    stop = stop or threading.Event()
    worker = SlaWorker(app, interval_s=interval_s)
    failures = Failures(log, "SLA tick")
    # In the app's context, as a request is: what reads the app's config (the metrics' time
    # zone) must read the same one here, not the environment's.
    context = app.app_context()
    context.push()
    said = None
    try:
        while not stop.is_set():
            # Each clock says it (once) when the coming year's holidays are unknown.
            warning = coverage_warning(worker.clock.now().astimezone(worker.tz).date())
            if warning and warning != said:
                log.warning("working calendar: %s", warning)
            said = warning
            try:
                result = worker.tick()
                failures.succeeded()
                if result.get("sla_changed") or result.get("escalated"):
                    log.info("SLA tick: %s", result)
            except Exception as exc:
                failures.failed(exc)
            stop.wait(interval_s)
    finally:
        try:
            worker.leadership.release()
        finally:
            context.pop()


def start_sla_worker(app: Flask, interval_s: float = 5):
    """Run the clock in this (gevent) server process as a greenlet."""
    import gevent

    return gevent.spawn(run_forever, app, interval_s)
