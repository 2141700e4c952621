"""The composition root: `create_app(settings)` builds the services and the routes.

Only this module chooses an engine. Everything else receives its collaborators.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from server.admission import Admission, LoopLag
from server.api.errors import ApiError, LastResort, from_engine, problem_response
from server.api.openapi import openapi_document
from server.api.routes import OPERATIONS, api_routes, json_response
from server.auth import Authenticator
from server.background import STOP_SECONDS, Background, stop_all, within
from server.cache import PageCache
from server.canary import Canary
from server.closes import Close
from server.demo import IMAGES, load_demo
from server.drain import Drainer
from server.engine import HISTORY_CHUNK_BYTES, Engine, EngineError, Limits, Resync
from server.engine.outbox import Outbox
from server.feed import Feeds
from server.headers import SecurityHeaders, security_headers
from server.hub import Hub
from server.logs import RequestIds
from server.metrics import Metrics
from server.newsroom import Newsroom
from server.pages.assets import Assets, AssetTable, content_version
from server.pages.fastpath import CachedPages
from server.pages.render import TEMPLATES_DIR, PageRenderer
from server.pages.routes import page_routes
from server.protocols.http import SETTINGS, UPGRADES
from server.ratelimit import RateLimiter
from server.relay import Relay
from server.services import Services, services
from server.settings import Settings
from server.streams.handshake import Handshakes
from server.streams.keepalive import Keepalive
from server.streams.multiplex import multiplex_stream
from server.streams.sse import sse_stream
from server.streams.websocket import websocket_stream
from server.webhooks.dispatcher import Dispatcher
from server.webhooks.guard import Guard
from server.webhooks.metrics import WebhookCollector
from server.webhooks.service import Webhooks
from server.wire import Frame

VERSION = "0.1.0"
CLIENT_DIR = Path(__file__).resolve().parent.parent / "client_demo"
log = logging.getLogger("livepush")
CLOSE_SECONDS = 5.0  # for the relay and the engine to close at shutdown


def make_engine(settings: Settings) -> Engine:
    """The engine the settings ask for: Redis when REDIS_URL is set, else the in-process one.

    History keeps at least LIVEPUSH_WEBHOOK_MAX_BACKLOG events per blog (within LIVEPUSH_HISTORY_BYTES):
    it is the webhooks' outbox.
    """
    limits = Limits(history_size=max(settings.history_size, settings.webhook_max_backlog),
                    history_bytes=settings.history_bytes, posts_per_blog=settings.max_posts_per_blog,
                    blogs=settings.max_blogs)
    if settings.redis_url and "+cluster://" in settings.redis_url:
        from server.engine.redis_cluster import ClusterEngine

        return ClusterEngine(settings.redis_url, limits, wait_replicas=settings.redis_wait_replicas,
                             wait_timeout=settings.redis_wait_timeout)
    if settings.redis_url:
        from server.engine.redis import RedisEngine

        return RedisEngine(settings.redis_url, limits, wait_replicas=settings.redis_wait_replicas,
                           wait_timeout=settings.redis_wait_timeout)
    from server.engine.memory import MemoryEngine

    return MemoryEngine(limits)


def make_outbox(settings: Settings) -> Outbox:
    """Webhook storage beside the engine: in Redis when REDIS_URL is set, else in this process."""
    if settings.redis_url and "+cluster://" in settings.redis_url:
        from server.engine.redis_cluster import ClusterOutbox

        return ClusterOutbox(settings.redis_url)
    if settings.redis_url:
        from server.engine.outbox_redis import RedisOutbox

        return RedisOutbox(settings.redis_url)
    from server.engine.outbox_memory import MemoryOutbox

    return MemoryOutbox()


async def engine_problem(settings: Settings) -> str | None:
    """What stops the chosen engine from starting, in one line, checked by `serve` before uvicorn starts:
    a Sentinel-named primary the Sentinels do not monitor, a Cluster URL leading to a Redis without
    cluster mode. (Unreachable is no problem: the server starts and answers 503 until its storage answers.)"""
    if not settings.redis_url:
        return None
    if "+cluster://" in settings.redis_url:
        from server.engine.redis_cluster import startup_problem as cluster_problem

        return await cluster_problem(settings.redis_url)
    from server.engine.redis import startup_problem

    return await startup_problem(settings.redis_url)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Starlette:
    """The ASGI app. Settings default to the environment (validated; SettingsError if wrong).

    *engine* overrides the one the settings choose (tests: one engine across a restart).
    """
    chosen = settings = settings or Settings.from_env()
    openapi = openapi_document(OPERATIONS, VERSION)
    asset_version, _ = versions()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        svc, background = build_services(chosen, engine or make_engine(chosen))
        await _start(svc, background)
        try:
            state: dict[str, Any] = {"services": svc, SETTINGS: settings}
            if settings.direct_write:
                state[UPGRADES] = Handshakes(svc).take
            yield state
        finally:
            await _stop(svc, background)

    async def openapi_json(request: Request) -> Response:
        return json_response(openapi)

    routes: list[BaseRoute] = [
        *api_routes(),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        WebSocketRoute("/ws", multiplex_stream),
        WebSocketRoute("/ws/blogs/{blog}", websocket_stream),
        Route("/sse/blogs/{blog}", sse_stream, methods=["GET"]),
        *page_routes(),
        Mount("/client/v/{version}", Assets(CLIENT_DIR, asset_version), name="client-versioned"),
        Mount("/client", Assets(CLIENT_DIR), name="client"),
        Mount("/static/demo", StaticFiles(directory=str(IMAGES)), name="demo-images"),
    ]
    routes.append(Route("/{path:path}/", slash_redirect(settings.base_url)))
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(CachedPages), Middleware(RequestIds), Middleware(SecurityHeaders),
                                _read_cors(settings), Middleware(LastResort, on_error=_record_500)],
                    exception_handlers={
        ApiError: _api_error, EngineError: _engine_error, HTTPException: _http_error, Exception: _server_error,
    })
    # Starlette's own redirect builds its Location from the request's Host: an open redirect. The
    # route above builds it from the public base URL instead.
    app.router.redirect_slashes = False
    return app


def _vary(settings: Settings) -> bytes:
    """Vary of a cached response once CORSMiddleware has seen it (it adds Origin unless any origin is allowed)."""
    return b"Accept-Encoding" if "*" in settings.allowed_origins else b"Accept-Encoding, Origin"


def cache_control(settings: Settings) -> str:
    """Cache-Control of cached pages and first pages of posts: short for browsers and CDNs, stale allowed
    while revalidating or when this server fails (the widget catches up from the page's data-seq)."""
    return (f"public, max-age={settings.page_max_age}, s-maxage={settings.page_s_maxage}, "
            f"stale-while-revalidate={settings.page_stale_while_revalidate}, "
            f"stale-if-error={settings.page_stale_if_error}")


def slash_redirect(base_url: str) -> Callable[[Request], Awaitable[Response]]:
    """`/newsroom/` -> 307 to `<public base URL>/newsroom` (query kept), for any path with a trailing slash."""

    async def redirect(request: Request) -> Response:
        path = request.scope.get("raw_path") or request.scope["path"].encode()
        target = path.decode("latin-1").split("?", 1)[0].rstrip("/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/" + target.lstrip("/")
        query = request.scope["query_string"].decode("latin-1")
        return RedirectResponse(base_url + target + ("?" + query if query else ""), status_code=307)

    return redirect


@functools.cache
def versions() -> tuple[str, str]:
    """(hash of client_demo/, build id). Cached responses are tagged with the build: a deploy that changes
    a template or an asset must not answer 304 to a copy rendered by the old one."""
    assets = content_version(CLIENT_DIR)
    return assets, f"{VERSION}.{assets}.{content_version(TEMPLATES_DIR)}"


def build_services(settings: Settings, engine: Engine) -> tuple[Services, tuple[Background, ...]]:
    """Everything the routes reach through `services(request)`, and the app's background tasks."""
    hub = Hub()
    relay = Relay(engine, hub)
    outbox = make_outbox(settings)
    guard = Guard(settings.webhook_allow_private)
    dispatcher = Dispatcher(engine, outbox, guard, settings)

    def deliver(frame: Frame) -> None:
        relay.deliver(frame)
        dispatcher.notify(frame)

    canary = Canary(engine.send_canary, deliver, timeout=settings.canary_timeout)
    loop_lag = LoopLag()
    admission = Admission(settings.max_streams, settings.max_streams_per_address, settings.max_loop_lag,
                          lambda: loop_lag.lag)
    feeds = Feeds(engine, hub, relay, settings.snapshot_size,
                  min(HISTORY_CHUNK_BYTES, settings.reader_buffer_bytes // 4),
                  cache_bytes=settings.snapshot_cache_bytes)
    asset_version, build = versions()
    page_cache = PageCache(relay, settings.page_cache_bytes, cache_control(settings), build, security_headers,
                           _vary(settings))
    metrics = Metrics(hub, relay, feeds, canary, admission, engine, loop_lag, page_cache)
    metrics.registry.register(WebhookCollector(dispatcher))
    svc = Services(settings=settings, engine=engine, hub=hub, relay=relay, feeds=feeds, newsroom=Newsroom(engine),
                   metrics=metrics,
                   pages=PageRenderer(asset_version=asset_version), drainer=Drainer(hub, settings.drain_seconds),
                   auth=Authenticator(settings.admin_token, settings.jwt_secret, settings.jwt_audience),
                   writes=RateLimiter(settings.write_rate, settings.write_burst), canary=canary,
                   admission=admission, keepalive=Keepalive(settings.ping_interval),
                   webhooks=Webhooks(engine, outbox, guard, dispatcher, settings.webhook_max_endpoints),
                   page_cache=page_cache, assets=AssetTable(CLIENT_DIR, asset_version))
    return svc, (canary, svc.keepalive, loop_lag, dispatcher)


async def _start(svc: Services, background: tuple[Background, ...]) -> None:
    await svc.engine.start(svc.canary.deliver, _resync(svc))
    for task in background:
        task.start()
    if svc.settings.demo:
        await _load_demo(svc.engine)
    svc.drainer.install()


async def _stop(svc: Services, background: tuple[Background, ...]) -> None:
    """The lifespan's exit: every wait has a deadline, so a task that ignores its cancellation cannot hold it."""
    svc.drainer.begin_stop()
    svc.page_cache.close()
    stopped = await stop_all(background, STOP_SECONDS)
    stopped &= await within(svc.webhooks.close(), CLOSE_SECONDS, "closing the webhook outbox")
    svc.hub.close_all(Close.RESTARTING, "server restarting")
    stopped &= await within(svc.relay.close(), CLOSE_SECONDS, "closing the relay")
    stopped &= await within(svc.engine.close(), CLOSE_SECONDS, "closing the engine")
    if not stopped:
        svc.drainer.left_behind()
    svc.drainer.uninstall()


def _resync(svc: Services) -> Resync:
    """What the engine calls when storage may have lost events: the relay re-reads (the blogs named, or
    all); the webhooks re-read; the demo may be reloaded."""
    reloads: set[asyncio.Task[None]] = set()

    def resync(blogs: Collection[str] | None = None) -> None:
        svc.relay.resync(blogs)
        svc.webhooks.resync()
        if svc.settings.demo:  # storage may have come back empty
            task = asyncio.ensure_future(_load_demo(svc.engine))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    return resync


def _read_cors(settings: Settings) -> Middleware:
    """CORS for reads only (an embedded widget pages posts from another site), for the origins that may
    open streams. Writes get no CORS: the newsroom console is served from this origin."""
    if settings.allowed_origins:
        origins, pattern = list(settings.allowed_origins), None
    else:
        origins, pattern = [], r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?"
    return Middleware(CORSMiddleware, allow_origins=origins, allow_origin_regex=pattern, allow_methods=["GET"],
                      expose_headers=["ETag"], max_age=600)


async def _load_demo(engine: Engine) -> None:
    try:
        if await load_demo(engine):
            log.info("demo blog loaded")
    except EngineError as exc:
        log.warning("demo blog not loaded: %s", exc)


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory server.app:app_from_env` (what `livepush serve` runs)."""
    app = create_app(Settings.from_env())
    keep_gc_off_the_hot_path()
    return app


def keep_gc_off_the_hot_path() -> None:
    """A server process holds many long-lived objects (readers, frames, modules) and makes few cycles.

    Freezing what start-up made moves it out of every future collection, and a larger first
    threshold makes young collections rare; the naive baseline spends ~22% of a core in the GC.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _record(request: Request, status: int) -> None:
    state = request.scope.get("state") or {}
    svc = state.get("services")
    if isinstance(svc, Services):
        svc.metrics.errors.labels(str(status)).inc()


def _record_500(scope: Scope) -> None:
    _record(Request(scope), 500)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    _record(request, exc.status)
    return problem_response(exc)


async def _engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    error = from_engine(exc)
    _record(request, error.status)
    return problem_response(error)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/") or exc.status_code != 404:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(ApiError(exc.status_code, code, exc.detail, headers=exc.headers))
    return HTMLResponse(services(request).pages.not_found("this page"), status_code=404)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Reached only when a middleware outside LastResort fails: without the request id, but still a problem.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(ApiError(500, "internal_error", "something went wrong on our side"))
