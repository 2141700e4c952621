"""The API's endpoints. `OPERATIONS` lists them with their models; routes and OpenAPI both come from it."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import wire
from server.api.access import principal as _principal
from server.api.body import fingerprint, read_model
from server.api.errors import ApiError
from server.api.webhooks import (
    MAX_DELIVERIES,
    create_webhook,
    delete_webhook,
    get_webhook,
    list_deliveries,
    list_webhooks,
)
from server.auth import Principal
from server.cache import Rendered, consistent_read
from server.model import (
    Blog,
    BlogCreate,
    BlogList,
    BlogUpdate,
    DeleteResult,
    EventList,
    Health,
    Post,
    PostCreate,
    PostPage,
    PostResult,
    PostUpdate,
    Session,
    is_slug,
)
from server.newsroom import scoped_idempotency
from server.paging import BadCursor, Order, Page, decode_cursor
from server.parsing import ascii_int
from server.responses import cached_response
from server.services import Services, services
from server.webhooks.model import (
    DeliveryList,
    WebhookCreate,
    WebhookCreated,
    WebhookDeleted,
    WebhookEndpoint,
    WebhookList,
)

Handler = Callable[[Request], Awaitable[Response]]
MAX_PAGE = 100
EVENTS_PAGE = 100  # events per /events page by default
MAX_EVENTS_PAGE = 1000
EVENTS_PAGE_BYTES = 1024 * 1024  # a page also stops at about this many bytes of events (at least one event)
BLOG_PAGE = 50


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # "query" | "header"
    description: str
    schema: Mapping[str, Any]
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: how it is routed, what it takes and returns, and which errors it may answer."""

    method: str
    path: str
    handler: Handler
    summary: str
    status: int
    response: type[BaseModel]
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: bool = False
    params: tuple[Param, ...] = ()
    tag: str = "blogs"


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(wire.dumps(data), status, headers=dict(headers or {}), media_type="application/json")


def etag(post: Post) -> str:
    return f'"{post.version}"'


# request pieces


def _blog_id(request: Request) -> str:
    blog_id: str = request.path_params["blog"]
    if not is_slug(blog_id):
        raise ApiError(404, "unknown_blog", f"no blog with id {blog_id!r}")
    return blog_id


def _post_id(request: Request) -> str:
    post_id: str = request.path_params["post"]
    if not is_slug(post_id):
        raise ApiError(404, "unknown_post", f"no post with id {post_id!r}")
    return post_id


def _writer(request: Request, blog_id: str | None) -> Principal:
    """The authenticated publisher; 401 without a valid token, 403 if it may not write *blog_id*, 429 if too fast."""
    principal = _principal(request)
    if blog_id is not None and not principal.may_write(blog_id):
        raise ApiError(403, "forbidden", f"this token may not write blog {blog_id!r}", field="Authorization")
    _limit_rate(request, principal)
    return principal


def _limit_rate(request: Request, principal: Principal) -> None:
    """429 when this token or this client address writes faster than LIVEPUSH_WRITE_RATE allows."""
    limiter = services(request).writes
    client = request.client.host if request.client else "unknown"
    wait = max(limiter.take("token:" + principal.subject), limiter.take("ip:" + client))
    if wait > 0:
        raise ApiError(429, "rate_limited", f"too many writes; retry in {wait:.1f}s",
                       headers={"Retry-After": str(max(1, math.ceil(wait)))})


def _if_match(request: Request) -> int | None:
    """The version named by If-Match; None when absent or `*`. An unparsable tag can match nothing (412)."""
    value = request.headers.get("if-match")
    if value is None or value.strip() == "*":
        return None
    version = ascii_int(value.split(",")[0].strip().removeprefix("W/").strip('"'))
    if version is None:
        raise ApiError(400, "bad_if_match", 'If-Match must be a post version such as "3" (or *)', field="If-Match")
    return version


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    key = value.strip().strip('"')
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters",
                       field="Idempotency-Key")
    return key


