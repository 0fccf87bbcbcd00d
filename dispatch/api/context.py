"""What every incident route needs: the rule context and the viewer's serialiser."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import current_app

from dispatch.app import clock, session
from dispatch.areas import index_cache
from dispatch.incidents.flows import Context
from dispatch.incidents.views import IncidentViews
from dispatch.people.models import User


def rule_context() -> Context:
    db = session()
    return Context.load(db, now=clock().now(), tz=ZoneInfo(current_app.config["GRIDDISPATCH_TZ"]),
                        index=index_cache().get(db))


def views_for(viewer: User | None) -> IncidentViews:
    db = session()
    index_cache().get(db)  # keeps the area names current
    return IncidentViews(db, viewer, index_cache().names)
