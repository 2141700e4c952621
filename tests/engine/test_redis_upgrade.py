"""Blogs written before the ordered blog indexes and the history byte count still list, trim and resume.

Data from an earlier version has `lp:blogs` but no `lp:blog-ids`, and meta hashes without
`history_bytes`. Starting the engine copies the index; the first write to such a blog counts its
stream once, so the byte bound trims exactly from then on.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from server.engine import Limits
from server.engine.redis import BLOG_IDS, BLOGS_UPDATED, RedisEngine
from server.model import Blog, Post
from tests.redis_servers import RedisProcess

pytestmark = pytest.mark.redis
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def blog(blog_id: str) -> Blog:
    return Blog(id=blog_id, title="Blog", created_at=T0, updated_at=T0)


def post(post_id: str, size: int) -> Post:
    return Post(id=post_id, headline=post_id, body="<p>" + "x" * size + "</p>", published_at=T0, updated_at=T0)


async def test_blogs_from_before_the_index_are_listed_and_their_history_is_counted(
        redis_process: RedisProcess) -> None:
    redis_process.flush()
    admin = aioredis.Redis(port=redis_process.port)
    old = RedisEngine(redis_process.url, Limits(history_bytes=1 << 30))
    await old.start(lambda frame: None, lambda blogs=None: None)
    try:
        for blog_id in ("c", "a", "b"):
            await old.create_blog(blog(blog_id))
        for i in range(5):
            await old.create_post("a", post(f"p{i}", 20_000), None)
    finally:
        await old.close()
    # What an earlier version left: no ordered index, no byte count.
    await admin.delete(BLOG_IDS, BLOGS_UPDATED)
    await admin.hdel("lp:{a}:meta", "history_bytes")

    engine = RedisEngine(redis_process.url, Limits(history_bytes=64 * 1024))
    await engine.start(lambda frame: None, lambda blogs=None: None)
    try:
        assert [b.id for b in (await engine.list_blogs(10)).blogs] == ["a", "b", "c"]
        assert [b.id for b in (await engine.list_blogs(10, order="updated")).blogs] == ["c", "b", "a"]
        await engine.create_post("a", post("p5", 20_000), None)
        read = await engine.events_since("a", 3)
        assert read is not None
        kept = read.frames
        assert [f.seq for f in kept] == [4, 5, 6]
        assert await engine.events_since("a", 2) is None
        stored = int(await admin.hget("lp:{a}:meta", "history_bytes") or 0)
        assert stored == sum(len(f.data) for f in kept)
    finally:
        await engine.close()
        await admin.aclose()
