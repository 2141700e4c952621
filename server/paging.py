"""Post order and opaque cursors for "load more", shared by every engine.

Posts are listed pinned first, then by `published_at` (newest or oldest first), then by id
to break ties. A cursor is the sort key of the last post of a page, so the next page starts
right after it even while posts are added above.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import orjson

from server.model import Post, is_slug

Order = Literal["newest", "oldest"]
SortKey = tuple[int, int, str]


class BadCursor(ValueError):
    """The `before` cursor was not made by this server."""


@dataclass(frozen=True, slots=True)
class Page:
    posts: list[Post]
    next: str | None

    @property
    def has_more(self) -> bool:
        return self.next is not None


def millis(post: Post) -> int:
    return int(post.published_at.timestamp() * 1000)


def sort_key(post: Post, order: Order) -> SortKey:
    """A key that sorts ascending in display order."""
    pinned = 0 if post.pinned else 1
    ms = millis(post)
    if order == "newest":
        # Descending time and id inside ascending tuples: negate the time, invert the id below.
        return (pinned, -ms, _invert(post.id))
    return (pinned, ms, post.id)


def _invert(text: str) -> str:
    # Ids are [a-z0-9-]: mapping each char to its mirror in that range reverses their order.
    return text.translate(_MIRROR) + "\uffff"


_ALPHABET = "-0123456789abcdefghijklmnopqrstuvwxyz"
_MIRROR = str.maketrans(_ALPHABET, _ALPHABET[::-1])


def encode_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("not a cursor from this server") from exc
    if (not isinstance(raw, list) or len(raw) != 3 or raw[0] not in (0, 1)
            or not isinstance(raw[1], int) or not isinstance(raw[2], str) or len(raw[2]) > 70):
        raise BadCursor("not a cursor from this server")
    return (raw[0], raw[1], raw[2])


def paginate(posts: Iterable[Post], limit: int, order: Order, before: SortKey | None) -> Page:
    """One page of *posts* in display order, starting after the cursor key *before*."""
    ordered = sorted(posts, key=lambda p: sort_key(p, order))
    if before is not None:
        ordered = [p for p in ordered if sort_key(p, order) > before]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(page, encode_cursor(sort_key(page[-1], order)) if more and page else None)


def valid_post_id(post_id: str) -> bool:
    return is_slug(post_id)
