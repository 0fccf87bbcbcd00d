"""Incidents: report, list, get, act, timeline; and the reporter's tracking view."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from dispatch.api.body import json_body
from dispatch.api.context import rule_context, views_for
from dispatch.api.openapi import CRS, op, path_param, query
from dispatch.api.params import IntParam, bbox_arg, bool_arg, id_arg
from dispatch.app import clock, session
from dispatch.errors import ApiError, bad_field
from dispatch.incidents import service
from dispatch.people.auth import client_key, current_user, require_user

bp = Blueprint("incidents", __name__)


@bp.post("/incidents")
def report():
    payload = json_body()  # read the whole request before any database work starts
    reporter = current_user()
    if reporter is not None and reporter.role == "committee":
        raise ApiError(403, "forbidden", "committee members watch; they do not file reports")
    body, replayed = service.submit_once(
        rule_context(), payload, key=request.headers.get("Idempotency-Key"),
        reporter=reporter, client_key=client_key(), views=views_for(reporter),
    )
    response = jsonify(body)
    response.status_code = 201
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


LIMIT = IntParam("limit", 50, 1, 500, "page size")
OFFSET = IntParam("offset", 0, 0, 10**9, "page start")


@bp.get("/incidents")
def list_incidents():
    user = require_user()
    limit = LIMIT.read()
    offset = OFFSET.read()
    filters = {
        "status": request.args.get("status"),
        "open": bool_arg("open"),
        "area": request.args.get("area"),
        "category": request.args.get("category"),
        "assignee": id_arg("assignee", "user"),
        "mine": bool_arg("mine"),
        "from": service.parse_time(request.args.get("from"), "from"),
        "to": service.parse_time(request.args.get("to"), "to"),
        "bbox": bbox_arg(),
        "phone": request.args.get("phone"),
    }
    if filters["from"] and filters["to"] and filters["from"] >= filters["to"]:
        raise bad_field("to", f"must be after from ({request.args['from']})")
    incidents, total = service.list_visible(session(), user, filters, limit=limit, offset=offset)
    views = views_for(user)
    # `now`: the server's clock, which the apps' countdowns run on (a tablet's may be wrong).
    return jsonify({"incidents": [views.shown(i) for i in incidents], "total": total,
                    "limit": limit, "offset": offset, "now": clock().now().isoformat()})


@bp.get("/incidents/<incident_ref>")
def get_incident(incident_ref: str):
    user = require_user()
    return jsonify(views_for(user).shown(service.get_visible(session(), user, incident_ref)))


@bp.post("/incidents/<incident_ref>/actions")
def act(incident_ref: str):
    user = require_user()
    body, replayed = service.act_once(rule_context(), user, incident_ref, json_body(),
                                      key=request.headers.get("Idempotency-Key"), views=views_for(user))
    response = jsonify(body)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/incidents/<incident_ref>/events")
def events(incident_ref: str):
    user = require_user()
    return jsonify({"events": service.timeline(session(), user, incident_ref, views_for(user))})


@bp.get("/track/<token>")
def track(token: str):
    return jsonify(service.track(session(), token, views_for(None)))


@bp.post("/track/<token>/rating")
def rate(token: str):
    service.rate_by_resident(rule_context(), token, json_body())
    session().commit()
    return jsonify(service.track(session(), token, views_for(None)))


INCIDENT = {"$ref": "#/components/schemas/Incident"}
REPORT_BODY = {
    "type": "object", "required": ["category", "location"],
    "properties": {
        "category": {"type": "string", "description": "a category code, e.g. burst_pipe"},
        "description": {"type": "string", "maxLength": 2000},
        "address": {"type": "string", "maxLength": 200},
        "reporter_name": {"type": "string", "maxLength": 64},
        "reporter_phone": {"type": "string"},
        "location": {"type": "object", "description": "{lon, lat, crs?} or {building_code} or {unit_code}",
                     "properties": {"lon": {"type": "number"}, "lat": {"type": "number"},
                                    "crs": CRS,
                                    "building_code": {"type": "string"}, "unit_code": {"type": "string"}}},
    },
}
ACTION_BODY = {
    "type": "object", "required": ["action", "expected_version"],
    "properties": {
        "action": {"type": "string", "enum": ["acknowledge", "dispatch", "en_route", "on_site", "resolve",
                                              "verify", "close", "cancel", "reassign", "merge", "rework",
                                              "rate", "escalate", "pause", "resume"]},
        "expected_version": {"type": "integer"},
        "crew_id": {"type": "integer", "description": "dispatch: default the recommended crew"},
        "grid_code": {"type": "string", "description": "reassign: the new grid"},
        "duplicate_of": {"type": "string", "description": "merge: public id of the original"},
        "reason": {"type": "string", "description": "cancel, reassign, rework, escalate, pause"},
        "note": {"type": "string"},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "comment": {"type": "string"},
    },
}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "a retry with the same key gets the first answer",
                   "schema": {"type": "string", "maxLength": 128}}
INCIDENT_REF = path_param("incident_ref", "numeric id or public id")
PATHS = {
    "/incidents": {
        "post": op("Report a problem (anonymous, operator or patrol); honours Idempotency-Key",
                   "reportIncident", body=REPORT_BODY,
                   params=[IDEMPOTENCY_KEY],
                   ok=("201", INCIDENT),
                   errors={"400": "a bad field, named in details.field",
                           "422": "unknown category/area or outside the managed area",
                           "403": "committee members report nothing (they watch)",
                           "429": "too many anonymous reports from this client or phone; Retry-After "
                                   "(and details.retry_after_s) says when one more may be filed"}, auth="optional"),
        "get": op("Incidents in the caller's scope, filtered and paginated", "listIncidents", params=[
            query("status", {"type": "string"}, "comma-separated statuses"),
            query("open", {"type": "boolean"}, "only open (true) or closed (false)"),
            query("area", {"type": "string"}, "an area code at any level"),
            query("category", {"type": "string"}, "a category code"),
            query("assignee", {"type": "integer"}, "the assigned manager's user id"),
            query("mine", {"type": "boolean"}, "assigned to me (manager) or my crew"),
            query("from", {"type": "string", "format": "date-time"}, "reported at or after"),
            query("to", {"type": "string", "format": "date-time"}, "reported before"),
            query("bbox", {"type": "string"}, "min_lon,min_lat,max_lon,max_lat"),
            query("phone", {"type": "string"}, "the reporter's phone, however formatted "
                  "(operators and admins only: 403 for other roles)"),
            LIMIT.documented(),
            OFFSET.documented(),
        ], ok=("200", {"type": "object", "properties": {
            "incidents": {"type": "array", "items": INCIDENT}, "total": {"type": "integer"},
            "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "now": {"type": "string", "format": "date-time",
                    "description": "the server's clock, for countdowns on a device whose clock is wrong"}}}),
           errors={"400": "a bad filter (or a `to` not after `from`)", "403": "a phone look-up by a role that may not"}),
    },
    "/incidents/{incident_ref}": {"get": op(
        "One incident", "getIncident", params=[INCIDENT_REF], ok=("200", INCIDENT),
        errors={"403": "outside your scope", "404": "no such incident"})},
    "/incidents/{incident_ref}/actions": {"post": op(
        "Take a lifecycle action; honours Idempotency-Key", "actOnIncident",
        params=[INCIDENT_REF, IDEMPOTENCY_KEY], body=ACTION_BODY,
        ok=("200", INCIDENT),
        errors={"400": "a bad field", "403": "role or scope may not", "404": "no such incident",
                "409": "stale expected_version (details carry the current version), not allowed from this "
                       "state (invalid_transition), already_rated, already_at_top (escalated to the "
                       "district), already_paused, not_paused, or a field's conflict in details.reason "
                       "(already_dispatched, crew_off_duty, lacks_skill, no_active_member, "
                       "outside_service_area, same_grid, original_ended)",
                "422": "unknown crew, grid or original"})},
    "/incidents/{incident_ref}/events": {"get": op(
        "The incident's timeline (every event, with seq)", "incidentEvents", params=[INCIDENT_REF],
        errors={"403": "outside your scope", "404": "no such incident"})},
    "/track/{token}": {"get": op(
        "The reporter's view through its tracking token", "track", params=[path_param("token")],
        errors={"404": "unknown token"}, auth=False)},
    "/track/{token}/rating": {"post": op(
        "The reporter's satisfaction rating (1–5); 2 or less sends it back for rework", "rate",
        params=[path_param("token")],
        body={"type": "object", "required": ["rating"], "properties": {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": {"type": "string"},
            "expected_version": {"type": "integer"}}},
        errors={"400": "bad rating", "404": "unknown token",
                "409": "not resolved yet; already_rated: this fix was rated (a fix after a rework is rated afresh)"}, auth=False)},
}
