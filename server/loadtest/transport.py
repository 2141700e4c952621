"""The seam between a simulated reader and its wire protocol (WebSocket or SSE).

A transport is a plain `asyncio.Protocol` per connection: bytes in, whole messages out,
delivered synchronously to its `Listener` with the time they arrived. It calls `on_open` once
the handshake succeeds, `on_message` per message (or, on a counting connection after its first
message, `on_frames` per read), and exactly one of `on_failed` (before open) or `on_closed`
(after open).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

Payload = bytes | bytearray | memoryview

CLOSE_NORMAL = 1000
CLOSE_ABNORMAL = 1006
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_RESTARTING = 1012
CLOSE_TRY_LATER = 1013
CLOSE_UNKNOWN_BLOG = 4404

CLOSE_TIMEOUT = 2.0


class Listener(Protocol):
    """What a transport reports to (a simulated reader)."""

    def on_open(self) -> None: ...

    def on_message(self, data: Payload, now_ns: int) -> None:
        """One whole message (JSON bytes), received at *now_ns* (time.time_ns())."""
        ...

    def on_frames(self, count: int) -> None:
        """*count* more whole text messages arrived on a counting connection (not parsed, see transport_ws)."""
        ...

    def on_failed(self, status: int, detail: str) -> None:
        """The connection never opened: *status* is the HTTP status, 0 for a network failure."""
        ...

    def on_closed(self, code: int | None, reason: str) -> None:
        """The open connection ended: the close code, or None when it dropped without one."""
        ...


class Connection(Protocol):
    """What a simulated reader can ask of its transport."""

    def close(self) -> None:
        """Close cleanly (close frame, or end of the HTTP stream); the listener hears on_closed."""
        ...

    def abort(self) -> None:
        """Drop the TCP connection now."""
        ...

    def pause(self) -> None:
        """Stop reading from the socket, so the server's buffers for this reader fill up."""
        ...

    def resume(self) -> None: ...

    def settle(self) -> None:
        """Read whatever has arrived now: a counting connection reads in batches while messages flow."""
        ...


class SocketControl(asyncio.Protocol):
    """What both transports do the same way with their socket: abort it, pause or resume reading, and
    forget it (and its handshake and close timers) when it is lost."""

    __slots__ = ("_closer", "_handshake_timer", "_transport")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._closer: asyncio.TimerHandle | None = None

    def _forget_socket(self) -> None:
        """The connection is gone: stop its timers and drop the transport."""
        for timer in (self._handshake_timer, self._closer):
            if timer is not None:
                timer.cancel()
        self._transport = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
