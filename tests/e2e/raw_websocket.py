"""A WebSocket opened by hand, for tests that send what no client library would or read nothing at all."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator

from tests.conftest import LiveServer

PING = 0x9
CONT = 0x0
TEXT = 0x1
CLOSE = 0x8
PONG = 0xA


def frame(opcode: int, payload: bytes = b"", *, mask: bool = True, fin: bool = True, rsv: int = 0) -> bytes:
    """One client frame (payloads under 64 KiB), masked unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    length = len(payload)
    size = bytes([length]) if length < 126 else bytes([126]) + length.to_bytes(2, "big")
    if not mask:
        return head + size + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return head + bytes([size[0] | 0x80]) + size[1:] + key + masked


@contextlib.asynccontextmanager
async def raw_websocket(server: LiveServer, path: str = "/ws/blogs/b1", receive_buffer: int | None = None,
                        ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """The upgrade done by hand (101 checked); *receive_buffer* shrinks the socket's kernel buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    try:
        key = base64.b64encode(os.urandom(16))
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_until_close(reader: asyncio.StreamReader) -> tuple[int, str, int]:
    """Read server frames up to the close frame: (its code, its reason, pongs before it)."""
    pongs = 0
    async with asyncio.timeout(10):
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(length)
            if first & 0x0F == PONG:
                pongs += 1
            elif first & 0x0F == CLOSE:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode(), pongs
