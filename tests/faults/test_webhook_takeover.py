"""Webhooks on Redis across nodes: one node delivers an endpoint (the lease); when it is SIGKILLed in the
middle of a queue, another takes over from the stored cursors and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.faults.conftest import Node, private_redis
from tests.webhooks.conftest import AUTH, Receiver, eventually, register

pytestmark = pytest.mark.redis
NODE_ENV = {"LIVEPUSH_WEBHOOK_ALLOW_PRIVATE": "1", "LIVEPUSH_WEBHOOK_LEASE": "1", "LIVEPUSH_WEBHOOK_POLL_INTERVAL": "0.1",
            "LIVEPUSH_WEBHOOK_BACKOFF_BASE": "0.02", "LIVEPUSH_WEBHOOK_BACKOFF_MAX": "0.2",
            "LIVEPUSH_WEBHOOK_TIMEOUT": "2"}


async def delivering(client: httpx.AsyncClient, node: Node) -> bool:
    text = (await client.get(f"{node.base}/metrics")).text
    found = re.search(r"^livepush_webhook_endpoints_delivering (\S+)$", text, re.MULTILINE)
    return found is not None and float(found.group(1)) >= 1


async def test_a_killed_delivering_node_is_taken_over_and_nothing_is_lost(nodes: list[Node], log_dir: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        await _takeover(nodes, log_dir, receiver)
    finally:
        await receiver.stop()


async def _takeover(nodes: list[Node], log_dir: Path, receiver: Receiver) -> None:
    with private_redis("--appendonly", "no") as redis:
        a, b = Node(redis.url, log_dir, env=NODE_ENV), Node(redis.url, log_dir, env=NODE_ENV)
        nodes += [a, b]
        await asyncio.gather(a.start(), b.start())
        blogs = ["b1", "b2", "b3"]
        async with httpx.AsyncClient(base_url=a.base, timeout=10) as client:
            epochs = {}
            for blog_id in blogs:
                created = await client.post("/api/blogs", json={"id": blog_id, "title": blog_id}, headers=AUTH)
                assert created.status_code == 201
                epochs[blog_id] = created.json()["epoch"]
            endpoint = await register(client, receiver.url, blogs)
            receiver.secret = endpoint["secret"]
            receiver.delay = 0.02  # ~50 deliveries a second per blog
            receiver.set_mode("fail")  # the whole queue builds up first
            holder = await eventually(lambda: _holder(client, a, b), lambda found: found is not None, 15)
            assert holder is not None
            survivor = b if holder is a else a
            expected = set()
            for start in range(0, 200, 20):
                responses = await asyncio.gather(*(
                    client.post(f"{survivor.base}/api/blogs/{blogs[index % 3]}/posts",
                                json={"headline": f"Update {index}"}, headers=AUTH)
                    for index in range(start, start + 20)))
                for index, response in enumerate(responses, start):
                    assert response.status_code == 201
                    expected.add(f"msg_{blogs[index % 3]}_{epochs[blogs[index % 3]]}_{response.json()['seq']}")
            receiver.set_mode("ok")
            await wait_until(lambda: len(receiver.accepted) >= 40, 20, "deliveries under way")
            holder.kill(signal.SIGKILL)
            taken_before = len(receiver.accepted)
            assert taken_before < 120, "the queue had mostly drained before the kill; nothing was tested"
            await wait_until(lambda: {r.webhook_id for r in receiver.accepted} >= expected, 30,
                             "every event accepted after the takeover")
            assert await delivering(client, survivor)

        accepted = [r.webhook_id for r in receiver.accepted]
        assert set(accepted) == expected
        duplicates = len(accepted) - len(set(accepted))
        print(f"killed after {taken_before} accepted; {duplicates} redelivered after the takeover")
        assert duplicates <= len(blogs)  # at most the event each lane had in flight at the kill, same id
        assert receiver.unverified == []
        for blog_id in blogs:
            first_arrivals = list(dict.fromkeys(r.event["seq"] for r in receiver.accepted if r.event["blog"] == blog_id))
            assert first_arrivals == sorted(first_arrivals)


async def _holder(client: httpx.AsyncClient, a: Node, b: Node) -> Node | None:
    for node in (a, b):
        if await delivering(client, node):
            return node
    return None
