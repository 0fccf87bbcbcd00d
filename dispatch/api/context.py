"""What every incident route needs: the rule context and the viewer's serialiser."""

from __future__ import annotations

import functools
from datetime import date
from zoneinfo import ZoneInfo

from flask import current_app, g
from sqlalchemy import select

from dispatch.app import clock, session
from dispatch.areas import index_cache
from dispatch.incidents.flows import Context
from dispatch.incidents.views import IncidentViews
from dispatch.people.models import DirectoryRevision, User
from grids.store import AreaRevision


@functools.cache
def _read_revisions():
    """Built once: every request runs it, and building it cost as much as running it."""
    return select(
        select(AreaRevision.revision).where(AreaRevision.id == 1).scalar_subquery(),
        select(DirectoryRevision.revision).where(DirectoryRevision.id == 1).scalar_subquery(),
    )


def _revisions() -> tuple[int, int]:
    """The area and directory revisions, read once per request in one statement."""
    if "revisions" not in g:
        area, directory = session().execute(_read_revisions()).one()
        g.revisions = (area or 0, directory or 0)
    return g.revisions


def area_index():
    """The area index as of this request."""
    if "area_index" not in g:
        g.area_index = index_cache().get(session(), revision=_revisions()[0])
    return g.area_index


def _roster():
    """Who works where as of this request."""
    if "roster" not in g:
        g.roster = current_app.extensions["griddispatch.roster"].get(session(), revision=_revisions()[1])
    return g.roster


def rule_context() -> Context:
    return Context(session(), now=clock().now(), tz=ZoneInfo(current_app.config["GRIDDISPATCH_TZ"]),
                   index=area_index(), roster=_roster())


def local_today() -> date:
    """Today in GRIDDISPATCH_TZ, by the app's clock."""
    return clock().now().astimezone(ZoneInfo(current_app.config["GRIDDISPATCH_TZ"])).date()


def views_for(viewer: User | None) -> IncidentViews:
    area_index()  # keeps the area names current
    return IncidentViews(session(), viewer, index_cache().names, _roster())
