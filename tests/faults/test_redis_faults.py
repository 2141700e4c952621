"""The Redis engine under faults: several nodes, Redis killed or emptied, nodes killed.

Every test here runs real `redis-server` processes on free loopback ports and real livepush
nodes, and checks the two promises: nothing acknowledged is lost, and no reader sees a gap or a
duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, wait_until
from tests.faults.conftest import Node, Scorer, in_process_node, private_redis, start_readers

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def publish(client: httpx.AsyncClient, base: str, blog_id: str, headline: str,
                  key: str | None = None) -> httpx.Response:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return await client.post(f"{base}/api/blogs/{blog_id}/posts", json={"headline": headline}, headers=headers)


async def publish_until_acknowledged(client: httpx.AsyncClient, base: str, blog_id: str, headline: str,
                                     key: str) -> dict[str, Any]:
    """Retry one publish with its Idempotency-Key until it is acknowledged (what a newsroom tool does)."""
    for _ in range(200):
        with contextlib.suppress(httpx.HTTPError):
            response = await publish(client, base, blog_id, headline, key)
            if response.status_code == 201:
                body: dict[str, Any] = response.json()
                return body
            assert response.status_code == 503, response.text
        await asyncio.sleep(0.05)  # retry pacing
    raise AssertionError(f"{headline} was never acknowledged")


async def test_two_nodes_give_every_reader_one_order_exactly_once(nodes: list[Node], log_dir: Path) -> None:
    """Readers on two nodes, publishers on both: every reader sees seq 1..60 once, in the same order."""
    with private_redis("--appendonly", "no") as redis:
        a, b = Node(redis.url, log_dir), Node(redis.url, log_dir)
        nodes += [a, b]
        await asyncio.gather(a.start(), b.start())
        async with httpx.AsyncClient(timeout=10) as client:
            created = await client.post(f"{a.base}/api/blogs", json={"id": "b1", "title": "Two nodes"}, headers=AUTH)
            assert created.status_code == 201
            readers = [*await start_readers([a.ws_base], "b1", 4), *await start_readers([b.ws_base], "b1", 4)]
            responses = await asyncio.gather(*(publish(client, node.base, "b1", f"{node.port}-{i}")
                                               for i in range(30) for node in (a, b)))
        assert all(r.status_code == 201 for r in responses)
        by_seq = {r.json()["seq"]: r.json()["post"]["id"] for r in responses}
        assert sorted(by_seq) == list(range(1, 61))
        await asyncio.gather(*(reader.wait_for_seq(60) for reader in readers))
        for reader in readers:
            await reader.stop()
            assert reader.seqs == list(range(1, 61)) and not reader.gaps and not reader.duplicates
            assert reader.posts == set(by_seq.values())


async def test_redis_killed_mid_publishing_loses_nothing_acknowledged() -> None:
    """Redis (AOF, fsync always) is SIGKILLed mid-stream and restarted: writes fail fast with 503 meanwhile,
    /readyz says 503, and every acknowledged post reaches every reader once. The restarted Redis has a new
    run_id, so the blog moves to a new epoch and readers start again from a snapshot (big enough here to
    hold every post, so the reader's view can be checked post by post)."""
    with private_redis("--appendonly", "yes", "--appendfsync", "always") as redis:
        async with in_process_node(redis, snapshot_size=50) as server:
            await server.create_blog("b1")
            readers = await start_readers([server.ws_base], "b1", 3)
            acked: dict[str, int] = {}
            async with httpx.AsyncClient(timeout=10) as client:
                for i in range(20):
                    body = await publish_until_acknowledged(client, server.base, "b1", f"before {i}", f"k{i}")
                    acked[body["post"]["id"]] = body["seq"]
                redis.stop(kill=True)
                refused = await publish(client, server.base, "b1", "during", "k-during")
                assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
                assert refused.headers["retry-after"]
                assert (await client.get(f"{server.base}/readyz")).status_code == 503
                redis.start()
                for i in range(20, 40):
                    body = await publish_until_acknowledged(client, server.base, "b1", f"after {i}", f"k{i}")
                    acked[body["post"]["id"]] = body["seq"]
                assert (await client.get(f"{server.base}/readyz")).status_code == 200
                stored = (await client.get(f"{server.base}/api/blogs/b1/posts?limit=100")).json()["posts"]
            stored_ids = {post["id"] for post in stored}
            assert set(acked) <= stored_ids  # nothing acknowledged is lost
            assert len(stored_ids) == len(stored) == 40  # and the retries made no duplicates
            top = max(acked.values())
            await asyncio.gather(*(reader.wait_for_seq(top, timeout=30) for reader in readers))
            for reader in readers:
                await reader.stop()
                assert not reader.gaps and not reader.duplicates
                assert set(acked) <= reader.posts
                assert len(set(reader.epochs)) == 2  # one new epoch for the one restart


async def test_redis_restarted_empty_gives_readers_a_new_epoch() -> None:
    """Redis loses everything: readers are told to come back, and then start from a snapshot of a new epoch."""
    with private_redis("--appendonly", "no") as redis:
        async with in_process_node(redis, demo=True) as server:
            blog_id = "russia-ukraine-2023-07-26"
            reader = Scorer([server.ws_base], blog_id)
            reader.start()
            await reader.wait_connected()
            first_epoch = reader.epoch
            redis.stop(kill=True)
            redis.start()
            await reader.wait_until(lambda: reader.snapshots >= 2)
            await reader.stop()
            assert reader.epochs[-1] != first_epoch and 1013 in reader.closes
            assert len(reader.posts) == 9  # the demo blog, reloaded into the empty Redis
            assert not reader.gaps and not reader.duplicates


async def test_a_killed_node_s_readers_resume_on_another_node(nodes: list[Node], log_dir: Path) -> None:
    """A node dies with SIGKILL; its readers reconnect to another node with since/epoch and miss nothing."""
    with private_redis("--appendonly", "no") as redis:
        a, b = Node(redis.url, log_dir), Node(redis.url, log_dir)
        nodes += [a, b]
        await asyncio.gather(a.start(), b.start())
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.post(f"{b.base}/api/blogs", json={"id": "b1", "title": "t"}, headers=AUTH)).is_success
            readers = await start_readers([a.ws_base, b.ws_base], "b1", 5)
            for i in range(5):
                assert (await publish(client, b.base, "b1", f"before {i}")).status_code == 201
            await asyncio.gather(*(reader.wait_for_seq(5) for reader in readers))
            a.kill(signal.SIGKILL)
            for i in range(5):
                assert (await publish(client, b.base, "b1", f"after {i}")).status_code == 201
        await asyncio.gather(*(reader.wait_for_seq(10) for reader in readers))
        for reader in readers:
            await reader.stop()
            assert reader.seqs == list(range(1, 11)) and not reader.gaps and not reader.duplicates
            assert reader.snapshots == 1  # the resume replayed; it did not start over
            assert reader.connections >= 2


