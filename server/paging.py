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
Position = tuple[int, int, str]
"""Where a post sits: (0 if pinned else 1, published_at in ms, id). Cursors carry one."""
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


def position(post: Post) -> Position:
    return (0 if post.pinned else 1, millis(post), post.id)


def sort_key(at: Position, order: Order) -> SortKey:
    """A key that sorts ascending in display order."""
    section, ms, post_id = at
    if order == "newest":
        # Descending time and id inside ascending tuples: negate the time, invert the id below.
        return (section, -ms, _invert(post_id))
    return at


def _invert(text: str) -> str:
    # Ids are [a-z0-9-]: mapping each char to its mirror in that range reverses their order.
    return text.translate(_MIRROR) + "\uffff"


_ALPHABET = "-0123456789abcdefghijklmnopqrstuvwxyz"
_MIRROR = str.maketrans(_ALPHABET, _ALPHABET[::-1])


def encode_cursor(at: Position) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(at))).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("not a cursor from this server") from exc
    if (not isinstance(raw, list) or len(raw) != 3 or raw[0] not in (0, 1)
            or not isinstance(raw[1], int) or not isinstance(raw[2], str) or not is_slug(raw[2])):
        raise BadCursor("not a cursor from this server")
    return (raw[0], raw[1], raw[2])


def paginate(posts: Iterable[Post], limit: int, order: Order, before: Position | None) -> Page:
    """One page of *posts* in display order, starting after the post at *before*."""
    ordered = sorted(posts, key=lambda p: sort_key(position(p), order))
    if before is not None:
        after = sort_key(before, order)
        ordered = [p for p in ordered if sort_key(position(p), order) > after]
    return page_of(ordered[:limit], len(ordered) > limit)


def page_of(posts: list[Post], more: bool) -> Page:
    """A page of *posts* (already in order); its cursor points after the last one when *more* follow."""
    return Page(posts, encode_cursor(position(posts[-1])) if more and posts else None)
