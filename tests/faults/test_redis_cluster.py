"""livepush on a real Redis Cluster (3 primaries + 3 replicas): sharded fan-out that survives what clusters do.

Three livepush nodes (uvicorn in the test's loop) share the Cluster; readers resume after every
close and keep score (tests.faults.conftest.Scorer). Each test breaks the fan-out for real: the
shards' pub/sub connections killed (`CLIENT KILL TYPE pubsub`), a busy blog's slot migrated to
another shard while posts keep coming, a primary SIGKILLed and its replica promoted. Whatever
happens, every reader ends with seq 1..n exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.engine import EngineUnavailable
from server.engine.cluster_fanout import blog_slot
from server.engine.redis_cluster import ClusterEngine
from server.parsing import ClusterUrlError
from server.settings import Settings, SettingsError
from tests.conftest import ADMIN_TOKEN, LiveServer, make_settings, wait_until
from tests.faults.conftest import ROOT, Scorer, start_readers
from tests.redis_cluster import RedisCluster, cli, running_cluster
from tests.redis_servers import RedisProcess, free_port

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@contextlib.asynccontextmanager
async def nodes(cluster: RedisCluster, count: int = 3, **overrides: Any) -> AsyncIterator[list[LiveServer]]:
    cluster.flush()
    servers = [LiveServer(make_settings("redis", None, redis_url=cluster.url, **overrides)) for _ in range(count)]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            await server.stop()


def engine_of(server: LiveServer) -> ClusterEngine:
    engine = server.services.engine
    assert isinstance(engine, ClusterEngine)
    return engine


async def publish(client: httpx.AsyncClient, server: LiveServer, blog_id: str, headline: str) -> str:
    """Publish with an Idempotency-Key, retrying the 503s of a shard in trouble (as a newsroom tool does); the id."""
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            response = await client.post(f"{server.base}/api/blogs/{blog_id}/posts", json={"headline": headline},
                                         headers={**AUTH, "Idempotency-Key": headline})
            if response.status_code == 201:
                post_id: str = response.json()["post"]["id"]
                return post_id
            assert response.status_code == 503, response.text
        await asyncio.sleep(0.02)
    raise AssertionError(f"{headline} on {blog_id} was never acknowledged")


async def everyone_saw(readers: list[Scorer], count: int) -> None:
    await asyncio.gather(*(reader.wait_for_seq(count, 30) for reader in readers))
    for reader in readers:
        assert reader.gaps == [] and reader.duplicates == [], (reader.blog_id, reader.gaps, reader.duplicates)


async def ready(server: LiveServer) -> None:
    """Until /readyz says 200 (the node has re-read the slot map and resubscribed)."""
    for _ in range(300):
        if (await server.http.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.05)  # polling pace
    raise AssertionError(f"{server.base} never became ready again")


def spread_blogs(count: int) -> list[str]:
    return [f"c{index}" for index in range(count)]


async def test_readers_on_every_node_see_every_blog_in_order(redis_cluster: RedisCluster) -> None:
    """30 blogs over the 3 shards, readers on each of 3 nodes: seq 1..n exactly once, in order."""
    blogs = spread_blogs(30)
    assert len({redis_cluster.owner(blog_slot(blog)) for blog in blogs}) == 3
    async with nodes(redis_cluster) as servers, httpx.AsyncClient(timeout=10) as client:
        for blog_id in blogs:
            await servers[0].create_blog(blog_id)
        readers = []
        for server in servers:
            for blog_id in blogs:
                readers += await start_readers([server.ws_base], blog_id, 1)
        await asyncio.gather(*(publish(client, servers[(index + round_) % 3], blog_id, f"{blog_id}-{round_}")
                               for round_ in range(4) for index, blog_id in enumerate(blogs)))
        await everyone_saw(readers, 4)
        assert all(reader.seqs == [1, 2, 3, 4] for reader in readers)
        shards = engine_of(servers[0]).subscriptions()
        assert len(shards) == 3 and sum(shards.values()) == 33  # 30 blogs and a canary per shard, a connection each
        metrics = (await servers[0].http.get("/metrics")).text
        for shard, count in shards.items():
            assert f'livepush_redis_subscriptions{{shard="{shard}"}} {float(count)}' in metrics
        assert (await servers[0].http.get("/readyz")).status_code == 200
        listed = (await servers[2].http.get("/api/blogs", params={"limit": 50})).json()
        assert sorted(blog["id"] for blog in listed["blogs"]) == sorted(blogs)  # the index spans the shards
        for reader in readers:
            await reader.stop()


async def test_killed_pubsub_connections_are_resubscribed_and_healed(redis_cluster: RedisCluster) -> None:
    """Mid-publishing, every shard drops its pub/sub clients: the nodes resubscribe and fill the gap."""
    blogs = spread_blogs(6)
    async with nodes(redis_cluster, 2) as servers, httpx.AsyncClient(timeout=10) as client:
        for blog_id in blogs:
            await servers[0].create_blog(blog_id)
        readers = [reader for server in servers for blog_id in blogs
                   for reader in await start_readers([server.ws_base], blog_id, 1)]

        async def keep_publishing() -> None:
            for round_ in range(30):
                await asyncio.gather(*(publish(client, servers[round_ % 2], blog_id, f"{blog_id}-{round_}")
                                       for blog_id in blogs))

        publishing = asyncio.create_task(keep_publishing())
        await readers[0].wait_for_seq(5)
        for port in redis_cluster.primaries():
            cli(port, "client", "kill", "type", "pubsub")
        await publishing
        await everyone_saw(readers, 30)
        assert all(reader.snapshots == 1 for reader in readers)  # healed from history, nobody started over
        for server in servers:
            assert engine_of(server).counters()["resubscribes"] >= 1
        for reader in readers:
            await reader.stop()


async def test_one_shards_lost_subscription_rechecks_only_that_shards_blogs(redis_cluster: RedisCluster) -> None:
    """`CLIENT KILL TYPE pubsub` on one primary: the node resubscribes there and re-reads from history only
    the blogs of that shard (a Cluster of 5 000 blogs must not re-read all of them for one shard's blip)."""
    blogs = spread_blogs(12)
    async with nodes(redis_cluster, 1) as servers, httpx.AsyncClient(timeout=10) as client:
        server = servers[0]
        for blog_id in blogs:
            await server.create_blog(blog_id)
        readers = [reader for blog_id in blogs for reader in await start_readers([server.ws_base], blog_id, 1)]
        victim = redis_cluster.owner(blog_slot(blogs[0]))
        hit = [blog_id for blog_id in blogs if redis_cluster.owner(blog_slot(blog_id)) == victim]
        assert 0 < len(hit) < len(blogs)
        relay, engine = server.services.relay, engine_of(server)
        before = relay.rechecks
        cli(victim, "client", "kill", "type", "pubsub")
        await wait_until(lambda: engine.counters()["resubscribes"] >= 1, 10, "the resubscription")
        await wait_until(lambda: relay.rechecks > before, 10, "the re-reads")
        assert relay.rechecks - before == len(hit)
        await asyncio.gather(*(publish(client, server, blog_id, f"{blog_id}-after") for blog_id in blogs))
        await everyone_saw(readers, 1)
        metrics = (await server.http.get("/metrics")).text
        assert f"livepush_relay_rechecks_total {float(relay.rechecks)}" in metrics
        for reader in readers:
            await reader.stop()


async def test_a_deaf_shard_makes_the_process_deaf_whichever_shard_it_is(redis_cluster: RedisCluster) -> None:
    """CLIENT PAUSE WRITE on one primary holds its SPUBLISHes while it still answers PING: the canary that
    goes through that shard does not come back, so /readyz says 503 "deaf"; 200 again once it is unpaused.
    The paused shard is not the one `lp:{~canary}` hashes to: a single canary would not notice."""
    async with nodes(redis_cluster, 1, canary_timeout=2.5) as servers:
        server = servers[0]
        await ready(server)
        single_canary = redis_cluster.owner(blog_slot("~canary"))
        victim = next(port for port in redis_cluster.primaries() if port != single_canary)
        cli(victim, "client", "pause", "6000", "write")
        try:
            async with asyncio.timeout(10):
                while (answer := await server.http.get("/readyz")).status_code == 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)  # polling an HTTP endpoint
            assert answer.json()["code"] == "deaf", answer.text
        finally:
            cli(victim, "client", "unpause")
        await ready(server)


