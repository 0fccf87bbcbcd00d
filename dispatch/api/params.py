"""Query-string parsing that answers bad input with a 400 naming the parameter."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from flask import request

from dispatch.api.openapi import query
from dispatch.errors import bad_field, id_number


@dataclass(frozen=True)
class IntParam:
    """An integer query parameter: what the server takes and what the document says, in one place."""

    name: str
    default: int
    low: int
    high: int
    description: str

    def read(self) -> int:
        raw = request.args.get(self.name)
        if raw is None or raw == "":
            return self.default
        # Plain ASCII digits: int() would also take "1_0", other scripts' digits and 5,000 of them.
        if not re.fullmatch(r"-?[0-9]{1,18}", raw):
            raise bad_field(self.name, f"must be an integer, got {raw!r}")
        value = int(raw)
        if not self.low <= value <= self.high:
            raise bad_field(self.name, f"must be between {self.low} and {self.high}, got {value}")
        return value

    def documented(self) -> dict[str, Any]:
        return query(self.name, {"type": "integer", "minimum": self.low, "maximum": self.high,
                                 "default": self.default}, self.description)


def bool_arg(name: str) -> bool | None:
    """true/false (1/0, yes/no); None when not given. Anything else is a 400, not a quiet false."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise bad_field(name, f"must be true or false, got {raw!r}")


def id_arg(name: str, what: str) -> int | None:
    """An optional database id in the query string (`?assignee=7`); a 400 when it cannot be one."""
    raw = request.args.get(name)
    if not raw:
        return None
    number = id_number(raw)
    if number is None:
        raise bad_field(name, f"must be a {what} id")
    return number


def float_arg(name: str) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        raise bad_field(name, "is required")
    try:
        value = float(raw)
    except ValueError:
        raise bad_field(name, f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise bad_field(name, f"must be a finite number, got {raw!r}")
    return value


def bbox_arg(name: str = "bbox") -> tuple[float, float, float, float] | None:
    raw = request.args.get(name)
    if not raw:
        return None
    parts = raw.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise bad_field(name, f"must be min_lon,min_lat,max_lon,max_lat, got {raw!r}")
    min_lon, min_lat, max_lon, max_lat = values
    if min_lon > max_lon or min_lat > max_lat:
        raise bad_field(name, "minimum is greater than maximum")
    return values  # type: ignore[return-value]
