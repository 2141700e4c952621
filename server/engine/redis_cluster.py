"""The Redis engine on a Redis Cluster (`REDIS_URL=redis+cluster://h1:7000,h2:7001`): sharded pub/sub, per-shard epochs.

Storage is the single-Redis engine's, unchanged: every key of a blog carries the hash tag `{<blog>}`,
so each Lua script touches one slot; the scripts are the same files with `PUBLISH` turned into
`SPUBLISH` (a shard channel `lp:{<blog>}:live` lives in the blog's slot, so it is legal inside them).
What spans blogs works across slots:

- the blog index `lp:blogs` is one key, only ever read or written by single-key commands outside the
  scripts (SADD after a create, SMEMBERS to list), so it lives on whichever shard owns its slot;
- the identity stamp is one key per shard, `lp:identity:{<tag>}`, the tag chosen to hash to the
  shard's first slot: it travels with that shard's data, so a failover of one shard (a new
  replication id on its new primary) moves only the blogs of that shard to a new epoch;
- the readiness canary goes through every shard: one canary blog per primary, hashed into the
  lowest slot it owns (`ShardCanaries`).

Fan-out is server.engine.cluster_fanout's (`ShardedFanout`, one SSUBSCRIBE connection per shard, and
`ShardCanaries`); after a shard's trouble this engine re-checks the shards' identities and asks the
relay to re-read only the blogs that had to be resubscribed (`resync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

from server.engine import CANARY_BLOG, Deliver, Engine, EngineUnavailable, Limits, Resync
from server.engine.cluster_fanout import TROUBLE, ShardCanaries, ShardedFanout, blog_slot, owner_of, tag_for_slot
from server.engine.outbox_redis import RedisOutbox
from server.engine.redis import BLOG_IDS, BLOGS, BLOGS_UPDATED, RedisEngine, _keys, _unavailable_now, channel
from server.parsing import parse_cluster_url
from server.redis_url import RedisTarget
from server.wire import Frame

log = logging.getLogger("livepush.redis.cluster")
T = TypeVar("T")


def not_a_cluster(nodes: str) -> str:
    return (f"REDIS_URL names a Redis Cluster, but {nodes} is not one (cluster support disabled); "
            "use redis:// for a single Redis")


async def startup_problem(url: str) -> str | None:
    """What `serve` must refuse before it starts: the first startup node that answers has no cluster mode.
    None when one does, or none answers yet (the server then starts and answers 503 until one does)."""
    nodes, options = parse_cluster_url(url)
    for host, port in nodes:
        client = aioredis.Redis(host=host, port=port, socket_connect_timeout=1.0, socket_timeout=2.0,
                                retry=Retry(NoBackoff(), 0), driver_info=None, **options)
        try:
            info = await client.info("cluster")
        except TROUBLE:
            continue
        finally:
            await client.aclose()
        return None if info.get("cluster_enabled") else not_a_cluster(f"{host}:{port}")
    return None


def cluster_client(url: str, socket_timeout: float = 2.0) -> RedisCluster:
    """The client every Cluster engine and outbox uses: like make_client, no retries (a write script retried
    after a timeout could run twice); MOVED and ASK are still followed, and a shard that is down fails
    only the commands for its slots."""
    nodes, options = parse_cluster_url(url)
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes], require_full_coverage=False,
                        socket_connect_timeout=1.0, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0),
                        driver_info=None, **options)


class ClusterOutbox(RedisOutbox):
    """The webhook outbox on a Redis Cluster: its keys already share a hash tag per endpoint (`{hook:<id>}`)
    and its scripts touch one endpoint each; only the client differs."""

    def __init__(self, url: str) -> None:
        self._redis = cast(aioredis.Redis, cluster_client(url))
        folder = resources.files("server.engine") / "lua"
        self._scripts = {name: self._redis.register_script((folder / f"hook_{name}.lua").read_text())
                         for name in ("lease", "advance", "release")}

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await super()._call(command)
        except RedisClusterException as exc:
            raise EngineUnavailable(str(exc)) from exc


class ClusterEngine(RedisEngine):
    """The Redis engine on a Redis Cluster (>= 7.0: sharded pub/sub)."""

    name = "redis-cluster"

    def __init__(self, url: str, limits: Limits | None = None, identity_interval: float = 10.0,
                 wait_replicas: int = 0, wait_timeout: float = 1.0) -> None:
        self._nodes, self._options = parse_cluster_url(url)
        super().__init__(url, limits, identity_interval, wait_replicas, wait_timeout)
        self._cluster = cast(RedisCluster, self._redis)
        self._fanout = ShardedFanout(self._cluster, self._options, self._on_message, self._healed)
        self.index_failures = 0  # acknowledged writes whose blog-list update failed
        self.redirects = 0  # MOVED, ASK and TRYAGAIN answers the WAIT pipeline followed
        self._reserve = self._redis.register_script(_RESERVE)
        self._confirmed: dict[str, str] = {}  # primary name -> identity confirmed on it
        self._shard_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # one check per shard at once
        self._suspect = False  # replaced by per-shard confirmation (_confirmed)
        self._canaries = ShardCanaries()

    def _client(self, target: RedisTarget, socket_timeout: float) -> aioredis.Redis:
        return cast(aioredis.Redis, cluster_client(target.url, socket_timeout))

    def _script(self, name: str) -> AsyncScript:
        body = super()._script(name).script
        text = body.decode() if isinstance(body, bytes) else str(body)
        return self._redis.register_script(text.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',"))

    def _url_for_logs(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self._nodes)

    # lifecycle

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        self._deliver, self._resync = deliver, resync
        try:
            await self._cluster.initialize()
        except TROUBLE as exc:
            if "cluster mode is not enabled" in str(exc).lower():
                raise EngineUnavailable(not_a_cluster(self._url_for_logs())) from exc
            log.error("redis cluster at %s unreachable at start (%s); retrying in the background",
                      self._url_for_logs(), exc)
        with contextlib.suppress(EngineUnavailable, *TROUBLE):
            await self._check_identity()
        self._spawn(self._watch_canaries())
        self._spawn(self._check_identity_every_while())

    async def _watch_canaries(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._follow_canaries()
                return
            except (EngineUnavailable, *TROUBLE):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _follow_canaries(self) -> None:
        """Watch one canary blog per primary of the current slot map; leave those whose slot moved away."""
        wanted = ShardCanaries.wanted(self._cluster.nodes_manager.slots_cache)
        for blog_id in set(self._canaries.blogs) - set(wanted):
            del self._canaries.blogs[blog_id]
            await self._fanout.unwatch(blog_id)
        for blog_id in set(wanted) - set(self._canaries.blogs):
            await self._fanout.watch(blog_id)
            self._canaries.blogs[blog_id] = wanted[blog_id]

    async def close(self) -> None:
        await self._fanout.close()
        await super().close()

    def counters(self) -> dict[str, int]:
        return {**super().counters(), "resubscribes": self._fanout.resubscribes,
                "slot_moves": self._fanout.slot_moves, "subscriptions_lost": self._fanout.lost,
                "index_failures": self.index_failures, "redirects": self.redirects}

    def subscriptions(self) -> dict[str, int]:
        return self._fanout.subscriptions()

    async def not_ready(self) -> str | None:
        """What keeps this process from serving every blog right now (a shard down, a subscription being
        re-established), or None. Every primary is PINGed at once, each given a second."""
        primaries = self._cluster.get_primaries()
        if not primaries:
            return f"no Redis Cluster shard reachable at {self._url_for_logs()}"
        answers = await asyncio.gather(*(asyncio.wait_for(self._cluster.ping(target_nodes=node), 1.0)
                                         for node in primaries), return_exceptions=True)
        down = [node.name for node, answer in zip(primaries, answers, strict=True) if isinstance(answer, BaseException)]
        if down:
            return f"Redis Cluster shard {', '.join(sorted(down))} is down"
        return self._fanout.problem()

    # fan-out

    async def watch(self, blog_id: str) -> None:
        await self._fanout.watch(blog_id)

    async def unwatch(self, blog_id: str) -> None:
        await self._fanout.unwatch(blog_id)

    async def send_canary(self, token: bytes) -> None:
        self._canaries.sending(token)
        sent = await asyncio.gather(*(self._cluster.spublish(channel(blog_id), b"- 0 " + token)
                                      for blog_id in self._canaries.blogs), return_exceptions=True)
        failed = next((result for result in sent if isinstance(result, BaseException)), None)
        if isinstance(failed, TROUBLE):
            raise EngineUnavailable(str(failed)) from failed
        if failed is not None:
            raise failed

    def _on_message(self, channel_name: bytes, data: bytes) -> None:
        epoch, seq, event = data.split(b" ", 2)
        blog_id = channel_name[4:-6].decode()
        if self._deliver is None:
            return
        if blog_id in self._canaries.blogs:
            if self._canaries.heard(blog_id, event):
                self._deliver(Frame(CANARY_BLOG, 0, event))
            return
        self._deliver(Frame(blog_id, int(seq), event, epoch.decode()))

    def _healed(self, resubscribed: set[str]) -> None:
        self.reconnects += 1
        self._spawn(self._after_heal(resubscribed - set(self._canaries.blogs)))

    async def _after_heal(self, resubscribed: set[str]) -> None:
        """Re-check the shards' identities (a failover moves its blogs to a new epoch), follow the canaries
        to the new slot map, and have the relay re-read the blogs whose subscription was interrupted."""
        with contextlib.suppress(EngineUnavailable, *TROUBLE):
            await self.check_identity()
        with contextlib.suppress(EngineUnavailable, *TROUBLE):
            await self._follow_canaries()  # on failure the fan-out heals again, and this runs again
        if self._resync is not None:
            self._resync(resubscribed)

    # errors and identity, per shard

    def _unavailable(self, exc: BaseException) -> EngineUnavailable:
        if not (isinstance(exc, ClusterError | RedisClusterException) or _unavailable_now(exc)):
            raise exc
        # A lost node or a demoted primary: confirm whom we talk to before its next script. Only that
        # shard, when redis-py says which (it tags the error with the node): the others are fine.
        node = getattr(exc, "connection", None)
        if isinstance(node, ClusterNode):
            self._confirmed.pop(node.name, None)
        else:
            self._confirmed.clear()
        return EngineUnavailable(str(exc))

    async def _run(self, name: str, blog_id: str, args: Sequence[Any], extra_keys: Sequence[str] = ()) -> Any:
        """The single-Redis script, with the blog indexes (other slots) kept outside it (see _SHADOWS)."""
        if name == "create_blog" and int(args[6]) > 0 and not await self._room_for_a_blog(blog_id, int(args[6])):
            return [b"quota", args[6]]
        keys = [_SHADOWS[key].format(blog_id) if key in _SHADOWS else key for key in extra_keys]
        reply = await self._run_script(name, blog_id, args, keys)
        if name in _UPDATED_MS and reply and reply[0] == b"ok":
            await self._index(name, blog_id, int(args[_UPDATED_MS[name]]))
        return reply

    async def _room_for_a_blog(self, blog_id: str, max_blogs: int) -> bool:
        """Reserve the blog's place in `lp:blogs` (atomically, on that key's shard) before creating it."""
        try:
            return bool(await self._reserve(keys=[BLOGS], args=[blog_id, max_blogs]))
        except TROUBLE as exc:
            raise self._unavailable(exc) from exc

    async def _index(self, name: str, blog_id: str, updated_ms: int) -> None:
        """Bring the blog indexes up to an acknowledged write. It is stored already: a failure here is
        logged and leaves the blog list (only) behind until the blog's next write."""
        try:
            if name == "create_blog":
                await self._cluster.sadd(BLOGS, blog_id)
                await self._cluster.zadd(BLOG_IDS, {blog_id: 0})
            await self._cluster.zadd(BLOGS_UPDATED, {blog_id: updated_ms}, gt=name != "create_blog")
        except TROUBLE as exc:
            self.index_failures += 1
            log.error("redis cluster: blog %s is stored but the blog list could not be updated (%s)", blog_id, exc)

    async def _run_script(self, name: str, blog_id: str, args: Sequence[Any], extra_keys: Sequence[str]) -> Any:
        try:
            node = owner_of(self._cluster, blog_slot(blog_id))
        except TROUBLE:
            node = None
        if node is not None and node.name not in self._confirmed:
            async with self._shard_locks[node.name]:
                if node.name not in self._confirmed:
                    try:
                        await self._check_shard(node)
                    except TROUBLE as exc:
                        raise self._unavailable(exc) from exc
        return await super()._run(name, blog_id, args, extra_keys)

    # LIVEPUSH_REDIS_WAIT_REPLICAS: WAIT counts the writes of its own connection, and the cluster client
    # sends keyless commands to any node, so the script and WAIT go pipelined on one connection of the
    # primary that owns the blog's slot.

    async def _run_and_wait(self, name: str, keys: list[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        for _ in range(2):
            reply, acked = await self._at_owner(keys[0], ("EVALSHA", script.sha, len(keys), *keys, *args),
                                                ("WAIT", *self._wait))
            if not isinstance(reply, NoScriptError):
                break
            await self._cluster.execute_command("SCRIPT LOAD", script.script, target_nodes=RedisCluster.PRIMARIES)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, list) and reply[0] == b"ok":
            self._replicated(acked)
        return reply

    async def _replay_replicated(self, key: str, ttl: int) -> None:
        try:
            _, acked = await self._at_owner(key, ("EXPIRE", key, ttl), ("WAIT", *self._wait))
        except TROUBLE as exc:
            raise self._unavailable(exc) from exc
        self._replicated(acked)

    async def _at_owner(self, key: str, *commands: tuple[Any, ...]) -> list[Any]:
        """*commands* pipelined on one connection of the primary owning *key*'s slot; each one's reply or error.

        MOVED and ASK (the slot moved or is moving) and TRYAGAIN (its keys are split mid-migration) mean
        the first command did not run: follow, as the cluster client does, a few times."""
        slot, asking = key_slot(key.encode()), None
        for attempt in range(_REDIRECTS):
            node = asking or owner_of(self._cluster, slot)
            batch = [PipelineCommand(index, *command) for index, command in enumerate(
                (("ASKING",), *commands) if asking else commands)]
            try:
                await node.execute_pipeline(batch)
            except TROUBLE:
                self._confirmed.pop(node.name, None)
                raise
            replies = [command.result for command in batch[1 if asking else 0:]]
            first, asking = replies[0], None
            if isinstance(first, AskError | TryAgainError):
                self.redirects += 1
            if isinstance(first, MovedError):
                await self._cluster.nodes_manager.initialize()
            elif isinstance(first, AskError):
                asking = self._cluster.nodes_manager.get_node(first.host, first.port)
                if asking is None:
                    await self._cluster.nodes_manager.initialize()
            elif isinstance(first, TryAgainError):
                await asyncio.sleep(0.05 * (attempt + 1))
            else:
                return replies
        raise EngineUnavailable(f"the slot of {key} kept moving ({_REDIRECTS} redirects)")

    async def _check_identity(self) -> int:
        moved = 0
        for node in self._cluster.get_primaries():
            try:
                moved += await self._check_shard(node)
            except TROUBLE as exc:
                log.warning("redis cluster: cannot check the identity of shard %s (%s)", node.name, exc)
                self._confirmed.pop(node.name, None)
        self.identity = ",".join(sorted(self._confirmed.values())) or None
        return moved

    async def _check_shard(self, node: ClusterNode) -> int:
        """Move this shard's blogs to a new epoch if its data now sits on another server than its stamp says."""
        slots = [slot for slot, nodes in self._cluster.nodes_manager.slots_cache.items() if nodes[0].name == node.name]
        if not slots:
            return 0
        stamp_key = f"lp:identity:{{{tag_for_slot(min(slots))}}}"
        identity_raw, role, stamp = await self._scripts["identity"](keys=[stamp_key])
        identity = identity_raw.decode()
        if role != b"master":
            self._confirmed.pop(node.name, None)
            return 0
        moved = 0
        if stamp is not None and stamp.decode() != identity:
            moved = await self._rebase_shard(set(slots))
            log.warning("redis cluster: shard %s is not the server its blogs' epochs were confirmed on (was %s, now "
                        "%s: failed over or restarted); moved %d blogs to a new epoch", node.name, stamp.decode(),
                        identity, moved)
        if stamp is None or stamp.decode() != identity:
            await self._cluster.set(stamp_key, identity)
        self._confirmed[node.name] = identity
        return moved

    async def _rebase_shard(self, slots: set[int]) -> int:
        members = await self._cluster.smembers(BLOGS)
        names = (member.decode() if isinstance(member, bytes) else member for member in members)
        ids = sorted(blog for blog in names if blog_slot(blog) in slots)
        moved = 0
        for blog_id in ids:
            reply = await self._scripts["rebase"](keys=_keys(blog_id), args=[secrets.token_hex(4), channel(blog_id)])
            moved += reply[0] == b"moved"
        self.epochs_moved += moved
        return moved




# The write scripts keep the blog indexes (lp:blogs, lp:blog-ids, lp:blogs-updated) in the same atomic step on a
# single Redis. On a Cluster those live in other slots, so the scripts get keys of the blog's own slot in their
# place (a one-member set or zset per blog, ~100 bytes), and the engine updates the real indexes right after.
_SHADOWS = {BLOGS: "lp:{{{}}}:in-blogs", BLOG_IDS: "lp:{{{}}}:in-blog-ids", BLOGS_UPDATED: "lp:{{{}}}:in-blogs-updated"}
# Where each write's "updated_ms" sits in its script arguments (the blog's updated_ms after the write is the
# greater of it and the one before for create_post, which ZADD GT gives).
# The blog quota, atomically on lp:blogs' own shard: a place is taken before the create script runs. A create
# that then fails leaves its id counted (not listed: lp:blog-ids is written after) until an admin removes it.
_RESERVE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
return redis.call('SADD', KEYS[1], ARGV[1])
"""
_REDIRECTS = 5
_UPDATED_MS = {"create_blog": 3, "update_blog": 5, "create_post": 5, "update_post": 7, "delete_post": 3}

_: type[Engine] = ClusterEngine
