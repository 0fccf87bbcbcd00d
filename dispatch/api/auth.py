"""Sign in, sign out, who am I."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from dispatch.api.openapi import op
from dispatch.app import clock, session
from dispatch.errors import ApiError, bad_field
from dispatch.people.auth import (
    check_sign_in_limits,
    client_key,
    issue_token,
    password_matches,
    require_user,
    sign_in_failed,
)
from dispatch.people.models import User

bp = Blueprint("auth", __name__)


@bp.post("/auth/token")
def login():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "send JSON {\"username\": ..., \"password\": ...}")
    for field in ("username", "password"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise bad_field(field, "is required")
    db, now, client = session(), clock().now(), client_key()
    check_sign_in_limits(db, username=body["username"], client=client, now=now)
    user = db.scalar(select(User).where(User.username == body["username"]))
    if not password_matches(user, body["password"]):
        sign_in_failed(db, username=body["username"], client=client, now=now)
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    if not user.active:
        raise ApiError(401, "user_disabled", "this account is disabled")
    token, row = issue_token(db, user=user, now=now)
    db.commit()
    return jsonify({"token": token, "token_type": "Bearer", "expires_at": row.expires_at.isoformat(),
                    "user": _me(user)}), 201


@bp.delete("/auth/token")
def logout():
    require_user()
    g.current_token.revoked_at = clock().now()
    session().commit()
    return "", 204


@bp.get("/auth/me")
def me():
    return jsonify(_me(require_user()))


def _me(user: User) -> dict:
    from dispatch.people.directory import managed_grids

    body = {"id": user.id, "username": user.username, "display_name": user.display_name,
            "role": user.role, "scope_area_code": user.scope_area_code, "crew_id": user.crew_id}
    if user.role == "grid_manager":
        body["grids"] = sorted(managed_grids(session(), user.id))
    return body


PATHS = {
    "/auth/token": {
        "post": op("Sign in: a bearer token for a username and password", "login",
                   body={"type": "object", "required": ["username", "password"],
                         "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
                   ok=("201", {"type": "object", "properties": {
                       "token": {"type": "string"}, "expires_at": {"type": "string"},
                       "user": {"type": "object"}}}),
                   errors={"400": "missing username or password",
                           "401": "invalid_credentials (a wrong username or password) or user_disabled",
                           "429": "too_many_sign_ins: 10 failures for one account, or 30 in all, from one "
                                  "client in 15 minutes (Retry-After says when to try again)"}, auth=False),
        "delete": op("Sign out: revoke the token used", "logout", ok=("204", None)),
    },
    "/auth/me": {"get": op("The signed-in user (with its grids for a grid manager)", "me")},
}
