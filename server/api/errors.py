"""RFC 9457 problem details: every API error is `application/problem+json` naming its cause."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.engine import (
    BlogEnded,
    BlogExists,
    BlogNotFound,
    EngineError,
    EngineUnavailable,
    IdempotencyMismatch,
    NotReplicated,
    OutcomeUnknown,
    PostNotFound,
    QuotaExceeded,
    StaleVersion,
)
from server.problems import PROBLEM_JSON, problem_body

log = logging.getLogger("livepush")

OUTCOME_UNKNOWN = (
    "storage did not answer after the write was sent, so it may or may not have been stored; retrying is safe "
    "for an edit with If-Match (412 then means it was applied), a delete (404 then means it was done) and a "
    "create with the same Idempotency-Key (the first result comes back); a create without one may publish twice")

NOT_REPLICATED = (
    "stored on the Redis primary, but not yet on as many replicas as LIVEPUSH_REDIS_WAIT_REPLICAS asks, so a "
    "failover could still lose it; it is visible meanwhile. Retry the same request after Retry-After: a create "
    "with the same Idempotency-Key is answered 201 (the first result) once the replicas have it, an edit with "
    "If-Match answers 412 (it was applied), a delete 404 (it was done)")


class ApiError(Exception):
    """Raised by handlers; turned into a problem response by `problem_response`."""

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None,
                 errors: Sequence[Mapping[str, str]] = (), headers: Mapping[str, str] | None = None,
                 extensions: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})


def problem_response(error: ApiError) -> Response:
    body = problem_body(error.status, error.code, error.detail, field=error.field, errors=error.errors,
                        extensions=error.extensions)
    return Response(body, error.status, headers=error.headers, media_type=PROBLEM_JSON)


def from_validation(exc: ValidationError, prefix: str = "") -> ApiError:
    """422 listing each invalid field as a dotted path (`authors.2`, `published_at`)."""
    errors = []
    for item in exc.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or prefix or "body"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": path, "message": message})
    first = errors[0]
    return ApiError(422, "invalid_field", f"{first['field']}: {first['message']}", field=first["field"], errors=errors)


def from_engine(exc: EngineError) -> ApiError:
    """Map an engine refusal to its status code."""
    if isinstance(exc, BlogNotFound):
        return ApiError(404, "unknown_blog", f"no blog with id {exc}")
    if isinstance(exc, PostNotFound):
        return ApiError(404, "unknown_post", f"no post with id {exc}")
    if isinstance(exc, BlogExists):
        return ApiError(409, "blog_exists", f"a blog with id {exc} exists already", field="id")
    if isinstance(exc, BlogEnded):
        return ApiError(409, "blog_ended", "this live blog has ended and accepts no new posts", field="status")
    if isinstance(exc, QuotaExceeded):
        return _quota(exc)
    if isinstance(exc, StaleVersion):
        return ApiError(412, "stale_version", f"If-Match is stale: the post is at version {exc.current}",
                        field="If-Match", headers={"ETag": f'"{exc.current}"'})
    if isinstance(exc, IdempotencyMismatch):
        return ApiError(422, "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request body", field="Idempotency-Key")
    if isinstance(exc, NotReplicated):
        return ApiError(503, "not_replicated", f"{NOT_REPLICATED} ({exc})", headers={"Retry-After": "2"})
    if isinstance(exc, OutcomeUnknown):
        return ApiError(503, "outcome_unknown", OUTCOME_UNKNOWN, headers={"Retry-After": "2"})
    if isinstance(exc, EngineUnavailable):
        return ApiError(503, "engine_unavailable", "storage is unreachable; nothing was written, retry later",
                        headers={"Retry-After": "2"})
    return ApiError(500, "engine_error", "the engine refused the request")


class LastResort:
    """ASGI middleware, innermost: an exception no handler took becomes a 500 problem, logged once.

    Starlette answers such an exception from its outermost middleware, outside every other one, so
    that 500 had neither the security headers nor the request id (and uvicorn logged the traceback
    a second time). Here the answer passes back through them like any other response.
    """

    def __init__(self, app: ASGIApp, on_error: Callable[[Scope], None] | None = None) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if self.on_error is not None:
                self.on_error(scope)
            if not started:  # else the response is half-written: uvicorn closes the connection
                response = problem_response(ApiError(500, "internal_error", "something went wrong on our side"))
                await response(scope, receive, send)


_QUOTAS = {
    "posts_per_blog": ("too_many_posts", "LIVEPUSH_MAX_POSTS_PER_BLOG",
                       "this blog holds {limit} posts, the most allowed; delete posts or start another blog"),
    "blogs": ("too_many_blogs", "LIVEPUSH_MAX_BLOGS", "{limit} blogs exist, the most allowed on this server"),
}


def _quota(exc: QuotaExceeded) -> ApiError:
    """409: a quota is full. Not a 5xx, which tools retry: the same request fails until an operator acts."""
    code, setting, detail = _QUOTAS[exc.quota]
    return ApiError(409, code, detail.format(limit=exc.limit), extensions={"limit": setting, "max": exc.limit})
