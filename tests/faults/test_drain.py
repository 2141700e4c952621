"""Deploys without storms: SIGTERM drains readers with 1012 over a window instead of all at once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ADMIN_TOKEN
from tests.faults.conftest import Node

READERS = 30


async def test_sigterm_closes_readers_with_1012_paced_over_the_drain_window(nodes: list[Node],
                                                                            log_dir: Path) -> None:
    node = Node(None, log_dir, env={"LIVEPUSH_DRAIN_SECONDS": "1.5"})
    nodes.append(node)
    await node.start()
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.post(f"{node.base}/api/blogs", json={"id": "b1", "title": "t"},
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).status_code == 201
    closes: list[tuple[float, int | None]] = []

    async def read_until_closed() -> None:
        async with connect(f"{node.ws_base}/ws/blogs/b1", max_queue=None) as ws:
            await ws.recv()  # snapshot
            ready.release()
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed:
                frame = ws.protocol.close_rcvd
                closes.append((time.monotonic(), frame.code if frame else None))

    ready = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(read_until_closed()) for _ in range(READERS)]
    for _ in range(READERS):
        await asyncio.wait_for(ready.acquire(), 10)
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient(timeout=5) as client:
        # While draining: not ready (load balancers move away), and new readers are sent elsewhere.
        async with asyncio.timeout(5):
            while (await client.get(f"{node.base}/readyz")).status_code != 503:  # noqa: ASYNC110 (another process)
                await asyncio.sleep(0.02)
        async with connect(f"{node.ws_base}/ws/blogs/b1") as late:
            try:
                await asyncio.wait_for(late.recv(), 5)
            except ConnectionClosed:
                pass
            assert late.protocol.close_rcvd is not None and late.protocol.close_rcvd.code == 1012
    await asyncio.wait_for(asyncio.gather(*tasks), 15)
    assert node.process.wait(15) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a graceful stop
    assert len(closes) == READERS and {code for _, code in closes} == {1012}
    # Paced, not all at once: the closes fall into several 100 ms batches of the window.
    start = min(at for at, _ in closes)
    assert len({int((at - start) / 0.1) for at, _ in closes}) >= 5
