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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from server.hub import CLOSE_TRY_LATER, Batch, Reader
from server.wire import Frame

EXTENSION = "livepush.direct"


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

    def close(self, code: int, reason: str, *, abort: bool = False) -> None:
        """Send a close frame now, without waiting for the peer to drain its buffer.

        *abort* drops the connection at once: for a peer that stopped reading, whose buffer
        would never drain (uvicorn alone never evicts such a peer).
        """
        protocol: Any = self._protocol
        transport = protocol.transport
        if protocol.close_sent or transport.is_closing():
            return
        protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        protocol.conn.send_close(code, reason)
        transport.write(b"".join(protocol.conn.data_to_send()))
        protocol.close_sent = True
        if abort:
            transport.abort()
            return
        if protocol.read_paused:
            protocol.read_paused = False
            transport.resume_reading()
        protocol.close_timer = protocol.loop.call_later(protocol.close_timeout, transport.close)


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

    def received(self, text: bool, valid: bool) -> None:
        """A message arrived: text or binary; *valid* is False for text that is not UTF-8."""

    def lost(self) -> None:
        """The connection is gone (called once)."""

    def flow(self, paused: bool) -> None:
        """The transport's write buffer went above its high-water mark (True) or drained below low-water."""


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default WebSocket protocol, offering `livepush.direct` in the ASGI scope.

    A connection can also be *detached*: its handler returns and the protocol keeps the
    connection open, handing messages and the loss of the connection to a `Detached`. An idle
    reader then costs no task, no coroutine frames and no ASGI objects, only this protocol.
    """

    detached: Detached | None = None

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
        handler.received(text, valid)

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
    closed with 1013 and the connection aborted. A reader that asked for conflation is instead
    *held* while its transport is paused (above high water): events wait in the queue, where a
    later edit replaces an older one, and go out in one write when the transport drains.
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
                self.close(CLOSE_TRY_LATER, "reader too slow; resume with since")
                return False
            socket.write(data)
        except (RuntimeError, OSError):  # the transport went away under us: the endpoint cleans up
            self.close_code = 1006
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
        """Close with *code*; the connection is aborted when its peer stalled (or *abort*)."""
        if self.close_code is not None:
            return
        super().close(code, reason)
        stalled = abort or self._socket.buffered() > self._limit
        self._socket.close(code, reason, abort=stalled)
