"""Who may open a stream: one set of checks for every way a stream is opened.

The WebSocket handler (server.streams.websocket), the WebSocket handshake fast path
(server.streams.handshake) and SSE (server.streams.sse) all call `admit()` before attaching and
`attach_refusal()` when the attach fails. Each renders a `Refusal` its own way: a WebSocket
closes with `close` and `reason` right after the handshake; SSE answers `problem()`.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.admission import Refused
from server.api.errors import ApiError
from server.closes import Close
from server.engine import BlogNotFound, EngineUnavailable
from server.services import Services
from server.streams.request import BadStreamRequest, StreamRequest, origin_allowed, parse_stream_request


class Refusal(Exception):
    """A stream refused, with its WebSocket close and its HTTP problem."""

    def __init__(self, close: Close, reason: str, status: int, code: str, detail: str, *,
                 field: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.close = close
        self.reason = reason
        self._problem = (status, code, detail, field, retry_after)

    def problem(self) -> ApiError:
        status, code, detail, field, retry_after = self._problem
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return ApiError(status, code, detail, field=field, headers=headers)


def admit(svc: Services, blog_id: str, query: Mapping[str, str], origin: str | None, host: str, address: str,
          last_event_id: str | None = None) -> StreamRequest:
    """Check a stream request, in the contract's order: draining, origin, its fields, the admission caps.

    Raises Refusal. On success the caller holds one admission place for *address*: it must
    `svc.admission.release(address)` when the stream ends, or when the attach fails.
    """
    if svc.drainer.draining:
        raise Refusal(Close.RESTARTING, "server restarting; reconnect", 503, "draining",
                      "this process is shutting down; reconnect", retry_after=1)
    if not origin_allowed(origin, host, svc.settings.allowed_origins):
        raise Refusal(Close.POLICY, "origin not allowed", 403, "origin_not_allowed",
                      "this origin may not open streams", field="Origin")
    try:
        request = parse_stream_request(blog_id, query, last_event_id)
    except BadStreamRequest as exc:
        raise Refusal(Close.POLICY, str(exc), 422, "invalid_field", str(exc), field=exc.field) from None
    try:
        svc.admission.admit(address)
    except Refused as exc:
        raise Refusal(Close.TRY_LATER, str(exc), 503, "too_many_streams", str(exc), retry_after=5) from None
    return request


def attach_refusal(exc: BaseException) -> Refusal | None:
    """The refusal an attach error means; None for an error that is nobody's to answer here."""
    if isinstance(exc, BlogNotFound):
        return Refusal(Close.UNKNOWN_BLOG, "unknown blog", 404, "unknown_blog", "no such blog")
    if isinstance(exc, EngineUnavailable):
        return Refusal(Close.TRY_LATER, "storage unavailable; retry later", 503, "engine_unavailable",
                       "storage unavailable; retry later", retry_after=1)
    return None
