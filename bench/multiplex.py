"""Several blogs on one connection (`GET /ws`) against one socket per blog (`/ws/blogs/{blog}`), in one run.

    .venv/bin/python -m bench.multiplex [--readers 10000] [--posts 20] [--direct 1]

Each phase starts a fresh livepush (`python -m server serve`, memory engine, pinned to core 0)
with five blogs, then a client process (pinned to core 1) opens *readers* WebSockets, reading
and discarding what arrives: in the `single` phase each reader watches one of the five blogs
(`/ws/blogs/b<i % 5>`); in the `multiplex` phase each connection subscribes to all five over
`/ws`. Once every reader is attached (the server's `livepush_readers`), the server's RSS is read,
then *posts* posts are published to each blog (20/s per blog) and the server's CPU
(utime + stime from /proc) is divided by the deliveries it counted (`livepush_deliveries`).
Printed per phase: server CPU per delivery, RSS per connection and per subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.procs import (
    LIVEPUSH_MEMORY,
    LIVEPUSH_MEMORY_ASGI,
    ROOT,
    Processes,
    cpu_seconds,
    pinned,
    raise_nofile,
    rss_kib,
    start_server,
)
from bench.scenarios import seed_blogs

TOKEN = "bench-admin-token-0123456789"
BLOGS = [f"b{i}" for i in range(5)]
PYTHON = Path(sys.executable)


def start(processes: Processes, logs: Path, readers: int, direct: bool) -> tuple[Any, int, str]:
    server = start_server(processes, LIVEPUSH_MEMORY if direct else LIVEPUSH_MEMORY_ASGI, 0, None, logs,
                          settings={"LIVEPUSH_WRITE_RATE": "0"})
    seed_blogs(server, BLOGS)
    return server.process, server.process.pid, server.base


def metric(client: httpx.Client, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def phase(processes: Processes, logs: Path, mode: str, readers: int, posts: int, direct: bool) -> dict[str, Any]:
    server, pid, base = start(processes, logs, readers, direct)
    expected = readers * (len(BLOGS) if mode == "multiplex" else 1)
    port = base.rsplit(":", 1)[1]
    try:
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
            time.sleep(0.5)
            rss_before = rss_kib([pid])
            tool = processes.start(pinned(1, [str(PYTHON), "-m", "bench.multiplex", "--client", port,
                                              "--readers", str(readers), "--mode", mode]),
                                   env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                                   log=logs / f"multiplex-client-{mode}.log")
            deadline = time.monotonic() + 300
            while metric(http, "livepush_readers") < expected:
                if time.monotonic() > deadline or tool.poll() is not None:
                    raise RuntimeError(f"{mode}: only {metric(http, 'livepush_readers'):.0f} of {expected} attached")
                time.sleep(0.5)
            time.sleep(2)  # settle
            rss = rss_kib([pid])
            delivered, cpu = metric(http, "livepush_deliveries_total"), cpu_seconds([pid])
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for n in range(posts):
                began = time.monotonic()
                for blog in BLOGS:
                    http.post(f"/api/blogs/{blog}/posts", json={"headline": f"Post {n}"},
                              headers=headers).raise_for_status()
                time.sleep(max(0.0, 0.05 - (time.monotonic() - began)))
            want = delivered + posts * expected
            deadline = time.monotonic() + 120
            while metric(http, "livepush_deliveries_total") < want and time.monotonic() < deadline:
                time.sleep(0.2)
            cpu = cpu_seconds([pid]) - cpu
            delivered = metric(http, "livepush_deliveries_total") - delivered
            processes.stop(tool)
    finally:
        processes.stop(server)
    return {"mode": mode, "connections": readers, "subscriptions": expected, "deliveries": int(delivered),
            "cpu_per_delivery_us": round(1e6 * cpu / delivered, 2) if delivered else None,
            "rss_per_connection_kib": round((rss - rss_before) / readers, 1),
            "rss_per_subscription_kib": round((rss - rss_before) / expected, 1)}


# The client process: many raw WebSockets, reading and discarding.

HANDSHAKE = ("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def masked_text(payload: bytes) -> bytes:
    """A client text frame (payload < 126 bytes) with an all-zero mask: the payload goes as it is."""
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def client(port: int, readers: int, mode: str) -> None:
    gate = asyncio.Semaphore(256)
    received = [0]

    async def one(i: int) -> None:
        async with gate:
            stream, writer = await asyncio.open_connection("127.0.0.1", port)
            path = "/ws" if mode == "multiplex" else f"/ws/blogs/{BLOGS[i % len(BLOGS)]}"
            writer.write(HANDSHAKE.format(path=path, port=port).encode())
            head = await stream.readuntil(b"\r\n\r\n")
            assert b" 101 " in head.split(b"\r\n", 1)[0], head
            if mode == "multiplex":
                writer.write(b"".join(masked_text(orjson.dumps({"type": "subscribe", "blog": b})) for b in BLOGS))
        while data := await stream.read(65536):
            received[0] += len(data)

    tasks = [asyncio.ensure_future(one(i)) for i in range(readers)]
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=10000)
    parser.add_argument("--posts", type=int, default=20, help="posts per blog")
    parser.add_argument("--direct", type=int, default=1, help="LIVEPUSH_DIRECT_WRITE (1: fast path; 0: ASGI)")
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_nofile()
    if args.client:
        asyncio.run(client(args.client, args.readers, args.mode))
        return
    logs = ROOT / "bench" / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = Processes()
    try:
        for mode in ("single", "multiplex"):
            print(phase(processes, logs, mode, args.readers, args.posts, bool(args.direct)), flush=True)
    finally:
        processes.stop_all()


if __name__ == "__main__":
    main()
