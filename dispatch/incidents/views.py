"""Incidents and events as JSON, as a given viewer may see them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from dispatch.incidents.access import mask_phone, sees_phone
from dispatch.incidents.models import Category, Incident, IncidentEvent
from dispatch.people.models import Crew, User
from dispatch.people.roster import Roster

LEVELS_UP = ("unit", "building", "grid", "community", "street", "district")
TIMES = ("created_at", "assigned_at", "acknowledged_at", "dispatched_at", "en_route_at",
         "on_site_at", "resolved_at", "verified_at", "closed_at", "cancelled_at")
DEADLINES = ("acknowledge_due", "arrive_due", "resolve_due", "verify_due")
PRIVATE_EVENT_KEYS = {"tracking_hash", "client_key"}
# What a reporter sees of an event: how the report stands, never who else reported it or
# how it was routed.
RESIDENT_EVENT_KEYS = frozenset({
    "status", "reason", "note", "rating", "original", "escalation_level", "to_level",
    "acknowledge_due", "arrive_due", "resolve_due", "verify_due", "sla_state"})


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


class IncidentViews:
    """Serialises incidents for one viewer, looking names up once per request."""

    def __init__(self, session: Session, viewer: User | None, names: dict[str, str],
                 roster: Roster) -> None:
        self.session = session
        self.viewer = viewer
        self.names = names
        # The roster's names, phones and categories, so most look-ups need no query (an
        # account or category newer than the roster is still read from the session).
        self.staff = roster.staff
        self.categories = roster.categories

    def _user(self, user_id: int | None) -> dict[str, Any] | None:
        if not user_id:
            return None
        if user_id in self.staff:
            name, phone = self.staff[user_id]
            return {"id": user_id, "display_name": name, "phone": phone}
        user = self.session.get(User, user_id)
        return {"id": user.id, "display_name": user.display_name, "phone": user.phone} if user else None

    def _crew(self, crew_id: int | None) -> dict[str, Any] | None:
        crew = self.session.get(Crew, crew_id) if crew_id else None
        return {"id": crew.id, "name": crew.name, "status": crew.status} if crew else None

    def _public_id(self, incident_id: int | None) -> str | None:
        other = self.session.get(Incident, incident_id) if incident_id else None
        return other.public_id if other else None

    def incident(self, incident: Incident) -> dict[str, Any]:
        category = (self.categories.get(incident.category_code)
                    or self.session.get(Category, incident.category_code))
        phone = incident.reporter_phone
        return {
            "id": incident.id,
            "public_id": incident.public_id,
            "category": incident.category_code,
            "category_name": {"zh": category.name_zh, "en": category.name_en},
            "priority": incident.priority,
            "description": incident.description,
            "address": incident.address,
            "location": {"lon": incident.lon, "lat": incident.lat, "method": incident.locate_method},
            "areas": {
                level: ({"code": code, "name": self.names.get(code, code)} if code else None)
                for level in LEVELS_UP
                for code in [getattr(incident, f"{level}_code")]
            },
            "channel": incident.channel,
            "reporter": {
                "name": incident.reporter_name,
                "phone": phone if sees_phone(self.viewer, incident) else mask_phone(phone),
            },
            "manager": self._user(incident.manager_id),
            "crew": self._crew(incident.crew_id),
            "recommended_crew": self._crew(incident.recommended_crew_id),
            "status": incident.status,
            "version": incident.version,
            "escalation_level": incident.escalation_level,
            "sla_state": incident.sla_state,
            "paused": ({"since": _iso(incident.paused_at), "reason": incident.pause_reason}
                       if incident.paused_at else None),
            "duplicate_of": self._public_id(incident.duplicate_of_id),
            "suspected_duplicate_of": self._public_id(incident.suspected_duplicate_of_id),
            "rework_count": incident.rework_count,
            "rating": incident.rating,
            "rating_comment": incident.rating_comment,
            "times": {name: _iso(getattr(incident, name)) for name in TIMES},
            "deadlines": {name: _iso(getattr(incident, name)) for name in DEADLINES},
            "updated_at": _iso(incident.updated_at),
        }

    def shown(self, incident: Incident) -> dict[str, Any]:
        """The incident as this viewer may see it: a resident account sees its own report
        as it was answered on reporting, without staff phones or ids."""
        if self.viewer is not None and self.viewer.role == "resident":
            return resident_answer(self, incident)
        return self.incident(incident)

    def shown_event(self, event: IncidentEvent, incident: Incident) -> dict[str, Any]:
        """An event as this viewer may see it: a resident account as on the tracking page."""
        body = self.event(event, incident)
        return resident_event(body) if self.viewer is not None and self.viewer.role == "resident" else body

    def event(self, event: IncidentEvent, incident: Incident) -> dict[str, Any]:
        data = {k: v for k, v in event.data.items() if k not in PRIVATE_EVENT_KEYS}
        if "reporter_phone" in data and not sees_phone(self.viewer, incident):
            data["reporter_phone"] = mask_phone(data["reporter_phone"])
        actor = self._user(event.actor_id)
        return {
            "seq": event.seq,
            "incident_id": event.incident_id,
            "public_id": incident.public_id,
            "type": event.type,
            "at": _iso(event.at),
            "version": event.version,
            "actor": {"role": event.actor_role, "id": event.actor_id,
                      "display_name": actor["display_name"] if actor else None},
            "data": data,
        }


def resident_answer(views: IncidentViews, incident: Incident) -> dict[str, Any]:
    """What a resident (or an anonymous caller) is answered on reporting: who handles it and
    which crew is recommended or sent, by name only; no staff phone, no account id."""
    body = views.incident(incident)
    for person in ("manager", "crew", "recommended_crew"):
        if body[person]:
            body[person] = {k: v for k, v in body[person].items() if k in ("display_name", "name")}
    return body


def resident_view(views: IncidentViews, incident: Incident) -> dict[str, Any]:
    """What a reporter sees on the tracking page, and is pushed: how the report stands and who
    handles it, by name. No reporter's name, phone or words: everyone whose report was merged
    into this one follows it too, and none may read another's."""
    body = resident_answer(views, incident)
    for private in ("recommended_crew", "reporter", "description", "address", "rating_comment"):
        body.pop(private)
    return body


def resident_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event as a reporter sees it (`views.event`'s answer, trimmed in place)."""
    event["data"] = {k: v for k, v in event["data"].items() if k in RESIDENT_EVENT_KEYS}
    event["actor"] = {"role": event["actor"]["role"]}
    return event
