"""What one WebSocket can make the server hold: frames it sends, replies it never reads, a stalled reader's close.

Raw sockets against a real uvicorn, on both write paths (the ASGI fallback is
`LIVEPUSH_DIRECT_WRITE=0`): pings and empty fragments are counted and closed with 1008, pongs
that pile up because the peer reads nothing end the connection once they pass
`LIVEPUSH_READER_BUFFER_BYTES`, and a reader evicted for falling behind is reset (RST), so the
kernel frees its send buffer at once instead of holding it behind a FIN in FIN-WAIT-1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from server.protocols import direct
from tests.conftest import LiveServer, ServerFactory, wait_until
from tests.e2e.raw_websocket import CONT, PING, TEXT, frame, raw_websocket, read_until_close


@pytest.fixture
def engine_kind() -> str:
    return "memory"  # what a connection may send or leave unread is judged before any engine is asked


@pytest.fixture(params=["direct", "asgi"])
async def server(start_server: ServerFactory, request: pytest.FixtureRequest) -> LiveServer:
    live = await start_server(direct_write=request.param == "direct", reader_buffer_bytes=64 * 1024)
    await live.create_blog("b1", title="Test blog")
    return live


async def assert_the_server_is_fine(server: LiveServer) -> None:
    async with server.reader() as again:
        assert (await again.next())["type"] == "snapshot"


# frames a reader sends


async def test_a_ping_flood_is_closed_with_1008(server: LiveServer) -> None:
    """Past 120 frames a minute (a browser sends a few pongs; a library pings every 20 s) the reader is closed."""
    async with raw_websocket(server) as (reader, writer):
        writer.write(b"".join(frame(PING, b"p" * 125) for _ in range(direct.FRAMES_PER_MINUTE + 10)))
        code, reason, pongs = await read_until_close(reader)
        assert (code, reason) == (1008, "too many frames")
        assert pongs <= direct.FRAMES_PER_MINUTE + 10
        assert (await server.publish()).status_code == 201  # the closed reader is sent nothing more
        writer.write(frame(0x8, code.to_bytes(2, "big")))  # our half of the closing handshake
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # no frame after the close frame, then the server's FIN
    await assert_the_server_is_fine(server)


async def test_empty_continuation_frames_are_closed_with_1008(server: LiveServer) -> None:
    """Empty fragments pass the 64 KiB cap on a message, but each costs a parse: they count as frames."""
    async with raw_websocket(server) as (reader, writer):
        writer.write(frame(TEXT, b"x", fin=False) + frame(CONT, fin=False) * 20_000)
        assert (await read_until_close(reader))[:2] == (1008, "too many frames")
    await assert_the_server_is_fine(server)


async def test_a_message_in_too_many_fragments_is_closed_with_1008(server: LiveServer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Sent slowly enough to stay under the frame budget, fragments still stop at 128 per message."""
    monkeypatch.setattr(direct, "FRAMES_PER_MINUTE", 1_000_000)
    async with raw_websocket(server) as (reader, writer):
        writer.write(frame(TEXT, b"x", fin=False) + frame(CONT, fin=False) * 1_000)
        assert (await read_until_close(reader))[:2] == (1008, "too many fragments")
    await assert_the_server_is_fine(server)


async def test_pongs_a_reader_never_reads_end_its_connection(server: LiveServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With the frame budget lifted, only the bound on unsent bytes stops a reader that pings and never reads.

    It used to grow the server by 192 MiB in 9 s (210 MB of pings), held until the blog's next event.
    """
    monkeypatch.setattr(direct, "FRAMES_PER_MINUTE", 1_000_000_000)
    batch = frame(PING, b"p" * 125) * 1_000
    sent = 0
    async with raw_websocket(server, receive_buffer=4096) as (_, writer):
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            while sent < 256 * 1024 * 1024:
                writer.write(batch)
                await writer.drain()
                sent += len(batch)
    # Dropped after the kernel's buffers and 64 KiB of the server's own: a few MB sent, not hundreds.
    assert sent < 32 * 1024 * 1024, sent
    await wait_until(lambda: not server.server.server_state.connections, what="the connection to be dropped")
    await assert_the_server_is_fine(server)


# a reader evicted for falling behind


def server_side(server_port: int, client_port: int) -> dict[str, Any] | None:
    """The server's end of one loopback connection in /proc/net/tcp (what `ss` reads): state and unsent bytes."""
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            return {"state": int(fields[3], 16), "unsent": int(fields[4].split(":")[0], 16)}
    return None


async def test_an_evicted_reader_is_reset_and_its_socket_freed_at_once(server: LiveServer) -> None:
    """The close frame does not fit behind the unread bytes, and a FIN would wait behind them in FIN-WAIT-1."""
    body = "<p>" + "x" * 30_000 + "</p>"
    async with raw_websocket(server, receive_buffer=4096) as (reader, writer):
        client_port = writer.get_extra_info("sockname")[1]
        held = 0
        while server.services.hub.evicted == 0:  # the reader reads nothing from here on
            assert (await server.publish(body=body)).status_code == 201
            state = server_side(server.port, client_port)
            if state is not None and server.services.hub.evicted == 0:
                held = max(held, state["unsent"])
        assert held > 64 * 1024, "the kernel never held unsent bytes: the reader was not stalled"
        await wait_until(lambda: server_side(server.port, client_port) is None, 1.0,
                         "the server's socket to be gone")
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(10):
                while await reader.read(65536):
                    pass
    await assert_the_server_is_fine(server)


@pytest.mark.parametrize("path", ["direct", "asgi"])
async def test_a_stalled_reader_does_not_hold_the_stop(start_server: ServerFactory, path: str) -> None:
    """uvicorn's close at shutdown waits for a buffer this reader never drains: it is reset instead."""
    # Never evicted (a large bound): only the stop can end this connection.
    server = await start_server(direct_write=path == "direct", reader_buffer_bytes=64 * 1024 * 1024)
    await server.create_blog("b1")
    body = "<p>" + "x" * 30_000 + "</p>"
    async with raw_websocket(server, receive_buffer=4096) as (reader, _):
        def unsent() -> int:
            return sum(connection.transport.get_write_buffer_size()
                       for connection in server.server.server_state.connections
                       if hasattr(connection, "conn"))  # the WebSocket connections
        while unsent() == 0:  # the reader reads nothing from here on
            assert (await server.publish(body=body)).status_code == 201
        async with asyncio.timeout(10):  # a guard: without the reset, uvicorn waits for this connection forever
            await server.stop()
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(10):
                while await reader.read(65536):
                    pass
