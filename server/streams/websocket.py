"""`GET /ws/blogs/{blog}`: one reader's WebSocket.

Two ways to send, one protocol: on the direct path (server.protocols.direct) the hub writes
pre-framed events to the socket itself, and once the reader is attached this handler
*detaches* the connection and returns: the protocol keeps it open and hands what the reader
sends to `_DetachedReader`, and server.streams.keepalive pings it when quiet, so an idle reader
costs no task. On the standard ASGI path a writer loop (`_pump`) drains the reader's queue
with `send()` and a receive loop keeps reading (uvicorn stops reading a socket, pongs
included, until the app calls receive()).

Whatever a reader sends is discarded; binary frames close with 1003, text that is not UTF-8
with 1007, and a flood of messages with 1008 (floods of frames are the protocol's: direct.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.closes import Close
from server.feed import Replay
from server.hub import Reader
from server.protocols.direct import EXTENSION, DirectReader, DirectSocket
from server.services import Services, services
from server.streams.gate import Refusal, admit, attach_refusal
from server.streams.request import StreamRequest
from server.wire import PING

log = logging.getLogger("livepush.ws")

MAX_MESSAGES_PER_MINUTE = 60


async def websocket_stream(websocket: WebSocket) -> None:
    svc = services(websocket)
    await websocket.accept()
    address = websocket.client.host if websocket.client else "unknown"
    headers = websocket.headers
    try:
        request = admit(svc, websocket.path_params["blog"], websocket.query_params, headers.get("origin"),
                        headers.get("host", ""), address)
    except Refusal as refusal:
        await websocket.close(refusal.close, refusal.reason)
        return
    detached = False
    try:
        detached = await _serve(websocket, svc, request, address)
    finally:
        if not detached:
            svc.admission.release(address)


async def _serve(websocket: WebSocket, svc: Services, request: StreamRequest, address: str) -> bool:
    """One admitted reader, from attach to close; True if the connection was detached (still open)."""
    direct: DirectSocket | None = websocket.scope.get("extensions", {}).get(EXTENSION)
    limit = svc.settings.reader_buffer_bytes
    conflate = request.conflate
    if direct is None:
        reader = Reader(limit, conflate=conflate)
    else:
        direct.limit_output(limit)
        reader = (DirectReader(direct, limit, conflate=conflate) if svc.settings.direct_write
                  else _SocketReader(direct, limit, conflate=conflate))
    try:
        # The contract resumes only with both: a seq without its epoch could count in another history.
        since = request.since if request.epoch is not None else None
        attached = await svc.feeds.open(reader, request.blog_id, since, request.epoch)
    except Exception as exc:
        refusal = attach_refusal(exc)
        if refusal is None:
            raise
        await websocket.close(refusal.close, refusal.reason)
        return False
    svc.metrics.streams.labels("websocket", "snapshot" if attached.snapshot else "resume").inc()
    if isinstance(reader, DirectReader):
        assert direct is not None
        if attached.replay is not None:
            await _replay_direct(reader, attached.replay, svc.settings.write_timeout)
        handler = _DetachedReader(reader, svc, request.blog_id, address)
        if direct.detach(handler):
            svc.keepalive.add(reader)
            return True
        svc.feeds.close(reader, request.blog_id)  # the reader left during the attach
        return False
    listening = asyncio.ensure_future(_discard_input(websocket, reader))
    try:
        await _pump(websocket, reader, svc.settings.ping_interval, svc.settings.write_timeout, attached.replay)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the reader went away mid-send; nothing to tell anyone
    except TimeoutError:
        reader.close(Close.TRY_LATER, "reader too slow; resume with since")
        if direct is not None:  # a close frame would wait behind what the reader does not take
            direct.close(Close.TRY_LATER, reader.close_reason, abort=True)
    finally:
        listening.cancel()
        svc.feeds.close(reader, request.blog_id)
    if reader.close_code is not None and websocket.application_state == WebSocketState.CONNECTED:
        try:
            await websocket.close(reader.close_code, reader.close_reason)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
    return False


class _SocketReader(Reader):
    """A reader on the ASGI path whose socket is known: closing a stalled one drops its connection at once.

    Its writer may be waiting for a buffer the peer never drains; without this, an evicted
    reader's connection would stay open (and its kernel buffer full) for good.
    """

    __slots__ = ("_socket",)

    def __init__(self, socket: DirectSocket, limit_bytes: int, *, conflate: bool = False) -> None:
        super().__init__(limit_bytes, conflate=conflate)
        self._socket = socket

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is None and self._socket.buffered():
            self._socket.close(code, reason)  # it does not fit: an RST, which also frees the writer
        super().close(code, reason)


class _DetachedReader:
    """A direct reader after its handler returned: judges its input, cleans up when it leaves."""

    __slots__ = ("_address", "_blog_id", "_guard", "_reader", "_svc")

    def __init__(self, reader: DirectReader, svc: Services, blog_id: str, address: str) -> None:
        self._reader = reader
        self._svc = svc
        self._blog_id = blog_id
        self._address = address
        self._guard: _InputGuard | None = None  # made by the first message: most readers never send one

    def received(self, text: bool, valid: bool, data: bytes) -> None:
        if text and not valid:
            self._reader.close(Close.INVALID_DATA, "text that is not UTF-8")
            return
        if self._guard is None:
            self._guard = _InputGuard(self._reader)
        self._guard.received(binary=not text)

    def flow(self, paused: bool) -> None:
        self._reader.flow(paused)

    def closing(self, code: int, reason: str) -> None:
        self._reader.close(code, reason)

    def lost(self) -> None:
        reader, svc = self._reader, self._svc
        if reader.close_code is None:
            reader.close_code = Close.GONE  # nothing can be written any more
        svc.keepalive.discard(reader)
        svc.feeds.close(reader, self._blog_id)
        svc.admission.release(self._address)


async def _replay_direct(reader: DirectReader, replay: Replay, write_timeout: float) -> None:
    """Write a long replay a chunk at a time, each once the transport has taken the one before.

    A reader that takes nothing for *write_timeout* is closed (1013) and its connection aborted,
    so it holds one chunk for that long at most.
    """
    while True:
        try:
            async with asyncio.timeout(write_timeout):
                open_ = await reader.writable()
        except TimeoutError:
            reader.close(Close.TRY_LATER, "reader too slow; resume with since", abort=True)
            return
        if not open_ or not await replay.step():
            return


async def _pump(websocket: WebSocket, reader: Reader, ping_interval: float, write_timeout: float,
                replay: Replay | None) -> None:
    """Send queued frames until the reader is closed; a ping after *ping_interval* of quiet.

    A long replay goes on a chunk at a time: `send_text` returns once the transport has room.
    A send that waits longer than *write_timeout* for room raises TimeoutError.
    """
    while True:
        if not await reader.wait(ping_interval):
            async with asyncio.timeout(write_timeout):
                await websocket.send_text(PING.text)
            continue
        if reader.closed:
            return
        for frame in reader.take():
            async with asyncio.timeout(write_timeout):
                await websocket.send_text(frame.text)
        if replay is not None and not await replay.step():
            replay = None


async def _discard_input(websocket: WebSocket, reader: Reader) -> None:
    """Read and drop what the reader sends until it leaves or misbehaves."""
    guard = _InputGuard(reader)
    while guard.accept(await websocket.receive()):
        pass


class _InputGuard:
    """Judges what a reader sends: text is dropped, binary closes 1003, a flood closes 1008."""

    __slots__ = ("_count", "_reader", "_window_start")

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._window_start, self._count = time.monotonic(), 0

    def accept(self, message: Message) -> bool:
        """False when the connection is over (the reader left, or was closed here)."""
        if message["type"] == "websocket.disconnect":
            self._reader.close(Close.NORMAL, "reader left")
            return False
        return self.received(binary=message.get("bytes") is not None)

    def received(self, *, binary: bool) -> bool:
        """Judge one message; False when the reader was closed for it."""
        if binary:
            self._reader.close(Close.UNSUPPORTED_DATA, "this stream takes no binary messages")
            return False
        self._count += 1
        now = time.monotonic()
        if now - self._window_start > 60:
            self._window_start, self._count = now, 1
        if self._count > MAX_MESSAGES_PER_MINUTE:
            self._reader.close(Close.POLICY, "too many messages")
            return False
        return True
