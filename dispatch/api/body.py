"""Request bodies and path ids, answered with a 400 or 404 naming what is wrong."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import request

from dispatch.errors import ApiError, bad_field, id_number


def refuse_nul() -> None:
    """400 for a NUL character anywhere in an API request (path, query or JSON body).

    PostgreSQL text cannot hold one and no field of ours needs one: without this the same
    input was a 400 or a 404 on SQLite and a 500 on PostgreSQL.
    """
    where = None
    if "\x00" in request.path:
        where = "path"
    for name, values in request.args.lists():
        if where is None and ("\x00" in name or any("\x00" in v for v in values)):
            where = name
    if where is None and request.is_json:
        where = _nul_in(request.get_json(silent=True), "body")
    if where is not None:
        raise bad_field(where.replace("\x00", "\\x00"), "must not contain a NUL character")


def _nul_in(value: Any, where: str) -> str | None:
    """The dotted name of the first string holding a NUL in a parsed JSON value, or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        name = key if where == "body" else f"{where}.{key}"  # fields are named from the top
        if "\x00" in key:
            return name
        found = _nul_in(item, name)
        if found is not None:
            return found
    return None


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
    number = id_number(value)
    if number is None:
        raise ApiError(404, f"{what}_not_found", f"no {what} {value!r}", {what: value})
    return number
