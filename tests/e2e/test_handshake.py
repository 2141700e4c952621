"""The WebSocket handshake fast path (server.streams.handshake) answers exactly as the ASGI handler does.

Every test runs on both: `fast` (the default, direct write path: the HTTP protocol answers the
upgrade itself) and `asgi` (LIVEPUSH_DIRECT_WRITE=0: uvicorn's upgrade, Starlette, the handler).
Each checks which path answered, so a fast path that quietly fell back would fail here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from server.protocols.http import UPGRADES
from server.streams.handshake import Handshakes
from tests.conftest import LiveServer, ServerFactory, wait_until


class Path:
    """Starts servers on one handshake path and tells how many handshakes the fast path answered."""

    def __init__(self, name: str, start_server: ServerFactory) -> None:
        self.name = name
        self._start = start_server

    async def start(self, **overrides: Any) -> LiveServer:
        server = await self._start(direct_write=self.name == "fast", **overrides)
        await server.create_blog("b1")
        return server

    def taken(self, server: LiveServer) -> int:
        take = server.server.lifespan.state.get(UPGRADES)
        if take is None:
            return 0
        handshakes = take.__self__
        assert isinstance(handshakes, Handshakes)
        return handshakes.taken

    def expect(self, server: LiveServer, handshakes: int) -> None:
        """*handshakes* went through the fast path (none on the ASGI path)."""
        assert self.taken(server) == (handshakes if self.name == "fast" else 0)


@pytest.fixture(params=["fast", "asgi"])
def path(request: pytest.FixtureRequest, start_server: ServerFactory) -> Path:
    return Path(request.param, start_server)


@contextlib.asynccontextmanager
async def socket(server: LiveServer, target: str, headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
    async with connect(server.ws_base + target, additional_headers=headers, compression=None,
                       open_timeout=5) as connection:
        yield connection


async def close_of(server: LiveServer, target: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """Open *target*, read until the server closes; (code, reason) of its close frame."""
    async with socket(server, target, headers) as connection:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.wait_for(connection.recv(), 5)
        frame = connection.protocol.close_rcvd
        assert frame is not None, "the server did not send a close frame"
        return frame.code, frame.reason


REFUSALS = [  # (target, headers, close; how many the fast path answers: a blog nobody watches yet is the ASGI path's)
    pytest.param("/ws/blogs/b1", {"Origin": "https://evil.example"}, (1008, "origin not allowed"), id="origin"),
    pytest.param("/ws/blogs/no-such-blog", None, (4404, "unknown blog"), id="unknown-blog"),
    pytest.param("/ws/blogs/Not%20A%20Slug", None, (4404, "unknown blog"), id="not-a-slug"),
    pytest.param("/ws/blogs/b1?since=abc&epoch=x", None, (1008, "since must be a non-negative integer seq"),
                 id="since"),
    pytest.param("/ws/blogs/b1?since=1&epoch=not-an-epoch!", None,
                 (1008, "epoch must be the epoch string the server sent"), id="epoch"),
    pytest.param("/ws/blogs/b1?since=1&epoch=" + "a" * 65, None,
                 (1008, "epoch must be the epoch string the server sent"), id="epoch-too-long"),
    pytest.param("/ws/blogs/b1?conflate=maybe", None, (1008, "conflate must be 1 or 0"), id="conflate"),
    pytest.param("/ws/blogs/b1?since=1234567890123456&epoch=a", None,
                 (1008, "since must be a non-negative integer seq"), id="since-too-long"),
]


@pytest.mark.parametrize(("target", "headers", "expected"), REFUSALS)
async def test_a_refused_handshake_closes_with_the_same_code_on_both_paths(
        path: Path, target: str, headers: dict[str, str] | None, expected: tuple[int, str]) -> None:
    """Bad origin, unknown blog, malformed since/epoch/conflate: accepted, then closed with the code and reason."""
    server = await path.start()
    assert await close_of(server, target, headers) == expected
    path.expect(server, 0 if "no-such-blog" in target else 1)
    assert server.services.admission.open == 0  # nothing held for a refused reader


async def test_a_draining_process_closes_new_readers_with_1012(path: Path) -> None:
    server = await path.start()
    server.services.drainer.draining = True
    assert await close_of(server, "/ws/blogs/b1") == (1012, "server restarting; reconnect")
    path.expect(server, 1)


async def test_admission_caps_close_with_1013_and_free_their_place(path: Path) -> None:
    """Past the per-address cap: 1013 with the cap's reason; a reader that leaves frees its place."""
    server = await path.start(max_streams_per_address=1)
    async with socket(server, "/ws/blogs/b1") as first:  # the blog's first reader: the ASGI path reads the snapshot
        assert orjson.loads(await first.recv())["type"] == "snapshot"
        assert await close_of(server, "/ws/blogs/b1") == (1013, "too many streams from your address; retry later")
    await wait_until(lambda: server.services.admission.open == 0, what="the first reader's place freed")
    async with socket(server, "/ws/blogs/b1") as again:
        assert orjson.loads(await again.recv())["type"] == "snapshot"
    path.expect(server, 2)


