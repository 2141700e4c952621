"""One simulated reader's WebSocket: websockets' Sans-I/O client driven by a plain asyncio.Protocol.

No task and no await per connection or per message: `data_received` feeds the parser and hands
each whole text message to the listener synchronously, stamped with one clock read per batch.
Pings from the server are answered by the protocol object itself (its pongs are written here).
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event, State
from websockets.uri import parse_uri

from server.loadtest.transport import CLOSE_TIMEOUT, Listener

_TEXT = Opcode.TEXT
_CONT = Opcode.CONT
_BINARY = Opcode.BINARY  # not in the contract; parsed like text, so bad JSON shows as a protocol error


class WsConnection(asyncio.Protocol):
    """A WebSocket client connection for one simulated reader."""

    __slots__ = ("_closer", "_ended", "_fragments", "_handshake_timeout", "_handshake_timer", "_listener", "_opened",
                 "_protocol", "_transport")

    def __init__(self, listener: Listener, uri: str, handshake_timeout: float) -> None:
        self._listener = listener
        # max_size=None: a snapshot may carry 20 posts of up to 64 KiB each.
        self._protocol = ClientProtocol(parse_uri(uri), max_size=None)
        self._transport: asyncio.Transport | None = None
        self._opened = False
        self._ended = False
        self._fragments: bytearray | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._closer: asyncio.TimerHandle | None = None
        self._handshake_timeout = handshake_timeout

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        self._protocol.send_request(self._protocol.connect())
        self._flush()
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self._handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
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

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._dispatch(self._protocol.events_received(), time.time_ns())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._handshake_timer, self._closer):
            if timer is not None:
                timer.cancel()
        self._transport = None
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

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # internals

    def _dispatch(self, events: list[Event], now_ns: int) -> None:
        listener = self._listener
        for event in events:
            if type(event) is Frame:
                opcode = event.opcode
                if opcode is _TEXT or opcode is _BINARY:
                    if event.fin:
                        listener.on_message(event.data, now_ns)
                    else:
                        self._fragments = bytearray(event.data)
                elif opcode is _CONT and self._fragments is not None:
                    self._fragments += event.data
                    if event.fin:
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
