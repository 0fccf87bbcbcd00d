"""Incident use cases for the API: submit (idempotent), list, get, act, track."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch.errors import ApiError, bad_field, id_number
from dispatch.incidents import events as event_log
from dispatch.incidents.access import (
    PHONE_SEARCH_ROLES,
    can_see,
    check_may_search_phone,
    in_area,
    visible,
)
from dispatch.incidents.flows import Context
from dispatch.incidents.intake import check_rate_limits, check_report, record_report
from dispatch.incidents.lifecycle import perform
from dispatch.incidents.merges import original_of
from dispatch.incidents.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    STATUSES,
    IdempotencyKey,
    Incident,
)
from dispatch.incidents.views import IncidentViews, resident_answer, resident_event, resident_view
from dispatch.people import fields
from dispatch.people.auth import token_digest
from dispatch.people.models import User

KEY_RETENTION = timedelta(days=1)  # how long a retry with the same Idempotency-Key is answered


def _request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def submit(ctx: Context, payload: Any, *, reporter: User | None, client_key: str,
           views: IncidentViews) -> dict[str, Any]:
    """Check, locate, record and route a new report; the answer the reporter gets."""
    report = check_report(ctx, payload)
    resident = reporter is None or reporter.role == "resident"
    if resident:
        check_rate_limits(ctx, client_key=client_key, phone=report.reporter_phone)
    incident, token = record_report(ctx, report, reporter=reporter, client_key=client_key)
    body = resident_answer(views, incident) if resident else views.incident(incident)
    body["tracking_token"] = token
    body["tracking_url"] = f"/track/{token}"
    return body


def submit_once(ctx: Context, payload: Any, *, key: str | None, reporter: User | None,
                client_key: str, views: IncidentViews) -> tuple[dict[str, Any], bool]:
    """`submit` honouring an Idempotency-Key: a retry (even a concurrent one) gets the first answer.

    Returns the body and whether it was replayed. The key is bound to whose view the answer is as
    well as to the report (an operator's shows the caller's whole phone): another caller who
    learnt the key gets a 422, not that answer. Call-takers share one view, so another operator
    carrying on a call kept on the device gets the first answer.
    """
    viewer = None if reporter is None else "call-taker" if reporter.role in PHONE_SEARCH_ROLES else reporter.id
    request_hash = _request_hash({"viewer": viewer, "report": payload})
    return _once(ctx, key, request_hash,
                 lambda: submit(ctx, payload, reporter=reporter, client_key=client_key, views=views))


def act_once(ctx: Context, user: User, incident_ref: str, body: Any, *, key: str | None,
             views: IncidentViews) -> tuple[dict[str, Any], bool]:
    """`act` honouring an Idempotency-Key, and committed: when a tablet's answer is lost the
    retry gets the first answer, not a 409 for its own change.

    The key is bound to the user, the incident and the body, so it can replay only what
    this same request did.
    """
    request_hash = _request_hash({"user": user.id, "incident": incident_ref, "action": body})

    def action() -> dict[str, Any]:
        return views.incident(act(ctx, user, incident_ref, body))

    try:
        return _once(ctx, key, request_hash, action)
    except ApiError as error:
        # A twin sent while this one was still being answered may have won the version:
        # its key is then stored, and its answer is this request's answer too.
        if not key or error.status != 409:
            raise
        ctx.session.rollback()
        replay = _replay(ctx.session, key, request_hash)
        if replay is None:
            raise
        return replay, True


def _once(ctx: Context, key: str | None, request_hash: str,
          produce: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Run `produce` and commit, or replay the answer stored under `key`; the answer is stored
    in the same transaction as the change it describes, so there is never one without the other."""
    if key is not None and not (1 <= len(key) <= 128 and key.isprintable()):
        raise bad_field("Idempotency-Key", "must be 1 to 128 printable characters")
    db = ctx.session
    if key:
        replay = _replay(db, key, request_hash)
        if replay is not None:
            return replay, True
    body = produce()
    if not key:
        db.commit()
        return body, False
    db.add(IdempotencyKey(key=key, incident_id=body["id"], request_hash=request_hash,
                          response=body, created_at=ctx.now))
    try:
        db.commit()  # the key's primary key makes a concurrent twin fail here, whole
    except IntegrityError:
        db.rollback()
        replay = _replay(db, key, request_hash)
        if replay is None:
            raise
        return replay, True
    return body, False


def forget_old_keys(db: Session, now: datetime) -> int:
    """Forget the answers stored under Idempotency-Keys older than KEY_RETENTION; how many.

    Every staff tap stores one (a whole incident view), so kept for ever the table would
    grow by megabytes a day; a day is long past any client's retries. A key is free for a
    new request once forgotten."""
    forgotten = db.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEY_RETENTION))
    return forgotten.rowcount or 0


def _replay(db: Session, key: str, request_hash: str) -> dict[str, Any] | None:
    stored = db.get(IdempotencyKey, key)
    if stored is None:
        return None
    if stored.request_hash != request_hash:
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used for a different request",
                       {"field": "Idempotency-Key"})
    return stored.response


def get_visible(db: Session, user: User, incident_ref: str) -> Incident:
    """An incident by id or public id: 404 if there is none, 403 if it is outside the user's scope."""
    incident = _find(db, incident_ref)
    if not can_see(db, user, incident):
        raise ApiError(403, "out_of_scope", f"incident {incident.public_id} is outside your area",
                       {"incident": incident.public_id})
    return incident