async def test_workers_share_one_redis(nodes: list[Node], log_dir: Path) -> None:
    """`livepush serve --workers 2`: readers spread over the workers all see every event in order."""
    with private_redis("--appendonly", "no") as redis:
        node = Node(redis.url, log_dir, workers=2)
        nodes.append(node)
        await node.start()
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.post(f"{node.base}/api/blogs", json={"id": "b1", "title": "t"}, headers=AUTH)).is_success
            readers = await start_readers([node.ws_base], "b1", 8)
            for i in range(10):
                assert (await publish(client, node.base, "b1", f"p{i}")).status_code == 201
        await asyncio.gather(*(reader.wait_for_seq(10) for reader in readers))
        for reader in readers:
            await reader.stop()
            assert reader.seqs == list(range(1, 11)) and not reader.gaps and not reader.duplicates


async def test_a_killed_subscription_is_healed_from_history() -> None:
    """Redis drops the node's pub/sub connection (CLIENT KILL TYPE pubsub) while posts keep coming:
    pub/sub loses those messages silently; the node reconnects, reads them from history, and readers
    see every seq once."""
    import redis as redis_client

    with private_redis("--appendonly", "no") as redis:
        async with in_process_node(redis) as server:
            await server.create_blog("b1")
            readers = await start_readers([server.ws_base], "b1", 3)
            admin = redis_client.Redis(port=redis.port)
            async with httpx.AsyncClient(timeout=10) as client:
                for i in range(30):
                    assert (await publish(client, server.base, "b1", f"p{i}")).status_code == 201
                    if i in (5, 15):
                        await wait_until(lambda: bool(admin.client_list(_type="pubsub")), 10, "a subscription")
                        assert admin.client_kill_filter(_type="pubsub") >= 1
            await asyncio.gather(*(reader.wait_for_seq(30) for reader in readers))
            for reader in readers:
                await reader.stop()
                assert reader.seqs == list(range(1, 31)) and not reader.gaps and not reader.duplicates
            admin.close()
            metrics = (await server.http.get("/metrics")).text
            repaired = [line for line in metrics.splitlines() if line.startswith("livepush_gaps_repaired_total ")]
            assert float(repaired[0].split()[1]) >= 1  # the events pub/sub dropped came from history
            reconnects = [line for line in metrics.splitlines() if line.startswith("livepush_redis_reconnects_total ")]
            assert float(reconnects[0].split()[1]) >= 2  # one per CLIENT KILL
            assert "livepush_epoch_moves_total 0.0" in metrics  # the same server: nothing moved


