"""A Redis that restarted or failed over may have lost its newest events: every blog moves to a new epoch.

The engine compares the server's identity (run_id, replication id) with the one stamped in the
data (`lp:identity`). These tests change it for real: a redis-server restarted on its AOF (new
run_id, nothing lost), a replica promoted after its primary took writes it never received (the
tail is lost), and a server whose replication id alone changed. Readers must never be told a
resume is complete against the old epoch; nodes noticing the same change must agree on one new
epoch per blog.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
import redis.asyncio as aioredis

from server.engine import EngineUnavailable
from server.engine.redis import RedisEngine
from server.model import Blog
from tests.conftest import ADMIN_TOKEN, LiveServer, make_settings
from tests.faults.conftest import Scorer, in_process_node, private_redis, start_readers
from tests.faults.redirect import Redirect, redirect
from tests.redis_servers import RedisProcess

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T = TypeVar("T")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
QUICK_SYNC = ("--repl-diskless-sync-delay", "0")  # a primary waits 5 s for more replicas by default


async def publish_acknowledged(client: httpx.AsyncClient, base: str, headline: str) -> dict[str, Any]:
    """Publish with an Idempotency-Key, retrying the 503s of a connection that died with the old server."""
    for _ in range(100):
        with contextlib.suppress(httpx.HTTPError):
            response = await client.post(f"{base}/api/blogs/b1/posts", json={"headline": headline},
                                         headers={**AUTH, "Idempotency-Key": headline})
            if response.status_code == 201:
                body: dict[str, Any] = response.json()
                return body
            assert response.status_code == 503, response.text
        await asyncio.sleep(0.02)  # retry pacing, as a newsroom tool does
    raise AssertionError(f"{headline} was never acknowledged")


async def all_until(readers: list[Scorer], predicate: Callable[[Scorer], bool]) -> None:
    await asyncio.gather(*(reader.wait_until(functools.partial(predicate, reader)) for reader in readers))


def blog(blog_id: str) -> Blog:
    return Blog(id=blog_id, title=blog_id, created_at=T0, updated_at=T0)


async def first_message(server: LiveServer, since: int, epoch: str) -> dict[str, Any]:
    async with server.reader("b1", since=since, epoch=epoch) as reader:
        return await reader.next_event()


async def until_available(call: Callable[[], Awaitable[T]]) -> T:
    """*call*, again after the EngineUnavailable of a pooled connection that died with the old server."""
    for _ in range(50):
        try:
            return await call()
        except EngineUnavailable:
            await asyncio.sleep(0.02)
    raise AssertionError("redis never answered")


@contextlib.asynccontextmanager
async def admin_client(redis: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=redis.port, driver_info=None)
    try:
        yield client
    finally:
        await client.aclose()


async def replicating(replica: aioredis.Redis) -> None:
    """Until the replica has finished its sync with its primary."""
    async with asyncio.timeout(10):
        while (await replica.info("replication"))["master_link_status"] != "up":  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.02)


async def test_a_redis_restarted_on_its_aof_moves_readers_to_a_new_epoch_with_nothing_lost() -> None:
    """Redis restarts with its data intact (new run_id): readers are closed 1013, take a snapshot of a new
    epoch holding every post, then follow live; a resume against the old epoch gets a snapshot too."""
    with private_redis("--appendonly", "yes", "--appendfsync", "always") as redis:
        async with in_process_node(redis) as server, httpx.AsyncClient(timeout=10) as client:
            await server.create_blog("b1")
            readers = await start_readers([server.ws_base], "b1", 2)
            before = [(await publish_acknowledged(client, server.base, f"before {i}"))["post"]["id"] for i in range(3)]
            await asyncio.gather(*(reader.wait_for_seq(3) for reader in readers))
            old_epoch = readers[0].epoch
            assert old_epoch is not None

            redis.stop()  # SIGTERM: a clean shutdown, the AOF holds everything
            redis.start()
            await all_until(readers, lambda reader: reader.epoch != old_epoch)
            blog = await server.blog("b1")
            assert blog["epoch"] != old_epoch and blog["seq"] == 3 and blog["post_count"] == 3
            after = (await publish_acknowledged(client, server.base, "after"))["post"]["id"]
            await asyncio.gather(*(reader.wait_for_seq(4) for reader in readers))
            for reader in readers:
                await reader.stop()
                assert 1013 in reader.closes and reader.epochs == [old_epoch, blog["epoch"]]
                assert reader.posts == {*before, after}  # nothing lost
                assert not reader.gaps and not reader.duplicates
            resumed = await first_message(server, 3, old_epoch)
            assert (resumed["type"], resumed["epoch"]) == ("snapshot", blog["epoch"])


async def test_a_promoted_replica_that_lost_the_tail_gives_readers_on_every_node_one_new_epoch() -> None:
    """The primary acknowledges two posts its replica never got, then the replica is promoted and clients are
    redirected to it. Both nodes notice; the blog moves to one new epoch; readers drop the lost posts for a
    snapshot of what survived; a reader that saw the lost seqs is not told its resume is complete."""
    with private_redis("--appendonly", "no", *QUICK_SYNC) as primary, \
            private_redis("--appendonly", "no", "--replicaof", "127.0.0.1", str(primary.port)) as replica:
        async with admin_client(primary) as to_primary, admin_client(replica) as to_replica:
            await replicating(to_replica)
            async with redirect(primary) as proxy:
                engines = [RedisEngine(proxy.url) for _ in range(2)]
                settings = make_settings("redis", None, redis_url=proxy.url)
                a, b = LiveServer(settings, engines[0]), LiveServer(settings, engines[1])
                await a.start()
                await b.start()
                try:
                    await run_failover(a, b, engines, proxy, replica, to_primary, to_replica)
                finally:
                    await a.stop()
                    await b.stop()


async def run_failover(a: LiveServer, b: LiveServer, engines: list[RedisEngine], proxy: Redirect,
                       replica: RedisProcess, to_primary: aioredis.Redis, to_replica: aioredis.Redis) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        await a.create_blog("b1")
        readers = [*await start_readers([a.ws_base], "b1", 2), *await start_readers([b.ws_base], "b1", 2)]
        kept = [(await publish_acknowledged(client, a.base, f"kept {i}"))["post"]["id"] for i in range(3)]
        assert await to_primary.wait(1, 5000) == 1  # the replica has seq 1..3
        old_epoch = (await a.blog("b1"))["epoch"]

        await to_replica.replicaof("NO", "ONE")  # promoted: from here on it diverges from the old primary
        for i in range(2):  # acknowledged and delivered, but only the old primary has them
            await publish_acknowledged(client, b.base, f"lost {i}")
        await asyncio.gather(*(reader.wait_for_seq(5) for reader in readers))

        proxy.point_to(replica.port)
        await all_until(readers, lambda reader: reader.epoch != old_epoch)
        blogs = [await a.blog("b1"), await b.blog("b1")]
        new_epoch = blogs[0]["epoch"]
        assert new_epoch != old_epoch and {blog["epoch"] for blog in blogs} == {new_epoch}
        assert blogs[0]["seq"] == 3 and blogs[0]["post_count"] == 3
        assert sum(engine.epochs_moved for engine in engines) == 1  # one node moved it; the other found it done

        # New posts reuse seqs 4 and 5 in the new epoch.
        fresh = [(await publish_acknowledged(client, a.base, f"fresh {i}"))["post"]["id"] for i in range(2)]
        await all_until(readers, lambda reader: reader.epoch == new_epoch and reader.last == 5)
        for reader in readers:
            await reader.stop()
            assert reader.epochs == [old_epoch, new_epoch] and 1013 in reader.closes
            assert reader.posts == {*kept, *fresh}  # the lost posts are gone from every reader's page
            assert not reader.gaps and not reader.duplicates
    # A reader that had applied the lost seq 5 resumes: without the new epoch it would be "at the top" and
    # silently miss both fresh posts.
    resumed = await first_message(b, 5, old_epoch)
    assert (resumed["type"], resumed["epoch"], resumed["seq"]) == ("snapshot", new_epoch, 5)
    assert {post["id"] for post in resumed["posts"]} == {*kept, *fresh}


async def test_nodes_noticing_the_same_restart_agree_on_one_new_epoch_per_blog() -> None:
    """Three engines check a restarted Redis at once: each blog moves exactly once, to one epoch; an
    unchanged server (even after its connections were killed) moves nothing."""
    with private_redis("--appendonly", "yes", "--appendfsync", "always") as redis:
        engines = [RedisEngine(redis.url) for _ in range(3)]
        try:
            for blog_id in ("b1", "b2", "b3"):
                await engines[0].create_blog(blog(blog_id))
            assert [await engine.check_identity() for engine in engines] == [0, 0, 0]
            async with admin_client(redis) as admin:
                await admin.client_kill_filter(_type="normal", skipme=True)
            assert await until_available(engines[1].check_identity) == 0
            epochs = {blog.id: blog.epoch for blog in (await until_available(functools.partial(engines[0].list_blogs, 10))).blogs}

            redis.stop()
            redis.start()
            moved = await asyncio.gather(*(until_available(engine.check_identity) for engine in engines))
            assert sum(moved) == 3
            now = [{blog.id: blog.epoch for blog in (await until_available(functools.partial(engine.list_blogs, 10))).blogs}
                   for engine in engines]
            assert now[0] == now[1] == now[2]
            assert all(now[0][blog_id] != epochs[blog_id] for blog_id in epochs)
            assert [await engine.check_identity() for engine in engines] == [0, 0, 0]
        finally:
            for engine in engines:
                await engine.close()


async def test_a_new_replication_id_alone_moves_the_epoch() -> None:
    """Same redis-server process (same run_id) but a new history: it was made a replica of another server,
    resynchronised from it (losing its own newest writes) and promoted again. The engine still talking to
    it moves the blog to a new epoch, because the replication id changed."""
    with private_redis("--appendonly", "no", *QUICK_SYNC) as first, \
            private_redis("--appendonly", "no", *QUICK_SYNC) as second:
        engine = RedisEngine(first.url)
        try:
            await engine.create_blog(blog("b1"))
            assert await engine.check_identity() == 0
            run_id = engine.identity and engine.identity.split(":")[0]
            before = (await engine.get_blog("b1")).epoch
            async with admin_client(first) as to_first, admin_client(second) as to_second:
                await to_second.replicaof("127.0.0.1", first.port)
                await replicating(to_second)
                await to_second.replicaof("NO", "ONE")
                await to_first.replicaof("127.0.0.1", second.port)
                await replicating(to_first)
                await to_first.replicaof("NO", "ONE")
            assert await until_available(engine.check_identity) == 1
            assert engine.identity is not None and engine.identity.split(":")[0] == run_id
            assert (await engine.get_blog("b1")).epoch != before
        finally:
            await engine.close()
