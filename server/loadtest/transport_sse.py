"""One simulated reader's server-sent event stream over a plain asyncio.Protocol.

A minimal HTTP/1.1 client: one GET, the status line and headers, then a chunked (or
close-delimited) body cut into events at blank lines. Only `data:` lines matter to the reader
(the seq is inside the JSON); `id:`, `retry:` and comments are skipped. The end of the stream
is the server closing this reader (SSE has no close code), reported as a normal close.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from server.loadtest.transport import CLOSE_NORMAL, CLOSE_TIMEOUT, Listener, SocketControl

MAX_HEAD = 64 * 1024


class ProtocolFault(ValueError):
    """The server's bytes are not a valid HTTP response or chunked body."""


class SseConnection(SocketControl):
    """An SSE client connection for one simulated reader."""

    __slots__ = ("_body", "_chunk_left", "_chunked", "_crlf_left", "_ended", "_handshake_timeout",
                 "_head", "_listener", "_opened", "_raw", "_request")

    def __init__(self, listener: Listener, request: bytes, handshake_timeout: float) -> None:
        self._listener = listener
        self._request = request
        super().__init__()
        self._opened = False
        self._ended = False
        self._head = bytearray()
        self._raw = bytearray()
        self._body = bytearray()
        self._chunked = False
        self._chunk_left = 0
        self._crlf_left = 0
        self._handshake_timeout = handshake_timeout

    @staticmethod
    def request(host: str, path: str, last_event_id: int | None) -> bytes:
        """The GET for *path*; Last-Event-ID as a reconnecting EventSource would send it."""
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: text/event-stream", "Cache-Control: no-cache"]
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self._transport.write(self._request)
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self._handshake_timeout, self._fail, 0, "response timed out")

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        try:
            if not self._opened:
                self._head += data
                end = self._head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._head) > MAX_HEAD:
                        raise ProtocolFault("response head too long")
                    return
                data = bytes(self._head[end + 4:])
                if not self._start(bytes(self._head[:end])):
                    return
            if self._chunked:
                self._raw += data
                finished = self._dechunk()
            else:
                self._body += data
                finished = False
            self._events(time.time_ns())
            if finished:
                self._end(CLOSE_NORMAL, "stream ended")
        except (ProtocolFault, ValueError) as exc:
            self._end(None, f"bad response: {exc}")

    def eof_received(self) -> bool | None:
        if self._opened and not self._chunked:
            self._end(CLOSE_NORMAL, "stream ended")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget_socket()
        if not self._opened:
            self._fail(0, f"connection lost before the response: {exc or 'EOF'}")
        else:
            self._end(None, str(exc) if exc else "connection dropped mid-stream")

    # Connection

    def close(self) -> None:
        """An EventSource closes by dropping the connection: there is no closing handshake."""
        if self._transport is not None:
            self._end(CLOSE_NORMAL, "closed by the reader")

    def settle(self) -> None:
        """Nothing to do: an SSE connection always parses, and reads whatever arrives."""

    # internals

    def _start(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolFault("not an HTTP/1.x status line")
        status = int(parts[1])
        if status != 200:
            self._fail(status, f"HTTP {status}")
            return False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
        self._opened = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self._listener.on_open()
        return True

    def _dechunk(self) -> bool:
        """Move chunk payloads from the raw buffer to the body; True at the last (empty) chunk."""
        raw, body, pos = self._raw, self._body, 0
        size = len(raw)
        while pos < size:
            if self._chunk_left:
                take = min(self._chunk_left, size - pos)
                body += raw[pos:pos + take]
                pos += take
                self._chunk_left -= take
            elif self._crlf_left:
                take = min(self._crlf_left, size - pos)
                pos += take
                self._crlf_left -= take
            else:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    if size - pos > 1024:
                        raise ProtocolFault("chunk size line too long")
                    break
                length = int(bytes(raw[pos:eol]).split(b";", 1)[0], 16)
                pos = eol + 2
                if length == 0:
                    del raw[:]
                    return True
                self._chunk_left, self._crlf_left = length, 2
        del raw[:pos]
        return False

    def _events(self, now_ns: int) -> None:
        body = self._body
        if b"\r" in body:  # CRLF line ends are allowed by the SSE grammar; this server sends LF
            body[:] = body.replace(b"\r\n", b"\n")
        end = body.find(b"\n\n")
        if end < 0:
            return
        start, listener = 0, self._listener
        while end >= 0:
            block = bytes(body[start:end])
            start = end + 2
            data: list[bytes] = []
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data.append(line[6:] if line[5:6] == b" " else line[5:])
            if data:
                listener.on_message(data[0] if len(data) == 1 else b"\n".join(data), now_ns)
            end = body.find(b"\n\n", start)
        del body[:start]

    def _fail(self, status: int, detail: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self._transport is not None:
            self._transport.abort()
        self._listener.on_failed(status, detail)

    def _end(self, code: int | None, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self._transport is not None:
            self._transport.close()
            self._closer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)
        self._listener.on_closed(code, reason)
