"""The per-operation figures of docs/SCALING.md's capacity model, measured on loopback.

    .venv/bin/python -m bench.capacity [--posts 300] [--readers 100] [--nodes 1,2,4] [--out FILE]

Everything runs against a private redis-server on a free loopback port (no persistence), never
the machine's 6379, and `python -m server serve` processes of this checkout; each process this
starts is stopped by its own id at exit. Two parts, each well under a minute:

- **publish**: N livepush processes (1, 2, 4) subscribed to one Redis, posts shaped like the demo
  blog's Shoigu-Pyongyang post published one at a time through the first. Per publish: the
  round trips (EVALSHA), the commands Redis ran (INFO commandstats, scripts' inner commands
  included), bytes into and out of Redis (INFO stats, pub/sub fan-out included) and Redis CPU
  (INFO cpu). An idle window of the same length before it (canaries only) is subtracted.
- **attach**: a blog of 20 such posts; readers connect one after another without `since` (a
  snapshot: from the process's cache, then from a second process with
  LIVEPUSH_SNAPSHOT_CACHE_BYTES=0, a read each), then resuming at the top with `since`+`epoch`,
  one after another and `--storm` at once. Per attach: Redis commands, bytes and CPU. Also the
  WebSocket payload and frame size of the snapshot and of one `post.created` event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from bench.procs import TOKEN, Processes, Redis, Running, Variant, start_server

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "server" / "demo" / "russia-ukraine-2023-07-26.json"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIVEPUSH_REDIS = Variant("livepush-redis", "livepush, Redis engine", "livepush", redis=True)
# Commands that are not part of a publish or an attach: our own readings and the processes' upkeep.
PATTERN = "lp:{*}:live"
UPKEEP = {"evalsha", "eval", "info", "config|resetstat", "ping", "psubscribe", "client|setinfo", "script|load",
          "config|get"}


def demo_post() -> dict[str, Any]:
    """The headline, byline and body of the seed's Shoigu-Pyongyang post (a typical live-blog post)."""
    posts: list[dict[str, Any]] = json.loads(DEMO.read_text())["posts"]
    post = next(p for p in posts if "Pyongyang" in p["headline"])
    return {"headline": post["headline"], "byline": post["byline"], "body": post["body"]}


@dataclass(frozen=True, slots=True)
class Reading:
    """Redis's counters at one moment."""

    at: float
    commands: dict[str, int]
    net_in: int
    net_out: int
    cpu: float

    def minus(self, before: Reading) -> Reading:
        names = set(self.commands) | set(before.commands)
        return Reading(self.at - before.at, {n: self.commands.get(n, 0) - before.commands.get(n, 0) for n in names},
                       self.net_in - before.net_in, self.net_out - before.net_out, self.cpu - before.cpu)

    def scaled(self, factor: float) -> Reading:
        return Reading(self.at * factor, {n: round(c * factor) for n, c in self.commands.items()},
                       round(self.net_in * factor), round(self.net_out * factor), self.cpu * factor)

    @property
    def inner(self) -> int:
        return sum(c for n, c in self.commands.items() if n not in UPKEEP)


def read(client: redis.Redis) -> Reading:
    info = client.info("all")
    commands = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in info.items()
                if name.startswith("cmdstat_")}
    return Reading(time.monotonic(), commands, int(info["total_net_input_bytes"]), int(info["total_net_output_bytes"]),
                   float(info["used_cpu_sys"]) + float(info["used_cpu_user"]))


def frame_bytes(payload: int) -> int:
    """A server's (unmasked) WebSocket text frame: 2-byte header, +2 from 126 bytes, +8 from 64 KiB."""
    return payload + (2 if payload < 126 else 4 if payload < 65536 else 10)


async def publish(client: httpx.AsyncClient, blog: str, post: dict[str, Any], count: int) -> None:
    for _ in range(count):
        response = await client.post(f"/api/blogs/{blog}/posts", json=post, headers=AUTH)
        response.raise_for_status()


