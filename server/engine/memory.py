"""The embedded engine: everything in this process's memory, nothing to install.

Every write runs to completion without an await between its checks and its commit, so on
one event loop each write is atomic and `seq` is gapless by construction. Events are handed
to `deliver` with `loop.call_soon`, in commit order, so the publisher's HTTP response is not
held up by the fan-out. State is lost when the process exits; a new epoch then tells
resuming readers that their `seq` counted in another history.

Posts are kept in display order as they are written (`PostIndex`), so a page view never sorts.
History is trimmed from the oldest event while it holds more than `Limits.history_size` events or
more than `Limits.history_bytes` bytes of event JSON (the newest event is always kept).
"""

from __future__ import annotations

import asyncio
import bisect
import secrets
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server import wire
from server.engine import (
    CANARY_BLOG,
    HISTORY_CHUNK,
    HISTORY_CHUNK_BYTES,
    BlogEnded,
    BlogExists,
    BlogNotFound,
    BlogOrder,
    BlogPage,
    Committed,
    Deliver,
    Engine,
    History,
    Idempotency,
    IdempotencyMismatch,
    Limits,
    PostIdTaken,
    PostNotFound,
    QuotaExceeded,
    Resync,
    Snapshot,
    StaleVersion,
    parse_updated_cursor,
    updated_cursor,
)
from server.engine.post_index import PostIndex
from server.model import Blog, Post
from server.paging import Order, Page, Position
from server.wire import Frame


def new_epoch() -> str:
    return secrets.token_hex(4)


def _updated_key(blog: Blog) -> tuple[int, str]:
    return int(blog.updated_at.timestamp() * 1000), blog.id


@dataclass(slots=True)
class _Remembered:
    fingerprint: str
    result: Committed[Post]
    expires: float


@dataclass(slots=True)
class _BlogState:
    blog: Blog
    posts: PostIndex = field(default_factory=PostIndex)
    history: deque[Frame] = field(default_factory=deque)
    history_bytes: int = 0
    idempotency: dict[str, _Remembered] = field(default_factory=dict)


