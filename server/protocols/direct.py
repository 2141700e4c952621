"""The direct write path: a reader's frames go straight to its socket, framed once per event.

On the standard ASGI path, every message to every reader costs a task wake-up and an awaited
`send()` that encodes and frames the text again. A broadcast sends the same bytes to every
reader, so livepush frames each event once (`Frame.ws`) and, when the server offers it, writes
that frame to each reader's transport inside the broadcast loop: one C-level write per reader,
no await, no task.

`DirectWebSocketProtocol` is uvicorn's websockets-sansio protocol plus the ASGI scope extension
`livepush.direct`, which carries a `DirectSocket` for the connection. `livepush serve` installs
it; streams fall back to the standard ASGI path when the extension is missing (another server,
another `--ws`) or `LIVEPUSH_DIRECT_WRITE=0`. Bytes written this way never go through the
websockets state machine, which is sound for server-to-client data frames (unmasked, no
fragments, no compression: permessage-deflate is off); pings, pongs and closes still do.

The protocol also bounds what one connection can cost, whichever path writes to it: at most
`FRAMES_PER_MINUTE` frames of any kind from the peer (a ping costs a parse and a pong; an empty
fragment a parse and a list entry), `MAX_FRAGMENTS` per message, and unsent bytes past the
reader's limit end the connection even when they are our own pongs. Every close sends a close
frame only if it fits (nothing waiting to be sent); otherwise, and when the peer does not
answer it in time, the connection is reset, so the kernel frees its send buffer at once.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame as WsFrame
from websockets.http11 import Request
from websockets.protocol import State

from server.closes import Close
from server.hub import Batch, Reader
from server.wire import Frame

EXTENSION = "livepush.direct"
FRAMES_PER_MINUTE = 120  # a reader's frames of any kind: browsers send only pongs, libraries ping every 20 s
MAX_FRAGMENTS = 128  # per message, whatever their size
DEFAULT_OUTPUT_LIMIT = 1 << 20  # until the stream sets LIVEPUSH_READER_BUFFER_BYTES (`DirectSocket.limit_output`)
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST and drops the send buffer


class DirectSocket:
    """Write to and close one accepted WebSocket connection without going through ASGI `send`."""

    __slots__ = ("_protocol", "buffered", "write")

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol
        transport: Any = protocol.transport
        self.write: Callable[[bytes], None] = transport.write
        self.buffered: Callable[[], int] = transport.get_write_buffer_size

    async def writable(self) -> bool:
        """Wait until the transport's write buffer is below its low-water mark; False if the connection is gone."""
        protocol: Any = self._protocol
        await protocol.writable.wait()
        return not protocol.transport.is_closing()

    def detach(self, handler: Detached) -> bool:
        """Let the ASGI handler return while the connection stays open; False if it is already gone."""
        protocol: Any = self._protocol
        detached: bool = protocol.detach(handler)
        return detached

    def limit_output(self, limit: int) -> None:
        """Bound the bytes waiting to be sent on this connection, whatever wrote them (pongs included)."""
        protocol: Any = self._protocol
        protocol.output_limit = limit

    def close(self, code: int, reason: str, *, abort: bool = False) -> None:
        """Close now, without waiting for the peer to drain its buffer: a close frame if it fits, else an RST.

        *abort* resets the connection whatever its buffer holds (a peer that missed a write deadline).
        """
        protocol: Any = self._protocol
        protocol.end(code, reason, reset=abort)


class _NoHandler:
    """Stands in for the receive queue and writable event of a detached connection: signals go nowhere."""

    __slots__ = ()

    def put_nowait(self, message: object) -> None:
        pass

    def set(self) -> None:
        pass

    def clear(self) -> None:
        pass


_NO_HANDLER = _NoHandler()