def _find(db: Session, incident_ref: str, *, fresh: bool = False) -> Incident:
    number = id_number(incident_ref)
    incident = db.get(Incident, number, populate_existing=fresh) if number is not None else None
    if incident is None:
        incident = db.scalar(select(Incident).where(Incident.public_id == incident_ref)
                             .execution_options(populate_existing=fresh))
    if incident is None:
        raise ApiError(404, "incident_not_found", f"no incident {incident_ref!r}",
                       {"incident": incident_ref})
    return incident


def _find_to_change(db: Session, incident_ref: str) -> Incident:
    """The incident as the last writer left it, for an action to check its version against.

    The event-log lock first (every writer of an existing incident takes it before reading
    it), then the row read afresh: so two actions sent at once with the same
    expected_version cannot both pass the check, one of them gets the 409. Read before
    the lock, both did on PostgreSQL, and the log got two events at one version."""
    event_log.lock_event_log(db)
    return _find(db, incident_ref, fresh=True)


def act(ctx: Context, user: User, incident_ref: str, body: Any) -> Incident:
    """Take one lifecycle action; the caller commits."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    action = body.get("action")
    if action is None or action == "":
        raise bad_field("action", "is required")
    if not isinstance(action, str):
        raise bad_field("action", f"must be the name of an action, got {str(action)[:40]!r}")
    incident = _find_to_change(ctx.session, incident_ref)
    perform(ctx, incident, user=user, action=action, params=body,
            expected_version=body.get("expected_version"))
    return incident


def by_tracking_token(db: Session, token: str, *, fresh: bool = False) -> Incident:
    """The incident a reporter's token opens; a merged report follows its original."""
    incident = db.scalar(select(Incident).where(Incident.tracking_hash == token_digest(token))
                         .execution_options(populate_existing=fresh))
    if incident is None:
        raise ApiError(404, "unknown_tracking_token", "no report has this tracking token")
    return incident


def track(db: Session, token: str, views: IncidentViews) -> dict[str, Any]:
    """The reporter's view: its incident (or the original it was merged into) and the timeline."""
    incident = by_tracking_token(db, token)
    shown = original_of(db, incident)
    body = resident_view(views, shown)
    body["your_report"] = incident.public_id
    body["events"] = [resident_event(views.event(e, shown)) for e in event_log.events_of(db, shown.id)]
    return body


def rate_by_resident(ctx: Context, token: str, body: Any) -> Incident:
    """The resident's satisfaction rating (回访) through the tracking token."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    event_log.lock_event_log(ctx.session)  # before reading it, as in _find_to_change
    incident = by_tracking_token(ctx.session, token, fresh=True)
    perform(ctx, incident, user=None, action="rate", params=body,
            expected_version=body.get("expected_version", incident.version), resident=True)
    return incident


def list_visible(db: Session, user: User, filters: dict[str, Any], *, limit: int, offset: int
                 ) -> tuple[list[Incident], int]:
    """A page of the incidents this user may see that match the filters, newest first."""
    conditions = []
    scope = visible(db, user)
    if scope is not None:
        conditions.append(scope)
    status = filters.get("status")
    if status:
        wanted = status.split(",")
        unknown = [s for s in wanted if s not in STATUSES]
        if unknown:
            raise bad_field("status", f"unknown status {unknown[0]!r}; one of {', '.join(STATUSES)}")
        conditions.append(Incident.status.in_(wanted))
    if filters.get("open") is not None:
        conditions.append(Incident.status.in_(OPEN_STATUSES if filters["open"] else CLOSED_STATUSES))
    if filters.get("area"):
        conditions.append(in_area(filters["area"]))
    if filters.get("category"):
        conditions.append(Incident.category_code == filters["category"])
    if filters.get("assignee") is not None:
        conditions.append(Incident.manager_id == filters["assignee"])
    if filters.get("mine"):
        conditions.append(Incident.crew_id == user.crew_id if user.role == "crew"
                          else Incident.manager_id == user.id)
    if filters.get("from"):
        conditions.append(Incident.created_at >= filters["from"])
    if filters.get("to"):
        conditions.append(Incident.created_at < filters["to"])
    if (filters.get("phone") or "").strip():  # like the other filters, empty is no filter
        check_may_search_phone(user)
        conditions.append(Incident.reporter_phone == fields.caller_phone("phone", filters["phone"]))
    if filters.get("bbox"):
        min_lon, min_lat, max_lon, max_lat = filters["bbox"]
        conditions.append(and_(Incident.lon.between(min_lon, max_lon), Incident.lat.between(min_lat, max_lat)))
    where = and_(*conditions) if conditions else None
    query = select(Incident)
    count = select(func.count()).select_from(Incident)
    if where is not None:
        query, count = query.where(where), count.where(where)
    total = db.scalar(count) or 0
    page = db.scalars(query.order_by(Incident.created_at.desc(), Incident.id.desc())
                      .limit(limit).offset(offset)).all()
    return list(page), total


def timeline(db: Session, user: User, incident_ref: str, views: IncidentViews) -> list[dict[str, Any]]:
    incident = get_visible(db, user, incident_ref)
    return [views.shown_event(e, incident) for e in event_log.events_of(db, incident.id)]


def rebuild_projection(db: Session, incident_id: int) -> Incident:
    """The incident as its events alone describe it (for audits and tests)."""
    return event_log.project(event_log.events_of(db, incident_id))


def parse_time(value: str | None, field: str) -> datetime | None:
    return fields.timestamp(field, value) if value else None