async def test_readyz_turns_503_when_events_stop_flowing_though_redis_answers_ping() -> None:
    """CLIENT PAUSE WRITE holds every PUBLISH while PING still answers: the process's canary stops
    arriving, so /readyz says 503 (deaf), and 200 again once events flow."""
    import redis as redis_client

    with private_redis("--appendonly", "no") as redis:
        async with in_process_node(redis, canary_timeout=2.5) as server:
            assert (await server.http.get("/readyz")).status_code == 200
            admin = redis_client.Redis(port=redis.port)
            admin.client_pause(6000, all=False)  # WRITE mode: PUBLISH waits, PING answers
            assert admin.ping()
            deaf = None
            async with asyncio.timeout(10):
                while deaf is None or deaf.status_code != 503:
                    deaf = await server.http.get("/readyz")
                    await asyncio.sleep(0.1)  # polling an HTTP endpoint
            assert deaf.json()["code"] == "deaf"
            admin.client_unpause()
            admin.close()
            async with asyncio.timeout(10):
                while (await server.http.get("/readyz")).status_code != 200:  # noqa: ASYNC110 (HTTP state)
                    await asyncio.sleep(0.1)


async def test_a_reader_attaching_while_redis_is_down_is_told_to_retry() -> None:
    """A resume needs history from Redis: with Redis down the WebSocket closes 1013 (retry later) and SSE
    answers 503 with Retry-After, instead of an error page on a socket."""
    with private_redis("--appendonly", "no") as redis:
        async with in_process_node(redis) as server:
            await server.create_blog("b1")
            await server.publish(headline="one")
            blog = await server.blog()
            async with server.reader() as watching:  # the blog is watched: the relay is synced
                await watching.next()
                redis.stop(kill=True)
                async with server.reader(since=0, epoch=blog["epoch"]) as late:
                    assert await late.closed(timeout=10) == (1013, "storage unavailable; retry later")
                refused = await server.http.get(f"/sse/blogs/b1?since=0&epoch={blog['epoch']}")
                assert refused.status_code == 503 and refused.headers["retry-after"]
