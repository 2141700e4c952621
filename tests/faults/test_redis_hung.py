"""Redis hangs (SIGSTOP) under a running node: writes fail within the socket timeout, saying whether they may
have been stored, and retries that cannot apply twice make one result."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest

from tests.faults.conftest import in_process_node, private_redis, start_readers
from tests.faults.test_redis_faults import AUTH, publish, publish_until_acknowledged

pytestmark = pytest.mark.redis


async def test_a_hung_redis_fails_writes_with_503_and_a_keyed_retry_makes_one_post() -> None:
    """A write to a Redis that accepts bytes but never answers is refused with 503 + Retry-After once the
    socket timeout passes (no request waits for ever). Redis may still run the script when it wakes, so
    the 503 does not prove nothing was written: the retry with the same Idempotency-Key returns the one
    post, and readers see it once."""
    with private_redis("--appendonly", "no") as redis:
        assert redis.process is not None
        async with in_process_node(redis) as server:
            await server.create_blog("b1")
            (reader,) = await start_readers([server.ws_base], "b1", 1)
            os.kill(redis.process.pid, signal.SIGSTOP)
            try:
                async with httpx.AsyncClient(timeout=30) as client:
                    refused = await client.post(f"{server.base}/api/blogs/b1/posts", json={"headline": "Hung"},
                                                headers={**AUTH, "Idempotency-Key": "k-hung"})
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "outcome_unknown" and refused.headers["retry-after"]
            async with httpx.AsyncClient(timeout=10) as client:
                body = await publish_until_acknowledged(client, server.base, "b1", "Hung", "k-hung")
            assert (await server.blog())["post_count"] == 1
            await reader.wait_for_seq(body["seq"])
            await reader.stop()
            assert reader.seqs == [1] and not reader.gaps and not reader.duplicates


async def test_a_write_sent_to_a_hung_redis_is_an_unknown_outcome_that_a_safe_retry_resolves() -> None:
    """A create and a delete sent to a Redis that then never answers are 503 `outcome_unknown` (never "nothing
    was written"), with a body saying which retries are safe. Redis runs both scripts when it wakes: the create's
    retry with the same Idempotency-Key comes back `201 Idempotent-Replayed`, the delete's retry 404."""
    with private_redis("--appendonly", "no") as redis:
        assert redis.process is not None
        async with in_process_node(redis) as server, httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            await server.create_blog("b1")
            doomed = (await publish(client, server.base, "b1", "Doomed")).json()["post"]["id"]
            warm = (await publish(client, server.base, "b1", "Warm")).json()["post"]["id"]
            assert (await client.delete(f"/api/blogs/b1/posts/{warm}", headers=AUTH)).status_code == 200
            os.kill(redis.process.pid, signal.SIGSTOP)  # every script is loaded: what is sent runs on SIGCONT
            try:
                created, deleted = await asyncio.gather(
                    publish(client, server.base, "b1", "Sent", "k-sent"),
                    client.delete(f"/api/blogs/b1/posts/{doomed}", headers=AUTH))
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            for response in (created, deleted):
                assert response.status_code == 503 and response.headers["retry-after"], response.text
                problem = response.json()
                assert problem["code"] == "outcome_unknown"
                assert "may or may not have been stored" in problem["detail"]
                assert "same Idempotency-Key" in problem["detail"] and "If-Match" in problem["detail"]
            retried = await publish(client, server.base, "b1", "Sent", "k-sent")
            assert retried.status_code == 201 and retried.headers.get("idempotent-replayed") == "true"
            assert (await client.delete(f"/api/blogs/b1/posts/{doomed}", headers=AUTH)).status_code == 404
            blog = await server.blog()
            assert (blog["post_count"], blog["seq"]) == (1, 5)


async def test_a_write_that_cannot_reach_redis_says_nothing_was_written() -> None:
    """With Redis gone (connection refused), a create never leaves the node: 503 `engine_unavailable`, "nothing was
    written", and when Redis is back (its AOF kept everything) the blog is as it was. (A write that meets the dead
    pooled connection first was sent to a socket whose peer died at some moment: that one is `outcome_unknown`,
    so a read takes that connection here.)"""
    with private_redis("--appendonly", "yes", "--appendfsync", "always") as redis:
        async with in_process_node(redis) as server, httpx.AsyncClient(timeout=10) as client:
            await server.create_blog("b1")
            await publish(client, server.base, "b1", "Kept")
            redis.stop(kill=True)
            assert (await client.get(f"{server.base}/api/blogs/b1")).status_code == 503
            refused = await publish(client, server.base, "b1", "Never", "k-never")
            assert refused.status_code == 503 and refused.headers["retry-after"]
            problem = refused.json()
            assert problem["code"] == "engine_unavailable" and "nothing was written" in problem["detail"]
            redis.start()
            body = await publish_until_acknowledged(client, server.base, "b1", "Never", "k-never")
            assert body["seq"] == 2 and body["post"]["headline"] == "Never"
            assert (await server.blog())["post_count"] == 2