class MemoryEngine:
    """The in-process engine. Single process only; first-class for tests and small sites."""

    name = "memory"

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._blogs: dict[str, _BlogState] = {}
        self._ids: list[str] = []  # every blog id, sorted, for paged listing
        self._updated: list[tuple[int, str]] = []  # (updated_at ms, id) of every blog, ascending
        self._deliver: Deliver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        self._deliver = deliver
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._deliver = None

    async def not_ready(self) -> str | None:
        return None if self._deliver is not None else "the memory engine has not started"

    def counters(self) -> dict[str, int]:
        return {}  # one process, nothing to reconnect to, and its history is never lost

    def subscriptions(self) -> dict[str, int]:
        return {}

    # blogs

    async def create_blog(self, blog: Blog) -> Blog:
        if blog.id in self._blogs:
            raise BlogExists(blog.id)
        if 0 < self._limits.blogs <= len(self._blogs):
            raise QuotaExceeded("blogs", self._limits.blogs)
        blog = blog.model_copy(update={"seq": 0, "post_count": 0, "epoch": new_epoch()})
        self._add(_BlogState(blog))
        return blog

    async def import_blog(self, blog: Blog, posts: Sequence[Post]) -> bool:
        if blog.id in self._blogs:
            return False
        blog = blog.model_copy(update={"seq": 0, "post_count": len(posts), "epoch": new_epoch()})
        self._add(_BlogState(blog, PostIndex(list(posts))))
        return True

    def _add(self, state: _BlogState) -> None:
        self._blogs[state.blog.id] = state
        bisect.insort(self._ids, state.blog.id)
        bisect.insort(self._updated, _updated_key(state.blog))

    async def update_blog(self, blog_id: str, changes: Mapping[str, Any], now: datetime) -> Committed[Blog]:
        state = self._state(blog_id)
        blog = state.blog.model_copy(update={**changes, "updated_at": now})
        seq = self._commit(state, blog, "blog.updated", "blog", None)
        return Committed(state.blog, seq)

    async def get_blog(self, blog_id: str) -> Blog:
        return self._state(blog_id).blog

    async def list_blogs(self, limit: int, after: str | None = None, order: BlogOrder = "id") -> BlogPage:
        if order == "updated":
            return self._recently_updated(limit, after)
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        ids = self._ids[start:start + limit + 1]
        blogs = [self._blogs[blog_id].blog for blog_id in ids[:limit]]
        return BlogPage(blogs, blogs[-1].id if len(ids) > limit else None)

    def _recently_updated(self, limit: int, after: str | None) -> BlogPage:
        keys = self._updated
        end = len(keys) if after is None else bisect.bisect_left(keys, parse_updated_cursor(after))
        wanted = [keys[i] for i in range(end - 1, max(end - limit - 2, -1), -1)]
        blogs = [self._blogs[blog_id].blog for _, blog_id in wanted[:limit]]
        return BlogPage(blogs, updated_cursor(*wanted[limit - 1]) if len(wanted) > limit else None)

    # posts

    async def create_post(self, blog_id: str, post: Post, idempotency: Idempotency | None) -> Committed[Post]:
        state = self._state(blog_id)
        if idempotency is not None:
            remembered = self._remembered(state, idempotency.key)
            if remembered is not None:
                if remembered.fingerprint != idempotency.fingerprint:
                    raise IdempotencyMismatch(idempotency.key)
                return Committed(remembered.result.value, remembered.result.seq, replayed=True)
        if state.blog.status == "ended":
            raise BlogEnded(blog_id)
        if post.id in state.posts:
            raise PostIdTaken(post.id)
        if 0 < self._limits.posts_per_blog <= len(state.posts):
            raise QuotaExceeded("posts_per_blog", self._limits.posts_per_blog)
        state.posts.put(post)
        blog = state.blog.model_copy(update={"updated_at": max(post.updated_at, state.blog.updated_at)})
        seq = self._commit(state, blog, "post.created", "post", post)
        result = Committed(post, seq)
        if idempotency is not None:
            self._forget_expired(state)
            state.idempotency[idempotency.key] = _Remembered(
                idempotency.fingerprint, result, time.monotonic() + idempotency.ttl)
        return result

    async def update_post(self, blog_id: str, post_id: str, changes: Mapping[str, Any],
                          if_match: int | None, now: datetime) -> Committed[Post]:
        state = self._state(blog_id)
        current = self._post(state, post_id)
        if if_match is not None and if_match != current.version:
            raise StaleVersion(current.version)
        post = current.model_copy(update={**changes, "updated_at": now, "version": current.version + 1})
        state.posts.put(post)
        seq = self._commit(state, state.blog.model_copy(update={"updated_at": now}), "post.updated", "post", post)
        return Committed(post, seq)

    async def delete_post(self, blog_id: str, post_id: str, if_match: int | None, now: datetime) -> Committed[str]:
        state = self._state(blog_id)
        current = self._post(state, post_id)
        if if_match is not None and if_match != current.version:
            raise StaleVersion(current.version)
        state.posts.remove(post_id)
        seq = self._commit(state, state.blog.model_copy(update={"updated_at": now}), "post.deleted", "post_id", post_id)
        return Committed(post_id, seq)

    async def get_post(self, blog_id: str, post_id: str) -> Post:
        return self._post(self._state(blog_id), post_id)

    async def list_posts(self, blog_id: str, limit: int, order: Order, before: Position | None) -> Page:
        return self._state(blog_id).posts.page(limit, order, before)

    async def snapshot(self, blog_id: str, limit: int) -> Snapshot:
        state = self._state(blog_id)
        return Snapshot(state.blog, state.posts.page(limit, "newest", None))

    # events

    async def events_since(self, blog_id: str, seq: int, epoch: str | None = None, *, limit: int = HISTORY_CHUNK,
                           max_bytes: int = HISTORY_CHUNK_BYTES) -> History | None:
        state = self._state(blog_id)
        if epoch is not None and epoch != state.blog.epoch:
            return None
        top = state.blog.seq
        if seq > top or seq < 0:
            return None
        frames: list[Frame] = []
        if seq == top:
            return History(frames, top)
        history = state.history
        if not history or history[0].seq > seq + 1:
            return None
        size = 0
        for index in range(seq + 1 - history[0].seq, min(len(history), seq + 1 - history[0].seq + limit)):
            frame = history[index]
            size += len(frame.data)
            if frames and size > max_bytes:
                break
            frames.append(frame)
        return History(frames, top)

    async def watch(self, blog_id: str) -> None:
        self._state(blog_id)

    async def unwatch(self, blog_id: str) -> None:
        return None

    async def send_canary(self, token: bytes) -> None:
        if self._deliver is not None and self._loop is not None:
            self._loop.call_soon(self._deliver, Frame(CANARY_BLOG, 0, token))

    # internals

    def _state(self, blog_id: str) -> _BlogState:
        state = self._blogs.get(blog_id)
        if state is None:
            raise BlogNotFound(blog_id)
        return state

    @staticmethod
    def _post(state: _BlogState, post_id: str) -> Post:
        post = state.posts.get(post_id)
        if post is None:
            raise PostNotFound(post_id)
        return post

    def _commit(self, state: _BlogState, blog: Blog, kind: str, key: str, value: Any) -> int:
        seq = state.blog.seq + 1
        blog = blog.model_copy(update={"seq": seq, "post_count": len(state.posts)})
        before, after = _updated_key(state.blog), _updated_key(blog)
        if before != after:
            del self._updated[bisect.bisect_left(self._updated, before)]
            bisect.insort(self._updated, after)
        state.blog = blog
        if key == "blog":
            value = blog
        frame = wire.event(kind, blog.id, seq, blog.post_count, blog.updated_at, key, value, blog.epoch)
        self._remember(state, frame)
        if self._deliver is not None and self._loop is not None:
            self._loop.call_soon(self._deliver, frame)
        return seq

    def _remember(self, state: _BlogState, frame: Frame) -> None:
        """Append *frame* to the history, then drop the oldest events until both bounds hold again."""
        history = state.history
        history.append(frame)
        state.history_bytes += len(frame.data)
        size, budget = self._limits.history_size, self._limits.history_bytes
        while len(history) > 1 and (len(history) > size or state.history_bytes > budget):
            state.history_bytes -= len(history.popleft().data)

    @staticmethod
    def _forget_expired(state: _BlogState) -> None:
        # Keys share one TTL, so insertion order is expiry order: drop from the front.
        now = time.monotonic()
        for key in list(state.idempotency):
            if state.idempotency[key].expires > now:
                break
            del state.idempotency[key]

    @staticmethod
    def _remembered(state: _BlogState, key: str) -> _Remembered | None:
        remembered = state.idempotency.get(key)
        if remembered is not None and remembered.expires < time.monotonic():
            del state.idempotency[key]
            return None
        return remembered


_: type[Engine] = MemoryEngine