def migrate_slot(cluster: RedisCluster, slot: int, target: int) -> None:
    """Move *slot* to the primary on port *target* the way `redis-cli --cluster reshard` does."""
    source = cluster.owner(slot)
    ids = {int(row["port"]): row["id"] for row in cluster.topology()}
    cli(target, "cluster", "setslot", str(slot), "importing", ids[source])
    cli(source, "cluster", "setslot", str(slot), "migrating", ids[target])
    while keys := cli(source, "cluster", "getkeysinslot", str(slot), "100").split():
        cli(source, "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *keys)
    for port in (target, source, *(p for p in cluster.primaries() if p not in (source, target))):
        cli(port, "cluster", "setslot", str(slot), "node", ids[target])


async def test_writes_with_wait_follow_moved_and_ask_to_the_slots_new_owner(redis_cluster: RedisCluster) -> None:
    """WAIT_REPLICAS=1 sends the script and WAIT to the slot's owner by the engine's own pipeline. A slot moved
    behind the engine's back is answered MOVED: the write follows and lands. A slot caught mid-migration, its
    keys already at the target, is answered ASK, and the target (after ASKING) TRYAGAIN: a script's keys that
    do not exist yet (the idempotency key) count as split. The write is refused 503, nothing written, and its
    keyed retry after the migration lands once."""
    async with nodes(redis_cluster, 1, redis_wait_replicas=1) as servers:
        server = servers[0]
        await server.create_blog("m1")  # nobody reads it: no subscription whose trouble would refresh the slot map
        slot = blog_slot("m1")
        source = redis_cluster.owner(slot)
        target = next(port for port in redis_cluster.primaries() if port != source)
        await asyncio.to_thread(migrate_slot, redis_cluster, slot, target)
        moved = await server.publish("m1", headline="after a move")
        assert moved.status_code == 201, moved.text
        assert engine_of(server).redirects == 1  # MOVED: the slot map re-read, the write sent to the new owner

        ids = {int(row["port"]): row["id"] for row in redis_cluster.topology()}
        cli(source, "cluster", "setslot", str(slot), "importing", ids[target])
        cli(target, "cluster", "setslot", str(slot), "migrating", ids[source])
        keys = cli(target, "cluster", "getkeysinslot", str(slot), "100").split()
        cli(target, "migrate", "127.0.0.1", str(source), "", "0", "5000", "keys", *keys)
        keyed = {"Idempotency-Key": "mid-migration"}
        refused = await server.publish("m1", headline="mid-migration", headers=keyed)
        assert (refused.status_code, refused.json()["code"]) == (503, "engine_unavailable"), refused.text
        assert engine_of(server).redirects >= 3  # ASK, then TRYAGAIN at the target, until the attempts ran out
        for port in (source, target, *(p for p in redis_cluster.primaries() if p not in (source, target))):
            cli(port, "cluster", "setslot", str(slot), "node", ids[source])
        retried = await server.publish("m1", headline="mid-migration", headers=keyed)
        assert retried.status_code == 201, retried.text
        blog = await server.blog("m1")
        assert (blog["seq"], blog["post_count"]) == (2, 2)
        assert cli(source, "hlen", "lp:{m1}:posts").strip() == "2"
        metrics = (await server.http.get("/metrics")).text
        assert f"livepush_redis_redirects_total {float(engine_of(server).redirects)}" in metrics


@pytest.mark.parametrize("wait_replicas", [0, 1])
async def test_a_busy_blogs_slot_migrates_and_its_subscription_follows(redis_cluster: RedisCluster,
                                                                       wait_replicas: int) -> None:
    """The slot of a blog taking posts moves to another shard: readers miss nothing and the channel moves too.
    A third node that had not watched the blog yet still has the old slot map: its SSUBSCRIBE is answered
    MOVED, and it follows. With WAIT_REPLICAS=1 the writes go by the engine's own pipeline to the slot's
    owner, which must follow MOVED, ASK and TRYAGAIN itself."""
    async with nodes(redis_cluster, 3, redis_wait_replicas=wait_replicas) as servers, \
            httpx.AsyncClient(timeout=10) as client:
        await servers[0].create_blog("busy")
        slot = blog_slot("busy")
        source = redis_cluster.owner(slot)
        target = next(port for port in redis_cluster.primaries() if port != source)
        readers = [reader for server in servers[:2] for reader in await start_readers([server.ws_base], "busy", 2)]

        migrated = asyncio.Event()

        async def keep_publishing() -> int:
            """Posts until 10 after the migration; how many."""
            index, after = 0, 0
            while after < 10:
                await publish(client, servers[index % 2], "busy", f"busy-{index}")
                index += 1
                after += migrated.is_set()
            return index

        publishing = asyncio.create_task(keep_publishing())
        await readers[0].wait_for_seq(10)
        await asyncio.to_thread(migrate_slot, redis_cluster, slot, target)
        migrated.set()
        readers += await start_readers([servers[2].ws_base], "busy", 1)
        count = await publishing
        assert redis_cluster.owner(slot) == target
        await everyone_saw(readers, count)
        assert all(reader.snapshots == 1 for reader in readers)  # the epoch stays: a migration loses nothing
        assert engine_of(servers[2]).counters()["subscriptions_lost"] >= 1  # its SSUBSCRIBE met MOVED
        for server in servers:
            engine = engine_of(server)
            assert engine.counters()["slot_moves"] >= (server in servers[:2])  # the server's sunsubscribe push
            assert engine.subscriptions().get(f"127.0.0.1:{target}", 0) >= 1
        for reader in readers:
            await reader.stop()


async def test_a_primary_killed_moves_only_its_shards_blogs_to_a_new_epoch(redis_cluster: RedisCluster) -> None:
    """SIGKILL one primary; its replica takes over. Readers of its blogs get a new epoch and a snapshot,
    readers of the other shards' blogs notice nothing."""
    blogs = spread_blogs(12)
    async with nodes(redis_cluster, 2) as servers, httpx.AsyncClient(timeout=10) as client:
        for blog_id in blogs:
            await servers[0].create_blog(blog_id)
        victim = redis_cluster.owner(blog_slot(blogs[0]))
        hit = [blog_id for blog_id in blogs if redis_cluster.owner(blog_slot(blog_id)) == victim]
        readers = [reader for server in servers for blog_id in blogs
                   for reader in await start_readers([server.ws_base], blog_id, 1)]
        await asyncio.gather(*(publish(client, servers[0], blog_id, f"{blog_id}-0") for blog_id in blogs))
        await everyone_saw(readers, 1)
        assert cli(victim, "wait", "1", "5000").strip() == "1"  # its replica has the blogs (and maybe not more)
        redis_cluster.node(victim).stop(kill=True)
        try:
            missing = await engine_of(servers[0]).not_ready()  # the replica takes a second or more to take over
            assert missing is not None and f"shard 127.0.0.1:{victim}" in missing and "is down" in missing
            assert (await servers[0].http.get("/readyz")).status_code == 503
            await asyncio.to_thread(redis_cluster.wait_healthy)
            await asyncio.gather(*(publish(client, servers[1], blog_id, f"{blog_id}-1") for blog_id in blogs))
            await asyncio.gather(*(reader.wait_until(lambda r=reader: r.last >= 2 and (  # type: ignore[misc]
                r.blog_id not in hit or r.snapshots == 2), 30) for reader in readers))
            for reader in readers:
                if reader.blog_id in hit:
                    assert reader.snapshots == 2 and len(set(reader.epochs)) == 2, reader.blog_id
                else:
                    assert reader.snapshots == 1 and reader.seqs == [1, 2] and reader.closes == [], reader.blog_id
            assert sum(engine_of(server).counters()["epochs_moved"] for server in servers) == len(hit)
            for server in servers:
                await ready(server)
        finally:
            for reader in readers:
                await reader.stop()
            redis_cluster.node(victim).start()  # it rejoins as a replica of the promoted one
            await asyncio.to_thread(redis_cluster.wait_healthy)


@pytest.mark.timeout(180)
async def test_with_wait_replicas_a_killed_primary_loses_no_acknowledged_post(redis_cluster: RedisCluster) -> None:
    """LIVEPUSH_REDIS_WAIT_REPLICAS=1: newsrooms publish to blogs on every shard (retrying 503s with their
    Idempotency-Key) while one primary is SIGKILLed. Every acknowledged post is stored once and shown once
    to every reader: the failed shard's readers through the new epoch's snapshot, the others live."""
    blogs = spread_blogs(6)
    async with nodes(redis_cluster, 2, redis_wait_replicas=1, redis_wait_timeout=0.5, snapshot_size=200) as servers, \
            httpx.AsyncClient(timeout=10) as client:
        for blog_id in blogs:
            await servers[0].create_blog(blog_id)
        victim = redis_cluster.owner(blog_slot(blogs[0]))
        hit = {blog_id for blog_id in blogs if redis_cluster.owner(blog_slot(blog_id)) == victim}
        assert 0 < len(hit) < len(blogs)
        readers = [reader for server in servers for blog_id in blogs
                   for reader in await start_readers([server.ws_base], blog_id, 1)]
        acked: dict[str, list[str]] = {blog_id: [] for blog_id in blogs}
        stopping = asyncio.Event()

        async def newsroom(index: int, blog_id: str) -> None:
            number = 0
            while not stopping.is_set():
                number += 1
                acked[blog_id].append(await publish(client, servers[index % 2], blog_id, f"{blog_id}-{number}"))
                await asyncio.sleep(0.1)  # a newsroom's pace: every post fits in one snapshot

        publishing = [asyncio.create_task(newsroom(index, blog_id)) for index, blog_id in enumerate(blogs)]
        try:
            await wait_until(lambda: all(len(ids) >= 3 for ids in acked.values()), 20, "posts before the kill")
            redis_cluster.node(victim).stop(kill=True)
            await asyncio.to_thread(redis_cluster.wait_healthy)  # its replica took over, with no replica of its own:
            await wait_until(lambda: sum(engine_of(server).wait_timeouts for server in servers) > 0, 10,
                             "a write refused as not replicated")  # its writes answer 503 until a replica rejoins
            redis_cluster.node(victim).start()
            await asyncio.to_thread(redis_cluster.wait_healthy)
            before = {blog_id: len(ids) for blog_id, ids in acked.items()}
            await wait_until(lambda: all(len(acked[blog_id]) >= before[blog_id] + 3 for blog_id in blogs), 30,
                             "posts after the failover")
            stopping.set()
            await asyncio.gather(*publishing)
            for blog_id in blogs:
                listed = (await servers[1].http.get(f"/api/blogs/{blog_id}/posts", params={"limit": 100})).json()
                assert listed["next"] is None
                assert sorted(post["id"] for post in listed["posts"]) == sorted(acked[blog_id]), blog_id
            states = {blog_id: await servers[0].blog(blog_id) for blog_id in blogs}
            await asyncio.gather(*(reader.wait_until(lambda r=reader: (r.epoch, r.last) == (  # type: ignore[misc]
                states[r.blog_id]["epoch"], states[r.blog_id]["seq"]), 30) for reader in readers))
            for reader in readers:
                assert reader.posts == set(acked[reader.blog_id]) and not reader.gaps and not reader.duplicates
                assert len(set(reader.epochs)) == (2 if reader.blog_id in hit else 1), reader.blog_id
        finally:
            stopping.set()
            await asyncio.gather(*publishing, return_exceptions=True)
            for reader in readers:
                await reader.stop()
            if redis_cluster.node(victim).process is None:
                redis_cluster.node(victim).start()
            await asyncio.to_thread(redis_cluster.wait_healthy)


async def test_a_tls_cluster_carries_posts_to_readers_on_two_nodes() -> None:
    """`rediss+cluster://…?ssl_ca_certs=`: a Cluster whose clients and bus speak TLS only. Scripts, the index,
    the sharded subscriptions (one TLS connection per shard) and the canaries all go over TLS."""
    with running_cluster(replicas=0, tls=True) as tls_cluster:
        blogs = spread_blogs(6)
        assert tls_cluster.url.startswith("rediss+cluster://")
        async with nodes(tls_cluster, 2) as servers, httpx.AsyncClient(timeout=10) as client:
            for blog_id in blogs:
                await servers[0].create_blog(blog_id)
            readers = [reader for server in servers for blog_id in blogs
                       for reader in await start_readers([server.ws_base], blog_id, 1)]
            await asyncio.gather(*(publish(client, servers[round_ % 2], blog_id, f"{blog_id}-{round_}")
                                   for round_ in range(3) for blog_id in blogs))
            await everyone_saw(readers, 3)
            assert all(reader.seqs == [1, 2, 3] for reader in readers)
            assert len(engine_of(servers[1]).subscriptions()) == 3
            await ready(servers[1])
            for reader in readers:
                await reader.stop()


async def test_a_cluster_url_naming_a_plain_redis_fails_at_start(redis_process: RedisProcess) -> None:
    """REDIS_URL=redis+cluster://... pointing at a Redis without cluster mode: start fails, naming the setting."""
    engine = ClusterEngine(f"redis+cluster://127.0.0.1:{redis_process.port}")
    with pytest.raises(EngineUnavailable, match=r"REDIS_URL names a Redis Cluster, but 127\.0\.0\.1:\d+ is not one"):
        await engine.start(lambda frame: None, lambda blogs=None: None)
    await engine.close()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
           "REDIS_URL": f"redis+cluster://127.0.0.1:{redis_process.port}"}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "server", "serve", "--port", str(free_port())],
                                   env=env, cwd=ROOT, capture_output=True, timeout=30, check=False)
    assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
    assert done.stderr.decode().startswith("livepush: REDIS_URL names a Redis Cluster, but 127.0.0.1:"), done.stderr
    with pytest.raises(ClusterUrlError, match=r"cluster node .127\.0\.0\.1:x. is not host:port"):
        ClusterEngine("redis+cluster://127.0.0.1:x")
    for bad in ("redis+cluster://127.0.0.1:x", "redis+cluster://", "redis+cluster://h1:7000,,h2:7001"):
        with pytest.raises(SettingsError, match="REDIS_URL: cluster node"):
            Settings.from_env({"REDIS_URL": bad})
    for bad, says in (("redis+cluster://h1:7000?ssl_ca_certs=/ca.crt", "option 'ssl_ca_certs' needs TLS"),
                      ("rediss+cluster://h1:7000?tls=1", "unknown option 'tls'"),
                      ("rediss+cluster://h1:7000?ssl_cert_reqs=maybe", "option 'ssl_cert_reqs' must be one of")):
        with pytest.raises(SettingsError, match=f"REDIS_URL: {says}"):
            Settings.from_env({"REDIS_URL": bad})