async def drain(port: int, ready: asyncio.Event, counted: list[int]) -> None:
    """One more pattern subscriber, as a livepush process holds: it reads and counts every message."""
    client = aioredis.Redis(port=port)
    pubsub = client.pubsub()
    try:
        await pubsub.psubscribe(PATTERN)
        ready.set()
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                counted[0] += 1
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def publish_part(processes: Processes, logs: Path, nodes: int, posts: int, extra: int = 0) -> dict[str, Any]:
    store = Redis(processes, None, logs)
    servers: list[Running] = []
    counted = [0]
    drains: list[asyncio.Task[None]] = []
    try:
        servers = [start_server(processes, LIVEPUSH_REDIS, None, store, logs) for _ in range(nodes)]
        for _ in range(extra):
            ready = asyncio.Event()
            drains.append(asyncio.create_task(drain(store.port, ready, counted)))
            await ready.wait()
        watcher = redis.Redis(port=store.port)
        post = demo_post()
        async with httpx.AsyncClient(base_url=servers[0].base, timeout=10, trust_env=False) as client:
            (await client.post("/api/blogs", json={"id": "cap", "title": "Capacity"}, headers=AUTH)).raise_for_status()
            await publish(client, "cap", post, 20)  # warm up: scripts loaded, pools filled
            first = read(watcher)
            reading = read(watcher).minus(first)  # what one INFO reading itself adds to the counters
            idle_start = read(watcher)
            await asyncio.sleep(3.0)
            idle = read(watcher).minus(idle_start).minus(reading)
            start = read(watcher)
            await publish(client, "cap", post, posts)
            busy = read(watcher).minus(start).minus(reading)
        net = busy.minus(idle.scaled(busy.at / idle.at))
        return {"nodes": nodes, "extra_subscribers": extra, "extra_messages_read": counted[0], "posts": posts,
                "load_average": [round(x, 2) for x in os.getloadavg()], "seconds": round(busy.at, 2),
                "round_trips_per_publish": round(busy.commands.get("evalsha", 0) / posts, 2),
                "commands_per_publish": round(net.inner / posts, 1),
                "commands": {n: c for n, c in sorted(busy.commands.items()) if c},
                "subscribed_processes": sum(1 for c in watcher.client_list() if int(c.get("psub", 0)) > 0),
                "bytes_in_per_publish": round(net.net_in / posts),
                "bytes_out_per_publish": round(net.net_out / posts),
                "redis_cpu_us_per_publish": round(net.cpu / posts * 1e6, 1),
                "idle_per_second": {"bytes_out": round(idle.net_out / idle.at),
                                    "redis_cpu_ms": round(idle.cpu / idle.at * 1e3, 2),
                                    "commands": round(sum(idle.commands.values()) / idle.at, 1)}}
    finally:
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        for server in servers:
            processes.stop(server.process)
        store.close()


async def open_reader(url: str, first: bool) -> bytes:
    """Connect one reader; return its first message (*first*) or nothing once the connection is up."""
    async with connect(url, compression=None, max_queue=None) as reader:
        if not first:
            await reader.ping()
            return b""
        message = await reader.recv()
        return message.encode() if isinstance(message, str) else message


async def attach_round(watcher: redis.Redis, url: str, readers: int, concurrent: bool) -> dict[str, Any]:
    """Redis's work for *readers* connecting to *url*, one after another or all at once."""
    start = read(watcher)
    if concurrent:
        await asyncio.gather(*(open_reader(url, False) for _ in range(readers)))
    else:
        for _ in range(readers):
            await open_reader(url, False)
    used = read(watcher).minus(start)
    return {"readers": readers, "concurrent": concurrent, "commands_per_attach": round(used.inner / readers, 2),
            "round_trips_per_attach": round(used.commands.get("evalsha", 0) / readers, 2),
            "redis_bytes_out_per_attach": round(used.net_out / readers),
            "redis_cpu_us_per_attach": round(used.cpu / readers * 1e6, 1),
            "commands": {n: c for n, c in sorted(used.commands.items()) if c}}


