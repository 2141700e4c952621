"""Publish-to-receive latency for one reader, on each engine, in one run (loopback only).

    .venv/bin/python -m bench.latency [--posts 300]

For each engine a `livepush serve` node runs in its own process (Redis ones against a private
redis-server on a free port, with the persistence named). One WebSocket reader is connected;
posts are published one at a time and the time from sending the POST to the reader receiving
the event is recorded. For Redis it also counts the commands Redis executed per publish
(INFO commandstats, scripts' inner commands included) and the round trips (EVALSHA calls).
The next rows add one replica: without WAIT, with LIVEPUSH_REDIS_WAIT_REPLICAS=1, and the same
behind a Sentinel (REDIS_URL=redis+sentinel://). The last two run on a private Redis Cluster of
3 primaries + 3 replicas (tests/redis_cluster.py, REDIS_URL=redis+cluster://), without WAIT and
with LIVEPUSH_REDIS_WAIT_REPLICAS=1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from websockets.asyncio.client import connect

from tests.redis_cluster import running_cluster
from tests.redis_servers import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-admin-token-0123456789"
BODY = "<p>" + "Ukraine has remained silent, as it is customary, and has not yet commented. " * 8 + "</p>"


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("the server exited during start")
            try:
                if (await client.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the server did not get ready")


@asynccontextmanager
async def redis_server(*args: str) -> AsyncIterator[str]:
    """A private redis-server (the tests' RedisProcess) started with *args*; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="livepush-bench-") as data:
        server = RedisProcess(free_port(), Path(data), list(args))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@asynccontextmanager
async def sentinel(primary_url: str) -> AsyncIterator[str]:
    """One `redis-server --sentinel` monitoring *primary_url* as `bench`; yields the redis+sentinel:// URL."""
    port, primary_port = free_port(), primary_url.rsplit(":", 1)[1].split("/")[0]
    with tempfile.TemporaryDirectory(prefix="livepush-bench-") as data:
        conf = Path(data) / "sentinel.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {data}\nsentinel monitor bench 127.0.0.1 {primary_port} 1\n")
        process = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"],
                                   stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            for _ in range(200):
                try:
                    state: Any = client.sentinel_master("bench")
                    if state["num-slaves"] >= 1:
                        break
                except (redis.ConnectionError, redis.ResponseError):
                    pass
                await asyncio.sleep(0.05)
            yield f"redis+sentinel://127.0.0.1:{port}/bench/0"
        finally:
            process.terminate()
            process.wait(10)


@asynccontextmanager
async def replicated(behind_sentinel: bool) -> AsyncIterator[str]:
    """A primary (no persistence) with one replica; yields the URL livepush is given."""
    async with redis_server("--appendonly", "no", "--repl-diskless-sync-delay", "0") as primary:
        port = primary.rsplit(":", 1)[1].split("/")[0]
        async with redis_server("--appendonly", "no", "--replicaof", "127.0.0.1", port):
            client = redis.Redis.from_url(primary)
            while client.info("replication")["connected_slaves"] < 1:  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.02)
            if behind_sentinel:
                async with sentinel(primary) as url:
                    yield url
            else:
                yield primary


@asynccontextmanager
async def node(redis_url: str | None, **extra: str) -> AsyncIterator[str]:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "LIVEPUSH_ADMIN_TOKEN": TOKEN, "LIVEPUSH_DEMO": "0",
           "LIVEPUSH_LOG_LEVEL": "warning", **({"REDIS_URL": redis_url} if redis_url else {}), **extra}
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port)], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(10)


async def measure(base: str, posts: int) -> list[float]:
    """Milliseconds from sending each POST to the reader holding its event."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await client.post("/api/blogs", json={"id": "bench", "title": "Latency"}, headers=auth)
        ws_url = base.replace("http://", "ws://") + "/ws/blogs/bench"
        async with connect(ws_url, compression=None, max_queue=None) as reader:
            await reader.recv()  # snapshot
            for i in range(posts + 20):
                started = time.perf_counter()
                response = await client.post("/api/blogs/bench/posts", json={"headline": f"Post {i}", "body": BODY},
                                             headers=auth)
                assert response.status_code == 201, response.text
                seq = response.json()["seq"]
                while orjson.loads(await reader.recv()).get("seq") != seq:
                    pass
                if i >= 20:  # the first ones warm up connections and caches
                    latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def redis_counts(url: str) -> dict[str, int]:
    stats = redis.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def summary(latencies: list[float]) -> str:
    q = statistics.quantiles(latencies, n=100)
    return f"p50 {q[49]:6.2f} ms   p90 {q[89]:6.2f} ms   p99 {q[98]:6.2f} ms   max {max(latencies):6.2f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=300)
    args = parser.parse_args()
    print(f"publish-to-receive, 1 reader, {args.posts} posts of ~{len(BODY)} B, one at a time (loopback)")
    async with node(None) as base:
        print(f"  memory                 {summary(await measure(base, args.posts))}")
    for label, redis_args in [("redis (no persistence)", ("--appendonly", "no")),
                              ("redis (AOF everysec)  ", ("--appendonly", "yes", "--appendfsync", "everysec")),
                              ("redis (AOF always)    ", ("--appendonly", "yes", "--appendfsync", "always"))]:
        async with redis_server(*redis_args) as url, node(url) as base:
            redis.Redis.from_url(url).config_resetstat()
            latencies = await measure(base, args.posts)
            counts = redis_counts(url)
            total = args.posts + 20
            inner = sum(v for k, v in counts.items() if k not in ("evalsha", "eval", "ping", "info", "config|resetstat",
                                                                   "hgetall", "psubscribe", "client|setinfo"))
            trips, commands = counts.get("evalsha", 0) / total, inner / total
            print(f"  {label} {summary(latencies)}   {trips:.1f} round trip, {commands:.1f} Redis commands per publish")
    for label, wait, behind_sentinel in [("redis + 1 replica, no WAIT", 0, False),
                                         ("redis + 1 replica, WAIT 1 ", 1, False),
                                         ("sentinel + 1 replica, WAIT 1", 1, True)]:
        async with replicated(behind_sentinel) as url, \
                node(url, LIVEPUSH_REDIS_WAIT_REPLICAS=str(wait)) as base:
            print(f"  {label:<28} {summary(await measure(base, args.posts))}")
    for label, wait in [("redis-cluster (3+3), no WAIT", 0), ("redis-cluster (3+3), WAIT 1", 1)]:
        with running_cluster() as cluster:
            async with node(cluster.url, LIVEPUSH_REDIS_WAIT_REPLICAS=str(wait)) as base:
                latencies = await measure(base, args.posts)
                # WAIT runs on the primary owning the blog's slot: the count shows the setting took effect.
                waits = sum(redis_counts(f"redis://127.0.0.1:{port}").get("wait", 0) for port in cluster.primaries())
                print(f"  {label:<28} {summary(latencies)}   {waits / (args.posts + 20):.1f} WAIT per publish")


if __name__ == "__main__":
    asyncio.run(main())
