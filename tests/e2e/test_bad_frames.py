"""Hostile or broken stream input: WebSocket frames, handshakes and resume positions, SSE headers.

Each is refused with a close code or status that names the problem, or (where the input is
merely useless) answered as if it were absent: a stream never resumes from a position it cannot
vouch for. These complete the rows of docs/SECURITY.md that tests/e2e/test_streams.py does not
already cover.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.conftest import LiveServer
from tests.e2e.raw_websocket import frame, raw_websocket, read_until_close


@pytest.fixture
def engine_kind() -> str:
    return "memory"  # frames and handshakes are judged before any engine is asked (resume tests ask for both)


@pytest.fixture
async def blog(server: LiveServer) -> dict[str, Any]:
    return await server.create_blog("b1", title="Test blog")


# WebSocket frames


async def test_a_fragmented_message_over_the_cap_closes_with_1009(server: LiveServer, blog: dict[str, Any]) -> None:
    """70 fragments of 1 KB, each small, add up past the 64 KiB cap on what a reader may send."""
    async with server.reader() as reader:
        await reader.next()
        await reader.connection.send(["x" * 1000 for _ in range(70)])
        assert (await reader.closed())[0] == 1009


async def test_a_flood_of_messages_closes_with_1008(server: LiveServer, blog: dict[str, Any]) -> None:
    """A reader has nothing to say: past 60 messages a minute it is closed, and the blog goes on."""
    async with server.reader() as reader:
        await reader.next()
        for _ in range(61):
            await reader.connection.send("{}")
        assert await reader.closed() == (1008, "too many messages")
    async with server.reader() as again:
        assert (await again.next())["type"] == "snapshot"


VIOLATIONS = {
    "unmasked": frame(0x1, b"hello", mask=False),
    "rsv1_without_extension": frame(0x1, b"hello", rsv=0x40),  # permessage-deflate is never negotiated
    "unknown_opcode": frame(0x3, b""),
    "orphan_continuation": frame(0x0, b"hello"),
    "fragmented_ping": frame(0x9, b"hi", fin=False),
    "ping_over_125_bytes": frame(0x9, b"p" * 126),
}


async def test_protocol_violations_close_with_1002(server: LiveServer, blog: dict[str, Any]) -> None:
    for violation, bad in VIOLATIONS.items():
        async with raw_websocket(server) as (reader, writer):
            writer.write(bad)
            assert (await read_until_close(reader))[0] == 1002, violation
    async with server.reader() as again:  # the server is fine
        assert (await again.next())["type"] == "snapshot"


async def test_a_bad_websocket_version_is_refused_before_the_upgrade(server: LiveServer,
                                                                     blog: dict[str, Any]) -> None:
    response = await server.http.get("/ws/blogs/b1", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "7"})
    assert response.status_code == 400 and "Sec-WebSocket-Version" in response.text


# resume positions and other parameters


async def test_unknown_or_empty_stream_parameters_are_ignored(server: LiveServer, blog: dict[str, Any]) -> None:
    """Parameters a stream does not know change nothing: the reader gets the blog in its path, from a snapshot."""
    await server.publish(headline="One")
    for query in ("foo=bar", "blog=other&limit=5", "token=abc&since=&epoch="):
        async with connect(f"{server.ws_base}/ws/blogs/b1?{query}", max_queue=None) as connection:
            first = orjson.loads(await asyncio.wait_for(connection.recv(), 5))
        assert (first["type"], first["blog"]["id"], first["seq"]) == ("snapshot", "b1", 1), query
        async with server.http.stream("GET", f"/sse/blogs/b1?{query}") as response:
            assert response.status_code == 200, query
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    first = orjson.loads(line[6:])
                    break
        assert (first["type"], first["blog"]["id"], first["seq"]) == ("snapshot", "b1", 1), query


async def test_a_malformed_epoch_closes_with_1008_naming_it(server: LiveServer, blog: dict[str, Any]) -> None:
    for query in ("since=1&epoch=not-an-epoch!", "since=1&epoch=" + "a" * 65):
        async with connect(f"{server.ws_base}/ws/blogs/b1?{query}") as connection:
            await asyncio.wait_for(connection.wait_closed(), 5)
        frame = connection.protocol.close_rcvd
        assert frame is not None and frame.code == 1008 and "epoch" in frame.reason, query


@pytest.mark.parametrize("engine_kind", ["memory", "redis"])
async def test_the_epoch_of_another_blog_gets_a_snapshot(server: LiveServer, blog: dict[str, Any]) -> None:
    """Epochs name one blog's history: another blog's epoch (with a seq that exists there) never replays."""
    other = await server.create_blog("b2")
    for i in range(3):
        await server.publish("b1", headline=f"b1 {i}")
        await server.publish("b2", headline=f"b2 {i}")
    async with server.reader("b1", since=1, epoch=other["epoch"]) as reader:
        first = await reader.next()
    assert (first["type"], first["seq"], first["epoch"]) == ("snapshot", 3, blog["epoch"])
    async with server.http.stream("GET", f"/sse/blogs/b1?since=1&epoch={other['epoch']}") as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                first = orjson.loads(line[6:])
                break
    assert (first["type"], first["seq"]) == ("snapshot", 3)
    events = await server.http.get(f"/api/blogs/b1/events?since=1&epoch={other['epoch']}")
    assert events.status_code == 410 and events.json()["field"] == "since"


# SSE


async def test_a_garbage_last_event_id_is_422_naming_it(server: LiveServer, blog: dict[str, Any]) -> None:
    for value in ("garbage", "-1", "1e3", "9" * 16, "3 4", ":3", "ep!:3", "epoch:", "epoch:x", "a:b:3", "e" * 65 + ":3"):
        response = await server.http.get("/sse/blogs/b1", headers={"Last-Event-ID": value})
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json", value
        assert response.json()["field"] == "Last-Event-ID"


async def test_a_last_event_id_beyond_the_top_gets_a_snapshot(server: LiveServer, blog: dict[str, Any]) -> None:
    """An id this blog never sent (a stream from before a reset, another server): start over, never a replay."""
    await server.publish(headline="One")
    async with server.http.stream("GET", "/sse/blogs/b1", headers={"Last-Event-ID": "99"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                first = orjson.loads(line[6:])
                break
    assert (first["type"], first["seq"]) == ("snapshot", 1)
