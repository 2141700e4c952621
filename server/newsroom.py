"""The write side: validated newsroom requests become engine writes.

This is where a post gets its id and timestamps and where an Idempotency-Key is scoped to
the caller. Every write is acknowledged only after the engine has committed it; its event
then comes back through the engine to every process, this one included, so there is a
single delivery path.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime

from server.auth import Principal
from server.engine import Committed, Engine, Idempotency, PostIdTaken
from server.model import Blog, BlogCreate, BlogUpdate, Post, PostCreate, PostUpdate, utc_now

_ID_ATTEMPTS = 5


def new_post_id() -> str:
    """A short random id ([a-z2-7], 10 chars, 50 bits), URL- and anchor-safe."""
    return base64.b32encode(os.urandom(7)).decode().lower()[:10]


def scoped_idempotency(principal: Principal, key: str, fingerprint: str, ttl: int) -> Idempotency:
    """Scope *key* to the caller so one publisher can never replay another's result."""
    scoped = hashlib.sha256(f"{principal.subject}\x00{key}".encode()).hexdigest()[:32]
    return Idempotency(scoped, fingerprint, ttl)


class Newsroom:
    """Creates and changes blogs and posts."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def create_blog(self, data: BlogCreate, now: datetime | None = None) -> Blog:
        now = now or utc_now()
        blog = Blog(**data.model_dump(), created_at=now, updated_at=now)
        return await self._engine.create_blog(blog)

    async def update_blog(self, blog_id: str, data: BlogUpdate) -> Committed[Blog]:
        return await self._engine.update_blog(blog_id, data.changes(), utc_now())

    async def publish(self, blog_id: str, data: PostCreate, idempotency: Idempotency | None) -> Committed[Post]:
        now = utc_now()
        fields = data.model_dump()
        fields["published_at"] = fields["published_at"] or now
        for _ in range(_ID_ATTEMPTS):
            post = Post(id=new_post_id(), updated_at=now, version=1, **fields)
            try:
                return await self._engine.create_post(blog_id, post, idempotency)
            except PostIdTaken:
                continue
        raise RuntimeError("could not find a free post id")  # 5 collisions of 50 random bits: a bug

    async def edit(self, blog_id: str, post_id: str, data: PostUpdate, if_match: int | None) -> Committed[Post]:
        return await self._engine.update_post(blog_id, post_id, data.changes(), if_match, utc_now())

    async def delete(self, blog_id: str, post_id: str, if_match: int | None) -> Committed[str]:
        return await self._engine.delete_post(blog_id, post_id, if_match, utc_now())
