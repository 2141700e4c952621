"""`GET /ws/blogs/{blog}`: one reader's WebSocket.

Two ways to send, one protocol: on the direct path (server.streams.direct) the hub writes
pre-framed events to the socket itself and this handler only reads and pings; on the standard
ASGI path a writer loop (`_pump`) drains the reader's queue with `send()`.

The handler is push-only, but it keeps reading: uvicorn stops reading a socket (pongs
included) until the app calls receive(), so a silent receive loop is what keeps the
connection alive. Whatever a reader sends is discarded; binary frames close with 1003 and a
flood of messages closes with 1008.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.admission import Refused
from server.engine import BlogNotFound
from server.hub import CLOSE_POLICY, CLOSE_RESTARTING, CLOSE_TRY_LATER, CLOSE_UNKNOWN_BLOG, Reader
from server.services import Services, services
from server.streams.direct import EXTENSION, DirectReader, DirectSocket
from server.streams.request import BadStreamRequest, StreamRequest, origin_allowed, parse_stream_request
from server.wire import PING

log = logging.getLogger("livepush.ws")

CLOSE_UNSUPPORTED_DATA = 1003
MAX_MESSAGES_PER_MINUTE = 60


async def websocket_stream(websocket: WebSocket) -> None:
    svc = services(websocket)
    await websocket.accept()
    if svc.drainer.draining:
        await websocket.close(CLOSE_RESTARTING, "server restarting; reconnect")
        return
    if not origin_allowed(websocket, svc.settings.allowed_origins):
        await websocket.close(CLOSE_POLICY, "origin not allowed")
        return
    try:
        request = parse_stream_request(websocket)
    except BadStreamRequest as exc:
        await websocket.close(CLOSE_POLICY, str(exc))
        return
    address = websocket.client.host if websocket.client else "unknown"
    try:
        svc.admission.admit(address)
    except Refused as exc:
        await websocket.close(CLOSE_TRY_LATER, str(exc))
        return
    try:
        await _serve(websocket, svc, request)
    finally:
        svc.admission.release(address)


async def _serve(websocket: WebSocket, svc: Services, request: StreamRequest) -> None:
    """One admitted reader, from attach to close."""
    direct: DirectSocket | None = websocket.scope.get("extensions", {}).get(EXTENSION)
    limit = svc.settings.reader_buffer_bytes
    reader = DirectReader(direct, limit) if direct is not None and svc.settings.direct_write else Reader(limit)
    try:
        # The contract resumes only with both: a seq without its epoch could count in another history.
        since = request.since if request.epoch is not None else None
        attached = await svc.feeds.open(reader, request.blog_id, since, request.epoch)
    except BlogNotFound:
        await websocket.close(CLOSE_UNKNOWN_BLOG, "unknown blog")
        return
    svc.metrics.streams.labels("websocket", "snapshot" if attached.snapshot else "resume").inc()
    if isinstance(reader, DirectReader):
        try:
            await _read_and_ping(websocket, reader, svc.settings.ping_interval)
        finally:
            svc.feeds.close(reader, request.blog_id)
        return
    listening = asyncio.ensure_future(_discard_input(websocket, reader))
    try:
        await _pump(websocket, reader, svc.settings.ping_interval)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the reader went away mid-send; nothing to tell anyone
    finally:
        listening.cancel()
        svc.feeds.close(reader, request.blog_id)
    if reader.close_code is not None and websocket.application_state == WebSocketState.CONNECTED:
        try:
            await websocket.close(reader.close_code, reader.close_reason)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass


async def _pump(websocket: WebSocket, reader: Reader, ping_interval: float) -> None:
    """Send queued frames until the reader is closed; a ping after *ping_interval* of quiet."""
    while True:
        if not await reader.wait(ping_interval):
            await websocket.send_text(PING.text)
            continue
        if reader.closed:
            return
        for frame in reader.take():
            await websocket.send_text(frame.text)


async def _read_and_ping(websocket: WebSocket, reader: DirectReader, ping_interval: float) -> None:
    """The direct path's only loop: read (and drop) input; ping after *ping_interval* of quiet.

    Quiet is checked every half interval, so a ping follows 1 to 1.5 intervals of silence
    (under the widget's 45 s dead-connection limit with the default 25 s).
    """
    guard = _InputGuard(reader)
    while not reader.closed:
        try:
            async with asyncio.timeout(ping_interval / 2):
                message = await websocket.receive()
        except TimeoutError:
            reader.idle_checks = reader.idle_checks + 1 if reader.quiet else 0
            reader.quiet = True
            if reader.idle_checks >= 2:
                reader.write_now(PING)
                reader.idle_checks = 0
            continue
        if not guard.accept(message):
            return


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
            self._reader.close(1000, "reader left")
            return False
        if message.get("bytes") is not None:
            self._reader.close(CLOSE_UNSUPPORTED_DATA, "this stream takes no binary messages")
            return False
        self._count += 1
        now = time.monotonic()
        if now - self._window_start > 60:
            self._window_start, self._count = now, 1
        if self._count > MAX_MESSAGES_PER_MINUTE:
            self._reader.close(CLOSE_POLICY, "too many messages")
            return False
        return True
