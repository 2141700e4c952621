"""Redis behind Sentinels: a real group (primary, two replicas, three `redis-server --sentinel`) fails over.

Both ways a primary goes: `SENTINEL FAILOVER` (the old primary stays up and is demoted; the
engine must leave it, pub/sub included, and must not let its remaining replica acknowledge a
write the new primary never gets) and SIGKILL. A newsroom publishes throughout with an
Idempotency-Key and `LIVEPUSH_REDIS_WAIT_REPLICAS=1`, retrying every 503: writes answer 503 during
the switch and are acknowledged again after it; every acknowledged post is stored once and
shown to every reader; readers move to the new epoch with a snapshot and follow live again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.conftest import ADMIN_TOKEN, LiveServer, wait_until
from tests.faults.conftest import ROOT, Scorer, in_process_node, start_readers
from tests.redis_servers import SENTINEL_PRIMARY, RedisProcess, SentinelGroup, free_port, sentinel_group

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Newsroom:
    """Publishes post after post, each retried with its Idempotency-Key until answered 201."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.acked: list[str] = []
        self.answers: collections.Counter[str] = collections.Counter()
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop = True
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=10) as client:
            number = 0
            while not self._stop:
                number += 1
                self.acked.append(await self._publish(client, f"post {number}"))

    async def _publish(self, client: httpx.AsyncClient, headline: str) -> str:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.post("/api/blogs/b1/posts", json={"headline": headline},
                                             headers={**AUTH, "Idempotency-Key": headline})
                self.answers[f"{response.status_code} {response.json().get('code', '')}".strip()] += 1
                if response.status_code == 201:
                    post_id: str = response.json()["post"]["id"]
                    return post_id
                assert response.status_code == 503, response.text
            await asyncio.sleep(0.03)  # retry pacing, as a newsroom tool does


@contextlib.asynccontextmanager
async def publishing_group() -> AsyncIterator[tuple[SentinelGroup, LiveServer, Newsroom, list[Scorer]]]:
    with sentinel_group() as group:
        async with in_process_node(group, redis_wait_replicas=1, redis_wait_timeout=0.5) as server:
            await server.create_blog("b1")
            readers = await start_readers([server.ws_base], "b1", 2)
            newsroom = Newsroom(server)
            newsroom.start()
            try:
                yield group, server, newsroom, readers
            finally:
                for reader in readers:
                    await reader.stop()


async def fail_over(fault: Callable[[SentinelGroup], Awaitable[None]]) -> None:
    async with publishing_group() as (group, server, newsroom, readers):
        await wait_until(lambda: len(newsroom.acked) >= 3, 10, "posts before the failover")
        old = group.primary()
        await fault(group)
        await switched(group, old)
        after = len(newsroom.acked)
        await wait_until(lambda: len(newsroom.acked) >= after + 3, 30, "posts after the failover")
        await newsroom.stop()

        blog = await server.blog("b1")
        response = await server.http.get("/api/blogs/b1/posts?limit=100")
        stored = [post["id"] for post in response.json()["posts"]]
        assert sorted(stored) == sorted(newsroom.acked)  # every acknowledged post, once; nothing else
        assert blog["post_count"] == len(newsroom.acked) < 20  # all fit in one snapshot
        assert any(answer.startswith("503") for answer in newsroom.answers), newsroom.answers

        await asyncio.gather(*(reader.wait_until(functools.partial(caught_up, reader, blog)) for reader in readers))
        for reader in readers:
            assert len(set(reader.epochs)) >= 2  # moved to the new primary's epoch with a snapshot
            assert not reader.gaps and not reader.duplicates
            assert reader.posts == set(newsroom.acked)

        # Live again on the new primary: the subscription followed it.
        seq = blog["seq"]
        await server.publish("b1")
        await asyncio.gather(*(reader.wait_for_seq(seq + 1) for reader in readers))
        metrics = (await server.http.get("/metrics")).text
        assert "livepush_redis_primary_switches_total 1.0" in metrics, metrics


async def switched(group: SentinelGroup, old: RedisProcess) -> None:
    """Until the Sentinels name another primary (they are other processes: ask them again and again)."""
    async with asyncio.timeout(20):
        while await asyncio.to_thread(group.primary) is old:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def caught_up(reader: Scorer, blog: dict[str, Any]) -> bool:
    return (reader.epoch, reader.last) == (blog["epoch"], blog["seq"])


async def sentinel_failover(group: SentinelGroup) -> None:
    sentinel = aioredis.Redis(port=group.sentinel_ports[0], driver_info=None)
    try:
        await sentinel.execute_command("SENTINEL", "FAILOVER", SENTINEL_PRIMARY)  # type: ignore[no-untyped-call]
    finally:
        await sentinel.aclose()


async def kill_primary(group: SentinelGroup) -> None:
    group.primary().stop(kill=True)


async def test_sentinel_failover_while_publishing_loses_no_acknowledged_post() -> None:
    """The old primary stays up, demoted: the engine stops writing at +try-failover and moves at +switch-master."""
    await fail_over(sentinel_failover)


async def test_a_sigkilled_primary_while_publishing_loses_no_acknowledged_post() -> None:
    """Writes answer 503 until the Sentinels promote a replica (WAIT 1: it holds every acknowledged post)."""
    await fail_over(kill_primary)


async def test_with_no_primary_left_readyz_says_so_and_writes_are_503_nothing_written() -> None:
    with sentinel_group() as group:
        async with in_process_node(group) as server:
            await server.create_blog("b1")
            for redis in group.redises:
                redis.stop(kill=True)
            async with asyncio.timeout(20):
                while True:  # the Sentinels notice, try a failover, find no replica to promote
                    response = await server.http.get("/readyz")
                    if response.json().get("detail") == f"no redis primary: the Sentinels name none for {SENTINEL_PRIMARY!r}":
                        break
                    assert response.status_code == 503
                    await asyncio.sleep(0.05)
            write = await server.publish("b1")
            assert (write.status_code, write.json()["code"]) == (503, "engine_unavailable"), write.text


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://127.0.0.1:{port}/no-such-primary",
     "livepush: REDIS_URL: the Sentinels at 127.0.0.1:{port} monitor no primary named 'no-such-primary' "
     "(they monitor: livepush)"),
    ("redis+sentinel://127.0.0.1:{port}:1/livepush", "livepush: invalid settings:"),
])
def test_serve_refuses_a_bad_sentinel_url_in_one_line_with_exit_2(sentinel_group_session: SentinelGroup, url: str,
                                                                   says: str) -> None:
    port = sentinel_group_session.sentinel_ports[0]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "REDIS_URL": url.format(port=port)}
    done = subprocess.run([sys.executable, "-m", "server", "serve", "--port", str(free_port())], env=env, cwd=ROOT,
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().startswith(says.format(port=port)) and b"Traceback" not in done.stderr, done.stderr
