"""Intake: a report from a resident, an operator taking a call, or a manager on patrol."""

from __future__ import annotations

import functools
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select, text
from sqlalchemy.orm import Session

from dispatch.errors import ApiError, bad_field, only_fields
from dispatch.incidents import events
from dispatch.incidents.flows import (
    Context,
    choose_for_grid,
    due,
    rank_for,
    recommend_crew,
    route_manager,
)
from dispatch.incidents.models import OPEN_STATUSES, Category, Incident
from dispatch.people import fields
from dispatch.people.auth import token_digest
from dispatch.people.models import User
from dispatch.sla.schedule import evaluate as sla_evaluate
from grids.geometry import degrees_covering, metres_between, to_wgs84
from grids.index import OutsideManagedArea

MAX_DESCRIPTION = 2000
MAX_ADDRESS = 200
MAX_NAME = 64
DUPLICATE_RADIUS_M = 50.0
# Anonymous intake limits: (reports, window). Phone numbers are limited across clients.
LIMIT_PER_CLIENT = (20, timedelta(minutes=10))
LIMIT_PER_PHONE = (5, timedelta(minutes=10))
CHANNEL_BY_ROLE = {"operator": "operator", "admin": "operator", "grid_manager": "patrol",
                   "crew": "patrol"}


@dataclass
class Report:
    """A checked report, ready to be recorded."""

    category: Category
    description: str
    address: str
    lon: float
    lat: float
    locate_method: str
    chain: dict[str, str | None]
    reporter_name: str | None
    reporter_phone: str | None


REPORT_FIELDS = ("category", "description", "address", "reporter_name", "reporter_phone", "location")
LOCATION_FIELDS = ("lon", "lat", "crs", "building_code", "unit_code")


def _text(payload: dict, field: str, limit: int, *, required: bool = False) -> str:
    value = payload.get(field)
    if value is None or value == "":
        if required:
            raise bad_field(field, "is required")
        return ""
    if not isinstance(value, str):
        raise bad_field(field, "must be a string")
    value = value.strip()
    if len(value) > limit:
        raise bad_field(field, f"is too long ({len(value)} characters, at most {limit})")
    return value


def check_report(ctx: Context, payload: Any) -> Report:
    """Validate a report and locate it; ApiError naming the field when anything is wrong."""
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    only_fields(payload, REPORT_FIELDS)
    code = _text(payload, "category", 32, required=True)
    category = ctx.roster.categories.get(code)
    if category is None:
        raise bad_field("category", f"unknown category {code!r}", 422, value=code)
    if not category.active:  # said as such: a resident's page offering it is out of date
        raise bad_field("category", f"category {code!r} is no longer reported; choose another", 422,
                        value=code, reason="retired")
    description = _text(payload, "description", MAX_DESCRIPTION)
    address = _text(payload, "address", MAX_ADDRESS)
    name = _text(payload, "reporter_name", MAX_NAME) or None
    phone = fields.caller_phone("reporter_phone", payload.get("reporter_phone"))
    lon, lat, method, chain = _locate(ctx, payload)
    return Report(category, description, address, lon, lat, method, chain, name, phone)


