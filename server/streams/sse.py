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

from server.admission import Refused
from server.api.errors import ApiError, problem_response
from server.engine import BlogNotFound
from server.feed import Replay
from server.hub import Reader
from server.services import services
from server.streams.request import BadStreamRequest, origin_allowed, parse_stream_request
from server.wire import PING

RETRY_MILLISECONDS = 2000


async def sse_stream(request: Request) -> Response:
    svc = services(request)
    if svc.drainer.draining:
        return problem_response(ApiError(503, "draining", "this process is shutting down; reconnect",
                                         headers={"Retry-After": "1"}))
    if not origin_allowed(request, svc.settings.allowed_origins):
        return problem_response(ApiError(403, "origin_not_allowed", "this origin may not open streams",
                                         field="Origin"))
    try:
        stream = parse_stream_request(request, request.headers.get("last-event-id"))
    except BadStreamRequest as exc:
        return problem_response(ApiError(422, "invalid_field", str(exc), field=exc.field))
    address = request.client.host if request.client else "unknown"
    try:
        svc.admission.admit(address)
    except Refused as exc:
        return problem_response(ApiError(503, "too_many_streams", str(exc), headers={"Retry-After": "5"}))
    reader = Reader(svc.settings.reader_buffer_bytes, conflate=stream.conflate)
    try:
        attached = await svc.feeds.open(reader, stream.blog_id, stream.since, stream.epoch)
    except BaseException as exc:
        svc.admission.release(address)
        if isinstance(exc, BlogNotFound):
            return problem_response(ApiError(404, "unknown_blog", "no such blog"))
        raise
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
