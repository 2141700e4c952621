"""Strict parsing of what clients put in URLs, headers and tokens.

Python's own rules are wider than any wire format: `str.isdigit()` is true for `²`, `①` and
`٣`, `int()` accepts some of them (and `_`, spaces and signs) and refuses others with a
ValueError, and `int()` of a few thousand digits raises too. Numbers from the network go
through `ascii_int` instead: ASCII digits only, of bounded length, or None. JSON objects
from the network (a request body, a token's claims) go through `no_duplicate_keys`: parsers
disagree on which of two equal keys wins, so neither does.
"""

from __future__ import annotations

from typing import Any

MAX_DIGITS = 15  # seqs, versions, limits: below 2**53, so they also survive a JavaScript client


def ascii_int(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The non-negative integer written in *text* with 1 to *max_digits* ASCII digits, else None."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


class DuplicateKey(ValueError):
    """A JSON object names *key* twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for `json.loads` that raises DuplicateKey instead of letting the last one win."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found