async def test_the_process_cap_closes_with_1013(path: Path) -> None:
    server = await path.start(max_streams=1)
    async with socket(server, "/ws/blogs/b1") as first:
        assert orjson.loads(await first.recv())["type"] == "snapshot"
        assert await close_of(server, "/ws/blogs/b1") == (1013, "this server is full; retry later")


async def test_a_trusted_proxy_names_the_address_the_caps_count(path: Path) -> None:
    """Behind a trusted proxy (loopback), X-Forwarded-For is the client address on both paths."""
    server = await path.start(max_streams_per_address=1)
    async with socket(server, "/ws/blogs/b1", {"X-Forwarded-For": "203.0.113.7"}) as first:
        assert orjson.loads(await first.recv())["type"] == "snapshot"
        async with socket(server, "/ws/blogs/b1", {"X-Forwarded-For": "203.0.113.8"}) as other:
            assert orjson.loads(await other.recv())["type"] == "snapshot"
        refused = await close_of(server, "/ws/blogs/b1", {"X-Forwarded-For": "203.0.113.7"})
        assert refused == (1013, "too many streams from your address; retry later")
    path.expect(server, 2)


async def test_snapshot_resume_and_live_events_on_both_paths(path: Path) -> None:
    """A snapshot first (read for the first reader, cached for the second), then a resume at the current seq
    (nothing missed) and one from behind (the missed events, read from history), and live events to all four:
    once each, in order. The fast path answers the cached snapshot and the up-to-date resume."""
    server = await path.start()
    assert (await server.publish(headline="one")).status_code == 201
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(socket(server, "/ws/blogs/b1"))
        snapshot = orjson.loads(await a.recv())
        assert (snapshot["type"], snapshot["seq"]) == ("snapshot", 1)
        b = await stack.enter_async_context(socket(server, "/ws/blogs/b1"))
        assert orjson.loads(await b.recv()) == snapshot
        epoch = snapshot["epoch"]
        up_to_date = await stack.enter_async_context(socket(server, f"/ws/blogs/b1?since=1&epoch={epoch}"))
        behind = await stack.enter_async_context(socket(server, f"/ws/blogs/b1?since=0&epoch={epoch}"))
        missed = orjson.loads(await behind.recv())
        assert (missed["type"], missed["seq"]) == ("post.created", 1)
        assert (await server.publish(headline="two")).status_code == 201
        for reader in (a, b, up_to_date, behind):
            event = orjson.loads(await asyncio.wait_for(reader.recv(), 5))
            assert (event["type"], event["seq"], event["post"]["headline"]) == ("post.created", 2, "two")
    path.expect(server, 2)


async def test_a_resume_in_another_epoch_gets_a_snapshot(path: Path) -> None:
    """The engine decides what an epoch it does not hold means: the fast path leaves it to the ASGI handler."""
    server = await path.start()
    assert (await server.publish(headline="one")).status_code == 201
    async with socket(server, "/ws/blogs/b1") as watching:  # the blog is watched and its snapshot cached
        assert orjson.loads(await watching.recv())["type"] == "snapshot"
        async with socket(server, "/ws/blogs/b1?since=1&epoch=0ther") as reader:
            first = orjson.loads(await reader.recv())
    assert (first["type"], first["seq"]) == ("snapshot", 1)
    path.expect(server, 0)


async def _raw_handshake(server: LiveServer, lines: list[str]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(("name", "value"), [
    ("Sec-WebSocket-Version", "12"),
    ("Sec-WebSocket-Key", "not base64!"),
    ("Sec-WebSocket-Key", base64.b64encode(b"short").decode()),
])
async def test_an_unusual_handshake_gets_the_websocket_librarys_answer(path: Path, name: str, value: str) -> None:
    """A handshake the fast path does not take (bad version or key) goes to the ASGI app on both paths."""
    server = await path.start()
    headers = {"Host": f"127.0.0.1:{server.port}", "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(), "Sec-WebSocket-Version": "13"}
    headers[name] = value
    answer = await _raw_handshake(server, ["GET /ws/blogs/b1 HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())])
    assert not answer.startswith(b"HTTP/1.1 101")
    assert answer.split(b" ")[1] in (b"400", b"426")
    assert path.taken(server) == 0


async def test_the_101_carries_the_accept_key_and_the_servers_default_headers(path: Path) -> None:
    """RFC 6455's example key gets its example accept value, and uvicorn's default headers, on both paths."""
    server = await path.start()
    async with socket(server, "/ws/blogs/b1") as watching:  # the blog is watched and its snapshot cached
        assert orjson.loads(await watching.recv())["type"] == "snapshot"
        answer = await _raw_handshake(server, [
            "GET /ws/blogs/b1 HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Upgrade: websocket",
            "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"])
    status, *lines = answer.decode().lower().strip().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert status == "http/1.1 101 switching protocols"
    assert headers.pop("date") and headers.pop("server") == "uvicorn"  # `livepush serve` turns `server` off
    assert headers == {"upgrade": "websocket", "connection": "upgrade",
                       "sec-websocket-accept": "s3pplmbitxaq9kygzzhzrbk+xoo="}
    path.expect(server, 1)
