"""Metrics for the committee board: response times and rates, JSON or CSV."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, jsonify, request

from dispatch.api.openapi import op, query
from dispatch.app import clock, session
from dispatch.metrics import service
from dispatch.metrics.models import PHASES
from dispatch.people.auth import require_user

bp = Blueprint("metrics", __name__)


def _table(build, to_csv, filename: str):
    user = require_user(*service.READERS)
    tz_name = current_app.config["GRIDDISPATCH_TZ"]
    today = clock().now().astimezone(ZoneInfo(tz_name)).date()
    params = service.parse_query(request.args, today=today)
    table = build(session(), user, params, tz_name=tz_name)
    if params.format == "csv":
        return Response(to_csv(table), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{filename}.csv"'})
    return jsonify(table)


@bp.get("/metrics/response-times")
def response_times():
    return _table(service.response_times, service.response_times_csv, "response-times")


@bp.get("/metrics/rates")
def rates():
    return _table(service.rates, service.rates_csv, "rates")


COMMON = [
    query("group_by", {"type": "string", "enum": list(service.GROUPS)},
          "grid, community, street, district (level = grid), crew, manager or category", required=True),
    query("bucket", {"type": "string", "enum": list(service.BUCKETS)}, "split by local day, ISO week or month"),
    query("from", {"type": "string", "format": "date"}, "first local report date (default 29 days before to)"),
    query("to", {"type": "string", "format": "date"}, "last local report date, included (default today)"),
    query("area", {"type": "string"}, "an area code, grid level or above"),
    query("category", {"type": "string"}, "a category code"),
    query("format", {"type": "string", "enum": list(service.FORMATS)}, "json (default) or csv"),
]
ERRORS = {"400": "a bad parameter, named in details.field", "403": "crew and residents may not read metrics"}
PATHS = {
    "/metrics/response-times": {"get": op(
        "Count, mean, p50, p90 (seconds, nearest rank) of report→acknowledge, report→arrival, "
        "report→resolve and resolve→verify per group and bucket, in the caller's scope",
        "responseTimes", params=[*COMMON, query("phase", {"type": "string"},
                                                f"comma-separated subset of {', '.join(PHASES)}")],
        errors=ERRORS, csv=True)},
    "/metrics/rates": {"get": op(
        "On-time per phase, closure, rework, satisfaction and first-time-fix rates per group "
        "(league table: groups under min_sample are hidden and counted)", "rates",
        params=[*COMMON, query("min_sample", {"type": "integer", "minimum": 0, "maximum": 1_000_000,
                                             "default": 5}, "hide smaller groups")],
        errors=ERRORS, csv=True)},
}
