"""People: accounts, their grids and weekly hours, the on-call rota, holidays, duty desks.

Admins change these; admins and operators read them. Password hashes never leave the server.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from dispatch.api.body import json_list, json_object, path_id
from dispatch.api.context import area_index, local_today, rule_context
from dispatch.api.openapi import op, path_param, query
from dispatch.api.params import id_arg
from dispatch.app import clock, session
from dispatch.errors import bad_field
from dispatch.incidents import events
from dispatch.incidents.flows import Context
from dispatch.incidents.handover import update_account
from dispatch.people import fields, service
from dispatch.people.auth import require_user
from dispatch.people.models import ROLES, CalendarDay, DutyDesk, GridAssignment, OnCallShift, User
from dispatch.routing import DEFAULT_HOURS
from dispatch.sla import deadline_moves
from dispatch.sla.calendar import coverage_warning, covered_years, working_calendar

bp = Blueprint("people", __name__)
READERS = ("admin", "operator")
USER_FIELDS = ("username", "password", "role", "display_name", "phone", "scope_area_code",
               "crew_id", "active")


def user_json(user: User, grids: list[GridAssignment], *, with_hours: bool = False) -> dict[str, Any]:
    body = {"id": user.id, "username": user.username, "display_name": user.display_name,
            "role": user.role, "phone": user.phone, "scope_area_code": user.scope_area_code,
            "crew_id": user.crew_id, "active": user.active, "created_at": user.created_at.isoformat(),
            "grids": [{"grid_code": g.grid_code, "kind": g.kind} for g in grids]}
    if with_hours and user.role == "grid_manager":
        spans = service.weekly_hours(session=session(), user=user)
        body["default_hours"] = not spans
        body["hours"] = [{"weekday": s.weekday, "start": fields.format_clock_time(s.start),
                          "end": fields.format_clock_time(s.end)} for s in (spans or DEFAULT_HOURS)]
    return body


def _user_answer(user: User, status: int = 200):
    grids = service.grid_assignments(session=session(), user_ids=[user.id])[user.id]
    return jsonify(user_json(user, grids, with_hours=True)), status


def _user(user_id: str) -> User:
    return service.get_user(session=session(), user_id=path_id(user_id, "user"))


@bp.get("/people")
def list_people():
    require_user(*READERS)
    users = service.list_users(session=session(), role=request.args.get("role") or None)
    grids = service.grid_assignments(session=session(), user_ids=[u.id for u in users])
    return jsonify({"people": [user_json(u, grids[u.id]) for u in users], "total": len(users)})


@bp.post("/people")
def create_person():
    require_user("admin")
    user = service.create_user(session=session(), now=clock().now(), **json_object(USER_FIELDS))
    session().commit()
    return _user_answer(user, 201)


@bp.get("/people/<user_id>")
def get_person(user_id: str):
    require_user(*READERS)
    return _user_answer(_user(user_id))


@bp.patch("/people/<user_id>")
def update_person(user_id: str):
    admin = require_user("admin")
    changes = json_object([f for f in USER_FIELDS if f != "username"])
    ctx = rule_context()
    user = _user(user_id)
    handed = update_account(session(), user, now=ctx.now, tz=ctx.tz, index=ctx.index,
                            actor={"actor_id": admin.id, "actor_role": admin.role}, **changes)
    session().commit()
    grids = service.grid_assignments(session=session(), user_ids=[user.id])[user.id]
    # Which incidents went to someone else: the admin should know whom to brief.
    return jsonify({**user_json(user, grids, with_hours=True), "handed_over": [i.public_id for i in handed]})


@bp.put("/people/<user_id>/grids")
def set_grids(user_id: str):
    require_user("admin")
    user = _user(user_id)
    service.set_grids(session=session(), user=user, grids=json_list())
    session().commit()
    return _user_answer(user)


@bp.put("/people/<user_id>/hours")
def set_hours(user_id: str):
    require_user("admin")
    user = _user(user_id)
    service.set_weekly_hours(session=session(), user=user, spans=json_list())
    session().commit()
    return _user_answer(user)


def on_call_json(row: OnCallShift) -> dict[str, Any]:
    return {"id": row.id, "user_id": row.user_id, "area_code": row.area_code,
            "starts_at": row.starts_at.isoformat(), "ends_at": row.ends_at.isoformat()}


def _area_arg(name: str) -> str | None:
    """An area code from the query string. One that names no area is a 422: an empty list
    would read as "nobody covers it"."""
    code = request.args.get(name) or None
    if code is not None:
        try:
            area_index().level_of(code)
        except KeyError:
            raise bad_field(name, f"unknown area {code!r}", 422) from None
    return code


@bp.get("/on-call")
def list_on_call():
    require_user(*READERS)
    at = request.args.get("at")
    rows = service.list_on_call(session=session(), area_code=_area_arg("area"),
                                user_id=id_arg("user_id", "user"),
                                at=fields.timestamp("at", at) if at else None)
    return jsonify({"on_call": [on_call_json(r) for r in rows]})


@bp.post("/on-call")
def add_on_call():
    require_user("admin")
    row = service.add_on_call(session=session(),
                              **json_object(("user_id", "area_code", "starts_at", "ends_at")))
    session().commit()
    return jsonify(on_call_json(row)), 201


@bp.delete("/on-call/<shift_id>")
def remove_on_call(shift_id: str):
    require_user("admin")
    service.remove_on_call(session=session(), shift_id=path_id(shift_id, "on_call"))
    session().commit()
    return "", 204


def day_json(row: CalendarDay) -> dict[str, Any]:
    return {"day": row.day.isoformat(), "kind": row.kind, "name": row.name}


@bp.get("/calendar")
def list_calendar():
    require_user(*READERS)
    start, end = request.args.get("from"), request.args.get("to")
    rows = service.list_calendar_days(session=session(),
                                      start=fields.day("from", start) if start else None,
                                      end=fields.day("to", end) if end else None)
    official = covered_years()
    return jsonify({"days": [day_json(r) for r in rows],
                    "official_years": {"from": official.start, "to": official.stop - 1},
                    "warning": coverage_warning(local_today())})


@bp.get("/calendar/<day>")
def get_calendar_day(day: str):
    require_user(*READERS)
    return jsonify(day_json(service.get_calendar_day(session=session(), day=fields.day("day", day))))


@bp.put("/calendar/<day>")
def set_calendar_day(day: str):
    admin = require_user("admin")
    before = _locked_rule_context()
    row = service.set_calendar_day(session=session(), day=fields.day("day", day),
                                   **json_object(("kind", "name")))
    moved = _move_deadlines(before, admin)
    session().commit()
    return jsonify({**day_json(row), "deadlines_moved": moved})


@bp.delete("/calendar/<day>")
def remove_calendar_day(day: str):
    admin = require_user("admin")
    before = _locked_rule_context()
    service.remove_calendar_day(session=session(), day=fields.day("day", day))
    _move_deadlines(before, admin)
    session().commit()
    return "", 204


def _locked_rule_context() -> Context:
    """The rules as the last writer left them: the writers' lock first, then the calendar
    read, so two calendar changes at once do not each move deadlines from a stale one."""
    events.lock_event_log(session())
    return rule_context()


def _move_deadlines(before: Context, admin: User) -> int:
    """Open service-hours deadlines follow the changed calendar (in the same transaction)."""
    session().flush()
    return deadline_moves.for_calendar(before, working_calendar(session()),
                                       actor={"actor_id": admin.id, "actor_role": admin.role})


def desk_json(row: DutyDesk) -> dict[str, Any]:
    return {"id": row.id, "user_id": row.user_id, "community_code": row.community_code}


@bp.get("/duty-desks")
def list_duty_desks():
    require_user(*READERS)
    rows = service.list_duty_desks(session=session(), community_code=_area_arg("community"))
    return jsonify({"duty_desks": [desk_json(r) for r in rows]})


@bp.post("/duty-desks")
def add_duty_desk():
    require_user("admin")
    row = service.add_duty_desk(session=session(), **json_object(("user_id", "community_code")))
    session().commit()
    return jsonify(desk_json(row)), 201


@bp.delete("/duty-desks/<desk_id>")
def remove_duty_desk(desk_id: str):
    require_user("admin")
    service.remove_duty_desk(session=session(), desk_id=path_id(desk_id, "duty_desk"))
    session().commit()
    return "", 204


USER_ID = path_param("user_id", "numeric user id")
DAY = path_param("day", "a date, YYYY-MM-DD")
USER = {"type": "object", "description": "an account (never its password hash)", "properties": {
    "id": {"type": "integer"}, "username": {"type": "string"}, "display_name": {"type": "string"},
    "role": {"type": "string", "enum": list(ROLES)}, "phone": {"type": ["string", "null"]},
    "scope_area_code": {"type": ["string", "null"]}, "crew_id": {"type": ["integer", "null"]},
    "active": {"type": "boolean"}, "grids": {"type": "array"},
    "hours": {"type": "array", "description": "weekly hours of a grid manager (details only)"}}}
USER_BODY = {"type": "object", "properties": {
    "username": {"type": "string", "maxLength": 64}, "password": {"type": "string", "minLength": 4},
    "role": {"type": "string", "enum": list(ROLES)}, "display_name": {"type": "string"},
    "phone": {"type": "string"}, "active": {"type": "boolean"},
    "scope_area_code": {"type": "string", "description": "committee (required) or operator: a district, street or community"},
    "crew_id": {"type": "integer", "description": "crew accounts only"}}}
# A username stays as it was made: sign-ins, logs and the apps know the account by it.
USER_CHANGED = {**USER, "properties": {**USER["properties"], "handed_over": {
    "type": "array", "items": {"type": "string"},
    "description": "public ids of the incidents this change routed to someone else, or handed back "
                   "to their managers (the jobs of a crew it left with no active member)"}}}
USER_CHANGE = {"type": "object", "properties": {k: v for k, v in USER_BODY["properties"].items() if k != "username"}}
DAY_ROW = {"type": "object", "properties": {"day": {"type": "string", "format": "date"},
                                            "kind": {"type": "string", "enum": list(service.CALENDAR_KINDS)},
                                            "name": {"type": "string"},
                                            "deadlines_moved": {"type": "integer", "description":
                                                                "on a change: open incidents whose "
                                                                "service-hours deadlines moved with it"}}}
ON_CALL = {"type": "object", "required": ["user_id", "area_code", "starts_at", "ends_at"], "properties": {
    "user_id": {"type": "integer"}, "area_code": {"type": "string", "description": "a grid or a community"},
    "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"}}}
BAD = {"400": "a bad field, named in details.field", "403": "admins only"}
PATHS = {
    "/people": {
        "get": op("Accounts (admins and operators)", "listPeople",
                  params=[query("role", {"type": "string", "enum": list(ROLES)}, "only this role")],
                  errors={"400": "unknown role", "403": "admins and operators only"}),
        "post": op("Create an account", "createPerson", body={**USER_BODY, "required": ["username", "password", "role"]},
                   ok=("201", USER), errors={**BAD, "409": "username taken",
                                             "422": "unknown scope area or crew"}),
    },
    "/people/{user_id}": {
        "get": op("One account with its grids and weekly hours", "getPerson", params=[USER_ID],
                  ok=("200", USER), errors={"403": "admins and operators only", "404": "no such user"}),
        "patch": op("Change an account; {\"active\": false} disables it and its tokens, a new password "
                    "revokes its tokens. A grid manager disabled or given another role hands their "
                    "unfinished incidents to whoever routing picks now; a crew member whose crew is "
                    "left with nobody hands its jobs back to their managers (handed_over)", "updatePerson",
                    params=[USER_ID], body=USER_CHANGE, ok=("200", USER_CHANGED),
                    errors={**BAD, "404": "no such user", "422": "unknown scope area or crew",
                            "409": "still_on_duty: a grid manager holding grids, on-call or a desk keeps the "
                                   "role; last_admin: the last active admin stays one"}),
    },
    "/people/{user_id}/grids": {"put": op(
        "Replace a grid manager's grids", "setPersonGrids", params=[USER_ID],
        body={"type": "array", "items": {"type": "object", "required": ["grid_code"], "properties": {
            "grid_code": {"type": "string"}, "kind": {"type": "string", "enum": ["primary", "backup"]}}}},
        ok=("200", USER), errors={**BAD, "404": "no such user", "422": "not a grid, not a grid manager, or a new grid for a disabled account"})},
    "/people/{user_id}/hours": {"put": op(
        "Replace a grid manager's weekly hours (local time; [] restores weekdays 09:00–17:00)",
        "setPersonHours", params=[USER_ID],
        body={"type": "array", "items": {"type": "object", "required": ["weekday", "start", "end"], "properties": {
            "weekday": {"type": "integer", "minimum": 0, "maximum": 6, "description": "0 = Monday"},
            "start": {"type": "string", "example": "09:00"}, "end": {"type": "string", "example": "17:00"}}}},
        ok=("200", USER), errors={**BAD, "404": "no such user", "422": "not a grid manager"})},
    "/on-call": {
        "get": op("The on-call rota", "listOnCall", params=[
            query("area", {"type": "string"}, "a grid or community code"),
            query("user_id", {"type": "integer"}, "one manager"),
            query("at", {"type": "string", "format": "date-time"}, "entries covering this moment")],
            errors={"400": "a bad filter", "403": "admins and operators only", "422": "unknown area"}),
        "post": op("Add an on-call entry", "addOnCall", body=ON_CALL, ok=("201", ON_CALL),
                   errors={**BAD, "422": "unknown or disabled user, unknown area, or not a grid manager"}),
    },
    "/on-call/{shift_id}": {"delete": op(
        "Remove an on-call entry", "removeOnCall", params=[path_param("shift_id")], ok=("204", None),
        errors={"403": "admins only", "404": "no such entry"})},
    "/calendar": {"get": op(
        "The admin's holidays and worked weekend days; the years whose official schedule is "
        "known, and a warning when this year's or the next one's is not", "listCalendar",
        params=[query("from", {"type": "string", "format": "date"}, "first day"),
                query("to", {"type": "string", "format": "date"}, "last day")],
        errors={"400": "a bad date", "403": "admins and operators only"})},
    "/calendar/{day}": {
        "get": op("One calendar exception", "getCalendarDay", params=[DAY], ok=("200", DAY_ROW),
                  errors={"400": "a bad date", "403": "admins and operators only", "404": "an ordinary day"}),
        "put": op("Mark a day as a holiday or a workday", "setCalendarDay", params=[DAY],
                  body={"type": "object", "required": ["kind"], "properties": {
                      "kind": {"type": "string", "enum": list(service.CALENDAR_KINDS)}, "name": {"type": "string"}}},
                  ok=("200", DAY_ROW), errors=BAD),
        "delete": op("Make a day ordinary again", "removeCalendarDay", params=[DAY], ok=("204", None),
                     errors={**BAD, "404": "an ordinary day"}),
    },
    "/duty-desks": {
        "get": op("Who staffs each community's duty desk", "listDutyDesks",
                  params=[query("community", {"type": "string"}, "one community code")],
                  errors={"403": "admins and operators only", "422": "unknown area"}),
        "post": op("Put a grid-manager account on a community's duty desk", "addDutyDesk",
                   body={"type": "object", "required": ["user_id", "community_code"], "properties": {
                       "user_id": {"type": "integer"}, "community_code": {"type": "string"}}},
                   ok=("201", {"type": "object"}),
                   errors={**BAD, "409": "already on that desk",
                           "422": "unknown or disabled user, or unknown community"}),
    },
    "/duty-desks/{desk_id}": {"delete": op(
        "Take an account off a community's duty desk", "removeDutyDesk", params=[path_param("desk_id")],
        ok=("204", None), errors={"403": "admins only", "404": "no such desk"})},
}
