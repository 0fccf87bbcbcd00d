"""Report categories: public to read (the resident report page lists them), admins change them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from dispatch.api.body import json_object
from dispatch.api.context import rule_context
from dispatch.api.openapi import op, path_param, query
from dispatch.api.params import bool_arg
from dispatch.app import session
from dispatch.incidents import crew_rules, events
from dispatch.incidents.models import CLOCK_KINDS, PRIORITIES, Category
from dispatch.people import service
from dispatch.people.auth import require_user
from dispatch.sla import deadline_moves

bp = Blueprint("categories", __name__)
CATEGORY_FIELDS = tuple(service.CATEGORY_CHECKS)


def category_json(category: Category) -> dict[str, Any]:
    return {"code": category.code, **{f: getattr(category, f) for f in CATEGORY_FIELDS},
            "auto_dispatch": category.auto_dispatch}


@bp.get("/categories")
def list_categories():
    include_inactive = bool_arg("include_inactive") or False
    if include_inactive:
        require_user("admin")
    categories = service.list_categories(session=session(), include_inactive=include_inactive)
    return jsonify({"categories": [category_json(c) for c in categories]})


@bp.post("/categories")
def create_category():
    require_user("admin")
    category = service.create_category(session=session(), **json_object(("code", *CATEGORY_FIELDS)))
    session().commit()
    return jsonify(category_json(category)), 201


@bp.patch("/categories/<code>")
def update_category(code: str):
    admin = require_user("admin")
    changes = json_object(CATEGORY_FIELDS)
    # The writers' lock before the rules are read: "before" must be what the last change left,
    # or two changes at once would each move the incidents from rules that no longer stand.
    events.lock_event_log(session())
    ctx = rule_context()
    stored = service.get_category(session=session(), code=code, fresh=True)
    before = Category(**{column.key: getattr(stored, column.key) for column in Category.__table__.columns})
    category = service.update_category(session=session(), code=code, **changes)
    session().flush()
    # Open incidents of it keep the time their clocks have used, against the new limits.
    actor = {"actor_id": admin.id, "actor_role": admin.role}
    moved = deadline_moves.for_category(ctx, before, category, actor=actor)
    # Those still waiting for a crew are ranked again under its new crew rules.
    ranked = crew_rules.after_change(ctx, before, category, actor=actor)
    session().commit()
    return jsonify({**category_json(category), "deadlines_moved": moved, "crews_ranked": ranked})


MINUTES = {"type": "integer", "minimum": 1}
CATEGORY_BODY = {"type": "object", "properties": {
    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"},
    "name_zh": {"type": "string"}, "name_en": {"type": "string"},
    "skill": {"type": ["string", "null"], "description": "the crew skill that fixes it"},
    "priority": {"type": "string", "enum": list(PRIORITIES)},
    "needs_crew": {"type": "boolean", "description": "false: the grid manager handles it (e.g. a dispute)"},
    "acknowledge_minutes": MINUTES, "arrive_minutes": MINUTES, "resolve_minutes": MINUTES,
    "verify_minutes": MINUTES, "clock_kind": {"type": "string", "enum": list(CLOCK_KINDS)},
    "icon": {"type": "string"}, "active": {"type": "boolean"}}}
CATEGORY = {"type": "object", "properties": {**CATEGORY_BODY["properties"],
                                             "auto_dispatch": {"type": "boolean"}}}
PATHS = {
    "/categories": {
        "get": op("Report categories (active ones unless an admin asks for all)", "listCategories",
                  params=[query("include_inactive", {"type": "boolean"}, "admins: retired ones too")],
                  errors={"403": "only admins see retired categories"}, auth="optional"),
        "post": op("Create a category", "createCategory",
                   body={**CATEGORY_BODY, "required": ["code", "name_zh", "name_en"]},
                   ok=("201", CATEGORY), errors={"400": "a bad field, named in details.field",
                                                 "403": "admins only", "409": "code taken"}),
    },
    "/categories/{code}": {"patch": op(
        "Change SLA minutes, priority, skill, needs_crew or retire a category (active); open "
        "incidents of it keep the time their clocks have used, against the new minutes "
        "(deadlines_moved: how many moved); after a change of skill or needs_crew, those still "
        "waiting for a crew are ranked afresh (crews_ranked: how many)",
        "updateCategory", params=[path_param("code")], body=CATEGORY_BODY, ok=("200", CATEGORY),
        errors={"400": "a bad field", "403": "admins only", "404": "no such category"})},
}
