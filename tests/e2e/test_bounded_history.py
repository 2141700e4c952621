"""Every history and paging request does bounded work: paged `/events`, streamed replays, write deadlines,
and cursors among posts that share one `published_at`. Over a real uvicorn, on both engines."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from server.paging import encode_cursor
from tests.conftest import LiveServer, ServerFactory, wait_until

SAME_TIME = "2024-05-01T10:00:00Z"
SAME_MS = 1714557600000


async def _walk(server: LiveServer, order: str, limit: int, cursor: str | None = None) -> list[str]:
    seen: list[str] = []
    while True:
        query = f"order={order}&limit={limit}" + (f"&before={cursor}" if cursor else "")
        response = await server.http.get(f"/api/blogs/b1/posts?{query}")
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [post["id"] for post in page["posts"]]
        cursor = page["next"]
        if cursor is None:
            return seen


async def test_pages_among_posts_of_one_time_walk_each_once_and_forged_cursors_land_in_place(
        server: LiveServer, blog: dict[str, Any]) -> None:
    """Posts sharing one published_at page by id in both orders, each once; a cursor naming an id that does not
    exist (forged) starts right after where that id would sit, in both sections."""
    ids = []
    for i in range(30):
        response = await server.publish(headline=f"P{i}", published_at=SAME_TIME, pinned=i % 10 == 0)
        ids.append((response.json()["post"]["id"], i % 10 == 0))
    pinned = sorted(post_id for post_id, is_pinned in ids if is_pinned)
    unpinned = sorted(post_id for post_id, is_pinned in ids if not is_pinned)
    assert await _walk(server, "newest", 4) == pinned[::-1] + unpinned[::-1]
    assert await _walk(server, "oldest", 7) == pinned + unpinned
    middle = unpinned[len(unpinned) // 2]
    forged = middle[:-1] + ("0" if middle[-1] != "0" else "1")  # not an id of this blog, next to one
    assert forged not in unpinned
    cursor = encode_cursor((1, SAME_MS, forged))
    assert await _walk(server, "newest", 5, cursor) == [p for p in unpinned[::-1] if p < forged]
    assert await _walk(server, "oldest", 5, cursor) == [p for p in unpinned if p > forged]
    before_all = encode_cursor((0, SAME_MS, "zzzz"))
    assert await _walk(server, "newest", 50, before_all) == pinned[::-1] + unpinned[::-1]
    assert await _walk(server, "oldest", 50, encode_cursor((1, SAME_MS + 1, "a"))) == []


# /events is paged


def _body(kib: int) -> str:
    paragraph = "<p>" + "word " * 200 + "</p>"  # 1 007 bytes
    return paragraph * kib


async def _publish_many(server: LiveServer, count: int, kib: int = 0) -> None:
    for i in range(count):
        response = await server.publish(headline=f"P{i}", body=_body(kib))
        assert response.status_code == 201, response.text


async def _walk_events(server: LiveServer, query: str) -> tuple[list[int], list[dict[str, Any]]]:
    """Every page of /events from since=0: the seqs seen, and each page's body."""
    seqs: list[int] = []
    pages: list[dict[str, Any]] = []
    since: int | None = 0
    while since is not None:
        response = await server.http.get(f"/api/blogs/b1/events?since={since}&{query}")
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        seqs += [event["seq"] for event in page["events"]]
        assert page["has_more"] == (page["next"] is not None)
        since = page["next"]
    return seqs, pages


async def test_events_come_in_pages_with_a_cursor_to_the_rest(server: LiveServer, blog: dict[str, Any]) -> None:
    """`limit` bounds a page (default 100, at most 1000); `has_more` and `next` (the since of the next page) lead to
    the rest; walking the pages gives every event once, in order. A v1 client reading `events` still works."""
    await _publish_many(server, 130)
    seqs, pages = await _walk_events(server, "limit=40")
    assert seqs == list(range(1, 131)) and [len(page["events"]) for page in pages] == [40, 40, 40, 10]
    assert [(page["seq"], page["next"]) for page in pages] == [(40, 40), (80, 80), (120, 120), (130, None)]
    default = (await server.http.get("/api/blogs/b1/events?since=0")).json()
    assert len(default["events"]) == 100 and default["has_more"] and default["next"] == 100
    assert default["epoch"] == blog["epoch"]
    whole = (await server.http.get("/api/blogs/b1/events?since=0&limit=1000")).json()
    assert len(whole["events"]) == 130 and not whole["has_more"] and whole["next"] is None


async def test_an_events_page_stops_at_about_a_mebibyte(server: LiveServer, blog: dict[str, Any]) -> None:
    """Large events: a page holds about 1 MiB whatever the limit (and one event at least); the rest follows."""
    await _publish_many(server, 24, kib=60)
    seqs, pages = await _walk_events(server, "limit=1000")
    assert seqs == list(range(1, 25)) and len(pages) >= 2
    for page in pages:
        sizes = [len(orjson.dumps(event)) for event in page["events"]]
        assert sum(sizes) <= 1024 * 1024 and page["events"]


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-1", "\u0661\u0660", "1" * 40])
async def test_a_bad_events_limit_is_422_naming_it(server: LiveServer, blog: dict[str, Any], limit: str) -> None:
    response = await server.http.get("/api/blogs/b1/events", params={"since": "0", "limit": limit})
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "limit"


# long resumes are streamed a chunk at a time


