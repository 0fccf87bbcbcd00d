"""Request bodies and path ids, answered with a 400 or 404 naming what is wrong."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import request

from dispatch.errors import ApiError, bad_field


def json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_body", "the body must be JSON (Content-Type: application/json)")
    return body


def json_object(allowed: Collection[str]) -> dict[str, Any]:
    """The JSON object of the body, holding only the `allowed` fields."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise bad_field(key, f"is not a field here (expected {', '.join(allowed)})")
    return body


def json_list() -> list[Any]:
    body = json_body()
    if not isinstance(body, list):
        raise ApiError(400, "invalid_body", "the body must be a JSON list")
    return body


def path_id(value: str, what: str) -> int:
    """A numeric id from the path; anything else names nothing, so 404."""
    if not value.isdigit() or len(value) > 9:
        raise ApiError(404, f"{what}_not_found", f"no {what} {value!r}", {what: value})
    return int(value)
