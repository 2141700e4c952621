"""The engine: where blogs and posts live, how every change is numbered, and how events travel.

An engine stores blogs and posts, gives each change of a blog the next `seq` of that blog
(atomically with the write), keeps a bounded history of encoded events per blog, and hands
every event to the `deliver` callback of each process that watches the blog. Delivery is a
hint, storage is the truth: a process that sees a jump in `seq` reads the missing events
back with `events_since` (see server.relay).

Implementations: `memory.MemoryEngine` (one process, nothing to install) and
`redis.RedisEngine` (any number of processes and nodes). Nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from server.model import Blog, Post, is_slug
from server.paging import BadCursor, Order, Page, Position
from server.wire import Frame

T = TypeVar("T")
HISTORY_CHUNK = 100
"""Events one history read returns at most: readers of a long history read on, chunk by chunk."""
HISTORY_CHUNK_BYTES = 256 * 1024
"""Bytes of events one history read returns at most (at least one event, however large)."""

# The blog name of the readiness canary (server.canary), which `Engine.send_canary` delivers under: not a
# valid blog id, so it can never collide with one.
CANARY_BLOG = "~canary"
Deliver = Callable[[Frame], None]


class Resync(Protocol):
    """What an engine calls after an interruption during which events may have been missed: the blogs
    that may have missed some (a Cluster knows which shard was interrupted), or None for every blog."""

    def __call__(self, blogs: Collection[str] | None = None) -> None: ...



class EngineError(Exception):
    """Base of the errors an engine raises for a request it refuses."""


class BlogNotFound(EngineError):
    pass


class PostNotFound(EngineError):
    pass


class BlogExists(EngineError):
    pass


class PostIdTaken(EngineError):
    """The generated post id exists already; the caller retries with another."""


class BlogEnded(EngineError):
    """The blog has ended and accepts no new posts."""


class StaleVersion(EngineError):
    """`If-Match` named a version that is no longer current."""

    def __init__(self, current: int) -> None:
        super().__init__(f"current version is {current}")
        self.current = current


class IdempotencyMismatch(EngineError):
    """The idempotency key was used before with a different request."""


class EngineUnavailable(EngineError):
    """The backing store cannot be reached or refused the command; nothing was written."""


class OutcomeUnknown(EngineUnavailable):
    """A write was sent but its answer never came (a timeout, a connection lost mid-reply): it may be stored.

    Retrying is safe where a retry cannot apply twice: an edit with `If-Match`, a delete, a create
    with the same idempotency key. A create without a key may then exist twice.
    """


Quota = Literal["posts_per_blog", "blogs"]


class QuotaExceeded(EngineError):
    """A write would pass one of the engine's `Limits`; nothing was written."""

    def __init__(self, quota: Quota, limit: int) -> None:
        super().__init__(f"{quota} is limited to {limit}")
        self.quota: Quota = quota
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Limits:
    """What an engine keeps and accepts, so that no writer (careless or hostile) can grow storage without bound.

    History keeps the newest events of a blog while both bounds hold: at most `history_size` events and at
    most `history_bytes` bytes of event JSON, and always the newest event. Writes past `posts_per_blog` or
    `blogs` raise QuotaExceeded atomically with the check (0 means no limit for the two quotas).
    """

    history_size: int = 1000
    history_bytes: int = 4 << 20
    posts_per_blog: int = 10_000
    blogs: int = 10_000


class NotReplicated(OutcomeUnknown):
    """The primary stored the write but fewer replicas than required confirmed it in time (Redis WAIT).

    It is visible now and survives unless the primary fails before its replicas catch up. The same
    retries as for OutcomeUnknown are safe; a create retried with its idempotency key is answered
    once the replicas have it.
    """


@dataclass(frozen=True, slots=True)
class Committed(Generic[T]):
    """The result of an acknowledged write: the new state and the seq of its event."""

    value: T
    seq: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An `Idempotency-Key`, scoped to the caller, with a fingerprint of the request body."""

    key: str
    fingerprint: str
    ttl: int


BlogOrder = Literal["id", "updated"]


@dataclass(frozen=True, slots=True)
class BlogPage:
    """One page of blogs; `next` is what to pass as *after* for the next page (None on the last)."""

    blogs: list[Blog]
    next: str | None


def updated_cursor(updated_ms: int, blog_id: str) -> str:
    """The cursor after a blog in the "updated" order: `<updated_at in ms>_<id>`."""
    return f"{updated_ms}_{blog_id}"


def parse_updated_cursor(cursor: str) -> tuple[int, str]:
    """(updated_at in ms, id) from an `updated_cursor`; BadCursor if it is not one."""
    ms, _, blog_id = cursor.partition("_")
    if not (ms.isascii() and ms.isdigit() and len(ms) <= 15 and is_slug(blog_id)):
        raise BadCursor("not a cursor from this server")
    return int(ms), blog_id


@dataclass(frozen=True, slots=True)
class History:
    """A bounded run of a blog's events after some seq, in order, and the blog's latest seq when it was read."""

    frames: list[Frame]
    top: int

    @property
    def more(self) -> bool:
        """More events followed these when they were read: read on after the last one."""
        return bool(self.frames) and self.frames[-1].seq < self.top


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A blog and its first page of posts, both current at `blog.seq`."""

    blog: Blog
    page: Page


