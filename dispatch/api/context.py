"""What every incident route needs: the rule context and the viewer's serialiser."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import current_app, g

from dispatch.app import clock, session
from dispatch.areas import index_cache
from dispatch.incidents.flows import Context
from dispatch.incidents.views import IncidentViews
from dispatch.people.models import User


def _index():
    """The area index as of this request (the revision is read once per request)."""
    if "area_index" not in g:
        g.area_index = index_cache().get(session())
    return g.area_index


def _roster():
    """Who works where as of this request (the directory revision is read once per request)."""
    if "roster" not in g:
        g.roster = current_app.extensions["griddispatch.roster"].get(session())
    return g.roster


def rule_context() -> Context:
    return Context.load(session(), now=clock().now(),
                        tz=ZoneInfo(current_app.config["GRIDDISPATCH_TZ"]), index=_index(),
                        roster=_roster())


def views_for(viewer: User | None) -> IncidentViews:
    _index()  # keeps the area names current
    return IncidentViews(session(), viewer, index_cache().names, _roster().staff)
