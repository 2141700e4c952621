"""Shared fixtures: a real uvicorn serving livepush on a free loopback port, in the test's own loop.

`server` is parametrized over the engines (see ENGINES), so every test that uses it runs as a
contract test on each. Readers connect with the `websockets` client over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from server.app import create_app
from server.engine import Engine
from server.protocols.direct import DirectWebSocketProtocol
from server.protocols.http import LimitedHttpProtocol
from server.services import Services
from server.settings import Settings
from tests.redis_cluster import RedisCluster, redis_cluster  # noqa: F401 (the fixture, for the tests that ask for it)
from tests.redis_servers import RedisProcess, SentinelGroup, free_port, sentinel_group

ADMIN_TOKEN = "test-admin-token-0123456789"
JWT_SECRET = "test-jwt-secret-0123456789-0123456789-abcdef"
ENGINES = ["memory", "redis", "redis-sentinel", "redis-cluster"]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll *predicate* (cheap, in-process state) until true; fail after *timeout*."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


# Redis: a private redis-server per test session (tests/redis_servers.py), never the machine's 6379.


@pytest.fixture(scope="session")
def sentinel_group_session() -> Iterator[SentinelGroup]:
    """One Sentinel group for the session's `redis-sentinel` tests, flushed by each (failover tests make their own)."""
    with sentinel_group() as group:
        yield group


def redis_for(engine_kind: str, request: pytest.FixtureRequest) -> RedisProcess | SentinelGroup | RedisCluster | None:
    """The Redis (flushed) that tests on *engine_kind* use: None for the memory engine."""
    fixture = {"redis": "redis_process", "redis-sentinel": "sentinel_group_session",
               "redis-cluster": "redis_cluster"}.get(engine_kind)
    if fixture is None:
        return None
    target: RedisProcess | SentinelGroup | RedisCluster = request.getfixturevalue(fixture)
    target.flush()
    return target


@pytest.fixture(scope="session")
def redis_process() -> Iterator[RedisProcess]:
    with tempfile.TemporaryDirectory(prefix="livepush-redis-") as data_dir:
        process = RedisProcess(free_port(), Path(data_dir), ["--appendonly", "no"])
        process.start()
        try:
            yield process
        finally:
            process.stop()


# The server.


class LiveServer:
    """livepush on uvicorn, serving real sockets on 127.0.0.1."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings, engine)
        # The protocol classes `livepush serve` uses (server/cli.py), so read deadlines apply here too.
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                                http=LimitedHttpProtocol, ws=DirectWebSocketProtocol, ws_per_message_deflate=False,
                                ws_max_size=64 * 1024, access_log=False)  # as `serve` runs (LIVEPUSH_ACCESS_LOG=0)
        self.server = uvicorn.Server(config)
        self.port = 0
        self._task: asyncio.Task[None] | None = None
        self.http = httpx.AsyncClient(timeout=10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def services(self) -> Services:
        """The running app's services (hub, admission, ...), for checks of in-process state."""
        found: Services = self.server.lifespan.state["services"]
        return found

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        await wait_until(lambda: self.server.started or self._task is None or self._task.done(), 10, "uvicorn start")
        if not self.server.started:
            assert self._task is not None
            await self._task  # raises the startup error
            raise RuntimeError("uvicorn did not start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.http = httpx.AsyncClient(base_url=self.base, timeout=10)

    async def stop(self) -> None:
        await self.http.aclose()
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 15)

    # HTTP helpers

    def auth(self, token: str = ADMIN_TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def create_blog(self, blog_id: str = "b1", **fields: Any) -> dict[str, Any]:
        response = await self.http.post("/api/blogs", json={"id": blog_id, "title": fields.pop("title", "Blog"),
                                                              **fields}, headers=self.auth())
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def publish(self, blog_id: str = "b1", headers: dict[str, str] | None = None,
                      **fields: Any) -> httpx.Response:
        fields.setdefault("headline", "Breaking")
        return await self.http.post(f"/api/blogs/{blog_id}/posts", json=fields,
                                    headers={**self.auth(), **(headers or {})})

    async def blog(self, blog_id: str = "b1") -> dict[str, Any]:
        response = await self.http.get(f"/api/blogs/{blog_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    # stream helpers

    @contextlib.asynccontextmanager
    async def reader(self, blog_id: str = "b1", *, since: int | None = None, epoch: str | None = None,
                     origin: str | None = None) -> AsyncIterator[WsReader]:
        query = []
        if since is not None:
            query.append(f"since={since}")
        if epoch is not None:
            query.append(f"epoch={epoch}")
        url = f"{self.ws_base}/ws/blogs/{blog_id}" + ("?" + "&".join(query) if query else "")
        headers = {"Origin": origin} if origin is not None else None
        async with connect(url, additional_headers=headers, compression=None, open_timeout=5,
                           max_size=8 * 1024 * 1024, max_queue=None) as connection:
            yield WsReader(connection)


class WsReader:
    """A test's view of one WebSocket reader: decoded messages with bounded waits."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        message: dict[str, Any] = orjson.loads(raw)
        return message

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message that is not a ping."""
        while True:
            message = await self.next(timeout)
            if message["type"] != "ping":
                return message

    async def events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return [await self.next_event(timeout) for _ in range(count)]

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Wait for the server to close; return (code, reason)."""
        with contextlib.suppress(Exception):
            while True:
                await asyncio.wait_for(self.connection.recv(), timeout)
        frame = self.connection.protocol.close_rcvd
        return (frame.code, frame.reason) if frame is not None else (None, "")


def make_settings(engine: str, redis: RedisProcess | SentinelGroup | RedisCluster | None, **overrides: Any) -> Settings:
    url = redis.url if engine != "memory" and redis else None
    values: dict[str, Any] = {"admin_token": ADMIN_TOKEN, "admin_token_generated": False, "jwt_secret": JWT_SECRET,
                              "demo": False, "redis_url": url,
                              "write_rate": 0.0}  # tests publish in bursts; test_rate_limits turns it on
    values.update(overrides)
    return Settings(**values)


ServerFactory = Callable[..., Awaitable[LiveServer]]


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def start_server(engine_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[ServerFactory]:
    """Start servers with settings overrides; all stop (and Redis is flushed) after the test."""
    redis = redis_for(engine_kind, request)
    started: list[LiveServer] = []

    async def start(**overrides: Any) -> LiveServer:
        live = LiveServer(make_settings(engine_kind, redis, **overrides))
        await live.start()
        started.append(live)
        return live

    yield start
    for live in reversed(started):
        await live.stop()


@pytest.fixture
async def server(start_server: ServerFactory) -> LiveServer:
    return await start_server()


@pytest.fixture
async def blog(server: LiveServer) -> dict[str, Any]:
    return await server.create_blog("b1", title="Test blog", authors=["A. Writer"], source="Test")


def pytest_report_header() -> list[str]:
    return [f"redis-server: {shutil.which('redis-server') or 'missing'}", f"CI: {os.environ.get('CI', '')}"]

