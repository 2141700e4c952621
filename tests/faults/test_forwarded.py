"""`livepush serve` believes X-Forwarded-For only from the proxies it is told about, never by default.

uvicorn on its own trusts X-Forwarded-* from any loopback peer, so anything on the host (or a
proxy that passes client headers through) could pick the address that per-address caps count.
These run the real `serve` command, whose uvicorn settings are what is under test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.faults.conftest import Node


@contextlib.asynccontextmanager
async def sse(client: httpx.AsyncClient, url: str, forwarded_for: str) -> AsyncIterator[httpx.Response]:
    """An SSE stream held open, once its answer has begun (200 with a first message, or a refusal)."""
    async with client.stream("GET", url, headers={"X-Forwarded-For": forwarded_for}) as response:
        if response.status_code == 200:
            await anext(response.aiter_raw())
        yield response


async def streams_from_two_forwarded_addresses(node: Node) -> int:
    """Create a blog; hold one SSE stream "from" 203.0.113.1 and return the status of one "from" 203.0.113.2."""
    async with httpx.AsyncClient(base_url=node.base, timeout=5) as client:
        created = await client.post("/api/blogs", json={"id": "b1", "title": "Blog"},
                                    headers={"Authorization": "Bearer test-admin-token-0123456789"})
        assert created.status_code == 201
        async with sse(client, "/sse/blogs/b1", "203.0.113.1") as first:
            assert first.status_code == 200
            async with sse(client, "/sse/blogs/b1", "203.0.113.2") as second:
                return second.status_code


async def test_x_forwarded_for_from_loopback_is_ignored_by_default(tmp_path: Path) -> None:
    """With one stream per address, two "forwarded" clients on loopback are one address: the second is refused."""
    node = Node(None, tmp_path, env={"LIVEPUSH_MAX_STREAMS_PER_ADDRESS": "1"})
    await node.start()
    try:
        assert await streams_from_two_forwarded_addresses(node) == 503
        async with httpx.AsyncClient(base_url=node.base, timeout=5) as client:
            page = await client.get("/blogs/b1", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
            assert f'<link rel="canonical" href="http://localhost:{node.port}/blogs/b1">' in page.text
            moved = await client.get("/newsroom/", headers={"Host": "evil.example"})
            assert (moved.status_code, moved.headers["location"]) == (307, f"http://localhost:{node.port}/newsroom")
    finally:
        node.kill()


async def test_x_forwarded_for_is_believed_from_a_listed_proxy(tmp_path: Path) -> None:
    """LIVEPUSH_FORWARDED_ALLOW_IPS=127.0.0.1: the two forwarded addresses are counted apart."""
    node = Node(None, tmp_path, env={"LIVEPUSH_MAX_STREAMS_PER_ADDRESS": "1", "LIVEPUSH_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    await node.start()
    try:
        assert await streams_from_two_forwarded_addresses(node) == 200
    finally:
        node.kill()
