"""Fan-out on a Redis Cluster: sharded pub/sub subscriptions that know when they were interrupted.

`ShardedFanout`: one plain connection per primary that owns a watched blog, carrying an
SSUBSCRIBE per watched blog of that shard; `watch` returns once the subscription is confirmed, and
the last `unwatch` of a shard's blogs closes its connection. We own these connections rather than
use redis-py's ClusterPubSub because livepush must know when a subscription was interrupted (to
heal the gap from history) and ClusterPubSub reconciles silently. Any trouble on a shard's
connection (lost, MOVED, or the server's own `sunsubscribe` when a slot leaves the node) re-reads
the slot map and resubscribes every watched blog at its current owner; the engine is then told
which blogs had to be resubscribed (only those may have missed events).

`ShardCanaries`: the readiness canary through every shard. The engine that uses both is
server.engine.redis_cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from itertools import count
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError, SlotNotCoveredError

from server.engine import EngineUnavailable
from server.engine.redis import channel

log = logging.getLogger("livepush.redis.cluster")
TROUBLE = (RedisError, RedisClusterException, OSError, TimeoutError)
"""What a Cluster connection or command may raise when a node is lost, moved or refusing."""
_CONFIRM_TIMEOUT = 2.0


_TAGS: dict[tuple[int, str], str] = {}


def tag_for_slot(slot: int, prefix: str = "") -> str:
    """A short hash tag, starting with *prefix*, whose keys fall in *slot* (about 16 000 CRCs to find, once)."""
    if (slot, prefix) not in _TAGS:
        _TAGS[slot, prefix] = next(f"{prefix}{n}" for n in count() if key_slot(f"{prefix}{n}".encode()) == slot)
    return _TAGS[slot, prefix]


def blog_slot(blog_id: str) -> int:
    return key_slot(channel(blog_id).encode())


def owner_of(cluster: RedisCluster, slot: int) -> ClusterNode:
    """The primary owning *slot* in the client's slot map; SlotNotCoveredError when none does (yet)."""
    try:
        return cluster.nodes_manager.get_node_from_slot(slot)
    except (KeyError, IndexError) as exc:
        raise SlotNotCoveredError(f"slot {slot} is not covered by the cluster's slot map") from exc



class _Shard:
    """One primary's SSUBSCRIBE connection and the shard channels it carries."""

    def __init__(self, name: str, client: aioredis.Redis) -> None:
        self.name = name
        self.client = client
        self.pubsub: PubSub = client.pubsub()
        self.channels: set[bytes] = set()
        self.pending: dict[bytes, asyncio.Future[None]] = {}
        self.leaving: set[bytes] = set()
        self.reader: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(EngineUnavailable(f"shard {self.name} closed"))
                future.exception()  # whoever awaited it has been told; nobody else needs to be
        with contextlib.suppress(*TROUBLE):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(*TROUBLE):
            await self.client.aclose()