class Detached(Protocol):
    """Who takes over a connection whose ASGI handler has returned (see `DirectSocket.detach`)."""

    def received(self, text: bool, valid: bool, data: bytes) -> None:
        """A message arrived: text or binary, its payload *data*; *valid* is False for text that is not UTF-8."""

    def lost(self) -> None:
        """The connection is gone (called once)."""

    def closing(self, code: int, reason: str) -> None:
        """The protocol ends the connection (a flood, a stop): close the reader, which calls `DirectSocket.close`."""

    def flow(self, paused: bool) -> None:
        """The transport's write buffer went above its high-water mark (True) or drained below low-water."""


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default WebSocket protocol, offering `livepush.direct` in the ASGI scope.

    A connection can also be *detached*: its handler returns and the protocol keeps the
    connection open, handing messages and the loss of the connection to a `Detached`. An idle
    reader then costs no task, no coroutine frames and no ASGI objects, only this protocol.
    """

    detached: Detached | None = None
    output_limit = DEFAULT_OUTPUT_LIMIT
    _frames = 0
    _window_start = 0.0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        transport = self.transport
        if transport.get_write_buffer_size() > self.output_limit and not transport.is_closing():
            self.refuse(Close.POLICY, "sends more than it reads")  # our replies pile up: the peer reads nothing

    def handle_events(self) -> None:
        # Every frame costs a parse, and a ping a pong: count them before they are handled.
        if self.conn.events and not self._within_budget(len(self.conn.events)):
            if not self.close_sent:
                self.refuse(Close.POLICY, "too many frames")
            elif self._frames > 2 * FRAMES_PER_MINUTE:  # still flooding after our close frame
                self.reset()
        if self.transport.is_closing():
            self.conn.events_received()  # dropped with the connection
            return
        super().handle_events()

    def _within_budget(self, frames: int) -> bool:
        now = self.loop.time()
        if now - self._window_start > 60:
            self._window_start, self._frames = now, 0
        self._frames += frames
        return self._frames <= FRAMES_PER_MINUTE

    def handle_cont(self, event: WsFrame) -> None:
        if len(self.frames) >= MAX_FRAGMENTS:  # empty fragments pass the size cap but grow this list
            self.frames = []
            self.refuse(Close.POLICY, "too many fragments")
            return
        super().handle_cont(event)

    def refuse(self, code: int, reason: str) -> None:
        """End the connection on the protocol's own account (a flood, a stop); a detached reader is closed first."""
        handler = self.detached
        if handler is not None:
            handler.closing(code, reason)  # its reader stops writing, and closes the connection through `end`
        self.end(code, reason)

    def end(self, code: int, reason: str, *, reset: bool = False) -> None:
        """Close with *code*: a close frame if it fits (and *reset* is False), else an RST (`reset`).

        It fits when nothing is waiting to be sent. Otherwise the peer is not reading: the frame
        would queue behind bytes it never takes, and so would the FIN after it, with the kernel
        holding its send buffer (megabytes) meanwhile. A peer that does not answer the close
        frame within `close_timeout` is reset too.
        """
        transport = self.transport
        if self.close_sent or transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.close_sent = True
        if reset or transport.get_write_buffer_size() or self.conn.state is not State.OPEN:
            self.reset()
            return
        self.conn.send_close(code, reason)
        transport.write(b"".join(self.conn.data_to_send()))
        if self.read_paused:  # read on, for the peer's close frame
            self.read_paused = False
            transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.reset)

    def reset(self) -> None:
        """Drop the connection with an RST: the kernel frees what was unsent at once."""
        transport = self.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()

    def shutdown(self) -> None:
        # uvicorn's close at shutdown waits for the buffer to drain, and so would the stop, for a peer that never reads.
        if self.transport.get_write_buffer_size() and not self.transport.is_closing():
            self.stop_keepalive()
            self.refuse(Close.RESTARTING, "")  # nothing fits, so this resets...
            if not self.transport.is_closing():
                self.reset()  # ...and so must a close frame already sent behind the same bytes
            return
        super().shutdown()

    async def send(self, message: ASGISendEvent) -> None:
        # The ASGI path's close takes the same road as the direct one, without waiting for the buffer to drain.
        if message["type"] == "websocket.close" and self.handshake_complete and self.initial_response is None:
            self.end(message.get("code", 1000), message.get("reason") or "")
            return
        await super().send(message)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # None when the handshake was refused before a scope existed
            scope["extensions"][EXTENSION] = DirectSocket(self)

    def detach(self, handler: Detached) -> bool:
        """Keep the connection open after the ASGI handler returns; False if it is already gone."""
        if self.disconnected or self.close_sent or self.transport.is_closing():
            return False
        self.detached = handler
        return True

    async def run_asgi(self) -> None:
        await self._run_app()
        if self.detached is not None:
            self._forget_handshake()
        elif self.close_timer is None:
            self.transport.close()

    async def _run_app(self) -> None:
        # uvicorn's run_asgi without its final close, which a detached connection must skip.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)

    def _forget_handshake(self) -> None:
        """Drop what only the handshake and the ASGI handler needed: memory held per idle reader.

        The receive queue and the writable event serve only an ASGI handler (about 4 KiB per
        connection); uvicorn still signals them, so they become a shared sink.
        """
        self.scope = None  # type: ignore[assignment]
        # websockets' parser generator keeps the Request alive in its frame: empty its headers.
        self.request.headers.clear()
        self.response.headers.clear()
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        self.queue = _NO_HANDLER  # type: ignore[assignment]
        self.writable = _NO_HANDLER  # type: ignore[assignment]

    def send_receive_event_to_app(self) -> None:
        handler = self.detached
        if handler is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        text = self.curr_msg_data_type == "text"
        valid = True
        if text:
            try:
                bytes(data).decode()
            except UnicodeDecodeError:
                valid = False
        handler.received(text, valid, data)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.detached is not None:
            self.detached.flow(paused=True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.detached is not None:
            self.detached.flow(paused=False)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:  # its DirectSocket points back here: free both by refcount, not the GC
            scope["extensions"].pop(EXTENSION, None)
        handler, self.detached = self.detached, None
        if handler is not None:
            handler.lost()


class DirectReader(Reader):
    """A Reader whose frames are written to the socket inside `offer()`; no queue, no writer task.

    Its bound is the transport's own write buffer: past `limit_bytes` unsent, the reader is
    closed with 1013 and the connection reset (the close frame cannot fit). A reader that asked
    for conflation is instead *held* while its transport is paused (above high water): events
    wait in the queue, where a later edit replaces an older one, and go out in one write when
    the transport drains.
    """

    __slots__ = ("_held", "_socket", "idle_checks", "quiet")

    def __init__(self, socket: DirectSocket, limit_bytes: int, *, conflate: bool = False) -> None:
        super().__init__(limit_bytes, conflate=conflate)
        self._socket = socket
        self._held = False
        self.quiet = True
        self.idle_checks = 0

    def offer(self, frame: Frame) -> bool:
        if self.close_code is not None:
            return False
        if self._parked is not None or self._held:
            return super().offer(frame)
        if frame.seq <= self.seq:
            return True  # already covered by the first message
        return self._write(frame.ws, frame.seq)

    def offer_batch(self, batch: Batch) -> bool:
        if self.seq != batch.first - 1 or self._parked is not None or self._held or self.close_code is not None:
            return super().offer_batch(batch)  # frame by frame: drops what the first message covered
        return self._write(batch.ws, batch.last)

    def flow(self, paused: bool) -> None:
        """Hold events while the transport is paused (conflating readers only); write them when it drains."""
        if not self._conflate or self._parked is not None or self.close_code is not None:
            return
        if paused:
            self._held = True
            return
        self._held = False
        frames = self.take()
        if frames:
            self._write(b"".join(frame.ws for frame in frames), self.seq)

    def _write(self, data: bytes, seq: int) -> bool:
        """Write *data* (events up to *seq*) unless the peer is past its bound; False when closed."""
        socket = self._socket
        try:
            if socket.buffered() > self._limit:
                self.close(Close.TRY_LATER, "reader too slow; resume with since")
                return False
            socket.write(data)
        except (RuntimeError, OSError):  # the transport went away under us: the endpoint cleans up
            self.close_code = Close.GONE
            return False
        self.seq = seq
        self.quiet = False
        return True

    def start(self, first: Sequence[Frame], after: int) -> bool:
        if not super().start(first, after):
            return False
        for frame in self.take():
            self._socket.write(frame.ws)
        self.quiet = False
        return True

    def replay(self, frames: Sequence[Frame]) -> bool:
        """Write one run of a replay that goes on (live events stay parked); False when closed."""
        if not super().replay(frames):
            return False
        return self._write(b"".join(frame.ws for frame in self.take()), self.seq)

    async def writable(self) -> bool:
        """Wait until the transport takes more (below its low-water mark); False if the connection is gone."""
        return await self._socket.writable()

    def write_now(self, frame: Frame) -> None:
        """Write *frame* regardless of the buffer bound (pings)."""
        if self.close_code is None:
            self._socket.write(frame.ws)

    def close(self, code: int, reason: str = "", *, abort: bool = False) -> None:
        """Close with *code*: a close frame if it fits, else (or with *abort*) an RST."""
        if self.close_code is not None:
            return
        super().close(code, reason)
        self._socket.close(code, reason, abort=abort)