class Engine(Protocol):
    """Stores blogs and posts, numbers every change, and carries events between processes."""

    name: str

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        """Connect; from now on call *deliver* (on the event loop) with every event of a watched blog,
        and *resync* after any interruption during which events may have been missed."""
        ...

    async def close(self) -> None: ...

    async def not_ready(self) -> str | None:
        """None when writes can be accepted right now; else what is missing, in a few words for `/readyz`."""
        ...

    def counters(self) -> dict[str, int]:
        """Engine events worth a metric, as running totals: e.g. {"reconnects": 3, "epochs_moved": 1}."""
        ...

    async def create_blog(self, blog: Blog) -> Blog:
        """Store a new blog with seq 0 and a fresh epoch; BlogExists if the id is taken,
        QuotaExceeded("blogs") when `Limits.blogs` blogs exist."""
        ...

    async def import_blog(self, blog: Blog, posts: Sequence[Post]) -> bool:
        """Store a complete blog (demo data, migrations) unless the id exists; no events, no quota."""
        ...

    async def update_blog(self, blog_id: str, changes: Mapping[str, Any], now: datetime) -> Committed[Blog]:
        """Apply *changes* to the blog's fields and emit `blog.updated`."""
        ...

    async def get_blog(self, blog_id: str) -> Blog: ...

    async def list_blogs(self, limit: int, after: str | None = None, order: BlogOrder = "id") -> BlogPage:
        """At most *limit* blogs. By id (*after*: an id, which need not exist), or most recently updated
        first, ties by id descending (*after*: the `next` of the previous page; BadCursor if it is not
        one). A blog updated while someone pages moves to the top: it may be seen twice or not at all."""
        ...

    async def create_post(self, blog_id: str, post: Post, idempotency: Idempotency | None) -> Committed[Post]:
        """Store *post* and emit `post.created`; a known idempotency key replays the first result.
        QuotaExceeded("posts_per_blog") when the blog holds `Limits.posts_per_blog` posts."""
        ...

    async def update_post(self, blog_id: str, post_id: str, changes: Mapping[str, Any],
                          if_match: int | None, now: datetime) -> Committed[Post]:
        """Apply *changes*, bump the version, emit `post.updated`; StaleVersion if *if_match* is old."""
        ...

    async def delete_post(self, blog_id: str, post_id: str, if_match: int | None, now: datetime) -> Committed[str]:
        """Remove the post and emit `post.deleted`."""
        ...

    async def get_post(self, blog_id: str, post_id: str) -> Post: ...

    async def list_posts(self, blog_id: str, limit: int, order: Order, before: Position | None) -> Page: ...

    async def snapshot(self, blog_id: str, limit: int) -> Snapshot:
        """The blog and its newest *limit* posts, read at one seq."""
        ...

    async def events_since(self, blog_id: str, seq: int, epoch: str | None = None, *, limit: int = HISTORY_CHUNK,
                           max_bytes: int = HISTORY_CHUNK_BYTES) -> History | None:
        """The first events after *seq*, in order: at most *limit* of them, and no more than *max_bytes* unless
        the first alone is larger. None when history no longer reaches back to seq+1 (or *epoch* is given
        and is not the blog's current epoch). Never a gap: a caller reads on from the last frame while
        `more`, and a later read that answers None means the history moved past it meanwhile."""
        ...

    async def watch(self, blog_id: str) -> None:
        """Start delivering this blog's events to this process."""
        ...

    async def send_canary(self, token: bytes) -> None:
        """Send *token* through the fan-out so it comes back to `deliver` as a Frame of blog `~canary`."""
        ...

    async def unwatch(self, blog_id: str) -> None: ...

    def subscriptions(self) -> dict[str, int]:
        """Per-blog subscriptions this process holds, per backend shard (empty where there are none: memory,
        and single Redis, whose one pattern subscription carries every blog)."""
        ...
