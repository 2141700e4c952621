"""The HTTP API and both stream transports on a Redis reached through Sentinels (`redis+sentinel://`).

The engine contract suite runs on the Sentinel group too (tests/engine); these check the whole
server on it: a publish reaches a WebSocket reader and an SSE reader, a resume with since+epoch
is exact, and /readyz and the metrics show the Sentinel engine's parts.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.parametrize("engine_kind", ["redis-sentinel"], indirect=True)


async def test_a_post_reaches_readers_and_a_resume_is_exact(server: LiveServer, blog: dict[str, Any]) -> None:
    async with server.reader("b1") as reader:
        snapshot = await reader.next_event()
        assert snapshot["type"] == "snapshot" and snapshot["seq"] == 0
        first = await server.publish("b1", headline="One")
        assert first.status_code == 201, first.text
        event = await reader.next_event()
        assert (event["type"], event["seq"], event["post"]["headline"]) == ("post.created", 1, "One")
    await server.publish("b1", headline="Two")
    async with server.reader("b1", since=1, epoch=snapshot["epoch"]) as resumed:
        missed = await resumed.next_event()
        assert (missed["type"], missed["seq"], missed["post"]["headline"]) == ("post.created", 2, "Two")
    async with httpx.AsyncClient(base_url=server.base, timeout=5) as client, \
            client.stream("GET", "/sse/blogs/b1", headers={"Last-Event-ID": f"{snapshot['epoch']}:1"}) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                assert '"headline":"Two"' in line
                break


async def test_readyz_and_metrics_on_sentinels(server: LiveServer) -> None:
    ready = await server.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["engine"] == "redis"
    metrics = (await server.http.get("/metrics")).text
    assert "livepush_redis_primary_switches_total 0.0" in metrics
    assert "livepush_redis_wait_timeouts_total 0.0" in metrics
