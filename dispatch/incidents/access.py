"""Who may see an incident and who may do what to it (SPEC §7)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_
from sqlalchemy.orm import Session

from dispatch.errors import ApiError, a_or_an
from dispatch.incidents.models import Incident
from dispatch.people.directory import managed_grids
from dispatch.people.models import User

CHAIN_COLUMNS = ("unit_code", "building_code", "grid_code", "community_code", "street_code",
                 "district_code")

# Roles allowed each action; scope is checked on top. Residents rate through their
# tracking token, not through an account, so "rate" here is for operators' callbacks (回访).
ACTION_ROLES: dict[str, frozenset[str]] = {
    "acknowledge": frozenset({"grid_manager", "admin"}),
    "dispatch": frozenset({"grid_manager", "operator", "admin"}),
    "en_route": frozenset({"crew", "grid_manager", "admin"}),
    "on_site": frozenset({"crew", "grid_manager", "admin"}),
    "resolve": frozenset({"crew", "grid_manager", "admin"}),
    "verify": frozenset({"grid_manager", "admin"}),
    "close": frozenset({"grid_manager", "operator", "admin"}),
    "cancel": frozenset({"grid_manager", "operator", "admin"}),
    "reassign": frozenset({"grid_manager", "operator", "admin"}),
    "merge": frozenset({"grid_manager", "operator", "admin"}),
    "rework": frozenset({"grid_manager", "admin"}),
    "rate": frozenset({"operator", "admin"}),
    "escalate": frozenset({"grid_manager", "operator", "admin"}),
    "pause": frozenset({"grid_manager", "operator", "admin"}),
    "resume": frozenset({"grid_manager", "operator", "admin"}),
}


def in_area(code: str) -> ColumnElement[bool]:
    """Incidents anywhere inside the area `code`, whatever its level."""
    return or_(*(getattr(Incident, column) == code for column in CHAIN_COLUMNS))


def visible(session: Session, user: User) -> ColumnElement[bool] | None:
    """A filter for the incidents this user may see; None means every incident."""
    if user.role == "admin":
        return None
    if user.role in ("operator", "committee"):
        return in_area(user.scope_area_code) if user.scope_area_code else (
            None if user.role == "operator" else false()
        )
    if user.role == "grid_manager":
        grids = managed_grids(session, user.id)
        # An adjacent grid's manager who was given the report must be able to work it.
        return or_(Incident.grid_code.in_(grids), Incident.manager_id == user.id)
    if user.role == "crew":
        return Incident.crew_id == user.crew_id if user.crew_id else false()
    return Incident.reporter_user_id == user.id  # a resident with an account


def can_see(session: Session, user: User, incident: Incident) -> bool:
    if user.role == "admin":
        return True
    if user.role in ("operator", "committee"):
        if not user.scope_area_code:
            return user.role == "operator"
        return user.scope_area_code in {getattr(incident, c) for c in CHAIN_COLUMNS}
    if user.role == "grid_manager":
        return incident.manager_id == user.id or incident.grid_code in managed_grids(session, user.id)
    if user.role == "crew":
        return user.crew_id is not None and incident.crew_id == user.crew_id
    return incident.reporter_user_id == user.id


def check_may_act(session: Session, user: User, incident: Incident, action: str) -> None:
    """403 unless this user's role may take this action on this incident."""
    allowed = ACTION_ROLES.get(action, frozenset())
    if user.role not in allowed:
        raise ApiError(403, "forbidden", f"{a_or_an(user.role)} may not {action} an incident",
                       {"action": action, "role": user.role, "allowed": sorted(allowed)})
    if not can_see(session, user, incident):
        raise ApiError(403, "out_of_scope", f"incident {incident.public_id} is outside your area",
                       {"incident": incident.public_id})


# Who may find incidents by the reporter's phone: only those who see every phone whole (a
# manager sees the phones of its own incidents only, and a search would reveal the others).
PHONE_SEARCH_ROLES = frozenset({"operator", "admin"})


def check_may_search_phone(user: User) -> None:
    if user.role not in PHONE_SEARCH_ROLES:
        raise ApiError(403, "forbidden", f"phone: a {user.role} may not look incidents up by phone",
                       {"field": "phone", "role": user.role, "allowed": sorted(PHONE_SEARCH_ROLES)})


def sees_phone(user: User | None, incident: Incident) -> bool:
    """Reporter phones are shown whole only to the assigned manager, operators and admins."""
    if user is None:
        return False
    return user.role in PHONE_SEARCH_ROLES or (
        user.role == "grid_manager" and incident.manager_id == user.id
    )


def mask_phone(phone: str | None) -> str | None:
    """138****5678: enough to recognise, not enough to call. A mobile or a landline with its
    area code (11 digits or more) keeps its first 3 and last 4, as is usual in China; a
    shorter number, a local landline say, only its last 2, and under 7 digits nothing, so
    a short number too keeps at least 5 digits hidden (100,000 numbers to try, not 10)."""
    if not phone:
        return phone
    head, tail = (3, 4) if len(phone) >= 11 else (0, 2) if len(phone) >= 7 else (0, 0)
    return phone[:head] + "*" * (len(phone) - head - tail) + phone[len(phone) - tail:]
