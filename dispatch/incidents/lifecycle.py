"""The lifecycle: which action is allowed from which state, and what each one records.

reported → assigned → acknowledged → dispatched → en_route → on_site → resolved → verified → closed,
plus cancelled, merged, reassignment, rework, rating and escalation (a level, not a state).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from dispatch.errors import MAX_ID, ApiError, a_or_an, bad_field, only_fields
from dispatch.incidents import events
from dispatch.incidents.access import can_see, check_may_act
from dispatch.incidents.flows import (
    ESCALATION_LEVELS,
    Context,
    area_codes,
    choose_for_grid,
    crew_changed,
    dispatch_crew,
    due,
    escalate,
    free_crew_if_idle,
    rank_afresh,
    route_manager,
)
from dispatch.incidents.merges import original_of
from dispatch.incidents.models import OPEN_STATUSES, Category, Incident, IncidentEvent
from dispatch.people.directory import crew_candidate
from dispatch.people.models import Crew, User
from dispatch.routing import unfit_for
from dispatch.sla.pause import resumed_deadlines
from dispatch.sla.state import Clock, Phase, caught_up, running_phases

ACTIONS = ("acknowledge", "dispatch", "en_route", "on_site", "resolve", "verify", "close",
           "cancel", "reassign", "merge", "rework", "rate", "escalate", "pause", "resume")
LOW_RATING = 2  # a rating at or below this reopens the incident as rework (回访不满意)

# The states each action may start from. Categories without a crew (a neighbour dispute)
# let the manager go on site and resolve without a dispatch.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "acknowledge": ("assigned", "dispatched", "en_route", "on_site"),
    "dispatch": ("assigned", "acknowledged", "dispatched", "en_route"),
    "en_route": ("dispatched",),
    "on_site": ("dispatched", "en_route"),
    "resolve": ("on_site",),
    "verify": ("resolved",),
    "close": ("verified",),
    "cancel": OPEN_STATUSES,
    "reassign": ("reported", "assigned", "acknowledged"),
    "merge": OPEN_STATUSES,
    "rework": ("resolved", "verified"),
    "rate": ("resolved", "verified", "closed"),
    "escalate": OPEN_STATUSES,
    "pause": (*OPEN_STATUSES, "resolved"),  # resolved: the verify clock runs
    "resume": (*OPEN_STATUSES, "resolved"),
}
# Every field an action's body may hold (`errors.only_fields`): a misspelt "crewid" would
# otherwise send the recommended crew, not the one the manager chose.
FIELDS = ("action", "expected_version", "crew_id", "grid_code", "duplicate_of", "reason", "note",
          "rating", "comment")
NO_CREW_EXTRA = {"on_site": ("acknowledged",), "resolve": ("acknowledged",)}


def allowed_states(action: str, category: Category) -> tuple[str, ...]:
    states = ALLOWED_FROM[action]
    if not category.needs_crew:
        states += NO_CREW_EXTRA.get(action, ())
    return states


def check_transition(incident: Incident, category: Category, action: str) -> None:
    """409 when the action is not allowed from the incident's state."""
    states = allowed_states(action, category)
    acknowledged_again = action == "acknowledge" and incident.acknowledged_at is not None
    if incident.status not in states or acknowledged_again:
        raise ApiError(409, "invalid_transition",
                       f"cannot {action} an incident that is {incident.status}"
                       + (" and already acknowledged" if acknowledged_again else ""),
                       {"action": action, "status": incident.status, "allowed_from": list(states)})


