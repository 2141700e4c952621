"""One simulated reader's WebSocket: websockets' Sans-I/O client driven by a plain asyncio.Protocol.

No task and no await per connection or per message: `data_received` feeds the parser and hands
each whole text message to the listener synchronously, stamped with one clock read per batch.
Pings from the server are answered by the protocol object itself (its pongs are written here).

A *counting* connection (a reader outside the sample, see `--sample`) parses its first message
like any other, then only walks frame headers: each final, unmasked text frame is counted,
none is decoded, and the listener hears one `on_frames(n)` per read. That is what lets one core
of load generator absorb a server's full fan-out. Anything else (a ping, a close, a fragment)
goes back through the Sans-I/O parser, which is always left at a frame boundary when the
counter takes over, so the two never disagree about where a frame starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event, State
from websockets.uri import parse_uri

from server.loadtest.transport import CLOSE_TIMEOUT, Listener, SocketControl

_TEXT = Opcode.TEXT
_CONT = Opcode.CONT
_BINARY = Opcode.BINARY  # not in the contract; parsed like text, so bad JSON shows as a protocol error
_FINAL_TEXT = 0x81  # FIN + text opcode, no RSV bits (no compression)
# The server's application-level keepalive (`{"type":"ping"}`): not a delivery, so not counted.
_APP_PING = b'{"type":"ping"}'
# While messages flow, a counting connection asks the kernel to wake it only once `batch_bytes`
# have arrived (SO_RCVLOWAT): a few messages per read instead of one, which is most of the tool's
# cost per delivery. `settle()` (draining, or a second without messages) puts it back to 1 byte.
MAX_BATCH_BYTES = 4096


def batch_bytes(publish_rate: float, post_bytes: int, fill_seconds: float = 0.25) -> int:
    """How much a counting reader lets pile up before reading: what arrives in *fill_seconds*, at most 4 KiB.

    A batch must fill much faster than the one-second series, or the deliveries counted per
    second lag behind the server's; below two messages it is not worth a system call.
    """
    message = post_bytes + 300  # the event's JSON around the body
    wanted = int(publish_rate * message * fill_seconds)
    return min(wanted, MAX_BATCH_BYTES) if wanted >= 2 * message else 0


class WsConnection(SocketControl):
    """A WebSocket client connection for one simulated reader."""

    __slots__ = ("_batch", "_batched", "_counting", "_ended", "_fast", "_fragments", "_handshake_timeout",
                 "_head", "_listener", "_messages", "_opened", "_protocol", "_skip")

    def __init__(self, listener: Listener, uri: str, handshake_timeout: float, counting: bool = False,
                 batch: int = 0) -> None:
        self._listener = listener
        # max_size=None: a snapshot may carry 20 posts of up to 64 KiB each.
        self._protocol = ClientProtocol(parse_uri(uri), max_size=None)
        super().__init__()
        self._opened = False
        self._ended = False
        self._fragments: bytearray | None = None
        self._handshake_timeout = handshake_timeout
        self._counting = counting
        self._fast = False  # counting frame headers instead of parsing (see _count)
        self._skip = 0  # payload bytes of the current frame still to come (fast mode)
        self._head = b""  # a frame header split across reads (fast mode)
        self._messages = 0  # whole messages parsed on this connection
        self._batched = False  # SO_RCVLOWAT raised (fast mode)
        self._batch = batch

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self._protocol.send_request(self._protocol.connect())
        self._flush()
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self._handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self._fast:
            self._count(data)
            return
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        protocol = self._protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        if protocol.writes:
            self._flush()
        if events:
            self._dispatch(events, time.time_ns())
        if not self._opened and protocol.handshake_exc is not None:
            self._fail(0, f"handshake failed: {protocol.handshake_exc}")
        elif protocol.state is State.CLOSING and self._closer is None:
            self._close_soon()
        elif (self._counting and self._messages and events and protocol.state is State.OPEN
              and self._fragments is None and not protocol.reader.buffer):
            # At a frame boundary with nothing buffered in the parser: the counter can take over.
            self._fast = True

    def _count(self, data: bytes) -> None:
        """Count whole text frames in *data* by their headers alone; hand anything else to the parser."""
        if not self._batched and self._batch:
            self._batched = True
            self._set_low_water(self._batch)
        skip = self._skip
        size = len(data)
        if skip >= size:
            self._skip = skip - size
            if skip == size:
                self._listener.on_frames(1)  # that frame's payload just ended
            return
        if self._head:
            data = self._head + data[skip:]
            self._head = b""
            size = len(data)
            position = 0
            frames = 0
        else:
            position = skip
            frames = 1 if skip else 0  # the frame whose payload just ended
        while position < size:
            if size - position < 2:
                self._head = data[position:]
                break
            first, second = data[position], data[position + 1]
            if first != _FINAL_TEXT or second & 0x80:
                # Control frame, fragment or anything unexpected: the parser is at this frame's start.
                self._skip = 0
                self._fast = False
                if frames:
                    self._listener.on_frames(frames)
                self._parse(data[position:])
                return
            length = second
            start = position + 2
            if length == 126:
                if size - position < 4:
                    self._head = data[position:]
                    break
                length = (data[position + 2] << 8) | data[position + 3]
                start += 2
            elif length == 127:
                if size - position < 10:
                    self._head = data[position:]
                    break
                length = int.from_bytes(data[position + 2:position + 10], "big")
                start += 8
            end = start + length
            if end > size:
                self._skip = end - size
                if frames:
                    self._listener.on_frames(frames)
                return
            if length != 15 or data[start:end] != _APP_PING:
                frames += 1
            position = end
        self._skip = 0
        if frames:
            self._listener.on_frames(frames)

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._dispatch(self._protocol.events_received(), time.time_ns())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget_socket()
        if not self._opened:
            self._fail(0, f"connection lost during the handshake: {exc or 'EOF'}")
            return
        if not self._ended:
            self._ended = True
            received = self._protocol.close_rcvd
            if received is not None:
                self._listener.on_closed(received.code, received.reason)
            else:
                self._listener.on_closed(None, str(exc) if exc else "connection dropped without a close frame")

    # Connection

    def close(self) -> None:
        if self._transport is None:
            return
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(1000)
            self._flush()
        self._close_soon()

    def settle(self) -> None:
        if self._batched:
            self._batched = False
            self._set_low_water(1)

    def _set_low_water(self, size: int) -> None:
        sock = self._transport.get_extra_info("socket") if self._transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)

    # internals

    def _dispatch(self, events: list[Event], now_ns: int) -> None:
        listener = self._listener
        for event in events:
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is _TEXT or opcode is _BINARY:
                    if event.fin:
                        self._messages += 1
                        listener.on_message(event.data, now_ns)
                    else:
                        self._fragments = bytearray(event.data)
                elif opcode is _CONT and self._fragments is not None:
                    self._fragments += event.data
                    if event.fin:
                        self._messages += 1
                        listener.on_message(bytes(self._fragments), now_ns)
                        self._fragments = None
            elif isinstance(event, Response):
                if self._protocol.handshake_exc is None:
                    self._opened = True
                    if self._handshake_timer is not None:
                        self._handshake_timer.cancel()
                    listener.on_open()
                else:
                    self._fail(event.status_code, f"handshake refused: HTTP {event.status_code}")

    def _flush(self) -> None:
        transport = self._transport
        for chunk in self._protocol.data_to_send():
            if transport is None or transport.is_closing():
                return
            if chunk:
                transport.write(chunk)
            else:
                transport.close()  # the protocol's SEND_EOF: half-closing is not needed by a reader

    def _fail(self, status: int, detail: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self._transport is not None:
            self._transport.abort()
        self._listener.on_failed(status, detail)

    def _handshake_expired(self) -> None:
        self._fail(0, "handshake timed out")

    def _close_soon(self) -> None:
        """A client waits for the server to close TCP after the close handshake, but not for ever."""
        if self._closer is None and self._transport is not None:
            self._closer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)
