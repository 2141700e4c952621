"""LIVEPUSH_REDIS_WAIT_REPLICAS, and what `/readyz` says is missing, against real redis-servers.

A write the primary stored but no replica confirmed within the timeout answers 503
`not_replicated` (it is visible meanwhile); once a replica has synced, the same request with
the same Idempotency-Key answers 201 with the first result. `/readyz` names the part that is
missing: the pub/sub subscription, or the primary.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.faults.conftest import in_process_node, private_redis
from tests.redis_servers import QUICK_SYNC

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def readyz_until(server: LiveServer, status: int, timeout: float = 15.0) -> dict[str, Any]:
    """Ask /readyz until it answers *status* (what it reports comes from Redis, another process)."""
    async with asyncio.timeout(timeout):
        while True:
            response = await server.http.get("/readyz")
            if response.status_code == status:
                body: dict[str, Any] = response.json()
                return body
            await asyncio.sleep(0.05)


async def until_replicated(server: LiveServer, post: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """POST until 201; a 50 ms WAIT may still miss on a busy machine: 503 not_replicated, retried with the key."""
    for _ in range(50):
        response = await server.http.post("/api/blogs/b1/posts", json=post, headers=headers)
        if response.status_code == 201:
            return response
        assert response.json()["code"] == "not_replicated", response.text
        await asyncio.sleep(0.05)  # retry pacing, as a newsroom tool does
    raise AssertionError("never replicated")


async def test_a_write_no_replica_confirmed_is_503_and_its_retry_is_201_once_one_has_it() -> None:
    with private_redis("--appendonly", "no", *QUICK_SYNC) as primary:
        async with in_process_node(primary, redis_wait_replicas=1, redis_wait_timeout=0.05) as server:
            response = await server.http.post("/api/blogs", json={"id": "b1", "title": "Blog"}, headers=AUTH)
            assert (response.status_code, response.json()["code"]) == (503, "not_replicated")
            assert response.headers["retry-after"] == "2"
            assert (await server.blog("b1"))["seq"] == 0  # stored on the primary, visible

            post = {"headline": "Only on the primary"}
            headers = {**AUTH, "Idempotency-Key": "first"}
            refused = await server.http.post("/api/blogs/b1/posts", json=post, headers=headers)
            assert (refused.status_code, refused.json()["code"]) == (503, "not_replicated")
            assert "0 of 1 replicas confirmed it within 50 ms" in refused.json()["detail"]
            assert "Idempotency-Key" in refused.json()["detail"]
            metrics = (await server.http.get("/metrics")).text
            assert "livepush_redis_wait_timeouts_total 2.0" in metrics

            with private_redis("--replicaof", "127.0.0.1", str(primary.port)) as replica:
                to_replica = aioredis.Redis(port=replica.port, driver_info=None)
                try:
                    async with asyncio.timeout(10):
                        while (await to_replica.info("replication"))["master_link_status"] != "up":  # noqa: ASYNC110
                            await asyncio.sleep(0.02)  # another process: nothing to await
                    retried = await until_replicated(server, post, headers)
                    assert retried.json()["seq"] == 1  # the first result: the post the 503 was about
                    assert await to_replica.hget("lp:{b1}:posts", retried.json()["post"]["id"]) is not None
                    again = await until_replicated(server, {"headline": "Next"}, {**AUTH, "Idempotency-Key": "next"})
                    assert again.json()["seq"] == 2
                finally:
                    await to_replica.aclose()
            assert (await server.blog("b1"))["post_count"] == 2


async def test_readyz_names_a_lost_subscription_and_a_missing_primary() -> None:
    with private_redis("--appendonly", "no") as redis:
        async with in_process_node(redis) as server:
            await readyz_until(server, 200)
            admin = aioredis.Redis(port=redis.port, driver_info=None)
            try:
                await admin.execute_command("ACL", "SETUSER", "default", "-psubscribe")  # type: ignore[no-untyped-call]
                await admin.client_kill_filter(_type="pubsub")
                lost = await readyz_until(server, 503)
                assert lost["code"] == "not_ready" and "pub/sub subscription is lost" in lost["detail"], lost
                await admin.execute_command("ACL", "SETUSER", "default", "+psubscribe")  # type: ignore[no-untyped-call]
                await readyz_until(server, 200)
            finally:
                await admin.aclose()
            redis.stop(kill=True)
            gone = await readyz_until(server, 503)
            assert gone["detail"] == f"no redis primary reachable at redis://127.0.0.1:{redis.port}/0", gone
