"""Request bodies and path ids, answered with a 400 or 404 naming what is wrong."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import request

from dispatch.errors import ApiError, bad_field, id_number, only_fields
from grids.text import printable, unstorable_in_text

MAX_DEPTH = 32  # no body of ours nests more than a few levels


def refuse_unstorable() -> None:
    """400 for text no field can hold anywhere in an API request (path, query or JSON body),
    and for a body nested deeper than MAX_DEPTH (parsing it, and every walk over it, recurses)."""
    found = unstorable_in_text(request.path, "path")
    for name, values in request.args.lists():
        for text in (name, *values):
            found = found or unstorable_in_text(text, name)
    if found is None and request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # the decoder gave up: far deeper than MAX_DEPTH
            raise ApiError(400, "invalid_body", f"the body nests deeper than {MAX_DEPTH} levels") from None
        found = _unstorable_in(body)
    if found is not None:
        where, problem = found
        raise bad_field(printable(where), problem)


def _unstorable_in(body: Any) -> tuple[str, str] | None:
    """(dotted name, problem) of the first unstorable string, key or nesting in a parsed JSON
    body, or None. Walked with a stack, not recursion: the depth is what it checks."""
    stack = [(body, "body", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            found = unstorable_in_text(value, where)
            if found is not None:
                return found
            continue
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            continue
        if depth >= MAX_DEPTH:
            return where, f"nests deeper than {MAX_DEPTH} levels"
        for key, item in reversed(items):  # popped in the body's own order
            name = key if where == "body" else f"{where}.{key}"  # fields are named from the top
            found = unstorable_in_text(key, name)
            if found is not None:
                return found
            stack.append((item, name, depth + 1))
    return None


def json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        if request.is_json and request.get_data(cache=True).strip() == b"null":
            raise ApiError(400, "invalid_body", "the body must be a JSON object or list, not null")
        raise ApiError(400, "invalid_body", "the body must be JSON (Content-Type: application/json)")
    return body


def json_object(allowed: Collection[str]) -> dict[str, Any]:
    """The JSON object of the body, holding only the `allowed` fields."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    only_fields(body, allowed)
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
