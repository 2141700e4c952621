"""`GET /ws/blogs/{blog}`: one reader's WebSocket.

The handler is push-only, but it keeps reading: uvicorn stops reading a socket (pongs
included) until the app calls receive(), so a silent receive loop is what keeps the
connection alive. Whatever a reader sends is discarded; binary frames close with 1003 and a
flood of messages closes with 1008.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.engine import BlogNotFound
from server.hub import CLOSE_POLICY, CLOSE_UNKNOWN_BLOG, Reader
from server.services import services
from server.streams.request import BadStreamRequest, origin_allowed, parse_stream_request
from server.wire import PING

log = logging.getLogger("livepush.ws")

CLOSE_UNSUPPORTED_DATA = 1003
MAX_MESSAGES_PER_MINUTE = 60


async def websocket_stream(websocket: WebSocket) -> None:
    svc = services(websocket)
    await websocket.accept()
    if not origin_allowed(websocket, svc.settings.allowed_origins):
        await websocket.close(CLOSE_POLICY, "origin not allowed")
        return
    try:
        request = parse_stream_request(websocket)
    except BadStreamRequest as exc:
        await websocket.close(CLOSE_POLICY, str(exc))
        return
    reader = Reader(svc.settings.reader_buffer_bytes)
    try:
        attached = await svc.feeds.open(reader, request.blog_id, request.since, request.epoch)
    except BlogNotFound:
        await websocket.close(CLOSE_UNKNOWN_BLOG, "unknown blog")
        return
    svc.metrics.streams.labels("websocket", "snapshot" if attached.snapshot else "resume").inc()
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


async def _discard_input(websocket: WebSocket, reader: Reader) -> None:
    """Read and drop what the reader sends; close 1003 on binary, 1008 on a flood; end on disconnect."""
    window_start, count = time.monotonic(), 0
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            reader.close(1000, "reader left")
            return
        if message.get("bytes") is not None:
            reader.close(CLOSE_UNSUPPORTED_DATA, "this stream takes no binary messages")
            return
        count += 1
        now = time.monotonic()
        if now - window_start > 60:
            window_start, count = now, 1
        if count > MAX_MESSAGES_PER_MINUTE:
            reader.close(CLOSE_POLICY, "too many messages")
            return
