"""Shared fixtures: a real uvicorn serving livepush on a free loopback port, in the test's own loop.

`server` is parametrized over the engines (see ENGINES), so every test that uses it runs as a
contract test on each. Readers connect with the `websockets` client over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
import redis as redis_sync
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

if TYPE_CHECKING:
    from tests.redis_cluster import RedisCluster

from server.app import create_app
from server.engine import Engine
from server.protocols.direct import DirectWebSocketProtocol
from server.protocols.http import LimitedHttpProtocol
from server.services import Services
from server.settings import Settings

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Redis: a private redis-server per test session, on a free port, never the machine's 6379.


@dataclasses.dataclass
class RedisProcess:
    """A redis-server this test session started; restartable for fault tests."""

    port: int
    data_dir: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `bash scripts/test` or `apt-get install redis-server`")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--save", "", "--daemonize", "no", "--protected-mode", "yes", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
            self.process = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), 2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")


SENTINEL_PRIMARY = "livepush"
QUICK_SYNC = ("--repl-diskless-sync-delay", "0")  # a primary waits 5 s for more replicas by default


class SentinelGroup:
    """A primary, two replicas and three Sentinels (`redis-server --sentinel`), each in its own dir.

    Short `down-after-milliseconds` and `failover-timeout`: a failover takes a second or three.
    `flush` empties whichever server is the primary now; `primary()` asks a Sentinel which one that is.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redises: list[RedisProcess] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SENTINEL_PRIMARY}/0"

    def start(self) -> None:
        primary = self._redis("primary")
        for index in range(2):
            self._redis(f"replica{index}", "--replicaof", "127.0.0.1", str(primary.port))
        self._until(lambda: all(self._info(redis.port).get("master_link_status") == "up"
                                for redis in self.redises[1:]), "the replicas' sync")
        for port in self.sentinel_ports:
            self._sentinel(port, primary.port)
        self._until(self._sentinels_agree, "the Sentinels to find each other and the replicas")

    def _redis(self, name: str, *args: str) -> RedisProcess:
        path = self.root / name
        path.mkdir()
        process = RedisProcess(free_port(), path, ["--appendonly", "no", *QUICK_SYNC, *args])
        process.start()
        self.redises.append(process)
        return process

    def _sentinel(self, port: int, primary_port: int) -> None:
        path = self.root / f"sentinel{port}"
        path.mkdir()
        (path / "sentinel.conf").write_text(
            f"port {port}\nbind 127.0.0.1\ndir {path}\n"
            f"sentinel monitor {SENTINEL_PRIMARY} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SENTINEL_PRIMARY} 500\n"
            f"sentinel failover-timeout {SENTINEL_PRIMARY} 2000\n"
            f"sentinel parallel-syncs {SENTINEL_PRIMARY} 2\n")
        self.sentinels.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", str(path / "sentinel.conf"), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            with contextlib.suppress(OSError, redis_sync.RedisError):
                state: Any = self.admin(port).sentinel_master(SENTINEL_PRIMARY)
                if state["num-other-sentinels"] == 2 and state["num-slaves"] == 2:
                    continue
            return False
        return True

    @staticmethod
    def admin(port: int) -> redis_sync.Redis:
        return redis_sync.Redis(port=port, socket_timeout=2, driver_info=None)

    def _info(self, port: int) -> dict[str, Any]:
        with contextlib.suppress(OSError, redis_sync.RedisError):
            info: dict[str, Any] = self.admin(port).info("replication")
            return info
        return {}

    @staticmethod
    def _until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # other processes: nothing to await
            if time.monotonic() > deadline:
                raise RuntimeError(f"Sentinel group: timed out waiting for {what}")
            time.sleep(0.05)

    def primary(self) -> RedisProcess:
        """The server the Sentinels name the primary now."""
        for port in self.sentinel_ports:
            with contextlib.suppress(OSError, redis_sync.RedisError):
                address: Any = self.admin(port).sentinel_get_master_addr_by_name(SENTINEL_PRIMARY)
                return next(redis for redis in self.redises if redis.port == int(address[1]))
        raise RuntimeError("no Sentinel answered")

    def flush(self) -> None:
        self.primary().flush()

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait(10)
        for redis in self.redises:
            redis.stop(kill=True)


@contextlib.contextmanager
def sentinel_group() -> Iterator[SentinelGroup]:
    with tempfile.TemporaryDirectory(prefix="livepush-sentinel-") as root:
        group = SentinelGroup(Path(root))
        try:
            group.start()
            yield group
        finally:
            group.stop()


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


# A Redis Cluster (3 primaries + 3 replicas) for the tests that ask for `redis_cluster`; imported last: it uses RedisProcess.
from tests.redis_cluster import redis_cluster  # noqa: E402, F401
