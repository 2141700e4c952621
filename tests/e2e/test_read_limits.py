"""Slowloris and huge headers over raw sockets: every request must arrive whole, in time, and small.

The server runs with the HTTP protocol class `livepush serve` uses (server.protocols.http) and
deadlines of 0.3 s, so each test awaits the server closing the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from server.settings import Settings, SettingsError
from tests.conftest import ADMIN_TOKEN, LiveServer, ServerFactory

PROBLEM = b"application/problem+json"


@pytest.fixture
def engine_kind() -> str:
    return "memory"  # limits on reading requests: the engine plays no part


@pytest.fixture
async def server(start_server: ServerFactory) -> LiveServer:
    live = await start_server(header_timeout=0.3, body_timeout=0.3)
    await live.create_blog("b1")
    return live


class Raw:
    """One raw TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, server: LiveServer) -> AsyncIterator[Raw]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def dribble(self, data: bytes) -> bytes:
        """Send *data* one byte at a time until the server answers or closes; return what it sent first."""
        for byte in data:
            await self.send(bytes([byte]))
            try:  # the pace: wait a little for the server's answer before each byte
                return await asyncio.wait_for(self.reader.read(65536), 0.05)
            except TimeoutError:
                continue
        raise AssertionError("all of it was dribbled in without the server answering or closing")

    async def until_closed(self, timeout: float = 10.0) -> bytes:
        """Everything the server sends until it closes the connection."""
        chunks = []
        async with asyncio.timeout(timeout):
            while chunk := await self.reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    async def response(self, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        """One response with a Content-Length, leaving the connection open."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, headers = parse_head(head)
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def parse_response(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, headers = parse_head(head + b"\r\n\r\n")
    return status, headers, orjson.loads(body) if body else {}


async def assert_unchanged(server: LiveServer) -> None:
    blog = await server.blog("b1")
    assert (blog["seq"], blog["post_count"]) == (0, 0)


POST_HEAD = (b"POST /api/blogs/b1/posts HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
             b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\n")


async def test_headers_that_never_finish_get_408_and_the_connection_is_closed(server: LiveServer) -> None:
    """Half a request, then silence: 408 problem+json naming the cause, then close; others are served."""
    async with Raw.open(server) as raw:
        await raw.send(POST_HEAD)  # no blank line: the headers never end
        assert (await server.http.get("/healthz")).status_code == 200  # others are served meanwhile
        status, headers, problem = parse_response(await raw.until_closed())
        assert status == 408 and headers["content-type"] == PROBLEM.decode() and headers["connection"] == "close"
        assert headers["x-content-type-options"] == "nosniff" and len(headers["x-request-id"]) == 16
        assert problem["code"] == "header_timeout" and problem["status"] == 408
        await assert_unchanged(server)


async def test_a_connection_that_sends_nothing_is_closed(server: LiveServer) -> None:
    async with Raw.open(server) as raw:
        assert await raw.until_closed() == b""


async def test_dribbled_headers_do_not_extend_the_deadline(server: LiveServer) -> None:
    """One byte at a time: each byte would reset uvicorn's keep-alive timer, but not the header deadline."""
    async with Raw.open(server) as raw:
        answer = await raw.dribble(b"GET /healthz?" + b"a" * 400 + b" HTTP/1.1\r\nHost: test\r\n\r\n")
        status, _, problem = parse_response(answer + await raw.until_closed())
        assert status == 408 and problem["code"] == "header_timeout"


async def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(server: LiveServer) -> None:
    async with Raw.open(server) as raw:
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        status, _, _ = await raw.response()
        assert status == 200
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: te")
        status, _, problem = parse_response(await raw.until_closed())
        assert status == 408 and problem["code"] == "header_timeout"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_that_never_finishes_gets_408_and_changes_nothing(server: LiveServer, framing: str) -> None:
    """Headers in time, then a body that stalls: 408 naming the body, the connection closed, nothing written."""
    async with Raw.open(server) as raw:
        if framing == "content-length":
            await raw.send(POST_HEAD + b"Content-Length: 100\r\n\r\n" + b'{"headline": "Sl')
        else:
            await raw.send(POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b'10\r\n{"headline": "Sl\r\n')
        status, headers, problem = parse_response(await raw.until_closed())
        assert status == 408 and headers["content-type"] == PROBLEM.decode()
        assert (problem["code"], problem["field"]) == ("body_timeout", "body")
        await assert_unchanged(server)


@pytest.mark.parametrize(("framing", "body"), [
    (b"Transfer-Encoding: xchunked\r\n", b'10\r\n{"headline": "x"}\r\n0\r\n\r\n'),
    (b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffffff\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n"),
    (b"Transfer-Encoding: chunked\r\n", b'10\n{"headline": "x"}\n0\n\n'),
], ids=["xchunked", "huge_chunk_size", "lf_only"])
async def test_a_malformed_chunked_body_gets_400_and_changes_nothing(server: LiveServer, framing: bytes,
                                                                     body: bytes) -> None:
    """The app is already waiting for the body when its framing turns out wrong: the client still gets 400
    problem+json naming what the parser found (not a closed connection), and nothing is written."""
    async with Raw.open(server) as raw:
        await raw.send(POST_HEAD + framing + b"\r\n" + body)
        status, headers, problem = parse_response(await raw.until_closed())
        assert status == 400 and headers["content-type"] == PROBLEM.decode() and headers["connection"] == "close"
        assert headers["x-content-type-options"] == "nosniff" and len(headers["x-request-id"]) == 16
        assert problem["code"] == "malformed_request" and "not valid HTTP" in problem["detail"]
    assert (await server.http.get("/healthz")).status_code == 200
    await assert_unchanged(server)


async def test_a_body_nobody_reads_must_still_arrive_in_time(server: LiveServer) -> None:
    """Refused before its body was read (401), a request that dribbles the rest of its body is closed."""
    async with Raw.open(server) as raw:
        await raw.send(b"POST /api/blogs/b1/posts HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n" + b'{"headline": "x"')
        status, _, _ = await raw.response()
        assert status == 401
        # Every byte received cancels uvicorn's keep-alive timer; the body deadline still closes.
        assert await raw.dribble(b"a" * 900) == b""
        await assert_unchanged(server)


@pytest.mark.parametrize("shape", ["one_huge_header", "many_headers", "dribbled_header", "websocket_handshake"])
async def test_oversized_headers_get_431_and_the_connection_is_closed(server: LiveServer, shape: str) -> None:
    async with Raw.open(server) as raw:
        if shape == "one_huge_header":
            await raw.send(POST_HEAD + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        elif shape == "many_headers":
            await raw.send(POST_HEAD + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(2000)) + b"\r\n")
        elif shape == "dribbled_header":
            await raw.send(POST_HEAD + b"X-Big: ")
            for _ in range(12):  # 96 KiB of one header value, never finished
                await raw.send(b"a" * 8192)
        else:
            await raw.send(b"GET /ws/blogs/b1 HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                           b"Cookie: " + b"c" * 70_000 + b"\r\n\r\n")
        status, headers, problem = parse_response(await raw.until_closed())
        assert status == 431 and headers["content-type"] == PROBLEM.decode()
        assert problem["code"] == "headers_too_large"
        assert headers["x-content-type-options"] == "nosniff" and len(headers["x-request-id"]) == 16
        await assert_unchanged(server)


async def test_large_but_reasonable_headers_are_served(server: LiveServer) -> None:
    response = await server.http.get("/healthz", headers={"Cookie": "c" * 16_000})
    assert response.status_code == 200


async def test_streams_outlive_the_header_deadline(start_server: ServerFactory) -> None:
    """Once its headers are in, a WebSocket or SSE stream is not cut by the header deadline: each one is
    still open for its first ping, which comes after the deadline has passed."""
    server = await start_server(header_timeout=0.3, ping_interval=0.6)
    await server.create_blog("b1")
    async with server.reader() as reader:
        assert (await reader.next())["type"] == "snapshot"
        assert await reader.next(timeout=5) == {"type": "ping"}
    async with server.http.stream("GET", "/sse/blogs/b1") as response:
        lines = response.aiter_lines()
        async with asyncio.timeout(5):
            async for line in lines:
                if line == 'data: {"type":"ping"}':
                    break


def test_the_deadlines_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"LIVEPUSH_HEADER_TIMEOUT": "2.5", "LIVEPUSH_BODY_TIMEOUT": "60"})
    assert (settings.header_timeout, settings.body_timeout) == (2.5, 60.0)
    assert (Settings.from_env({}).header_timeout, Settings.from_env({}).body_timeout) == (10.0, 30.0)
    with pytest.raises(SettingsError, match="LIVEPUSH_HEADER_TIMEOUT") as error:
        Settings.from_env({"LIVEPUSH_HEADER_TIMEOUT": "0", "LIVEPUSH_BODY_TIMEOUT": "soon"})
    assert "LIVEPUSH_BODY_TIMEOUT" in str(error.value)
