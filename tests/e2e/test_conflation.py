"""A reader that lags on state gets the latest state instead of a disconnect (`?conflate=1`).

The reader here is a raw socket with a tiny receive buffer that stops reading while a post is
edited many times, so the server's write buffer fills and its events back up. When it reads
again it must still be connected, get every seq either as an event or listed in a `conflated`
notice, and end with the post's last edit.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.conftest import LiveServer, ServerFactory

EDITS = 120
BODY = "<p>" + "x" * 30_000 + "</p>"


@pytest.fixture(params=["direct", "asgi"])
async def server(start_server: ServerFactory, request: pytest.FixtureRequest) -> LiveServer:
    return await start_server(direct_write=request.param == "direct", reader_buffer_bytes=512 * 1024)


class StalledReader:
    """A WebSocket reader over a socket with a 4 KiB receive buffer, reading only when told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol) -> None:
        self._reader, self._writer, self._protocol = reader, writer, protocol
        self._pending: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str) -> StalledReader:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        uri = parse_uri(url)
        await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        protocol = ClientProtocol(uri)
        protocol.send_request(protocol.connect())
        stalled = cls(reader, writer, protocol)
        stalled._flush()
        return stalled

    def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            self._writer.write(data)

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next message, or None when the server closed (or, evicting a stalled reader, reset) the connection."""
        while not self._pending:
            try:
                data = await asyncio.wait_for(self._reader.read(65536), timeout)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self._protocol.receive_data(data)
            self._flush()
            for event in self._protocol.events_received():
                if isinstance(event, Response):
                    assert event.status_code == 101
                elif isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    self._pending.append(orjson.loads(event.data))
                elif isinstance(event, Frame) and event.opcode == Opcode.CLOSE:
                    return None
        return self._pending.pop(0)

    def close(self) -> None:
        self._writer.close()


async def publish_and_edit(server: LiveServer) -> int:
    """Publish one post and edit it EDITS times with large bodies; return the last seq."""
    post_id = (await server.publish(headline="Edited many times")).json()["post"]["id"]
    last = 0
    for n in range(EDITS):
        edited = await server.http.patch(f"/api/blogs/b1/posts/{post_id}", headers=server.auth(),
                                         json={"headline": f"Edit {n}", "body": BODY})
        assert edited.status_code == 200, edited.text
        last = edited.json()["seq"]
    return last


async def test_a_lagging_reader_gets_the_latest_state_instead_of_a_disconnect(server: LiveServer) -> None:
    await server.create_blog("b1")
    stalled = await StalledReader.open(f"{server.ws_base}/ws/blogs/b1?conflate=1")
    try:
        snapshot = await stalled.next()
        assert snapshot is not None and snapshot["type"] == "snapshot"
        last = await publish_and_edit(server)  # the reader reads nothing meanwhile
        received: list[int] = []
        notices: list[int] = []
        headline = None
        while not received or received[-1] < last:
            message = await stalled.next()
            assert message is not None, "the lagging reader was closed"
            if message["type"] == "conflated":
                notices.extend(message["seqs"])
            elif message["type"] != "ping":
                received.append(message["seq"])
                headline = message.get("post", {}).get("headline")
        assert notices, "nothing was conflated: the reader never lagged"
        assert sorted(received + notices) == list(range(1, last + 1))  # every seq once: sent or superseded
        assert received == sorted(received) and received[0] == 1  # the post.created itself is never dropped
        assert headline == f"Edit {EDITS - 1}"
        metrics = (await server.http.get("/metrics")).text
        assert f"livepush_conflations_total {float(len(notices))}" in metrics
    finally:
        stalled.close()


async def test_conflate_must_be_a_flag(server: LiveServer) -> None:
    await server.create_blog("b1")
    stalled = await StalledReader.open(f"{server.ws_base}/ws/blogs/b1?conflate=maybe")
    try:
        assert await stalled.next() is None  # closed 1008 before any message
    finally:
        stalled.close()


async def test_without_conflation_the_same_reader_is_closed_to_resume_later(server: LiveServer) -> None:
    await server.create_blog("b1")
    stalled = await StalledReader.open(f"{server.ws_base}/ws/blogs/b1")
    try:
        assert (await stalled.next() or {}).get("type") == "snapshot"
        await publish_and_edit(server)
        while (message := await stalled.next()) is not None:
            assert message["type"] != "conflated"
        metrics = (await server.http.get("/metrics")).text
        assert "livepush_slow_reader_closes_total 1.0" in metrics
    finally:
        stalled.close()
