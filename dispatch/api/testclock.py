"""The test clock (SPEC §6): read, set or advance the app's ManualClock, then run the SLA clock
once so an end-to-end test sees the effects at once. Registered only with TEST_CLOCK on."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, jsonify, request

from dispatch.api.openapi import op
from dispatch.app import clock, database
from dispatch.areas import index_cache
from dispatch.errors import ApiError, bad_field
from dispatch.people import fields
from dispatch.sla.worker import run_once

bp = Blueprint("testclock", __name__)
MAX_ADVANCE = 10 * 366 * 24 * 60  # ten years of minutes: more is a typo, and overflows a date


@bp.get("/test-clock")
def read():
    return jsonify({"now": clock().now().isoformat()})


@bp.post("/test-clock")
def move():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not ({"now", "advance_minutes"} & body.keys()):
        raise ApiError(400, "invalid_body", 'send {"now": ISO-8601 with offset} or {"advance_minutes": n}')
    if "now" in body and "advance_minutes" in body:
        raise bad_field("advance_minutes", "give either now or advance_minutes, not both")
    if "now" in body:
        clock().set(fields.timestamp("now", body["now"]))
    else:
        minutes = body["advance_minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 <= minutes <= MAX_ADVANCE:
            raise bad_field("advance_minutes", f"must be a number of minutes from 0 to {MAX_ADVANCE}")
        clock().advance(minutes)
    sla = run_once(db=database(), clock=clock(), tz=ZoneInfo(current_app.config["GRIDDISPATCH_TZ"]),
                   index_cache=index_cache(), roster_cache=current_app.extensions["griddispatch.roster"])
    return jsonify({"now": clock().now().isoformat(), "sla": sla})


NOW = {"type": "object", "properties": {"now": {"type": "string", "format": "date-time"}}}
MOVE = {"type": "object", "description": "one of the two",
        "properties": {"now": {"type": "string", "format": "date-time"},
                       "advance_minutes": {"type": "number", "minimum": 0}}}
PATHS = {
    "/test-clock": {
        "get": op("The test clock's time (only with --test-clock)", "readTestClock",
                  ok=("200", NOW), auth=False),
        "post": op("Set or advance the test clock, then run the SLA clock once (only with --test-clock)",
                   "moveTestClock", body=MOVE, ok=("200", NOW),
                   errors={"400": "a bad field, named in details.field"}, auth=False),
    },
}