@pytest.fixture(params=["direct", "asgi"])
async def streams(start_server: ServerFactory, request: pytest.FixtureRequest) -> LiveServer:
    """Both WebSocket write paths; a short write deadline."""
    # History must hold the whole resume: far more than LIVEPUSH_HISTORY_BYTES' default of 60 KiB posts.
    return await start_server(direct_write=request.param == "direct", write_timeout=1.0, history_bytes=1 << 30)


async def test_a_long_websocket_resume_replays_every_missed_event_once_then_goes_live(
        streams: LiveServer) -> None:
    """2 MB missed (eight history reads or more): every event once, in order, then a live one, no gap."""
    blog = await streams.create_blog("b1")
    await _publish_many(streams, 40, kib=50)
    async with streams.reader(since=0, epoch=blog["epoch"]) as reader:
        replay = await reader.events(40, timeout=20)
        assert [event["seq"] for event in replay] == list(range(1, 41))
        await streams.publish(headline="Live")
        live = await reader.next_event()
        assert (live["seq"], live["post"]["headline"]) == (41, "Live")
    assert streams.services.feeds.history_reads >= 8


async def test_a_long_sse_resume_streams_every_missed_event_once_then_goes_live(streams: LiveServer) -> None:
    blog = await streams.create_blog("b1")
    await _publish_many(streams, 40, kib=50)
    seqs: list[int] = []
    path = f"/sse/blogs/b1?since=0&epoch={blog['epoch']}"
    async with httpx.AsyncClient(base_url=streams.base, timeout=20) as client, client.stream("GET", path) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seqs.append(orjson.loads(line[6:])["seq"])
                if len(seqs) == 40:
                    assert (await streams.publish(headline="Live")).status_code == 201
                if len(seqs) == 41:
                    break
    assert seqs == list(range(1, 42))
    assert streams.services.feeds.history_reads >= 8


# a client that asks and never reads


def _more_than_the_kernel_buffers() -> int:
    """Posts of 60 KiB whose events outgrow what the kernel can buffer for one socket (its send buffer's maximum)
    by 3 MiB: past that, only the server's own process can hold what a stalled client did not take."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as limits:
        most = int(limits.read().split()[2])
    return (most + 3 * 1024 * 1024) // (61 * 1024)


@contextlib.asynccontextmanager
async def _never_reading(server: LiveServer, request: bytes) -> AsyncIterator[socket.socket]:
    """A connection that sends *request* and reads nothing (a 4 KiB receive window) until told to."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        await loop.sock_sendall(sock, request)
        yield sock
    finally:
        sock.close()


async def _read_to_the_end(sock: socket.socket) -> tuple[int, bool]:
    """(bytes read, whether the server reset the connection) once the server is done with it."""
    loop = asyncio.get_running_loop()
    total = 0
    try:
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 10):
            total += len(chunk)
    except ConnectionResetError:
        return total, True
    return total, False


async def test_a_stalled_sse_resume_holds_one_chunk_and_is_cut_at_the_write_deadline(streams: LiveServer) -> None:
    """An SSE resume from far back whose client reads nothing: the server reads history only as far as the
    connection took it (not the whole history), and aborts the connection once the write deadline passes; the
    reader is gone."""
    blog = await streams.create_blog("b1")
    posts = _more_than_the_kernel_buffers()
    await _publish_many(streams, posts, kib=60)
    request = (b"GET /sse/blogs/b1?since=0&epoch=%s HTTP/1.1\r\nHost: test\r\n\r\n" % blog["epoch"].encode())
    async with _never_reading(streams, request) as sock:
        await wait_until(lambda: streams.services.hub.count("b1") == 1, what="the resume attached")
        await wait_until(lambda: streams.services.hub.count("b1") == 0, timeout=10, what="the write deadline")
        assert streams.services.feeds.history_reads < posts // 4  # a read holds 4 of these events
        received, reset = await _read_to_the_end(sock)
    assert reset and received < posts * 60 * 1024


async def test_a_stalled_websocket_resume_is_closed_at_the_write_deadline(streams: LiveServer) -> None:
    """The same on a WebSocket (both write paths): history read no further than the socket took, then aborted."""
    server = streams
    blog = await server.create_blog("b1")
    posts = _more_than_the_kernel_buffers()
    await _publish_many(server, posts, kib=60)
    request = (b"GET /ws/blogs/b1?since=0&epoch=%s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n" % blog["epoch"].encode())
    async with _never_reading(server, request) as sock:
        await wait_until(lambda: server.services.hub.count("b1") == 1, what="the resume attached")
        await wait_until(lambda: server.services.hub.count("b1") == 0, timeout=10, what="the write deadline")
        assert server.services.feeds.history_reads < posts // 4  # a read holds 4 of these events
        received, _ = await _read_to_the_end(sock)
    assert received < posts * 60 * 1024


async def test_a_stalled_events_request_costs_one_page(start_server: ServerFactory) -> None:
    """`GET /events?since=0` over 1.4 MB of events, never read: the answer is one page of about 1 MiB, written
    whole to the kernel, so the process holds nothing for the client that does not read."""
    server = await start_server()
    await server.create_blog("b1")
    await _publish_many(server, 24, kib=60)
    connections = server.server.server_state.connections
    request = b"GET /api/blogs/b1/events?since=0 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    async with _never_reading(server, request) as sock:
        await wait_until(lambda: len(connections) == 1 and all(
            getattr(c, "cycle", None) is not None and c.cycle.response_complete  # type: ignore[union-attr]
            for c in connections), what="the answer was written")
        assert all(c.transport.get_write_buffer_size() == 0 for c in connections)
        received, _ = await _read_to_the_end(sock)
    assert 16 * 60 * 1024 < received < 1024 * 1024 + 4096
