"""`GET /ws`: several blogs on one WebSocket (contract v2, "Several blogs on one connection").

The connection opens with no blog; the client sends `subscribe` and `unsubscribe` messages.
Each subscription is a hub `Reader` of its own, attached by `Feeds.open` exactly as a
single-blog stream is (a snapshot or the missed events, then live events, seamless), so fan-out,
resume and conflation stay per blog. A connection's readers all write to its one socket: on the
direct path each writes pre-framed events to the transport, whose buffer bounds them together
(`LIVEPUSH_READER_BUFFER_BYTES`), and the connection is *detached* once accepted, so an idle one
costs no task; on the ASGI path one writer task drains every reader's queue.

Client messages are handled in order, one at a time, by a task that lives only while there are
messages waiting. A bad message or a bad blog is answered with an `error` message and changes
nothing else; what breaks the connection itself closes it, with the single-blog stream's codes:
binary 1003, text that is not UTF-8 1007, over `MAX_MESSAGE_BYTES` 1009, a flood 1008, and a
subscription that falls too far behind 1013 (its frames share the one byte stream, so the client
resumes every blog with its own since/epoch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server import wire
from server.closes import Close
from server.engine import BlogNotFound, EngineError
from server.feed import Replay
from server.hub import Reader
from server.model import is_slug
from server.protocols.direct import EXTENSION, DirectReader, DirectSocket
from server.services import Services, services
from server.streams.gate import Refusal, admit
from server.wire import PING, Frame

log = logging.getLogger("livepush.ws")

MAX_MESSAGE_BYTES = 4096  # a subscribe is under 200 bytes
MESSAGES_PER_MINUTE = 120  # as many as the protocol lets through (server.protocols.direct.FRAMES_PER_MINUTE)


async def multiplex_stream(websocket: WebSocket) -> None:
    """Accept, admit (origin, draining, stream caps), then serve subscriptions until the reader leaves."""
    svc = services(websocket)
    await websocket.accept()
    address = websocket.client.host if websocket.client else "unknown"
    headers = websocket.headers
    try:
        request = admit(svc, "", websocket.query_params, headers.get("origin"), headers.get("host", ""), address)
    except Refusal as refusal:
        await websocket.close(refusal.close, refusal.reason)
        return
    direct: DirectSocket | None = websocket.scope.get("extensions", {}).get(EXTENSION)
    if direct is not None:
        direct.limit_output(svc.settings.reader_buffer_bytes)
    if direct is not None and svc.settings.direct_write:
        connection = Connection(svc, address, request.conflate, direct, direct=True)
        if direct.detach(connection):
            assert connection.control is not None
            svc.keepalive.add(connection.control)
            return
        svc.admission.release(address)
        return
    try:
        await _serve_asgi(websocket, Connection(svc, address, request.conflate, direct, direct=False))
    finally:
        svc.admission.release(address)


class Connection:
    """One `/ws` connection: its subscriptions, its input, its way out (the socket, or a writer task)."""

    __slots__ = ("_address", "_cap", "_conflate", "_count", "_drained", "_feeds", "_inbox", "_limit", "_outbox",
                 "_paused", "_replays", "_socket", "_svc", "_window_start", "_worker", "close_code", "close_reason",
                 "control", "readers", "wakeup")

    def __init__(self, svc: Services, address: str, conflate: bool, socket: DirectSocket | None, *,
                 direct: bool) -> None:
        self._svc = svc
        self._feeds = svc.feeds
        self._address = address
        self._limit = svc.settings.reader_buffer_bytes
        self._cap = svc.settings.max_blogs_per_stream
        self._conflate = conflate
        self._socket = socket  # known on both paths when uvicorn runs our protocol (server.protocols.direct)
        self.readers: dict[str, Reader] = {}
        self._inbox: list[bytes] = []
        self._worker: asyncio.Task[None] | None = None
        self._window_start, self._count = time.monotonic(), 0
        self.close_code: int | None = None
        self.close_reason = ""
        # Direct path: `control` writes errors and acks, and is what the keepalive sweep pings.
        self.control = DirectReader(socket, self._limit) if direct and socket is not None else None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        # ASGI path: control messages wait here, and the writer task waits on `wakeup`.
        self._outbox: list[Frame] = []
        self.wakeup = asyncio.Event() if self.control is None else None
        self._replays: dict[str, Replay] = {}

    # input

    def received(self, text: bool, valid: bool, data: bytes) -> None:
        """Judge one client message; queue it for the worker, or close the connection for it."""
        if self.close_code is not None:
            return
        if not text:
            self.end(Close.UNSUPPORTED_DATA, "this stream takes no binary messages")
        elif not valid:
            self.end(Close.INVALID_DATA, "text that is not UTF-8")
        elif len(data) > MAX_MESSAGE_BYTES:
            self.end(Close.TOO_BIG, f"a message is at most {MAX_MESSAGE_BYTES} bytes")
        elif not self._within_budget():
            self.end(Close.POLICY, "too many messages")
        else:
            self._inbox.append(data)
            if self._worker is None:
                self._worker = asyncio.get_running_loop().create_task(self._work())

    def _within_budget(self) -> bool:
        now = time.monotonic()
        if now - self._window_start > 60:
            self._window_start, self._count = now, 0
        self._count += 1
        return self._count <= MESSAGES_PER_MINUTE

    async def _work(self) -> None:
        try:
            while self._inbox and self.close_code is None:
                await self._handle(self._inbox.pop(0))
        except Exception:
            log.exception("multiplexed stream failed")
            self.end(Close.TRY_LATER, "server error; resume with since")
        finally:
            self._worker = None

    async def _handle(self, data: bytes) -> None:
        try:
            message = wire.loads(data)
        except ValueError:
            self._error(None, "invalid_json", "a message must be one JSON object")
            return
        if not isinstance(message, dict):
            self._error(None, "invalid_json", "a message must be one JSON object")
            return
        kind, blog = message.get("type"), message.get("blog")
        named = blog if isinstance(blog, str) else None
        if not isinstance(kind, str):
            self._error(named, "invalid_field", "type must be subscribe or unsubscribe", "type")
        elif kind not in ("subscribe", "unsubscribe"):
            self._error(named, "unknown_type", "type must be subscribe or unsubscribe", "type")
        elif named is None:
            self._error(None, "invalid_field", "blog must be a blog id (a string)", "blog")
        elif kind == "unsubscribe":
            self._unsubscribe(named)
        else:
            await self._subscribe_message(named, message)

    async def _subscribe_message(self, blog: str, message: dict[str, Any]) -> None:
        since, epoch = message.get("since"), message.get("epoch")
        if since is not None and (type(since) is not int or since < 0):
            self._error(blog, "invalid_field", "since must be a non-negative integer seq", "since")
        elif epoch is not None and not _is_epoch(epoch):
            self._error(blog, "invalid_field", "epoch must be the epoch string the server sent", "epoch")
        elif not is_slug(blog):
            self._error(blog, "invalid_blog", "not a blog id", "blog")
        else:
            # The contract resumes only with both: a seq without its epoch could count in another history.
            await self._subscribe(blog, since if epoch is not None else None, epoch)

    # subscriptions

    async def _subscribe(self, blog: str, since: int | None, epoch: str | None) -> None:
        """Attach a reader for *blog*; a second subscribe to the same blog replaces the first (a resume)."""
        if self._svc.drainer.draining:  # a connection with no blog is not in the hub, which the drain closes
            self.end(Close.RESTARTING, "server restarting; reconnect")
            return
        old = self.readers.pop(blog, None)
        if old is not None:
            self._retire(blog, old)
        if len(self.readers) >= self._cap:
            self._error(blog, "too_many_blogs", f"at most {self._cap} blogs on one connection")
            return
        reader = self._reader()
        try:
            attached = await self._feeds.open(reader, blog, since, epoch)
        except BlogNotFound:
            self._error(blog, "unknown_blog", "no such blog")
            return
        except EngineError:
            self._error(blog, "unavailable", "storage unavailable; subscribe again later")
            return
        if self.close_code is not None or reader.closed:
            self._feeds.close(reader, blog)  # the connection ended while attaching; the reader is ours to close
            return
        self.readers[blog] = reader
        self._svc.metrics.streams.labels("multiplex", "snapshot" if attached.snapshot else "resume").inc()
        if attached.replay is not None:
            if self.wakeup is None:
                assert isinstance(reader, DirectReader)
                await self._replay_direct(blog, reader, attached.replay)
            else:
                self._replays[blog] = attached.replay
                self.wakeup.set()

    def _reader(self) -> Reader:
        if self.control is not None:
            assert self._socket is not None
            return _DirectBlogReader(self, self._socket, self.control, self._limit, self._conflate)
        return _QueuedBlogReader(self, self._limit, self._conflate)

    def _unsubscribe(self, blog: str) -> None:
        """Detach *blog*'s reader (if any) and say so: nothing of that blog follows `unsubscribed`."""
        reader = self.readers.pop(blog, None)
        if reader is not None:
            self._retire(blog, reader)
        self._send(wire.Frame(blog, 0, wire.dumps({"type": "unsubscribed", "blog": blog})))

    def _retire(self, blog: str, reader: Reader) -> None:
        # Reader.close, not the subclass's: this ends one subscription, not the socket. A fan-out pass
        # under way still holds the reader, so it must refuse what it is offered from now on.
        Reader.close(reader, Close.NORMAL, "unsubscribed")
        self._replays.pop(blog, None)
        self._feeds.close(reader, blog)

    async def _replay_direct(self, blog: str, reader: DirectReader, replay: Replay) -> None:
        """Write a long replay a chunk at a time, each once the transport has drained the one before."""
        timeout = self._svc.settings.write_timeout
        while self.readers.get(blog) is reader:
            try:
                async with asyncio.timeout(timeout):
                    await self._writable()
            except TimeoutError:
                reader.close(Close.TRY_LATER, "reader too slow; resume with since", abort=True)
                return
            if self.close_code is not None or self.readers.get(blog) is not reader or not await replay.step():
                return

    async def _writable(self) -> None:
        """Return once the transport is below its high-water mark (`flow` says when it crosses it)."""
        if self._paused:
            if self._drained is None:
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)

    # output

    def _error(self, blog: str | None, code: str, detail: str, field: str | None = None) -> None:
        body: dict[str, Any] = {"type": "error", "blog": blog, "code": code, "detail": detail}
        if field is not None:
            body["field"] = field
        self._send(Frame(blog or "", 0, wire.dumps(body)))

    def _send(self, frame: Frame) -> None:
        if self.close_code is not None:
            return
        if self.control is not None:
            self.control.write_now(frame)
            self.control.quiet = False
        else:
            assert self.wakeup is not None
            self._outbox.append(frame)
            self.wakeup.set()

    def end(self, code: int, reason: str, *, abort: bool = False) -> None:
        """Close the connection with *code*, and every subscription with it; safe to call more than once."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = code, reason
        self._inbox.clear()
        if self.control is not None:
            self.control.close(code, reason, abort=abort)
        elif self._socket is not None and self._socket.buffered():
            self._socket.close(code, reason, abort=True)  # a close frame would wait behind what the peer does not take
        for blog, reader in list(self.readers.items()):
            self._retire(blog, reader)
        self.readers.clear()
        if self.wakeup is not None:
            self.wakeup.set()

    # the protocol's side, on the direct path (server.protocols.direct.Detached)

    def flow(self, paused: bool) -> None:
        self._paused = paused
        for reader in self.readers.values():
            assert isinstance(reader, DirectReader)
            reader.flow(paused)
        drained = self._drained
        if not paused and drained is not None:
            self._drained = None
            if not drained.done():
                drained.set_result(None)

    def closing(self, code: int, reason: str) -> None:
        self.end(code, reason)

    def lost(self) -> None:
        if self.control is not None:
            self._svc.keepalive.discard(self.control)
        self.end(Close.GONE, "connection lost")
        self.finish()
        self._svc.admission.release(self._address)

    def finish(self) -> None:
        """Stop the worker (its attach, if one is under way, cleans up after itself)."""
        worker = self._worker
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()

    # the ASGI path's writer

    async def pump(self, websocket: WebSocket) -> None:
        """Send what every reader has queued, and control messages, until the connection ends; then close it."""
        try:
            await self._pump(websocket)
        except (WebSocketDisconnect, OSError, RuntimeError):
            self.end(Close.GONE, "connection lost")  # the reader went away mid-send
        except TimeoutError:
            self.end(Close.TRY_LATER, "reader too slow; resume with since")
            if self._socket is not None:  # a close frame would wait behind what the reader does not take
                self._socket.close(Close.TRY_LATER, self.close_reason, abort=True)
        code = self.close_code
        if code is not None and code != Close.GONE and websocket.application_state == WebSocketState.CONNECTED:
            try:
                await websocket.close(code, self.close_reason)
            except (WebSocketDisconnect, OSError, RuntimeError):
                pass

    async def _pump(self, websocket: WebSocket) -> None:
        assert self.wakeup is not None
        interval, timeout = self._svc.settings.ping_interval, self._svc.settings.write_timeout
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self.wakeup.wait()
            except TimeoutError:
                async with asyncio.timeout(timeout):
                    await websocket.send_text(PING.text)
                continue
            self.wakeup.clear()
            if self.close_code is not None:
                return
            outbox, self._outbox = self._outbox, []
            await _send_all(websocket, outbox, timeout)
            for blog, reader in list(self.readers.items()):
                await _send_all(websocket, reader.take(), timeout)
                replay = self._replays.get(blog)
                if replay is not None and self.readers.get(blog) is reader and not await replay.step():
                    self._replays.pop(blog, None)


class _DirectBlogReader(DirectReader):
    """One subscription on the direct path: closing it for anything but an unsubscribe ends the connection."""

    __slots__ = ("_connection", "_control")

    def __init__(self, connection: Connection, socket: DirectSocket, control: DirectReader, limit: int,
                 conflate: bool) -> None:
        super().__init__(socket, limit, conflate=conflate)
        self._connection = connection
        self._control = control

    def _write(self, data: bytes, seq: int) -> bool:
        self._control.quiet = False
        return super()._write(data, seq)

    def start(self, first: Sequence[Frame], after: int) -> bool:
        if self.close_code is not None:
            return False  # the connection ended while this attached: nothing more may be written
        self._control.quiet = False
        return super().start(first, after)

    def close(self, code: int, reason: str = "", *, abort: bool = False) -> None:
        if self.close_code is not None:
            return
        super().close(code, reason, abort=abort)
        self._connection.end(code, reason, abort=abort)


class _QueuedBlogReader(Reader):
    """One subscription on the ASGI path: its queue is drained by the connection's writer task."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection, limit: int, conflate: bool) -> None:
        super().__init__(limit, conflate=conflate)
        self._connection = connection

    def _wake(self) -> None:
        wake = self._connection.wakeup  # the connection's writer wakes for any of its readers
        if wake is not None:
            wake.set()

    def close(self, code: int, reason: str = "") -> None:
        if self.close_code is not None:
            return
        super().close(code, reason)
        self._connection.end(code, reason)


async def _send_all(websocket: WebSocket, frames: list[Frame], seconds: float) -> None:
    for frame in frames:
        async with asyncio.timeout(seconds):
            await websocket.send_text(frame.text)


async def _serve_asgi(websocket: WebSocket, connection: Connection) -> None:
    """The ASGI path: this task reads the client's messages, a writer task sends (and closes)."""
    writer = asyncio.ensure_future(connection.pump(websocket))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            connection.received(text is not None, True, text.encode() if text is not None else b"")
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass
    finally:
        connection.end(Close.GONE, "connection lost")  # a no-op when it ended with a code of its own
        connection.finish()
        await writer


def _is_epoch(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isalnum()