class ShardedFanout:
    """SSUBSCRIBE to each watched blog's channel at the primary owning its slot, one connection per shard."""

    def __init__(self, cluster: RedisCluster, options: dict[str, Any], on_frame: Callable[[bytes, bytes], None],
                 on_healed: Callable[[set[str]], None]) -> None:
        self._cluster = cluster
        self._options = options
        self._on_frame = on_frame
        self._on_healed = on_healed
        self._watched: set[str] = set()
        self._shards: dict[str, _Shard] = {}
        self._lock = asyncio.Lock()
        self._healing: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self._missing: set[str] = set()  # shards whose subscriptions are being re-established
        self._again = False  # trouble arrived while a heal was running
        self._closed = False
        self.resubscribes = 0  # times the subscriptions were rebuilt after trouble
        self.slot_moves = 0  # shard channels the server dropped because their slot left the node
        self.lost = 0  # shard connections lost or refused (MOVED, errors)

    # what the engine calls

    async def watch(self, blog_id: str) -> None:
        self._watched.add(blog_id)
        try:
            async with self._lock:
                await self._subscribe([blog_id])
        except TROUBLE as exc:
            self._heal_soon()
            raise EngineUnavailable(f"cannot subscribe to blog {blog_id}: {exc}") from exc

    async def unwatch(self, blog_id: str) -> None:
        self._watched.discard(blog_id)
        name = channel(blog_id).encode()
        async with self._lock:
            for shard in list(self._shards.values()):
                if name not in shard.channels:
                    continue
                shard.channels.discard(name)
                if not shard.channels and not shard.pending:
                    del self._shards[shard.name]
                    await shard.close()
                    continue
                shard.leaving.add(name)
                with contextlib.suppress(*TROUBLE):
                    await shard.pubsub.sunsubscribe(name)

    def subscriptions(self) -> dict[str, int]:
        """Shard channels subscribed now, per primary ("host:port")."""
        return {name: len(shard.channels) for name, shard in self._shards.items()}

    def problem(self) -> str | None:
        """What is missing in the fan-out right now, or None."""
        if self._missing:
            return f"subscription to Redis Cluster shard {', '.join(sorted(self._missing))} lost; resubscribing"
        return None

    async def close(self) -> None:
        self._closed = True
        if self._healing is not None:
            self._healing.cancel()
            await asyncio.gather(self._healing, return_exceptions=True)
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()

    # subscribing

    def _owner(self, blog_id: str) -> ClusterNode:
        return owner_of(self._cluster, blog_slot(blog_id))

    def _shard(self, node: ClusterNode) -> _Shard:
        shard = self._shards.get(node.name)
        if shard is None:
            if self._closed:  # a watch still under way when the engine closed must not open a connection
                raise EngineUnavailable("the Cluster fan-out is closed")
            client = aioredis.Redis(host=node.host, port=int(node.port), socket_connect_timeout=1.0,
                                    retry=Retry(NoBackoff(), 0), health_check_interval=2, driver_info=None,
                                    **self._options)
            shard = self._shards[node.name] = _Shard(node.name, client)
        return shard

    async def _subscribe(self, blog_ids: Iterable[str]) -> list[str]:
        """SSUBSCRIBE each blog's channel at its owner (unless it is already) and await every confirmation;
        the blogs that were not subscribed before (they may have missed events).

        On any failure the shards still waiting for a confirmation are closed, so a retry starts afresh.
        """
        try:
            return await self._subscribe_at_owners(blog_ids)
        except BaseException:
            for shard in list(self._shards.values()):
                if shard.pending:
                    del self._shards[shard.name]
                    await shard.close()
            raise

    async def _subscribe_at_owners(self, blog_ids: Iterable[str]) -> list[str]:
        waiting: list[asyncio.Future[None]] = []
        fresh: list[str] = []
        for blog_id in blog_ids:
            shard = self._shard(self._owner(blog_id))
            name = channel(blog_id).encode()
            if name in shard.channels:
                continue
            fresh.append(blog_id)
            future = shard.pending.get(name)
            if future is None:
                future = shard.pending[name] = asyncio.get_running_loop().create_future()
                shard.leaving.discard(name)
                await shard.pubsub.ssubscribe(name)
                if shard.reader is None:
                    shard.reader = asyncio.create_task(self._read(shard), name=f"livepush-shard-{shard.name}")
            waiting.append(future)
        if waiting:
            async with asyncio.timeout(_CONFIRM_TIMEOUT):
                await asyncio.gather(*waiting)
        return fresh

    async def _read(self, shard: _Shard) -> None:
        try:
            while True:
                message = await shard.pubsub.get_message(timeout=5.0)
                if message is not None:
                    self._on_message(shard, message)
        except asyncio.CancelledError:
            raise
        except TROUBLE as exc:
            self._trouble(shard, f"failed ({type(exc).__name__}: {exc})")

    def _on_message(self, shard: _Shard, message: dict[str, Any]) -> None:
        kind, name = message["type"], message.get("channel", b"")
        if kind == "smessage":
            try:
                self._on_frame(name, message["data"])
            except ValueError:  # not "<epoch> <seq> <event>": not ours (a stray SPUBLISH); the relay never sees it
                log.warning("redis cluster: ignored a malformed message on %r", name)
        elif kind == "ssubscribe":
            future = shard.pending.pop(name, None)
            shard.channels.add(name)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "sunsubscribe":
            if name in shard.leaving:
                shard.leaving.discard(name)
            elif name in shard.channels:
                # Not asked for: the server dropped the channel because its slot left this node.
                self.slot_moves += 1
                self._trouble(shard, f"dropped channel {name.decode()} (its slot moved)")

    # healing

    def _trouble(self, shard: _Shard, what: str) -> None:
        if self._closed:
            return
        self.lost += 1
        self._missing.add(shard.name)
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
            log.warning("redis cluster: subscription connection to %s %s; resubscribing %d blogs",
                        shard.name, what, len(shard.channels))
            self._closing.add(task := asyncio.ensure_future(shard.close()))
            task.add_done_callback(self._closing.discard)
        self._heal_soon()

    def _heal_soon(self) -> None:
        if self._closed:
            return
        if self._healing is None or self._healing.done():
            self._healing = asyncio.create_task(self._heal(), name="livepush-cluster-heal")
        else:
            self._again = True  # trouble during a heal: that heal may have counted the shard as fine

    async def _heal(self) -> None:
        """Re-read the slot map and subscribe every watched blog at its owner, until that succeeds with no
        new trouble meanwhile."""
        delay, failing = 0.05, False
        resubscribed: set[str] = set()  # only these may have missed events: the others' shards never dropped them
        while True:
            await asyncio.sleep(0)  # let a failing reader finish closing its shard
            self._again = False
            try:
                await self._cluster.nodes_manager.initialize()
                async with self._lock:
                    await self._drop_misplaced()
                    resubscribed.update(await self._subscribe(sorted(self._watched)))
                if not self._again:
                    break
                continue
            except asyncio.CancelledError:
                raise
            except (*TROUBLE, EngineUnavailable) as exc:
                if not failing:
                    log.error("redis cluster: cannot resubscribe yet (%s); retrying", exc)
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.resubscribes += 1
        self._missing.clear()
        if failing:
            log.warning("redis cluster: subscriptions restored")
        self._on_healed(resubscribed)

    async def _drop_misplaced(self) -> None:
        """Close shard connections to nodes that are no longer primaries or hold channels of slots they lost."""
        primaries = {node.name for node in self._cluster.get_primaries()}
        for shard in list(self._shards.values()):
            misplaced = [name for name in shard.channels if owner_of(self._cluster, key_slot(name)).name != shard.name]
            if shard.name not in primaries or misplaced:
                del self._shards[shard.name]
                await shard.close()


