"""What a busy or hostile writer can make livepush hold, and what a page view costs: the figures of issue 10 item 6.

    .venv/bin/python -m bench.quotas [--posts 100000] [--blogs 2000] [--redis]

Runs in this process, against whichever `server` package is first on the path, so the same script
measures the code before and after a change (PYTHONPATH=/path/to/other/checkout). It prints:

- the time of one page view of the in-process engine (a snapshot and a "load more" page) at N posts;
- what 1000 edits of a 65 KB post leave in one blog's in-process history (RSS growth, after each
  frame was encoded for WebSocket and SSE as a delivery does), and with --redis the bytes of the
  blog's event stream in a private redis-server (`MEMORY USAGE`);
- `GET /api/blogs` and `GET /` response sizes with N blogs (real uvicorn, real sockets);
- what the feed's snapshot cache holds after one snapshot of each of those blogs (RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from server.app import make_engine
from server.engine import Engine
from server.model import Blog, Post
from server.settings import Settings
from tests.conftest import ADMIN_TOKEN, LiveServer

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MIB = 1024 * 1024


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"admin_token": ADMIN_TOKEN, "demo": False, "write_rate": 0.0, "log_level": "warning"}
    for name, value in overrides.items():  # a setting the code under test lacks is left out
        if name in Settings.__dataclass_fields__:
            values[name] = value
    return Settings(**values)


def post(index: int, body: str = "<p>An update from the front line, with a few sentences of text.</p>") -> Post:
    at = T0 + timedelta(seconds=index)
    return Post(id=f"p{index:07d}", headline=f"Update {index}", body=body, published_at=at, updated_at=at,
                pinned=index % 5000 == 0)


def blog(blog_id: str) -> Blog:
    return Blog(id=blog_id, title="A live blog with a title of ordinary length", created_at=T0, updated_at=T0,
                description="Live updates. " * 40, authors=[f"Reporter {i}" for i in range(8)], source="Example")


async def started(engine: Engine) -> Engine:
    await engine.start(lambda frame: None, lambda blogs=None: None)
    return engine


async def best_of(call: Callable[[], Awaitable[Any]], runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def page_view(posts: int) -> None:
    engine = await started(make_engine(settings(max_posts_per_blog=0)))
    await engine.import_blog(blog("big"), [post(i) for i in range(posts)])
    middle = (await engine.list_posts("big", posts // 2, "newest", None)).posts[-1]
    cursor = (1, int(middle.published_at.timestamp() * 1000), middle.id)
    snap = await best_of(lambda: engine.snapshot("big", 20))
    more = await best_of(lambda: engine.list_posts("big", 20, "newest", cursor))
    oldest = await best_of(lambda: engine.list_posts("big", 20, "oldest", cursor))
    print(f"page view, memory engine, {posts} posts: snapshot {snap * 1000:.2f} ms, "
          f"load more (newest) {more * 1000:.2f} ms, (oldest) {oldest * 1000:.2f} ms  (median of 15)")
    await engine.close()


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """The growth of this process's RSS. Not tracemalloc: it charges each orjson output ~1 MiB (the
    buffer orjson reserved, not the bytes it kept), which RSS shows is not held."""
    gc.collect()
    base = rss()
    yield lambda: (gc.collect(), rss() - base)[1]


async def edits(engine: Engine, count: int) -> None:
    await engine.create_blog(blog("edited"))
    body = "<p>" + "x" * (65_000 - 7) + "</p>"
    await engine.create_post("edited", post(1, body), None)
    for i in range(count):
        await engine.update_post("edited", "p0000001", {"headline": f"Edit {i}"}, None, T0)
        await asyncio.sleep(0)  # let the delivery run, as it does between requests in a server


async def history(count: int) -> None:
    engine = await started(make_engine(settings()))
    with traced() as held:
        await edits(engine, count)
        top = (await engine.get_blog("edited")).seq
        oldest = top
        while oldest > 0 and await engine.events_since("edited", oldest - 1) is not None:
            oldest -= 1
        seq = oldest
        while True:  # a list of every event, or (since history reads are bounded) one chunk of them
            read: Any = await engine.events_since("edited", seq)
            frames = getattr(read, "frames", read) or []
            for frame in frames:
                frame.ws, frame.sse  # noqa: B018  what a delivery over each transport computes and keeps
            if not frames or not getattr(read, "more", False):
                break
            seq = frames[-1].seq
        kept = top - oldest
        print(f"history, memory engine, {count} edits of a 65 KB post: {kept} events kept, "
              f"{held() / MIB:.1f} MiB held (RSS)")
    await engine.close()


async def redis_history(count: int) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)
        try:
            client = aioredis.Redis(port=port)
            for _ in range(100):
                with contextlib.suppress(Exception):
                    if await client.ping():
                        break
                await asyncio.sleep(0.05)
            engine = await started(make_engine(settings(redis_url=f"redis://127.0.0.1:{port}/0")))
            await edits(engine, count)
            usage = await client.memory_usage("lp:{edited}:events", samples=0) or 0
            length = await client.xlen("lp:{edited}:events")
            print(f"history, redis engine, {count} edits of a 65 KB post: {length} events kept, "
                  f"stream {usage / MIB:.1f} MiB (MEMORY USAGE)")
            await engine.close()
            await client.aclose()
        finally:
            process.terminate()
            process.wait(10)


async def listing(blogs: int) -> None:
    server = LiveServer(settings(max_blogs=0))
    await server.start()
    try:
        engine = server.services.engine
        for i in range(blogs):
            await engine.create_blog(blog(f"blog-{i:05d}"))
        api = await server.http.get("/api/blogs")
        index = await server.http.get("/")
        print(f"{blogs} blogs: GET /api/blogs {len(api.content) / 1e6:.2f} MB "
              f"({len(api.json()['blogs'])} blogs), GET / {len(index.content) / 1e6:.2f} MB")
        feeds = server.services.feeds
        body = "<p>" + "An update of the length of the seed's posts. " * 28 + "</p>"
        for i in range(5):  # a few posts of 1.3 KB per blog, so a snapshot is about 9 KB
            for j in range(blogs):
                await engine.create_post(f"blog-{j:05d}", post(i * blogs + j, body), None)
        for i in range(blogs):
            blog_id = f"blog-{i:05d}"
            current = await engine.get_blog(blog_id)
            (await feeds.snapshot(blog_id, current.seq, current.epoch)).ws  # noqa: B018  as one WebSocket reader
        cache: Any = feeds._snapshots  # a dict before the cache had a bound
        frames = list(getattr(cache, "_frames", cache).values())
        held = sum(len(frame.data) + len(frame.ws) for frame in frames)
        print(f"snapshot cache after one reader on each of {blogs} blogs: {len(frames)} snapshots, "
              f"{held / MIB:.1f} MiB of JSON and WebSocket frames")
    finally:
        await server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--blogs", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--redis", action="store_true", help="also measure the Redis engine's history")
    args = parser.parse_args()
    print("server package:", inspect.getfile(Settings).rsplit("/server/", 1)[0])
    await page_view(args.posts)
    await history(args.edits)
    if args.redis:
        await redis_history(args.edits)
    await listing(args.blogs)


if __name__ == "__main__":
    asyncio.run(main())
