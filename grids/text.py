"""Text no stored field can hold, whether it comes through the API or in an imported file."""

from __future__ import annotations

import re

# A NUL (PostgreSQL text cannot hold one: a 500 there, while SQLite stores it) and a lone
# UTF-16 surrogate such as "\ud800", which JSON can spell but which is not Unicode text, so
# it could be neither stored, nor hashed, nor repeated in an answer.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` as it can be repeated in an answer: a NUL or a lone surrogate spelled out."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def unstorable_in_text(text: str, where: str) -> tuple[str, str] | None:
    """(where, what is wrong) when `text` holds what no field can store, else None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return where, "must not contain a NUL character"
    return where, f"must be Unicode text (it holds a lone surrogate, {printable(found.group())})"