class ShardCanaries:
    """The readiness canary (server.canary) through every shard, not just one.

    One canary blog per primary (`~c<n>`, never a valid blog id), hashed into the first slot that
    primary owns, so its shard channel lives there. A round of canaries counts as heard, and the
    process's Canary is told, only once every shard has returned this process's token: one shard
    whose subscription went deaf makes the process deaf, as one Redis does.
    """

    LATE = 5.0  # seconds a round may take before the shards holding it up are logged

    def __init__(self) -> None:
        self.blogs: dict[str, str] = {}  # canary blog id -> the primary whose first slot it hashes to
        self._token = b""
        self._waiting: set[str] = set()
        self._since = 0.0
        self._logged = False

    @staticmethod
    def wanted(slots: dict[int, list[ClusterNode]]) -> dict[str, str]:
        """One canary blog per primary of the slot map *slots*."""
        first: dict[str, int] = {}
        for slot, nodes in slots.items():
            if nodes and slot < first.get(nodes[0].name, 1 << 14):
                first[nodes[0].name] = slot
        return {tag_for_slot(slot, "~c"): name for name, slot in first.items()}

    def sending(self, token: bytes) -> None:
        """A round starts unless one is still waiting (whose shards get the canary again)."""
        self._token = token
        self._waiting &= set(self.blogs)
        if not self._waiting:
            self._waiting, self._since, self._logged = set(self.blogs), time.monotonic(), False
        elif not self._logged and time.monotonic() - self._since > self.LATE:
            self._logged = True
            log.warning("redis cluster: canary not back through shard %s after %.0fs",
                        ", ".join(sorted(self.blogs[blog] for blog in self._waiting)), self.LATE)

    def heard(self, blog_id: str, token: bytes) -> bool:
        """Whether this receipt completes a round."""
        if token != self._token or blog_id not in self._waiting:
            return False
        self._waiting.discard(blog_id)
        return not self._waiting
