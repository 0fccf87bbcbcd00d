"""Text no stored field can hold, whether it comes through the API or in an imported file."""

from __future__ import annotations

import re
import unicodedata

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


# Characters not seen as themselves where a name or code is read: control and format
# characters (a zero-width space, a direction mark), line and paragraph separators, and the
# Hangul fillers, letters that show nothing. Each would make a name look like another.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def hidden_character(text: str, *, categories: frozenset[str] = HIDDEN_CATEGORIES, also: str = "") -> str | None:
    """The first character of `text` that does not show as itself (of these Unicode
    categories, or in `also`), or None. A plain space shows: "Block 7" is fine."""
    for char in text:
        if char in also or (char != " " and (char in INVISIBLE_LETTERS or unicodedata.category(char) in categories)):
            return char
    return None
