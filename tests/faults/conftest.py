"""Fault-test helpers: livepush nodes in their own processes, and readers that resume and keep score."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ADMIN_TOKEN, LiveServer, make_settings
from tests.redis_servers import RedisProcess, SentinelGroup, free_port

ROOT = Path(__file__).resolve().parents[2]


class Node:
    """`livepush serve` as its own OS process: a node that can be killed."""

    def __init__(self, redis_url: str | None, log_dir: Path, workers: int = 1, demo: bool = False,
                 env: dict[str, str] | None = None, module: str = "server") -> None:
        self.port = free_port()
        self.module = module  # what `python -m` runs: `livepush serve`, or a test's wrapper around it
        self.redis_url = redis_url
        self.workers = workers
        self.demo = demo
        self.env = env or {}
        self.log_path = log_dir / f"node-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "LIVEPUSH_ADMIN_TOKEN": ADMIN_TOKEN,
               "LIVEPUSH_DEMO": "1" if self.demo else "0", "LIVEPUSH_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT),
               **({"REDIS_URL": self.redis_url} if self.redis_url else {}), **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 (Popen returns at once; the node runs beside the test)
                [sys.executable, "-m", self.module, "serve", "--port", str(self.port), "--workers", str(self.workers)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"node exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"node on {self.port} did not get ready: {self.log_path.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(20)
        self.process = None


class Scorer:
    """One reader that resumes after every close (since+epoch) and counts gaps and duplicates.

    `posts` is the set of post ids this reader has been shown (snapshot or events); `seqs` every
    event seq received, in order, across connections.
    """

    def __init__(self, bases: list[str], blog_id: str) -> None:
        self.bases = bases
        self.blog_id = blog_id
        self.epoch: str | None = None
        self.last = 0
        self.seqs: list[int] = []
        self.posts: set[str] = set()
        self.gaps: list[tuple[int, int]] = []
        self.duplicates: list[int] = []
        self.snapshots = 0
        self.epochs: list[str] = []
        self.closes: list[int | None] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connections = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wake on every message or connection until *predicate* holds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_seq(self, seq: int, timeout: float = 15.0) -> None:
        await self.wait_until(lambda: self.last >= seq, timeout)

    async def wait_connected(self, timeout: float = 15.0) -> None:
        """Until the first message (snapshot or replay) has arrived."""
        await self.wait_until(lambda: self.snapshots + len(self.seqs) > 0, timeout)

    async def _run(self) -> None:
        attempt = 0
        while True:
            base = self.bases[attempt % len(self.bases)]
            attempt += 1
            query = f"?since={self.last}&epoch={self.epoch}" if self.epoch else ""
            try:
                async with connect(f"{base}/ws/blogs/{self.blog_id}{query}", open_timeout=3, max_queue=None,
                                   compression=None) as ws:
                    self.connections += 1
                    self._changed.set()
                    async for raw in ws:
                        self._take(orjson.loads(raw))
                    frame = ws.protocol.close_rcvd
                    self.closes.append(frame.code if frame else None)
                    self._changed.set()
            except (OSError, ConnectionClosed, TimeoutError) as exc:
                frame = getattr(getattr(exc, "rcvd", None), "code", None)
                self.closes.append(frame)
            await asyncio.sleep(0.05)  # reconnect pacing, not synchronization

    def _take(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            return
        if kind == "snapshot":
            self.snapshots += 1
            self.epoch, self.last = message["epoch"], message["seq"]
            self.epochs.append(message["epoch"])
            self.posts = {post["id"] for post in message["posts"]}
        else:
            seq = message["seq"]
            if seq <= self.last:
                self.duplicates.append(seq)
                return
            if seq != self.last + 1:
                self.gaps.append((self.last, seq))
            self.last = seq
            self.seqs.append(seq)
            if kind == "post.created":
                self.posts.add(message["post"]["id"])
            elif kind == "post.deleted":
                self.posts.discard(message["post_id"])
        self._changed.set()


@pytest.fixture
def log_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="livepush-nodes-") as path:
        yield Path(path)


@pytest.fixture
async def nodes(log_dir: Path) -> AsyncIterator[list[Node]]:
    """Nodes a test starts; all are killed afterwards."""
    started: list[Node] = []
    yield started
    for node in started:
        node.kill()


async def start_readers(bases: list[str], blog_id: str, count: int) -> list[Scorer]:
    """*count* resuming readers on *blog_id*, each past its first message."""
    readers = [Scorer(bases, blog_id) for _ in range(count)]
    for reader in readers:
        reader.start()
    await asyncio.gather(*(reader.wait_connected() for reader in readers))
    return readers


@contextlib.asynccontextmanager
async def in_process_node(redis: RedisProcess | SentinelGroup, **overrides: Any) -> AsyncIterator[LiveServer]:
    """A livepush node on *redis*, served by uvicorn in the test's own loop."""
    server = LiveServer(make_settings("redis", redis, **overrides))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.contextmanager
def private_redis(*args: str) -> Iterator[RedisProcess]:
    """A redis-server of the test's own, on a free port with its own data dir (restartable)."""
    with tempfile.TemporaryDirectory(prefix="livepush-redis-") as data_dir:
        process = RedisProcess(free_port(), Path(data_dir), list(args))
        process.start()
        try:
            yield process
        finally:
            process.stop(kill=True)