def perform(ctx: Context, incident: Incident, *, user: User | None, action: str,
            params: dict[str, Any], expected_version: Any, resident: bool = False) -> None:
    """Check role, scope, version and state, then record the action's events."""
    if action not in ACTIONS:
        raise bad_field("action", f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not resident:
        check_may_act(ctx.session, user, incident, action)
    only_fields(params, FIELDS)
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise bad_field("expected_version", "is required (an integer): the version you last saw")
    if expected_version != incident.version:
        raise ApiError(409, "stale_version",
                       f"the incident changed: you expected version {expected_version}, it is at {incident.version}",
                       {"expected_version": expected_version, "version": incident.version})
    category = ctx.session.get(Category, incident.category_code)
    if action == "rate":  # before the state: a low rating already sent the fix back to work
        _check_not_rated(ctx, incident)
    check_transition(incident, category, action)
    actor = {"actor_id": user.id if user else None,
             "actor_role": "resident" if resident else user.role}
    HANDLERS[action](ctx, incident, category, actor, params, user)


def _stamp(type_: str, *, ends: str | None = None, ends_pause: bool = False):
    """An action that only moves the state and stamps its time, ending phase `ends` (and,
    for one that ends the work, ends a pause: no clock of it runs afterwards for a pause to
    stop)."""
    def handler(ctx, incident, category, actor, params, user):
        data = _ended_in_pause(ctx, incident, category, ends)
        if ends_pause:
            data.update(_pause_ended(incident))
        note = _note(params)
        if note:
            data["note"] = note
        events.append(ctx.session, incident, type_, at=ctx.now, data=data, **actor)
    return handler


def _ended_in_pause(ctx, incident: Incident, category: Category, phase: str | None) -> dict[str, Any]:
    """A phase ending while the incident is paused keeps out the time paused so far: its
    deadline moves on by it, as a resume would have moved it (found by an SLA audit: a
    report resolved during a three-day wait for the resident counted as late)."""
    if phase is None:
        return {}
    return resumed_deadlines(incident, category, now=ctx.now, tz=ctx.tz, calendar=ctx.calendar, only=phase)


def _pause_ended(incident: Incident) -> dict[str, Any]:
    """The event data that lifts a pause, if the incident is paused. An incident reopened
    later (a rework) must not come back paused with no clock running, nor have its whole
    time closed counted as a pause when resumed."""
    return {"paused_at": None, "pause_reason": None} if incident.paused_at else {}


def _note(params: dict, field: str = "note", *, required: bool = False) -> str | None:
    value = params.get(field)
    if value is not None and not isinstance(value, str):
        raise bad_field(field, f"must be text, got {type(value).__name__}", reason="invalid")
    value = (value or "").strip()  # a reason of spaces gives none
    if not value:
        if required:
            raise bad_field(field, "is required", reason="required")
        return None
    if len(value) > 500:
        raise bad_field(field, "must be text of at most 500 characters", reason="too_long", limit=500)
    return value


def _acknowledge(ctx, incident, category, actor, params, user):
    status = "acknowledged" if incident.status == "assigned" else incident.status
    data = {"status": status, **_ended_in_pause(ctx, incident, category, "acknowledge")}
    if user is not None and user.role == "grid_manager" and incident.manager_id != user.id:
        data["manager_id"] = user.id  # a backup manager who picks it up owns it from now on
    events.append(ctx.session, incident, "acknowledged", at=ctx.now, data=data, **actor)


def _dispatch(ctx, incident, category, actor, params, user):
    if not category.needs_crew:
        raise ApiError(409, "no_crew_needed",
                       f"{a_or_an(category.name_en)} report is handled by the grid manager, not a crew",
                       {"category": category.code})
    crew_id = params.get("crew_id", incident.recommended_crew_id)
    if crew_id is None:
        raise bad_field("crew_id", "is required: no crew was recommended", reason="required")
    if not isinstance(crew_id, int) or isinstance(crew_id, bool):
        raise bad_field("crew_id", f"must be a crew id (an integer), got {str(crew_id)[:40]!r}", reason="invalid")
    crew = ctx.session.get(Crew, crew_id) if 1 <= crew_id <= MAX_ID else None  # beyond: no such row
    if crew is None:
        raise bad_field("crew_id", f"unknown crew {crew_id!r}", 422, reason="unknown")
    if crew.id == incident.crew_id:
        # Sending it again would move a crew on its way back to "dispatched" and lose when
        # it was first sent.
        raise bad_field("crew_id", f"crew {crew.name} is already sent", 409, reason="already_dispatched",
                        crew=crew.name)
    if crew.status == "off":
        raise bad_field("crew_id", f"crew {crew.name} is off duty", 409, reason="crew_off_duty", crew=crew.name)
    # Held to what the ranking holds every crew to, the recommendation included (it may be
    # stale): a crew that cannot fix it, that no account can see the job of, or that works
    # elsewhere (a manager could otherwise take another street's crew) is not sent.
    unfit = unfit_for(crew_candidate(ctx.session, crew.id), category.skill or category.code,
                      area_codes(incident.area_chain))
    if unfit:
        code = "lacks_skill" if unfit.startswith("lacks skill") else unfit.replace(" ", "_")
        raise bad_field("crew_id", f"crew {crew.name} cannot be sent: {unfit}", 409, reason=code, crew=crew.name)
    reason = "recommended" if crew_id == incident.recommended_crew_id else "chosen_by_manager"
    dispatch_crew(ctx, incident, category, crew_id=crew.id, actor=actor, reason=reason)


def _resolve(ctx, incident, category, actor, params, user):
    events.append(ctx.session, incident, "resolved", at=ctx.now,
                  data={"note": _note(params), **_ended_in_pause(ctx, incident, category, "resolve"),
                        "verify_due": due(ctx, category, ctx.now, category.verify_minutes)}, **actor)
    free_crew_if_idle(ctx, incident.crew_id)


def _end(type_: str):
    """Cancel: close without a fix, freeing the crew."""
    def handler(ctx, incident, category, actor, params, user):
        events.append(ctx.session, incident, type_, at=ctx.now,
                      data={"reason": _note(params, "reason", required=True), **_pause_ended(incident)},
                      **actor)
        free_crew_if_idle(ctx, incident.crew_id)
    return handler


def _reassign(ctx, incident, category, actor, params, user):
    """To another grid, or to its own grid again: routed afresh, which hands a report the
    duty desk took overnight to the grid's manager once on duty. (A disabled manager's
    reports are handed on by the disabling itself: dispatch.incidents.handover.)"""
    grid_code = params.get("grid_code")
    if not isinstance(grid_code, str) or not grid_code:
        raise bad_field("grid_code", "is required", reason="required")
    try:
        level = ctx.index.level_of(grid_code)
    except KeyError:
        raise bad_field("grid_code", f"unknown grid {grid_code!r}", 422, reason="unknown") from None
    if level != "grid":
        raise bad_field("grid_code", f"{grid_code!r} is a {level}, not a grid", 422, reason="not_a_grid")
    chain = ctx.index.chain_of(grid_code)
    decision = choose_for_grid(ctx, grid_code, chain.get("community"))
    same_grid = grid_code == incident.grid_code
    if same_grid and decision.user_id == incident.manager_id:
        raise bad_field("grid_code", "is already the incident's grid, and its report would go to the "
                        "same manager again", 409, reason="same_grid")
    reason = _note(params, "reason", required=True)
    moved = {} if same_grid else {f"{level}_code": chain.get(level) for level in ("grid", "community", "street", "district")}
    if not same_grid:  # the building belongs to another grid, so the report no longer names it
        moved.update(unit_code=None, building_code=None)
    # Escalation starts again from the (new) grid: its community and street are the next
    # to be told, at the next breach; steps already owed are not taken back-dated.
    moved.update(status="assigned", acknowledged_at=None, escalation_level=0,
                 sla_marks=_caught_up(ctx, incident, category, running_phases(incident, category)))
    route_manager(ctx, incident, category, decision, actor=actor, event_type="reassigned",
                  extra={**moved, "from_grid": incident.grid_code, "reason_text": reason})
    if not same_grid and incident.crew_id is None:
        # Crews are held to the place's areas, and these changed: the crew recommended for
        # the old grid may serve another street. Ranked afresh, as for a new report there.
        rank_afresh(ctx, incident, category)


def _caught_up(ctx, incident: Incident, category: Category, phases: list) -> dict[str, Any]:
    clock = Clock(category.clock_kind, ctx.tz, ctx.calendar)
    return caught_up(incident.sla_marks, phases, incident.paused_at or ctx.now, clock)


def _merge(ctx, incident, category, actor, params, user):
    target_ref = params.get("duplicate_of")
    if target_ref in (None, ""):
        raise bad_field("duplicate_of", "is required: the public id of the original incident", reason="required")
    target = ctx.session.scalar(select(Incident).where(Incident.public_id == str(target_ref)))
    # The intake's own suspicion may cross a grid line (one burst pipe, reported from both
    # sides of it): the manager may merge into that original without seeing it.
    if target is None or (user is not None and not can_see(ctx.session, user, target)
                          and target.id != incident.suspected_duplicate_of_id):
        raise bad_field("duplicate_of", f"unknown incident {target_ref!r}", 422, reason="unknown")
    # One merged meanwhile passes it on: the work goes on in its original, where the
    # reporter is then told of it (a manager told of a suspected original in another grid
    # could otherwise merge into neither it nor the report it went into). Into another
    # grid's original only by way of the one the intake suspected, as above.
    named, target = target, original_of(ctx.session, target)
    suspected = incident.suspected_duplicate_of_id
    if (user is not None and target.id != named.id and suspected not in (named.id, target.id)
            and not can_see(ctx.session, user, target)):
        raise bad_field("duplicate_of", f"{named.public_id} was merged into a report of another grid",
                        422, reason="original_out_of_scope")
    if target.id == incident.id:
        raise bad_field("duplicate_of", "an incident cannot be a duplicate of itself", 422, reason="same_incident")
    # Only into work still going on: merged into a fixed or closed report, a new report of
    # the problem would be closed without anyone looking (a fix that failed is a rework).
    if target.status not in OPEN_STATUSES:
        raise bad_field("duplicate_of", f"{target.public_id} is {target.status}", 409, reason="original_ended",
                        status=target.status)
    events.append(ctx.session, incident, "merged", at=ctx.now,
                  data={"duplicate_of_id": target.id, "original": target.public_id, **_pause_ended(incident)},
                  **actor)
    events.append(ctx.session, target, "duplicate_merged", at=ctx.now,
                  data={"merged_incident": incident.public_id}, **actor)
    free_crew_if_idle(ctx, incident.crew_id)


def _rework(ctx, incident, category, actor, params, user, *, reason: str | None = None):
    """Back to work, still held to the resolve deadline promised at the report (a job sent
    back after it is late, and counts so in the metrics). Escalation starts again from the
    grid at the next breach step: the steps owed while it stood resolved or closed are not
    taken back-dated (they took a job sent back days later to the district in one tick).
    The first arrival stands."""
    back_to = "dispatched" if incident.crew_id else "acknowledged"
    resolve = [Phase("resolve", incident.resolve_due, category.resolve_minutes, incident.created_at)]
    events.append(ctx.session, incident, "rework", at=ctx.now, data={
        "status": back_to,
        "reason": reason or _note(params, "reason", required=True),
        "rework_count": (incident.rework_count or 0) + 1,
        "resolved_at": None, "verified_at": None, "closed_at": None, "verify_due": None,
        "escalation_level": 0,
        "sla_marks": _caught_up(ctx, incident, category, resolve if incident.resolve_due else []),
        **_pause_ended(incident),
    }, **actor)
    if incident.crew_id:
        crew = ctx.session.get(Crew, incident.crew_id)
        if crew is not None and crew.status != "off":
            crew.status = "busy"
            crew_changed(ctx.session, crew)


def _rate(ctx, incident, category, actor, params, user):
    rating = params.get("rating")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise bad_field("rating", "must be an integer from 1 to 5", reason="out_of_range")
    comment = _note(params, "comment")
    events.append(ctx.session, incident, "rated", at=ctx.now,
                  data={"rating": rating, "rating_comment": comment}, **actor)
    if rating <= LOW_RATING:
        _rework(ctx, incident, category, actor, params, user, reason="resident_unsatisfied")


def _check_not_rated(ctx, incident: Incident) -> None:
    """One rating per fix: a second one would turn a 5 into a rework days later, and a
    retried POST would count twice. A fix after a rework is rated afresh."""
    latest = ctx.session.scalar(
        select(IncidentEvent.type).where(IncidentEvent.incident_id == incident.id,
                                         IncidentEvent.type.in_(("resolved", "rated")))
        .order_by(IncidentEvent.version.desc()).limit(1))
    if latest == "rated":
        raise ApiError(409, "already_rated", "this fix has been rated already",
                       {"field": "rating", "rating": incident.rating})


def _escalate(ctx, incident, category, actor, params, user):
    top = len(ESCALATION_LEVELS) - 1
    if (incident.escalation_level or 0) >= top:
        raise ApiError(409, "already_at_top", f"the incident is escalated to the {ESCALATION_LEVELS[top]} already",
                       {"escalation_level": incident.escalation_level})
    escalate(ctx, incident, reason=_note(params, "reason") or "by_hand", actor=actor)


def _pause(ctx, incident, category, actor, params, user):
    if incident.paused_at:
        raise ApiError(409, "already_paused", f"the incident is paused since {incident.paused_at.isoformat()}",
                       {"paused_at": incident.paused_at.isoformat()})
    events.append(ctx.session, incident, "paused", at=ctx.now, data={
        "paused_at": ctx.now, "pause_reason": _note(params, "reason", required=True)}, **actor)


def _resume(ctx, incident, category, actor, params, user):
    if not incident.paused_at:
        raise ApiError(409, "not_paused", "the incident is not paused", {})
    moved = resumed_deadlines(incident, category, now=ctx.now, tz=ctx.tz, calendar=ctx.calendar)
    events.append(ctx.session, incident, "resumed", at=ctx.now, data={
        **moved, "paused_at": None, "pause_reason": None, "paused_since": incident.paused_at,
        "note": _note(params)}, **actor)


HANDLERS = {
    "acknowledge": _acknowledge,
    "dispatch": _dispatch,
    "en_route": _stamp("en_route"),
    "on_site": _stamp("on_site", ends="arrive"),
    "resolve": _resolve,
    "verify": _stamp("verified", ends="verify", ends_pause=True),
    "close": _stamp("closed", ends_pause=True),
    "cancel": _end("cancelled"),
    "reassign": _reassign,
    "merge": _merge,
    "rework": _rework,
    "rate": _rate,
    "escalate": _escalate,
    "pause": _pause,
    "resume": _resume,
}
