"""Repair crews: who is in them, what they fix, where they work, where they are, whether free."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import or_, select

from dispatch.api.body import json_object, path_id
from dispatch.api.context import area_index, rule_context
from dispatch.api.openapi import CRS, op, path_param, query
from dispatch.app import clock, session
from dispatch.errors import ApiError, a_or_an, bad_field
from dispatch.incidents.handover import withdraw_unstaffed
from dispatch.incidents.models import OPEN_STATUSES, Incident
from dispatch.live import heard_in, push_crew
from dispatch.people import service
from dispatch.people.auth import require_user
from dispatch.people.directory import managed_grids
from dispatch.people.models import CREW_STATUSES, Crew, User, public_user

bp = Blueprint("crews", __name__)
READERS = ("admin", "operator", "grid_manager", "committee", "crew")
CREW_FIELDS = ("name", "skills", "service_areas", "status", "phone", "members")


def crew_json(crew: Crew) -> dict[str, Any]:
    members = service.list_users(session=session(), crew_id=crew.id)
    position = None if crew.lon is None else {
        "lon": crew.lon, "lat": crew.lat,
        "at": crew.position_at.isoformat() if crew.position_at else None}
    return {"id": crew.id, "name": crew.name, "skills": crew.skills, "service_areas": crew.service_areas,
            "status": crew.status, "phone": crew.phone, "position": position,
            "idle_since": crew.idle_since.isoformat() if crew.idle_since else None,
            # A disabled member stays listed (the crew's history), flagged: it works no job.
            "members": [{**public_user(u), "active": bool(u.active)} for u in members]}


def _crew(crew_id: str, user: User, *, also: tuple[str, ...] = ()) -> Crew:
    """The crew, if `user` is one of its members, an admin or holds one of the `also` roles."""
    crew = service.get_crew(session=session(), crew_id=path_id(crew_id, "crew"))
    outsider = user.role == "crew" and user.crew_id != crew.id
    if outsider or user.role not in ("admin", "crew", *also):
        raise ApiError(403, "forbidden", f"{a_or_an(user.role)} may not do this to crew {crew.id}",
                       {"crew": crew.id, "role": user.role})
    return crew


@bp.get("/crews")
def list_crews():
    user = require_user(*READERS)
    # A crew member sees its own crew only; one in no crew sees none (there is no crew 0).
    own = (user.crew_id or 0) if user.role == "crew" else None
    area = request.args.get("area") or None
    # A committee member watches its scope: the crews working there, and no others.
    if user.role == "committee" and area is None:
        area = user.scope_area_code
    chain_of = None
    if area is not None:
        index = area_index()
        try:
            chain = index.chain_of(area)
        except KeyError:
            raise bad_field("area", f"unknown area {area!r}", 422) from None
        if user.role == "committee" and user.scope_area_code not in chain.values():
            raise ApiError(403, "out_of_scope", f"area {area} is outside your scope {user.scope_area_code}",
                           {"field": "area", "scope": user.scope_area_code})
        chain_of = index.chain_of
    crews = service.list_crews(session=session(), status=request.args.get("status") or None,
                               skill=request.args.get("skill") or None, crew_id=own,
                               area=area, chain_of=chain_of)
    return jsonify({"crews": [crew_json(c) for c in crews]})


@bp.post("/crews")
def create_crew():
    admin = require_user("admin")
    body = json_object(CREW_FIELDS)
    ctx, leaving = rule_context(), _crews_members_leave(None, body)
    crew = service.create_crew(session=session(), now=ctx.now, **body)
    handed = _hand_back(ctx, leaving, admin)
    session().commit()
    return jsonify({**crew_json(crew), "handed_over": handed}), 201


@bp.get("/crews/<crew_id>")
def get_crew(crew_id: str):
    user = require_user(*READERS)
    crew = _crew(crew_id, user, also=READERS)
    if user.role == "committee" and not service.serves(crew, user.scope_area_code, area_index().chain_of):
        raise ApiError(403, "out_of_scope", f"crew {crew.id} does not work in your scope {user.scope_area_code}",
                       {"crew": crew.id, "scope": user.scope_area_code})
    return jsonify(crew_json(crew))


@bp.patch("/crews/<crew_id>")
def update_crew(crew_id: str):
    admin = require_user("admin")
    crew = _crew(crew_id, admin)
    body = json_object(CREW_FIELDS)
    ctx, before, leaving = rule_context(), heard_in(crew), _crews_members_leave(crew, body)
    service.update_crew(session=session(), crew=crew, now=ctx.now, **body)
    handed = _hand_back(ctx, leaving, admin)
    session().commit()
    # Boards and tablets show its status and where it works: an edit of either is pushed,
    # to the areas it leaves as well.
    push_crew(crew, now=ctx.now, status_changed=True, also=before)
    return jsonify({**crew_json(crew), "handed_over": handed})


def _crews_members_leave(crew: Crew | None, body: dict[str, Any]) -> set[int]:
    """The crews a new member list may leave with nobody: this one, and those its new members
    come from (a member is in one crew: named here, they leave the other)."""
    if "members" not in body or not isinstance(body["members"], list):
        return set()
    ids = [m for m in body["members"] if isinstance(m, int) and not isinstance(m, bool)]
    before = set(session().scalars(select(User.crew_id).where(User.id.in_(ids), User.crew_id.is_not(None))))
    return before | ({crew.id} if crew is not None else set())


def _hand_back(ctx, crew_ids: set[int], admin: User) -> list[str]:
    """Jobs of crews now left with nobody, handed back to their managers (public ids)."""
    session().flush()
    return [i.public_id for i in withdraw_unstaffed(ctx, crew_ids, actor={"actor_id": admin.id,
                                                                         "actor_role": admin.role})]


@bp.post("/crews/<crew_id>/position")
def report_position(crew_id: str):
    crew = _crew(crew_id, require_user("admin", "crew"))
    now = clock().now()
    service.report_crew_position(crew=crew, now=now, **json_object(("lon", "lat", "crs")))
    session().commit()
    push_crew(crew, now=now, status_changed=False)
    return jsonify(crew_json(crew))


def _check_manager_works_with(user: User, crew: Crew) -> None:
    """A grid manager sets the status of a crew working in one of its grids, or on one of
    its incidents, and no other (SPEC §7: its grids only): taking another street's crew
    off duty would stop its reports reaching it."""
    grids = managed_grids(session(), user.id)
    chain_of = area_index().chain_of
    if any(service.serves(crew, grid, chain_of) for grid in grids):
        return
    if session().scalar(select(Incident.id).where(
            Incident.crew_id == crew.id, Incident.status.in_(OPEN_STATUSES),
            or_(Incident.manager_id == user.id, Incident.grid_code.in_(grids))).limit(1)) is not None:
        return
    raise ApiError(403, "out_of_scope", f"crew {crew.id} works in none of your grids",
                   {"crew": crew.id, "role": user.role})


@bp.post("/crews/<crew_id>/status")
def set_status(crew_id: str):
    user = require_user("admin", "crew", "grid_manager")
    crew = _crew(crew_id, user, also=("grid_manager",))
    if user.role == "grid_manager":
        _check_manager_works_with(user, crew)
    now = clock().now()
    service.set_crew_status(crew=crew, now=now, **json_object(("status",)))
    session().commit()
    push_crew(crew, now=now, status_changed=True)
    return jsonify(crew_json(crew))


CREW_ID = path_param("crew_id", "numeric crew id")
CREW = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"},
    "skills": {"type": "array", "items": {"type": "string"}},
    "service_areas": {"type": "array", "items": {"type": "string"}, "description": "area codes of any level"},
    "status": {"type": "string", "enum": list(CREW_STATUSES)}, "phone": {"type": ["string", "null"]},
    "position": {"type": ["object", "null"], "description": "WGS84 lon, lat and when it was reported"},
    "idle_since": {"type": ["string", "null"]},
    "members": {"type": "array", "description": "its accounts (id, username, display_name, role), a "
                "disabled one flagged active: false"}}}
CREW_CHANGED = {**CREW, "properties": {**CREW["properties"], "handed_over": {
    "type": "array", "items": {"type": "string"},
    "description": "public ids of jobs handed back to their managers: a crew that lost members has no "
                   "active member left"}}}
CREW_BODY = {"type": "object", "properties": {
    "name": {"type": "string"}, "skills": {"type": "array", "items": {"type": "string"}},
    "service_areas": {"type": "array", "items": {"type": "string"}},
    "status": {"type": "string", "enum": list(CREW_STATUSES)}, "phone": {"type": "string"},
    "members": {"type": "array", "items": {"type": "integer"}, "description": "user ids of crew accounts"}}}
FORBIDDEN = "not a member of this crew, or a role that may not"
PATHS = {
    "/crews": {
        "get": op("Crews (a crew member sees its own; a committee member those in its scope)", "listCrews", params=[
            query("status", {"type": "string", "enum": list(CREW_STATUSES)}, "only this status"),
            query("skill", {"type": "string"}, "only crews with this skill"),
            query("area", {"type": "string"}, "only crews working in this area: a service area at, "
                  "under or above it (a board's scope; a committee member's scope by default)")],
            errors={"400": "a bad filter", "403": "residents may not; an area outside a committee "
                    "member's scope", "422": "unknown area"}),
        "post": op("Create a crew", "createCrew", body={**CREW_BODY, "required": ["name"]},
                   ok=("201", CREW_CHANGED), errors={"400": "a bad field, named in details.field",
                                             "403": "admins only", "409": "name taken",
                                             "422": "unknown area or member"}),
    },
    "/crews/{crew_id}": {
        "get": op("One crew", "getCrew", params=[CREW_ID], ok=("200", CREW),
                  errors={"403": FORBIDDEN + "; a crew not working in a committee member's scope",
                          "404": "no such crew"}),
        "patch": op("Change a crew (members replaces the list; the jobs of a crew left with no "
                    "active member go back to their managers: handed_over)", "updateCrew", params=[CREW_ID],
                    body=CREW_BODY, ok=("200", CREW_CHANGED),
                    errors={"400": "a bad field", "403": "admins only", "404": "no such crew",
                            "409": "name taken", "422": "unknown area or member"}),
    },
    "/crews/{crew_id}/position": {"post": op(
        "Report the crew's position (its members or an admin)", "reportCrewPosition", params=[CREW_ID],
        body={"type": "object", "required": ["lon", "lat"], "properties": {
            "lon": {"type": "number"}, "lat": {"type": "number"},
            "crs": CRS}},
        ok=("200", CREW), errors={"400": "a bad coordinate or crs", "403": FORBIDDEN, "404": "no such crew"})},
    "/crews/{crew_id}/status": {"post": op(
        "Set available, busy or off (its members; a grid manager of a grid it works in, or of an "
        "incident it is on; admins)", "setCrewStatus", params=[CREW_ID],
        body={"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": list(CREW_STATUSES)}}},
        ok=("200", CREW), errors={"400": "unknown status", "403": FORBIDDEN + "; out_of_scope: a "
                                  "crew working in none of a grid manager's grids", "404": "no such crew"})},
}
