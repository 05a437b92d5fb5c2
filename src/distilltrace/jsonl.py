"""JSON Lines: one JSON value per "\\n"-terminated line.

`json.dumps(..., ensure_ascii=False)` writes U+0085, U+2028 and U+2029 raw inside strings,
and `str.splitlines` splits on them, tearing one record into two invalid lines. Every
JSON Lines reader of the project splits with `lines` instead."""

from __future__ import annotations


def lines(text: str) -> list[str]:
    """The lines of JSON Lines text, split on "\\n" only (a trailing "\\r" and blank lines
    are left to the caller, which numbers lines for its error messages)."""
    return text.split("\n")
