"""The publisher's stamp: who published a post, its number, and when, as plain text in the byline.

The byline is plain text on the server (no sanitizer rewrites it), so the stamp arrives as sent:
`lt:<run>:<n>:<unix ns>`. `run` tells this run's posts from anyone else's on the same blog.
"""

from __future__ import annotations

PREFIX = "lt:"


def make(run: str, number: int, sent_ns: int) -> str:
    return f"{PREFIX}{run}:{number}:{sent_ns}"


def sent_ns(byline: object, run: str) -> int | None:
    """The send time in a stamp of run *run*, or None when *byline* is not one."""
    if type(byline) is not str or not byline.startswith(PREFIX):
        return None
    parts = byline.split(":")
    if len(parts) != 4 or parts[1] != run or not parts[3].isdigit():
        return None
    return int(parts[3])
