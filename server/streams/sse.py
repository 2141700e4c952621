"""`GET /sse/blogs/{blog}`: one reader's server-sent event stream.

The same messages as the WebSocket, one per `data:` line, each event with `id: <seq>`, so a
reconnecting EventSource resumes through Last-Event-ID. `?since=&epoch=` work as on the
WebSocket; Last-Event-ID (newer, sent by the browser) wins over `since`. A long replay is
streamed a chunk at a time as the client takes it (server.feed.Replay).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from server.api.errors import problem_response
from server.engine import BlogNotFound
from server.feed import Replay
from server.hub import Reader
from server.services import services
from server.streams.gate import Refusal, admit, attach_refusal
from server.wire import PING

RETRY_MILLISECONDS = 2000


async def sse_stream(request: Request) -> Response:
    svc = services(request)
    address = request.client.host if request.client else "unknown"
    asked = request.headers
    try:
        stream = admit(svc, request.path_params["blog"], request.query_params, asked.get("origin"),
                       asked.get("host", ""), address, asked.get("last-event-id"))
    except Refusal as refused:
        return problem_response(refused.problem())
    reader = Reader(svc.settings.reader_buffer_bytes, conflate=stream.conflate)
    try:
        attached = svc.feeds.open_now(reader, stream.blog_id, stream.since, stream.epoch)
        if attached is None:
            attached = await svc.feeds.open(reader, stream.blog_id, stream.since, stream.epoch)
    except BaseException as exc:
        svc.admission.release(address)
        unknown = attach_refusal(exc) if isinstance(exc, BlogNotFound) else None
        if unknown is None:
            raise  # storage errors get the app's problem answer (server.app._engine_error)
        return problem_response(unknown.problem())
    svc.metrics.streams.labels("sse", "snapshot" if attached.snapshot else "resume").inc()
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # CORS: see server.app._read_cors
    return StreamingResponse(_events(request, reader, stream.blog_id, address, attached.replay),
                             media_type="text/event-stream", headers=headers)


async def _events(request: Request, reader: Reader, blog_id: str, address: str,
                  replay: Replay | None) -> AsyncIterator[bytes]:
    svc = services(request)
    try:
        yield b"retry: %d\n\n" % RETRY_MILLISECONDS
        while True:
            if not await reader.wait(svc.settings.ping_interval):
                yield PING.sse
                continue
            if reader.closed:
                return  # the browser reconnects after `retry` and resumes with Last-Event-ID
            yield b"".join(frame.sse for frame in reader.take())
            # A long replay reads on only after this chunk was handed to the transport, and the next yield
            # waits for room: a reader that does not read holds two chunks at most, until the write deadline.
            # (A send to a connection that is gone returns at once: check before reading on.)
            if replay is not None and (await request.is_disconnected() or not await replay.step()):
                replay = None
    finally:
        svc.feeds.close(reader, blog_id)
        svc.admission.release(address)
