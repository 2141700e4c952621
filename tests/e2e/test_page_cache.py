"""Reader pages and first pages of posts served from memory: validators, codings, bounds, and no mix-ups.

Every test runs against a real uvicorn (with the protocol `livepush serve` uses, whose cache hits
never enter the app) on both engines. "The relay has the event" is awaited through a WebSocket
reader of the blog: the relay moves its position before it hands an event to readers, so once a
reader has it, the page cache must no longer serve the older state.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import sys
from typing import Any

import brotli
import httpx
import pytest

from server.cache import Entry
from server.paging import encode_cursor
from server.protocols.http import LimitedHttpProtocol
from tests.conftest import LiveServer, ServerFactory, WsReader, redis_for, wait_until

SEQ = re.compile(r'data-seq="(\d+)"')
EPOCH = re.compile(r'data-epoch="([^"]*)"')


async def get(server: LiveServer, path: str = "/blogs/b1", **headers: str) -> httpx.Response:
    return await server.http.get(path, headers=headers)


def seq_of(response: httpx.Response) -> int:
    found = SEQ.search(response.text)
    assert found is not None, response.text[:300]
    return int(found.group(1))


async def publish(server: LiveServer, reader: WsReader, blog: str = "b1", **fields: Any) -> dict[str, Any]:
    """Publish, and return once the relay has handed the event to this process's readers."""
    response = await server.publish(blog, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    while (await reader.next_event())["seq"] < body["seq"]:
        pass
    return body


async def test_304_only_for_the_current_tag(server: LiveServer, blog: dict[str, Any]) -> None:
    """If-None-Match with the current tag (strong, weak or *) gets 304 with no body; any other tag gets 200."""
    first = await get(server)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=0, s-maxage=2, stale-while-revalidate=30, stale-if-error=600"
    assert "Accept-Encoding" in first.headers["vary"]
    for given in (tag, f"W/{tag}", f'"nope", {tag}', "*"):
        again = await get(server, **{"If-None-Match": given})
        assert again.status_code == 304, given
        assert again.content == b""
        assert again.headers["etag"] == tag
        assert again.headers["cache-control"] == first.headers["cache-control"]
        assert "content-length" not in again.headers or again.headers["content-length"] == "0"
    for other in ('"0.deadbeef"', tag.strip('"'), tag[:-2] + '"', '""'):
        response = await get(server, **{"If-None-Match": other})
        assert response.status_code == 200, other
        assert response.content == first.content


async def test_a_new_event_changes_the_tag_and_the_page(server: LiveServer, blog: dict[str, Any]) -> None:
    """After a post, the old tag gets the new page (200), whose data-seq and posts are the new state."""
    async with server.reader("b1") as reader:
        await reader.next()
        before = await get(server)
        assert seq_of(before) == 0
        posted = await publish(server, reader, headline="Kick-off in Kyiv")
        after = await get(server, **{"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        assert seq_of(after) == posted["seq"]
        assert "Kick-off in Kyiv" in after.text
        edited = await server.http.patch(f"/api/blogs/b1/posts/{posted['post']['id']}", headers=server.auth(),
                                         json={"headline": "Kick-off in Kharkiv"})
        assert edited.status_code == 200
        while (await reader.next_event())["seq"] < edited.json()["seq"]:
            pass
        third = await get(server, **{"If-None-Match": after.headers["etag"]})
        assert third.status_code == 200 and seq_of(third) == edited.json()["seq"]
        assert "Kick-off in Kharkiv" in third.text and "Kick-off in Kyiv" not in third.text
        assert (await get(server, **{"If-None-Match": third.headers["etag"]})).status_code == 304


async def test_a_new_epoch_changes_the_tag(start_server: ServerFactory, engine_kind: str,
                                          request: pytest.FixtureRequest) -> None:
    """The same blog at the same seq in another history (storage lost and rebuilt) has another tag."""
    tags = []
    for _ in range(2):
        server = await start_server()
        await server.create_blog("b1", title="Same title")
        page = await get(server)
        tags.append((seq_of(page), EPOCH.search(page.text).group(1), page.headers["etag"]))  # type: ignore[union-attr]
        await server.stop()
        redis_for(engine_kind, request)  # flushed: the storage is lost
    (seq_a, epoch_a, tag_a), (seq_b, epoch_b, tag_b) = tags
    assert seq_a == seq_b == 0 and epoch_a != epoch_b
    assert tag_a != tag_b


async def test_variants_never_share_a_tag(start_server: ServerFactory) -> None:
    """Orders, cursor pages, codings, the posts API and another blog with the same content: all distinct tags."""
    server = await start_server(snapshot_size=2)
    for blog_id in ("b1", "b2"):
        await server.create_blog(blog_id, title="Twin")
        for n in range(3):
            response = await server.publish(blog_id, headline=f"Post {n}", published_at=f"2024-03-01T12:0{n}:00Z")
            assert response.status_code == 201
    newest = await get(server)
    cursor = re.search(r'class="lp-more" href="([^"]+)"', newest.text)
    assert cursor is not None
    paths = ["/blogs/b1", "/blogs/b1?order=oldest", cursor.group(1).replace("&amp;", "&"), "/blogs/b2",
             "/api/blogs/b1/posts", "/api/blogs/b1/posts?order=oldest", "/api/blogs/b1/posts?limit=3"]
    tags: dict[str, str] = {}
    for path in paths:
        for coding in ("identity", "gzip", "br"):
            response = await get(server, path, **{"Accept-Encoding": coding})
            assert response.status_code == 200, (path, response.text)
            assert response.headers.get("content-encoding", "identity") == coding
            tags[f"{path} {coding}"] = response.headers["etag"]
    assert len(set(tags.values())) == len(tags), tags


async def test_a_page_never_carries_another_blogs_or_orders_bytes(server: LiveServer) -> None:
    """Many concurrent requests for many variants, while posts land: each body is the one asked for."""
    blogs = [f"blog-{n}" for n in range(4)]
    for blog_id in blogs:
        await server.create_blog(blog_id, title=f"Title of {blog_id}")
    async with server.reader(blogs[0]) as reader:
        await reader.next()

        async def check(blog_id: str, order: str, coding: str) -> None:
            response = await get(server, f"/blogs/{blog_id}?order={order}", **{"Accept-Encoding": coding})
            assert response.status_code == 200
            assert f'data-blog="{blog_id}"' in response.text and f'data-order="{order}"' in response.text
            assert f"<title>Title of {blog_id}</title>" in response.text

        for round_ in range(3):
            await asyncio.gather(*(check(b, o, c) for b in blogs for o in ("newest", "oldest")
                                   for c in ("gzip", "br", "identity") for _ in range(3)))
            await publish(server, reader, blogs[0], headline=f"Round {round_}")
            for blog_id in blogs[1:]:
                assert (await server.publish(blog_id, headline=f"Round {round_}")).status_code == 201
    assert server.services.page_cache.hits > 0


def held_bytes(entries: list[Entry]) -> int:
    """What the cache's entries actually hold: every body and header line, measured on the objects."""
    total = 0
    for entry in entries:
        for rendition in entry.renditions.values():
            total += sys.getsizeof(rendition.body) + sys.getsizeof(rendition.raw)
            total += sum(sys.getsizeof(v) for _, v in rendition.headers)
    return total


async def test_the_cache_stays_within_its_bytes_under_many_blogs_and_cursors(start_server: ServerFactory) -> None:
    """Bodies held stay under LIVEPUSH_PAGE_CACHE_BYTES however many blogs and cursors are asked for; cursor
    pages cannot push the front pages out; every blog watched has entries."""
    budget = 160_000
    server = await start_server(snapshot_size=2, page_cache_bytes=budget)
    cache = server.services.page_cache
    blogs = [f"many-{n}" for n in range(24)]
    for blog_id in blogs:
        await server.create_blog(blog_id, title=f"Blog {blog_id}", description="x" * 1500)
        for n in range(3):
            assert (await server.publish(blog_id, headline=f"{blog_id} post {n}", body="<p>" + "words " * 300 + "</p>",
                                         published_at=f"2024-03-01T12:0{n}:00Z")).status_code == 201
    peak = 0
    for blog_id in blogs:
        for path in (f"/blogs/{blog_id}", f"/blogs/{blog_id}?order=oldest"):
            for coding in ("identity", "gzip", "br"):
                response = await get(server, path, **{"Accept-Encoding": coding})
                assert response.status_code == 200
                more = re.search(r'class="lp-more" href="([^"]+)"', response.text if coding == "identity" else "")
                if more:
                    assert (await get(server, more.group(1).replace("&amp;", "&"))).status_code == 200
            peak = max(peak, held_bytes(cache.entries()))
            assert cache.size <= budget
    assert 0 < peak <= budget
    assert held_bytes(cache.entries()) <= cache.size
    assert cache.blogs_watched() == len({entry.blog for entry in cache.entries()})
    # The front page asked for last survives a flood of distinct (valid) cursors.
    front = await get(server, f"/blogs/{blogs[-1]}")
    for n in range(60):
        cursor = encode_cursor((1, 1_700_000_000_000 + n, "zz"))
        assert (await get(server, f"/blogs/{blogs[-1]}?before={cursor}")).status_code == 200
    assert cache.size <= budget
    hits = cache.hits
    assert (await get(server, f"/blogs/{blogs[-1]}", **{"If-None-Match": front.headers["etag"]})).status_code == 304
    assert cache.hits == hits + 1


BAD_ACCEPT = ["gzip;q=abc", "br;q=2", ",,,;;;", "*;q=0", "identity;q=0, *;q=0", "\u00e9\u00e8", "x" * 4000,
              "gzip;q=1e3", "br;q=nan", "br;q=-1", "gzip;q=0.5;q=", ";q=1", "GZIP", "br , gzip;q=0"]
BAD_MATCH = ['"unterminated', "W/", ",", "", "\u00ff\u00fe", 'W/"x", W/', '"' + "a" * 5000 + '"', "**"]


async def test_bad_if_none_match_and_accept_encoding_are_ignored(server: LiveServer, blog: dict[str, Any]) -> None:
    """Malformed validators and codings get the page (in a coding the client accepts, or identity), never a 500."""
    plain = (await get(server)).content
    for repeat in range(2):  # the first pass may render; the second is served from the cache
        for value in BAD_ACCEPT:
            response = await server.http.get("/blogs/b1", headers=[(b"Accept-Encoding", value.encode("latin-1"))])
            assert response.status_code == 200, (repeat, value)
            coding = response.headers.get("content-encoding", "identity")
            assert coding in ("identity", "gzip", "br")
            assert response.content == plain  # httpx decodes gzip and br
        for value in BAD_MATCH:
            response = await server.http.get("/blogs/b1", headers=[(b"If-None-Match", value.encode("latin-1"))])
            assert response.status_code == 200, (repeat, value)
            assert response.content == plain
    assert (await server.http.get("/blogs/b1", headers={"Accept-Encoding": "br;q=2"})).headers.get(
        "content-encoding") is None
    assert (await server.http.get("/blogs/b1", headers={"Accept-Encoding": "GZIP"})).headers["content-encoding"] == "gzip"


async def test_each_coding_decodes_to_the_same_page(server: LiveServer, blog: dict[str, Any]) -> None:
    """gzip and brotli bodies are the identity page compressed, with Content-Length of what was sent."""
    plain = await get(server, **{"Accept-Encoding": "identity"})
    for coding, decode in (("gzip", gzip.decompress), ("br", brotli.decompress)):
        async with server.http.stream("GET", "/blogs/b1", headers={"Accept-Encoding": coding}) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.headers["content-encoding"] == coding
        assert int(response.headers["content-length"]) == len(raw) < len(plain.content)
        assert decode(raw) == plain.content
    assert (await get(server, **{"Accept-Encoding": "gzip;q=0.5, br;q=0.4"})).headers["content-encoding"] == "gzip"


async def test_hits_carry_the_same_headers_as_rendered_pages(server: LiveServer, blog: dict[str, Any]) -> None:
    """A hit (answered below the app) has the security headers, Vary and an echoed or fresh request id."""
    rendered = await get(server, **{"X-Request-ID": "first-request"})
    renders = server.services.page_cache.renders
    hit = await get(server, **{"X-Request-ID": "second-request"})
    assert server.services.page_cache.renders == renders  # not rendered again
    assert hit.headers["x-request-id"] == "second-request"
    assert rendered.headers["x-request-id"] == "first-request"
    ignored = {"date", "x-request-id"}
    assert {k: v for k, v in hit.headers.items() if k not in ignored} == \
        {k: v for k, v in rendered.headers.items() if k not in ignored}
    assert "default-src 'self'" in hit.headers["content-security-policy"]
    fresh = await get(server, **{"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{16}", fresh.headers["x-request-id"])
    head = await server.http.head("/blogs/b1")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == rendered.headers["content-length"]


async def test_first_page_of_posts_has_a_tag_and_304(server: LiveServer, blog: dict[str, Any]) -> None:
    """GET /api/blogs/{blog}/posts (first page): ETag per state, 304 when current, new tag after a post."""
    async with server.reader("b1") as reader:
        await reader.next()
        first = await get(server, "/api/blogs/b1/posts")
        assert first.status_code == 200 and first.json() == {"posts": [], "next": None}
        assert (await get(server, "/api/blogs/b1/posts", **{"If-None-Match": first.headers["etag"]})).status_code \
            == 304
        posted = await publish(server, reader, headline="One")
        second = await get(server, "/api/blogs/b1/posts", **{"If-None-Match": first.headers["etag"]})
        assert second.status_code == 200
        assert [p["id"] for p in second.json()["posts"]] == [posted["post"]["id"]]
        assert second.headers["etag"] != first.headers["etag"]
        later = await get(server, f"/api/blogs/b1/posts?before={encode_cursor((1, 0, 'a'))}")
        assert later.status_code == 200 and "etag" not in later.headers  # deeper pages are not cached


async def test_unknown_blogs_are_404_and_not_kept(server: LiveServer) -> None:
    for path in ("/blogs/nope", "/blogs/Not_A_Slug", "/api/blogs/nope/posts"):
        assert (await get(server, path)).status_code == 404
    assert len(server.services.page_cache) == 0


async def test_pipelined_requests_are_answered_in_order(server: LiveServer, blog: dict[str, Any]) -> None:
    """Hits answered at the end of their headers keep their place among pipelined requests on one connection."""
    first = await get(server)
    tag = first.headers["etag"].encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    requests = [b"GET /blogs/b1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: r1\r\n\r\n",
                b"GET /api/blogs/b1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: r2\r\n\r\n",
                b"GET /blogs/b1 HTTP/1.1\r\nHost: t\r\nIf-None-Match: " + tag + b"\r\nX-Request-ID: r3\r\n\r\n",
                b"HEAD /blogs/b1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: r4\r\n\r\n",
                b"GET /blogs/b1 HTTP/1.1\r\nHost: t\r\nX-Request-ID: r5\r\n\r\n"]
    writer.write(b"".join(requests))
    seen = []
    try:
        for expected_body in (True, True, False, False, True):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            body = await reader.readexactly(int(headers.get("content-length", "0"))) if expected_body else b""
            seen.append((lines[0].split(" ")[1], headers["x-request-id"], len(body)))
    finally:
        writer.close()
    assert [(status, rid) for status, rid, _ in seen] == [
        ("200", "r1"), ("200", "r2"), ("304", "r3"), ("200", "r4"), ("200", "r5")]
    assert seen[0][2] == seen[4][2] == len(first.content)


async def test_metrics_count_hits_renders_and_bytes(server: LiveServer, blog: dict[str, Any]) -> None:
    await get(server)
    await get(server)
    text = (await get(server, "/metrics")).text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("livepush_page"))
    assert float(values["livepush_page_renders_total"]) == 1
    assert float(values["livepush_page_cache_hits_total"]) >= 1
    assert float(values["livepush_page_cache_bytes"]) == server.services.page_cache.size > 0


async def test_with_no_budget_every_view_renders_but_validators_still_work(start_server: ServerFactory) -> None:
    """LIVEPUSH_PAGE_CACHE_BYTES=0: nothing is kept or watched, yet ETag and 304 behave the same."""
    server = await start_server(page_cache_bytes=0)
    await server.create_blog("b1", title="Blog")
    first = await get(server)
    second = await get(server, **{"If-None-Match": first.headers["etag"]})
    assert second.status_code == 304 and second.headers["etag"] == first.headers["etag"]
    cache = server.services.page_cache
    assert (cache.renders, len(cache), cache.size, cache.blogs_watched()) == (2, 0, 0, 0)


async def test_a_peer_that_pipelines_without_reading_cannot_grow_the_write_buffer(
        server: LiveServer, blog: dict[str, Any]) -> None:
    """Hits are written without awaiting, so they stop once the socket's buffer is full: the normal path then
    waits for the peer to read, and later requests wait their turn."""
    for n in range(30):  # a page of about 60 KB
        assert (await server.publish("b1", headline=f"Post {n}", body="<p>" + "text " * 400 + "</p>")).status_code \
            == 201
    page = await get(server)
    assert len(page.content) > 50_000
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1024)
    request = b"GET /blogs/b1 HTTP/1.1\r\nHost: t\r\n\r\n"

    def connections() -> list[LimitedHttpProtocol]:
        return [c for c in server.server.server_state.connections if isinstance(c, LimitedHttpProtocol)]

    def stalled() -> bool:  # holding the peer's requests back rather than writing answers it does not read
        return any(c.flow.write_paused and c.pipeline for c in connections())

    try:
        writer.write(request * 2000)  # 120 MB of answers if they were all written
        await wait_until(stalled, 10, "the server to hold back requests of a peer that does not read")
        buffered = max(c.transport.get_write_buffer_size() for c in connections())
        assert buffered < 4 * len(page.content) + 1024 * 1024
    finally:
        writer.transport.abort()