async def attach_part(processes: Processes, logs: Path, readers: int, storm: int) -> dict[str, Any]:
    store = Redis(processes, None, logs)
    servers: list[Running] = []
    try:
        server = start_server(processes, LIVEPUSH_REDIS, None, store, logs)
        servers.append(server)
        uncached = start_server(processes, LIVEPUSH_REDIS, None, store, logs, {"LIVEPUSH_SNAPSHOT_CACHE_BYTES": "0"})
        servers.append(uncached)
        watcher = redis.Redis(port=store.port)
        post = demo_post()
        ws = server.base.replace("http://", "ws://") + "/ws/blogs/cap"
        async with httpx.AsyncClient(base_url=server.base, timeout=10, trust_env=False) as client:
            (await client.post("/api/blogs", json={"id": "cap", "title": "Capacity"}, headers=AUTH)).raise_for_status()
            await publish(client, "cap", post, 20)
            first = await open_reader(ws, True)
            snapshot = orjson.loads(first)
            top = f"{ws}?since={snapshot['seq']}&epoch={snapshot['epoch']}"
            result: dict[str, Any] = {"posts_in_blog": 20, "snapshot_payload_bytes": len(first),
                                      "snapshot_frame_bytes": frame_bytes(len(first))}
            result["fresh"] = await attach_round(watcher, ws, readers, False)
            result["fresh_uncached"] = await attach_round(
                watcher, uncached.base.replace("http://", "ws://") + "/ws/blogs/cap", readers, False)
            result["resume"] = await attach_round(watcher, top, readers, False)
            result["resume_storm"] = await attach_round(watcher, top, storm, True)
            async with connect(ws, compression=None, max_queue=None) as reader:
                await reader.recv()
                await publish(client, "cap", post, 1)
                event = await reader.recv()
            payload = len(event.encode() if isinstance(event, str) else event)
            result["event_payload_bytes"] = payload
            result["event_frame_bytes"] = frame_bytes(payload)
            return result
    finally:
        for running in servers:
            processes.stop(running.process)
        store.close()


def report(publishes: list[dict[str, Any]], attach: dict[str, Any]) -> str:
    lines = ["publish (one post of the demo's shape at a time, through process 1; per publish, idle subtracted):",
             "  livepush + plain subscribers | round trips | commands | bytes in | bytes out | Redis CPU"]
    for p in publishes:
        lines.append(f"  {p['nodes']:>8} + {p['extra_subscribers']:<17} | {p['round_trips_per_publish']:>11} | "
                     f"{p['commands_per_publish']:>8} | {p['bytes_in_per_publish']:>8} | "
                     f"{p['bytes_out_per_publish']:>9} | {p['redis_cpu_us_per_publish']:>6} µs")
    for p in publishes:
        idle = p["idle_per_second"]
        lines.append(f"  idle, {p['nodes']} + {p['extra_subscribers']}: {idle['commands']} commands/s, "
                     f"{idle['bytes_out']} B/s out, {idle['redis_cpu_ms']} ms/s Redis CPU")
    lines.append(f"attach (blog of {attach['posts_in_blog']} posts; uncached: LIVEPUSH_SNAPSHOT_CACHE_BYTES=0):")
    for label in ("fresh", "fresh_uncached", "resume", "resume_storm"):
        a = attach[label]
        how = f"{a['readers']} at once" if a["concurrent"] else "one after another"
        lines.append(f"  {label:<14} ({how}): {a['commands_per_attach']} Redis commands, {a['round_trips_per_attach']} "
                     f"scripts, {a['redis_bytes_out_per_attach']} B out of Redis, "
                     f"{a['redis_cpu_us_per_attach']} µs Redis CPU per attach")
    lines.append(f"wire: snapshot {attach['snapshot_payload_bytes']} B payload "
                 f"({attach['snapshot_frame_bytes']} B frame), post.created {attach['event_payload_bytes']} B "
                 f"payload ({attach['event_frame_bytes']} B frame)")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--storm", type=int, default=300, help="resuming readers connecting at once")
    parser.add_argument("--nodes", default="1,2,4", help="numbers of subscribed livepush processes")
    parser.add_argument("--subscribers", default="16,64",
                        help="one livepush process plus this many plain pattern subscribers (Redis's cost for each)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    processes = Processes()
    logs = Path(tempfile.mkdtemp(prefix="livepush-capacity-"))
    try:
        publishes = [await publish_part(processes, logs, int(n), args.posts) for n in args.nodes.split(",")]
        extras = [int(k) for k in args.subscribers.split(",") if k]
        publishes += [await publish_part(processes, logs, 1, args.posts, k) for k in extras]
        attach = await attach_part(processes, logs, args.readers, args.storm)
    finally:
        processes.stop_all()
    print(report(publishes, attach))
    if args.out is not None:
        args.out.write_text(json.dumps({"publish": publishes, "attach": attach}, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
