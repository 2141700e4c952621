"""consistent_read() ties a page read to one blog state, and an untied read is served once, never kept."""

from __future__ import annotations

from server.cache import PageCache, Rendered, consistent_read
from server.engine.memory import MemoryEngine
from server.headers import security_headers
from server.hub import Hub
from server.model import BlogCreate, PostCreate
from server.newsroom import Newsroom
from server.paging import Page
from server.relay import Relay


async def test_a_read_between_two_equal_states_is_consistent() -> None:
    engine = MemoryEngine()
    newsroom = Newsroom(engine)
    await newsroom.create_blog(BlogCreate(id="b1", title="Blog"))
    await newsroom.publish("b1", PostCreate(headline="One"), None)
    blog, page, consistent = await consistent_read(engine, "b1", lambda: engine.list_posts("b1", 20, "oldest", None))
    assert consistent and blog.seq == 1 and [p.headline for p in page.posts] == ["One"]


async def test_a_blog_that_keeps_changing_gives_the_older_state_and_no_cache() -> None:
    """Every read races a post: the result claims the state before the read (the widget replays, never skips),
    is marked inconsistent, and the cache serves it with no-store and no ETag, keeping nothing."""
    engine = MemoryEngine()
    newsroom = Newsroom(engine)
    await newsroom.create_blog(BlogCreate(id="b1", title="Blog"))
    await engine.start(lambda frame: None, lambda blogs=None: None)

    async def racing_read() -> Page:
        page = await engine.list_posts("b1", 20, "oldest", None)
        await newsroom.publish("b1", PostCreate(headline="Racing"), None)
        return page

    blog, page, consistent = await consistent_read(engine, "b1", racing_read)
    assert not consistent
    assert blog.seq == 2 and len(page.posts) == 2  # the last read began at seq 2 and saw two posts

    cache = PageCache(Relay(engine, Hub()), 1 << 20, "public, s-maxage=2", "build", security_headers)

    async def load() -> Rendered:
        return Rendered("b1", blog.epoch, blog.seq, b"<html>", b"text/html; charset=utf-8", consistent)

    entry = await cache.get(("page", "b1", "oldest", ""), load, front=True)
    status, rendition = entry.answer(None, b"*")
    assert status == 200  # no tag to match
    assert (b"cache-control", b"no-store") in rendition.headers
    assert not any(name == b"etag" for name, _ in rendition.headers)
    assert (len(cache), cache.size, cache.blogs_watched()) == (0, 0, 0)
    await engine.close()
