"""Webhook delivery: throughput per core and publish-to-delivery latency, 10 endpoints (loopback only).

    .venv/bin/python -m bench.webhooks [--posts 200] [--burst 500]

For each engine a `livepush serve` node runs in its own process (Redis: a private redis-server
on a free port). A receiver in this process (uvicorn, loopback) serves 10 endpoints, all
registered for the blog, and answers 204. Two phases:

- latency: posts published one at a time, 20 a second; for each delivery, the time from sending
  the POST to the receiver holding the webhook (10 deliveries per post);
- throughput: a burst of posts published as fast as the API takes them; deliveries per second of
  wall time, and per second of the node's CPU time (utime + stime from /proc: "per core").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from bench.latency import ROOT, TOKEN, redis_server, wait_ready
from bench.procs import cpu_seconds, free_port, tree

ENDPOINTS = 10
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = "<p>" + "Ukraine has remained silent, as it is customary, and has not yet commented. " * 8 + "</p>"


class Receiver:
    """Answers every webhook with 204 and notes when each (endpoint, webhook-id) first arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[tuple[str, str], float] = {}
        self.changed = asyncio.Event()

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = dict(scope["headers"])
        self.arrived.setdefault((scope["path"], headers.get(b"webhook-id", b"").decode()), time.perf_counter())
        self.changed.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def wait_for(self, count: int, timeout: float = 120) -> None:
        async with asyncio.timeout(timeout):
            while len(self.arrived) < count:
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = uvicorn.Server(uvicorn.Config(receiver.app, host="127.0.0.1", port=receiver.port, log_level="critical",
                                           lifespan="off", interface="asgi3", backlog=4096))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn has no started event)
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def node(redis_url: str | None) -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "LIVEPUSH_ADMIN_TOKEN": TOKEN, "LIVEPUSH_DEMO": "0",
           "LIVEPUSH_LOG_LEVEL": "warning", "LIVEPUSH_WRITE_RATE": "0", "LIVEPUSH_WEBHOOK_ALLOW_PRIVATE": "1",
           "LIVEPUSH_WEBHOOK_POLL_INTERVAL": "1", **({"REDIS_URL": redis_url} if redis_url else {})}
    process = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port)], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, process)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(10)


async def measure(base: str, pid: int, receiver: Receiver, posts: int, burst: int) -> tuple[list[float], float, float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        assert (await client.post("/api/blogs", json={"id": "bench", "title": "Webhooks"}, headers=AUTH)).is_success
        epoch = (await client.get("/api/blogs/bench")).json()["epoch"]
        for index in range(ENDPOINTS):
            created = await client.post("/api/webhooks", headers=AUTH, json={
                "url": f"http://127.0.0.1:{receiver.port}/hook/{index}", "blogs": ["bench"], "events": ["*"]})
            assert created.status_code == 201, created.text
        sent: dict[int, float] = {}
        for i in range(posts + 20):
            started = time.perf_counter()
            response = await client.post("/api/blogs/bench/posts", json={"headline": f"Post {i}", "body": BODY},
                                         headers=AUTH)
            assert response.status_code == 201, response.text
            if i >= 20:  # the first ones open connections
                sent[response.json()["seq"]] = started
            await asyncio.sleep(0.05)
        await receiver.wait_for(ENDPOINTS * (posts + 20))
        latencies = [(arrived - sent[int(msg_id.rsplit("_", 1)[1])]) * 1000
                     for (_, msg_id), arrived in receiver.arrived.items() if int(msg_id.rsplit("_", 1)[1]) in sent]
        assert len(latencies) == ENDPOINTS * posts and all(msg_id.startswith(f"msg_bench_{epoch}_")
                                                          for _, msg_id in receiver.arrived)

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:  # fresh: the node closed idle keep-alives
        before, started = cpu_seconds(tree(pid)), time.perf_counter()
        for start in range(0, burst, 50):
            responses = await asyncio.gather(*(client.post("/api/blogs/bench/posts", headers=AUTH, json={
                "headline": f"Burst {i}", "body": BODY}) for i in range(start, min(start + 50, burst))))
            assert all(response.status_code == 201 for response in responses)
        await receiver.wait_for(ENDPOINTS * (posts + 20 + burst))
        wall, cpu = time.perf_counter() - started, cpu_seconds(tree(pid)) - before
    return latencies, ENDPOINTS * burst / wall, ENDPOINTS * burst / cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=200, help="posts for the latency phase (20 a second)")
    parser.add_argument("--burst", type=int, default=500, help="posts for the throughput phase")
    args = parser.parse_args()
    print(f"webhooks: {ENDPOINTS} endpoints on one blog, posts of ~{len(BODY)} B, receiver on loopback")
    for label, redis_args in [("memory", None), ("redis (no persistence)", ("--appendonly", "no"))]:
        async with contextlib_redis(redis_args) as url, node(url) as (base, pid), receiving() as receiver:
            latencies, per_second, per_cpu = await measure(base, pid, receiver, args.posts, args.burst)
        q = statistics.quantiles(latencies, n=100)
        print(f"  {label:24} publish->delivery p50 {q[49]:6.2f} ms  p99 {q[98]:6.2f} ms  "
              f"({len(latencies)} deliveries)   burst: {per_second:7.0f} deliveries/s wall, "
              f"{per_cpu:7.0f} per CPU-second of the node")


@asynccontextmanager
async def contextlib_redis(redis_args: tuple[str, ...] | None) -> AsyncIterator[str | None]:
    if redis_args is None:
        yield None
        return
    async with redis_server(*redis_args) as url:
        yield url


if __name__ == "__main__":
    asyncio.run(main())