def _locate(ctx: Context, payload: dict) -> tuple[float, float, str, dict[str, str | None]]:
    """A point (any accepted CRS) or a building/unit code → WGS84 point and area chain."""
    location = payload.get("location")
    if location is None:
        raise bad_field("location", "is required: {lon, lat, crs} or {building_code | unit_code}")
    if not isinstance(location, dict):
        raise bad_field("location", "must be an object")
    only_fields(location, LOCATION_FIELDS, "location.")
    codes = [name for name in ("unit_code", "building_code") if location.get(name) not in (None, "")]
    axes = [name for name in ("lon", "lat") if location.get(name) is not None]
    # One place only: with two, which one was meant cannot be known.
    if len(codes) > 1 or (codes and axes):
        raise bad_field("location", f"gives {' and '.join(codes + axes)}: give one place, "
                        "{lon, lat, crs} or a building_code or a unit_code")
    if not codes and not axes:
        raise bad_field("location", "is required: {lon, lat, crs} or {building_code | unit_code}")
    if codes:
        field, expected = f"location.{codes[0]}", codes[0].removesuffix("_code")
        area_code = location[codes[0]]
        if not isinstance(area_code, str):
            raise bad_field(field, f"must be a {expected} code (a string), got {str(area_code)[:40]!r}")
        try:
            level = ctx.index.level_of(area_code)
        except KeyError:
            raise bad_field(field, f"unknown {expected} code {area_code!r}", 422) from None
        if level != expected:
            raise bad_field(field, f"{area_code!r} is a {level}, not a {expected}", 422)
        chain = ctx.index.chain_of(area_code)
        if not chain.get("grid"):  # nobody's to route to: never a report without a manager
            raise bad_field(field, f"{expected} {area_code!r} lies in no grid", 422)
        point = ctx.index.geometry(area_code).representative_point()
        return point.x, point.y, expected, chain
    lon, lat = (fields.number(f"location.{axis}", location.get(axis)) for axis in ("lon", "lat"))
    crs = location.get("crs")
    try:
        lon, lat = to_wgs84(lon, lat, crs)
    except ValueError as exc:
        field = "location.crs" if "crs" in str(exc).lower() else "location"
        raise bad_field(field, str(exc)) from None
    try:
        found = ctx.index.locate(float(lon), float(lat))
    except OutsideManagedArea as exc:
        raise ApiError(422, "outside_managed_area", str(exc),
                       {"field": "location", "nearest_distance_m": exc.nearest_distance_m,
                        "tolerance_m": exc.tolerance_m}) from None
    return found.lon, found.lat, found.method, found.chain