def _query_int(request: Request, name: str, default: int | None, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:  # present but empty (`?limit=`) is not a number: 422 like any other
        if default is None:
            raise ApiError(422, "invalid_field", f"{name} is required", field=name)
        return default
    number = ascii_int(raw, max_digits=len(str(high)))
    if number is None or not low <= number <= high:
        raise ApiError(422, "invalid_field", f"{name} must be an integer from {low} to {high}", field=name)
    return number


def _order(request: Request) -> Order:
    order = request.query_params.get("order", "newest")
    if order == "newest":
        return "newest"
    if order == "oldest":
        return "oldest"
    raise ApiError(422, "invalid_field", "order must be newest or oldest", field="order")


def _timed(request: Request, kind: str, started: float) -> None:
    metrics = services(request).metrics
    metrics.writes.labels(kind).inc()
    metrics.write_seconds.labels(kind).observe(time.perf_counter() - started)


# blogs


async def session(request: Request) -> Response:
    """Who the bearer token is and what it may write (a console checks a token with this)."""
    principal = _principal(request)
    return json_response({"subject": principal.subject, "admin": principal.admin, "blogs": sorted(principal.blogs)})


async def list_blogs(request: Request) -> Response:
    """One page of blogs in id order; `next` is the cursor of the following page (the page's last id)."""
    limit = _query_int(request, "limit", BLOG_PAGE, 1, MAX_PAGE)
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and not is_slug(cursor):
        raise ApiError(422, "invalid_field", "cursor is not a cursor from this server", field="cursor")
    page = await services(request).engine.list_blogs(limit, cursor)
    return json_response({"blogs": [wire.blog_json(blog) for blog in page.blogs], "next": page.next})


async def create_blog(request: Request) -> Response:
    svc = services(request)
    principal = _writer(request, None)
    data, _ = await read_model(request, BlogCreate, svc.settings.max_body_bytes, svc.settings.body_timeout)
    if not principal.may_write(data.id):
        raise ApiError(403, "forbidden", f"this token may not create blog {data.id!r}", field="id")
    started = time.perf_counter()
    blog = await svc.newsroom.create_blog(data)
    _timed(request, "blog.created", started)
    return json_response(wire.blog_json(blog), 201, {"Location": f"/api/blogs/{blog.id}"})


async def get_blog(request: Request) -> Response:
    blog = await services(request).engine.get_blog(_blog_id(request))
    return json_response(wire.blog_json(blog))


async def update_blog(request: Request) -> Response:
    svc = services(request)
    blog_id = _blog_id(request)
    _writer(request, blog_id)
    data, _ = await read_model(request, BlogUpdate, svc.settings.max_body_bytes, svc.settings.body_timeout)
    started = time.perf_counter()
    result = await svc.newsroom.update_blog(blog_id, data)
    _timed(request, "blog.updated", started)
    return json_response(wire.blog_json(result.value))


# posts


async def create_post(request: Request) -> Response:
    svc = services(request)
    blog_id = _blog_id(request)
    principal = _writer(request, blog_id)
    key = _idempotency_key(request)
    data, raw = await read_model(request, PostCreate, svc.settings.max_body_bytes, svc.settings.body_timeout)
    idempotency = None
    if key is not None:
        idempotency = scoped_idempotency(principal, key, fingerprint(raw), svc.settings.idempotency_ttl)
    started = time.perf_counter()
    result = await svc.newsroom.publish(blog_id, data, idempotency)
    headers = {"Location": f"/api/blogs/{blog_id}/posts/{result.value.id}", "ETag": etag(result.value)}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    else:
        _timed(request, "post.created", started)
    return json_response({"post": wire.post_json(result.value), "seq": result.seq}, 201, headers)


async def list_posts(request: Request) -> Response:
    svc = services(request)
    blog_id = _blog_id(request)
    limit = _query_int(request, "limit", 20, 1, MAX_PAGE)
    order = _order(request)
    before = request.query_params.get("before") or None
    try:
        key = decode_cursor(before) if before is not None else None
    except BadCursor:
        raise ApiError(422, "invalid_field", "before is not a cursor from this server", field="before") from None
    if key is not None:
        page = await svc.engine.list_posts(blog_id, limit, order, key)
        return json_response(_posts_json(page))
    return cached_response(request, await svc.page_cache.get(
        ("posts", blog_id, order, str(limit)), lambda: _first_posts(svc, blog_id, limit, order), front=True))


def _posts_json(page: Page) -> dict[str, Any]:
    return {"posts": [wire.post_json(post) for post in page.posts], "next": page.next}


async def _first_posts(svc: Services, blog_id: str, limit: int, order: Order) -> Rendered:
    """The first page of posts, tied to the blog state it shows (cached, with an ETag, per state)."""
    if order == "newest":
        snap = await svc.engine.snapshot(blog_id, limit)
        blog, page, consistent = snap.blog, snap.page, True
    else:
        blog, page, consistent = await consistent_read(
            svc.engine, blog_id, lambda: svc.engine.list_posts(blog_id, limit, order, None))
    return Rendered(blog.id, blog.epoch, blog.seq, wire.dumps(_posts_json(page)), b"application/json", consistent)


async def get_post(request: Request) -> Response:
    post = await services(request).engine.get_post(_blog_id(request), _post_id(request))
    return json_response(wire.post_json(post), headers={"ETag": etag(post)})


async def update_post(request: Request) -> Response:
    svc = services(request)
    blog_id, post_id = _blog_id(request), _post_id(request)
    _writer(request, blog_id)
    if_match = _if_match(request)
    data, _ = await read_model(request, PostUpdate, svc.settings.max_body_bytes, svc.settings.body_timeout)
    started = time.perf_counter()
    result = await svc.newsroom.edit(blog_id, post_id, data, if_match)
    _timed(request, "post.updated", started)
    return json_response({"post": wire.post_json(result.value), "seq": result.seq},
                         headers={"ETag": etag(result.value)})


async def delete_post(request: Request) -> Response:
    svc = services(request)
    blog_id, post_id = _blog_id(request), _post_id(request)
    _writer(request, blog_id)
    if_match = _if_match(request)
    started = time.perf_counter()
    result = await svc.newsroom.delete(blog_id, post_id, if_match)
    _timed(request, "post.deleted", started)
    return json_response({"seq": result.seq})


async def list_events(request: Request) -> Response:
    svc = services(request)
    blog_id = _blog_id(request)
    since = _query_int(request, "since", None, 0, 2**53)
    limit = _query_int(request, "limit", EVENTS_PAGE, 1, MAX_EVENTS_PAGE)
    epoch = request.query_params.get("epoch") or None
    blog = await svc.engine.get_blog(blog_id)
    history = await svc.engine.events_since(blog_id, since, epoch, limit=limit, max_bytes=EVENTS_PAGE_BYTES)
    if history is None:
        if epoch not in (None, blog.epoch):
            reason = "the epoch changed"
        elif since > blog.seq:
            reason = f"the blog is only at seq {blog.seq}"
        else:
            reason = "history no longer reaches back"
        raise ApiError(410, "events_gone", f"events after {since} are not kept ({reason}); read the blog afresh",
                       field="since")
    frames = history.frames
    top = frames[-1].seq if frames else since
    return Response(wire.event_list(frames, top, blog.epoch, history.more), media_type="application/json")


# operations


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "engine": services(request).engine.name, "process": os.getpid()})


