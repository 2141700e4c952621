"""Redis hangs (SIGSTOP) under a running node: writes fail within the socket timeout, retries make one post."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from tests.faults.conftest import in_process_node, private_redis, start_readers
from tests.faults.test_redis_faults import AUTH, publish_until_acknowledged

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
            assert refused.json()["code"] == "engine_unavailable" and refused.headers["retry-after"]
            async with httpx.AsyncClient(timeout=10) as client:
                body = await publish_until_acknowledged(client, server.base, "b1", "Hung", "k-hung")
            assert (await server.blog())["post_count"] == 1
            await reader.wait_for_seq(body["seq"])
            await reader.stop()
            assert reader.seqs == [1] and not reader.gaps and not reader.duplicates
