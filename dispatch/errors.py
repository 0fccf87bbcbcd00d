"""JSON errors everywhere: `{"error": {"code", "message", "details"}}` with the right status."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
RETRY_AFTER_S = 2


class ApiError(Exception):
    """An error a client can act on; `details` names the field or feature at fault."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}  # such as Retry-After


def a_or_an(word: str) -> str:
    """'a crew', 'an operator': a word of a message with its article."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


MAX_ID = 2**31 - 1  # the largest id an integer column holds on PostgreSQL


def id_number(text: str) -> int | None:
    """The database id written in a path or query string, or None when `text` cannot be one.

    Only 1–9 ASCII digits: `str.isdigit` also accepts "²" (which `int` refuses) and numbers
    too large for an integer column, and either used to reach the database as a 500.
    """
    if 0 < len(text) <= 9 and text.isascii() and text.isdigit():
        return int(text)
    return None


def bad_field(field: str, message: str, status: int = 400, /, **details: Any) -> ApiError:
    """A 400 (or `status`) naming the offending field. `status` is positional only, so a
    detail may be called status too (the state an incident is in, say)."""
    return ApiError(status, "invalid_field", f"{field}: {message}", {"field": field, **details})


def only_fields(given: dict[str, Any], allowed: Collection[str], prefix: str = "") -> None:
    """A 400 naming the first key of `given` not among `allowed`: a field we do not know is
    refused, not dropped ("desciption", a misspelt "crewid" would be lost without a word).
    `prefix` names where `given` sits in the body ("location.")."""
    for key in given:
        if key not in allowed:
            raise bad_field(f"{prefix}{str(key)[:64]}", f"is not a field here (expected {', '.join(allowed)})")


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        if getattr(exc, "valid_methods", None):  # a 405 says what the address does take
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database_unavailable(exc: Exception):
        # The database is down, restarting, unreachable or busy past its timeouts: nothing was
        # written (or the write's answer was lost), so the client should send the same request
        # again: with the same Idempotency-Key a report is never filed twice. (SQLite also says
        # OperationalError for a missing table, but the schema is migrated before serving.)
        log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        response = error_response(503, "database_unavailable",
                                  "the database is not answering; send the same request again shortly")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Still JSON, and logged with the traceback: a 500 is always our bug, never the client's.
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