async def readyz(request: Request) -> Response:
    svc = services(request)
    engine = svc.engine
    if svc.drainer.draining:
        raise ApiError(503, "draining", "this process is shutting down", headers={"Retry-After": "1"})
    missing = await engine.not_ready()
    if missing is not None:
        raise ApiError(503, "not_ready", missing, headers={"Retry-After": "2"})
    if not svc.canary.healthy:
        raise ApiError(503, "deaf", f"this process has not heard its own events for {svc.canary.age:.1f}s",
                       headers={"Retry-After": "2"})
    return json_response({"status": "ready", "engine": engine.name})


async def metrics(request: Request) -> Response:
    metrics = services(request).metrics
    return Response(metrics.render(), media_type=metrics.content_type)


BLOG = "/api/blogs/{blog}"
POST = "/api/blogs/{blog}/posts/{post}"
WEBHOOK = "/api/webhooks/{webhook}"
AUTH_ERRORS = (401, 403, 429)
BODY_ERRORS = (400, 408, 413, 415, 422)
IF_MATCH = Param("If-Match", "header", "the post version you edited (its ETag); 412 when stale",
                 {"type": "string", "pattern": '^(\\*|(W/)?"?[0-9]{1,15}"?)$'})
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/session", session, "Who this token is and which blogs it may write", 200, Session,
              None, (401, 429), auth=True, tag="auth"),
    Operation("GET", "/api/blogs", list_blogs, "List blogs in id order, one page at a time", 200, BlogList, None,
              (422,),
              params=(Param("limit", "query", f"page size (default {BLOG_PAGE})",
                            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                      Param("cursor", "query", "the `next` cursor of the previous page",
                            {"type": "string", "pattern": "^([a-z0-9][a-z0-9-]{0,63})?$"}))),
    Operation("POST", "/api/blogs", create_blog, "Create a blog", 201, Blog, BlogCreate,
              (*AUTH_ERRORS, *BODY_ERRORS, 409), auth=True),
    Operation("GET", BLOG, get_blog, "One blog with post_count, updated_at, seq and epoch", 200, Blog, None, (404,)),
    Operation("PATCH", BLOG, update_blog, "Change a blog (title, authors, status, ...)", 200, Blog, BlogUpdate,
              (*AUTH_ERRORS, *BODY_ERRORS, 404), auth=True),
    Operation("POST", BLOG + "/posts", create_post, "Publish a post", 201, PostResult, PostCreate,
              (*AUTH_ERRORS, *BODY_ERRORS, 404, 409), auth=True,
              params=(Param("Idempotency-Key", "header", "retries with the same key return the first result",
                            {"type": "string", "pattern": "^[ -~]{1,255}$"}),)),
    Operation("GET", BLOG + "/posts", list_posts, "Posts, pinned first, then newest (or oldest) first", 200,
              PostPage, None, (404, 422),
              params=(Param("limit", "query", "page size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                      Param("before", "query", "the `next` cursor of the previous page",
                            {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,200}$"}),
                      Param("order", "query", "newest (default) or oldest first",
                            {"type": "string", "enum": ["newest", "oldest"]}))),
    Operation("GET", POST, get_post, "One post (ETag: its version)", 200, Post, None, (404,)),
    Operation("PATCH", POST, update_post, "Edit a post", 200, PostResult, PostUpdate,
              (*AUTH_ERRORS, *BODY_ERRORS, 404, 412), auth=True, params=(IF_MATCH,)),
    Operation("DELETE", POST, delete_post, "Delete a post", 200, DeleteResult, None,
              (*AUTH_ERRORS, 400, 404, 412), auth=True, params=(IF_MATCH,)),
    Operation("GET", BLOG + "/events", list_events,
              "Events after a seq, for catch-up without a socket, a page at a time (read on from `next`)", 200,
              EventList, None, (404, 410, 422),
              params=(Param("since", "query", "the last seq you have (or the `next` of the previous page)",
                            {"type": "integer", "minimum": 0, "maximum": 2**53}, True),
                      Param("limit", "query", f"events per page (default {EVENTS_PAGE}); a page also stops at about "
                            f"{EVENTS_PAGE_BYTES // 1024} KiB of events, with at least one",
                            {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE}),
                      Param("epoch", "query", "the epoch that seq counts in; 410 when it changed",
                            {"type": "string"}))),
    Operation("POST", "/api/webhooks", create_webhook, "Register a webhook endpoint (its secret is shown only here)",
              201, WebhookCreated, WebhookCreate, (401, 403, *BODY_ERRORS, 409), auth=True, tag="webhooks"),
    Operation("GET", "/api/webhooks", list_webhooks, "List webhook endpoints", 200, WebhookList, None, (401, 403),
              auth=True, tag="webhooks"),
    Operation("GET", WEBHOOK, get_webhook, "One webhook endpoint, with why it was disabled", 200, WebhookEndpoint,
              None, (401, 403, 404), auth=True, tag="webhooks"),
    Operation("DELETE", WEBHOOK, delete_webhook, "Delete a webhook endpoint (deliveries stop)", 200, WebhookDeleted,
              None, (401, 403, 404), auth=True, tag="webhooks"),
    Operation("GET", WEBHOOK + "/deliveries", list_deliveries, "Recent delivery attempts, newest first", 200,
              DeliveryList, None, (401, 403, 404, 422), auth=True, tag="webhooks",
              params=(Param("limit", "query", "how many", {"type": "integer", "minimum": 1,
                                                            "maximum": MAX_DELIVERIES}),)),
    Operation("GET", "/healthz", healthz, "The process is up", 200, Health, tag="operations"),
    Operation("GET", "/readyz", readyz, "The engine is reachable", 200, Health, None, (503,), tag="operations"),
)


def api_routes() -> list[Route]:
    """Starlette routes for every operation, one Route per path with its methods."""
    by_path: dict[str, dict[str, Handler]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = op.handler
    routes = [Route(path, _dispatch(handlers), methods=list(handlers)) for path, handlers in by_path.items()]
    routes.append(Route("/metrics", metrics, methods=["GET"]))
    return routes


def _dispatch(handlers: dict[str, Handler]) -> Handler:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch
