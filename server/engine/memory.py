"""The embedded engine: everything in this process's memory, nothing to install.

Every write runs to completion without an await between its checks and its commit, so on
one event loop each write is atomic and `seq` is gapless by construction. Events are handed
to `deliver` with `loop.call_soon`, in commit order, so the publisher's HTTP response is not
held up by the fan-out. State is lost when the process exits; a new epoch then tells
resuming readers that their `seq` counted in another history.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server import wire
from server.canary import CANARY_BLOG
from server.engine import (
    HISTORY_CHUNK,
    HISTORY_CHUNK_BYTES,
    BlogEnded,
    BlogExists,
    BlogNotFound,
    Committed,
    Deliver,
    Engine,
    History,
    Idempotency,
    IdempotencyMismatch,
    PostIdTaken,
    PostNotFound,
    Resync,
    Snapshot,
    StaleVersion,
)
from server.model import Blog, Post
from server.paging import Order, Page, Position, paginate
from server.wire import Frame


def new_epoch() -> str:
    return secrets.token_hex(4)


@dataclass(slots=True)
class _Remembered:
    fingerprint: str
    result: Committed[Post]
    expires: float


@dataclass(slots=True)
class _BlogState:
    blog: Blog
    posts: dict[str, Post] = field(default_factory=dict)
    history: deque[Frame] = field(default_factory=deque)
    idempotency: dict[str, _Remembered] = field(default_factory=dict)


class MemoryEngine:
    """The in-process engine. Single process only; first-class for tests and small sites."""

    name = "memory"

    def __init__(self, history_size: int = 1000) -> None:
        self._history_size = history_size
        self._blogs: dict[str, _BlogState] = {}
        self._deliver: Deliver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        self._deliver = deliver
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._deliver = None

    async def ready(self) -> bool:
        return self._deliver is not None

    def counters(self) -> dict[str, int]:
        return {}  # one process, nothing to reconnect to, and its history is never lost

    # blogs

    async def create_blog(self, blog: Blog) -> Blog:
        if blog.id in self._blogs:
            raise BlogExists(blog.id)
        blog = blog.model_copy(update={"seq": 0, "post_count": 0, "epoch": new_epoch()})
        self._blogs[blog.id] = _BlogState(blog, history=deque(maxlen=self._history_size))
        return blog

    async def import_blog(self, blog: Blog, posts: Sequence[Post]) -> bool:
        if blog.id in self._blogs:
            return False
        blog = blog.model_copy(update={"seq": 0, "post_count": len(posts), "epoch": new_epoch()})
        self._blogs[blog.id] = _BlogState(blog, {p.id: p for p in posts}, deque(maxlen=self._history_size))
        return True

    async def update_blog(self, blog_id: str, changes: Mapping[str, Any], now: datetime) -> Committed[Blog]:
        state = self._state(blog_id)
        blog = state.blog.model_copy(update={**changes, "updated_at": now})
        seq = self._commit(state, blog, "blog.updated", "blog", None)
        return Committed(state.blog, seq)

    async def get_blog(self, blog_id: str) -> Blog:
        return self._state(blog_id).blog

    async def list_blogs(self) -> list[Blog]:
        return [state.blog for state in self._blogs.values()]

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
        state.posts[post.id] = post
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
        state.posts[post_id] = post
        seq = self._commit(state, state.blog.model_copy(update={"updated_at": now}), "post.updated", "post", post)
        return Committed(post, seq)

    async def delete_post(self, blog_id: str, post_id: str, if_match: int | None, now: datetime) -> Committed[str]:
        state = self._state(blog_id)
        current = self._post(state, post_id)
        if if_match is not None and if_match != current.version:
            raise StaleVersion(current.version)
        del state.posts[post_id]
        seq = self._commit(state, state.blog.model_copy(update={"updated_at": now}), "post.deleted", "post_id", post_id)
        return Committed(post_id, seq)

    async def get_post(self, blog_id: str, post_id: str) -> Post:
        return self._post(self._state(blog_id), post_id)

    async def list_posts(self, blog_id: str, limit: int, order: Order, before: Position | None) -> Page:
        return paginate(self._state(blog_id).posts.values(), limit, order, before)

    async def snapshot(self, blog_id: str, limit: int) -> Snapshot:
        state = self._state(blog_id)
        return Snapshot(state.blog, paginate(state.posts.values(), limit, "newest", None))

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
        state.blog = blog
        if key == "blog":
            value = blog
        frame = wire.event(kind, blog.id, seq, blog.post_count, blog.updated_at, key, value, blog.epoch)
        state.history.append(frame)
        if self._deliver is not None and self._loop is not None:
            self._loop.call_soon(self._deliver, frame)
        return seq

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