def check_rate_limits(ctx: Context, *, client_key: str, phone: str | None) -> None:
    """429 when an anonymous client or a phone number reports too often. Only residents'
    reports count: an operator entering calls for a caller, or staff sharing a resident's
    address (one office network), use up no resident's allowance."""
    for column, value, (limit, window), what in (
        (Incident.client_key, client_key, LIMIT_PER_CLIENT, "this client"),
        (Incident.reporter_phone, phone, LIMIT_PER_PHONE, "this phone number"),
    ):
        if not value:
            continue
        recent, oldest = ctx.session.execute(
            select(func.count(), func.min(Incident.created_at))
            .where(column == value, Incident.channel == "resident", Incident.created_at > ctx.now - window)
        ).one()
        if recent >= limit:
            minutes = int(window.total_seconds() // 60)
            # When the oldest report counted leaves the window, one more may be filed.
            wait = max(1, math.ceil((oldest + window - ctx.now).total_seconds()))
            raise ApiError(429, "rate_limited",
                           f"too many reports from {what}: at most {limit} in {minutes} minutes; "
                           "for an emergency call the hotline",
                           {"limit": limit, "window_minutes": minutes, "retry_after_s": wait,
                            "field": "reporter_phone" if column is Incident.reporter_phone else None},
                           headers={"Retry-After": str(wait)})


@functools.cache
def _open_nearby():
    """Open incidents of a category in a building or a lon/lat box, oldest first; built once."""
    return (select(Incident.id, Incident.public_id, Incident.building_code, Incident.lon, Incident.lat)
            .where(Incident.category_code == bindparam("category"),
                   Incident.status.in_(OPEN_STATUSES),
                   or_(Incident.building_code == bindparam("building"),
                       and_(Incident.lon.between(bindparam("min_lon"), bindparam("max_lon")),
                            Incident.lat.between(bindparam("min_lat"), bindparam("max_lat")))))
            .order_by(Incident.created_at, Incident.id))


def find_duplicate(ctx: Context, report: Report) -> Row | None:
    """The oldest open incident of the same category in the same building or within 50 m:
    its id and public id (only the columns the test needs are read).

    The building is matched whole, however large (a mall's two ends are one building);
    nearby places through the smallest box that holds the 50 m circle, then the exact distance.
    """
    pad = degrees_covering(DUPLICATE_RADIUS_M, report.lat)
    building = report.chain.get("building")
    candidates = ctx.session.execute(_open_nearby(), {
        "category": report.category.code, "building": building,
        "min_lon": report.lon - pad, "max_lon": report.lon + pad,
        "min_lat": report.lat - pad, "max_lat": report.lat + pad,
    }).all()
    for other in candidates:
        if building and other.building_code == building:
            return other
        if metres_between(report.lon, report.lat, other.lon, other.lat) <= DUPLICATE_RADIUS_M:
            return other
    return None


@functools.cache
def _next_id_statements():
    """Built once (every report runs one): PostgreSQL's and SQLite's."""
    return (text("SELECT nextval(pg_get_serial_sequence('incidents', 'id'))"),
            select(func.coalesce(func.max(Incident.id), 0) + 1))


def next_incident_id(session: Session) -> int:
    """The id the next incident gets, known before it is written (the public id is made of it).

    PostgreSQL hands it out from the column's sequence. SQLite gives a new row the largest
    id plus one, and every transaction there begins with BEGIN IMMEDIATE, so no other
    writer can take the same number before this one commits.
    """
    from_sequence, largest_plus_one = _next_id_statements()
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(from_sequence)
    return session.scalar(largest_plus_one)


def record_report(ctx: Context, report: Report, *, reporter: User | None, client_key: str) -> tuple[Incident, str]:
    """Write the incident and its first events; returns it with the reporter's tracking token."""
    category = report.category
    # Every read first; the event log's lock (taken by the first append) is then held
    # only for the writes, so concurrent reports wait on each other as little as possible.
    original = find_duplicate(ctx, report)
    manager = choose_for_grid(ctx, report.chain.get("grid"), report.chain.get("community"))
    crews = rank_for(ctx, category, lon=report.lon, lat=report.lat, chain=report.chain)
    token = secrets.token_urlsafe(18)
    incident_id = next_incident_id(ctx.session)
    public_id = f"{ctx.now.astimezone(ctx.tz):%Y%m%d}-{incident_id:06d}"
    # Inserted once, at commit, with its events applied: no early flush for the id.
    incident = Incident(id=incident_id, public_id=public_id, tracking_hash=token_digest(token),
                        category_code=category.code, priority=category.priority, lon=report.lon,
                        lat=report.lat, locate_method=report.locate_method, channel="resident",
                        status="reported", version=0, created_at=ctx.now, updated_at=ctx.now)
    ctx.session.add(incident)
    actor = {"actor_id": reporter.id if reporter else None,
             "actor_role": reporter.role if reporter else "resident"}
    events.append(ctx.session, incident, "reported", at=ctx.now, data={
        "public_id": public_id,
        "tracking_hash": incident.tracking_hash,
        "category_code": category.code,
        "priority": category.priority,
        "description": report.description,
        "address": report.address,
        "lon": report.lon,
        "lat": report.lat,
        "locate_method": report.locate_method,
        **{f"{level}_code": report.chain.get(level) for level in
           ("unit", "building", "grid", "community", "street", "district")},
        "channel": CHANNEL_BY_ROLE.get(reporter.role, "resident") if reporter else "resident",
        "reporter_name": report.reporter_name,
        "reporter_phone": report.reporter_phone,
        "reporter_user_id": reporter.id if reporter else None,
        "client_key": client_key,
        "escalation_level": 0,
        "sla_state": "green",
        "rework_count": 0,
        "arrive_due": due(ctx, category, ctx.now, category.arrive_minutes) if category.needs_crew else None,
        "resolve_due": due(ctx, category, ctx.now, category.resolve_minutes),
    }, **actor)
    if original is not None:
        events.append(ctx.session, incident, "duplicate_suspected", at=ctx.now,
                      data={"suspected_duplicate_of_id": original.id,
                            "original": original.public_id}, actor_id=None, actor_role="system")
    route_manager(ctx, incident, category, manager, actor={"actor_id": None, "actor_role": "system"})
    recommend_crew(ctx, incident, category, crews)
    sla_evaluate(ctx, incident, new=True)  # its first look at the SLA clock: when it turns amber
    return incident, token
