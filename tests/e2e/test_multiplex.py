"""`GET /ws`: several blogs on one WebSocket, over a real uvicorn, on both write paths and both engines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.streams.multiplex import MAX_MESSAGE_BYTES
from tests.conftest import LiveServer, ServerFactory, wait_until

BLOGS = [f"m{i}" for i in range(5)]


@pytest.fixture(params=["direct", "asgi"])
async def server(start_server: ServerFactory, request: pytest.FixtureRequest) -> LiveServer:
    """Every test runs on both write paths: direct (pre-framed bytes) and standard ASGI send."""
    return await start_server(direct_write=request.param == "direct", max_blogs_per_stream=6)


class Mux:
    """A test's view of one `/ws` connection: send commands, read decoded messages with bounded waits."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, **message: Any) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def subscribe(self, blog: str, since: int | None = None, epoch: str | None = None) -> None:
        extra = {"since": since, "epoch": epoch} if since is not None else {}
        await self.send(type="subscribe", blog=blog, **extra)

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message that is not a ping."""
        while True:
            message: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if message["type"] != "ping":
                return message

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.wait_for(self.connection.recv(), timeout)
        frame = self.connection.protocol.close_rcvd
        return (frame.code, frame.reason) if frame is not None else (None, "")


@contextlib.asynccontextmanager
async def mux(server: LiveServer) -> AsyncIterator[Mux]:
    async with connect(f"{server.ws_base}/ws", compression=None, open_timeout=5, max_size=8 << 20,
                       max_queue=None) as connection:
        yield Mux(connection)


def blog_of(message: dict[str, Any]) -> str:
    """Which blog a message is about: a snapshot's `blog` is the blog object, every other message's its id."""
    blog = message["blog"]
    return str(blog["id"] if message["type"] == "snapshot" else blog)


async def snapshots(reader: Mux, count: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    while len(found) < count:
        message = await reader.next()
        assert message["type"] == "snapshot", message
        found[blog_of(message)] = message
    return found


async def make_blogs(server: LiveServer, ids: list[str] = BLOGS) -> None:
    for blog_id in ids:
        await server.create_blog(blog_id)


async def test_five_blogs_on_one_connection_each_snapshot_then_tagged_events(server: LiveServer) -> None:
    """Each subscribe gets its blog's snapshot (snapshot.blog.id names it); each event carries its blog."""
    await make_blogs(server)
    await server.publish("m2", headline="Before")
    async with mux(server) as reader:
        for blog_id in BLOGS:
            await reader.subscribe(blog_id)
        found = await snapshots(reader, 5)
        assert sorted(found) == BLOGS
        assert found["m2"]["seq"] == 1 and [p["headline"] for p in found["m2"]["posts"]] == ["Before"]
        for blog_id in BLOGS:
            assert (await server.publish(blog_id, headline=f"In {blog_id}")).status_code == 201
        events = [await reader.next() for _ in BLOGS]
    assert sorted((e["blog"], e["type"], e["post"]["headline"]) for e in events) == [
        (b, "post.created", f"In {b}") for b in BLOGS]
    assert {e["blog"]: e["seq"] for e in events} == {"m0": 1, "m1": 1, "m2": 2, "m3": 1, "m4": 1}
