"""The Redis engine: blogs, posts, history and fan-out in Redis, for any number of processes and nodes.

Every write is one Lua script (server/engine/lua/) that checks its preconditions, assigns the
blog's next seq, stores, appends the event to a bounded stream and PUBLISHes it, atomically.
A write is acknowledged only once that script has returned.

Each process holds one pattern subscription (`lp:{*}:live`) and hands what arrives to the
relay, which fills any gap from the stream. Pub/sub is at most once: when the subscription's
connection comes back, `resync` asks the relay to check every watched blog against history.

Keys of one blog share the hash tag `{<blog>}` so a move to Redis Cluster keeps a blog on one
shard (see docs/OPERATIONS.md for the layout). Redis errors become EngineUnavailable (HTTP 503);
writes are never retried by the client, because a retried script could apply twice. A write script
that was sent and then met a timeout or a lost connection may have run: that is OutcomeUnknown,
never "nothing was written" (only a failure to connect, or Redis refusing the script, says that).

A Redis that restarted, or a replica promoted in a failover, may hold a history that lost its
newest events while keeping each blog's epoch. `check_identity` compares the server's identity
(run_id and replication id) with the one stamped in `lp:identity`; when it differs, every blog
moves to a new epoch, so a reader that saw a lost event resumes into a snapshot instead of being
told its resume was complete. It runs at start, after every reconnection of the subscription,
before the first script after a connection error, and every `identity_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server import wire
from server.engine import (
    CANARY_BLOG,
    HISTORY_CHUNK,
    HISTORY_CHUNK_BYTES,
    BlogEnded,
    BlogExists,
    BlogNotFound,
    BlogOrder,
    BlogPage,
    Committed,
    Deliver,
    Engine,
    EngineUnavailable,
    History,
    Idempotency,
    IdempotencyMismatch,
    Limits,
    NotReplicated,
    OutcomeUnknown,
    PostIdTaken,
    PostNotFound,
    QuotaExceeded,
    Resync,
    Snapshot,
    StaleVersion,
    parse_updated_cursor,
    updated_cursor,
)
from server.engine.sentinel import SentinelWatch, UnknownPrimary, check_primary_known, sentinel_client, sentinels_of
from server.model import Blog, Post, format_time
from server.paging import Order, Page, Position, millis, page_of
from server.redis_url import RedisTarget, parse_redis_url
from server.wire import Frame

log = logging.getLogger("livepush.redis")

BLOGS = "lp:blogs"
BLOG_IDS = "lp:blog-ids"
BLOGS_UPDATED = "lp:blogs-updated"
IDENTITY = "lp:identity"
PATTERN = "lp:{*}:live"
_CAS_ATTEMPTS = 20
_STATIC_FIELDS = ("id", "title", "description", "authors", "source", "timezone", "created_at")
# Errors that mean "Redis cannot take this now", answered 503: the connection is gone or timed out,
# the server is a replica (a failover in progress), or it refuses writes: MISCONF (its disk is full,
# AOF or RDB cannot be written), OOM (maxmemory), NOREPLICAS (min-replicas-to-write), MASTERDOWN,
# BUSY (a script runs too long). Redis 7 keeps the code first in a script's error; 6.2 puts it after
# ": ". Any other error is a bug and surfaces as one.
_LOST = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)
_REFUSED = re.compile(r"(^|: )(MISCONF|OOM|NOREPLICAS|MASTERDOWN|BUSY|TRYAGAIN) ")
_FAILURES = (RedisError, OSError)


# What redis-py raises before a command leaves: it could not connect, or found no usable connection
# (or no primary); or its Sentinel pool's word for a READONLY answer. After the command was sent, a
# timeout or a lost connection says nothing about whether it ran.
_NOT_SENT = re.compile(r"connecting|No connection available|Connection not ready|Connection has data|"
                       r"No master found|The previous master is now a slave")
_WRITES = frozenset({"create_blog", "update_blog", "create_post", "update_post", "delete_post"})
_REBASE_BATCH = 100


def _unavailable_now(exc: BaseException) -> bool:
    return isinstance(exc, _LOST) or (isinstance(exc, ResponseError) and bool(_REFUSED.search(str(exc))))


def _maybe_ran(exc: BaseException) -> bool:
    """Whether a script that failed with *exc* may still have run (Redis answered nothing about it)."""
    return not isinstance(exc, ResponseError) and not _NOT_SENT.search(str(exc))


def make_client(url: str | RedisTarget, health_check_interval: float = 2.0,
                socket_timeout: float = 2.0) -> aioredis.Redis:
    """The client every RedisEngine uses: fail fast, never retry, never send CLIENT SETINFO.

    For one Redis, the URL's server; behind Sentinels, whichever server they name the primary
    when a connection is opened (server.engine.sentinel).

    No retries: a write script retried after a timeout might run twice. `driver_info=None` is
    redis-py 8's supported switch for CLIENT SETINFO: its two pipelined SETINFOs are answered
    with an error by Redis < 7.2, and when a health-check PING gets between them (the event loop
    was busy for longer than the check interval) the PING reads that error and the command fails.
    """
    target = parse_redis_url(url) if isinstance(url, str) else url
    options: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": socket_timeout,
                               "retry": Retry(ExponentialBackoff(), 0), "health_check_interval": health_check_interval,
                               "driver_info": None}
    if target.kind == "sentinel":
        return sentinel_client(target, **options)
    return aioredis.Redis.from_url(target.url, **options)


async def startup_problem(url: str) -> str | None:
    """What in *url* cannot work however long one waits, found before serving (see server.engine.sentinel)."""
    target = parse_redis_url(url)
    if target.kind == "sentinel":
        try:
            await check_primary_known(target)
        except UnknownPrimary as exc:
            return str(exc)
    return None


async def close_client(client: aioredis.Redis) -> None:
    """Close *client* and, behind Sentinels, its Sentinel clients (which master_for leaves to the caller)."""
    await client.aclose()
    for sentinel in sentinels_of(client):
        await sentinel.aclose()


def _keys(blog_id: str) -> list[str]:
    tag = f"lp:{{{blog_id}}}:"
    return [tag + "meta", tag + "posts", tag + "unpinned", tag + "pinned", tag + "events"]


def channel(blog_id: str) -> str:
    return f"lp:{{{blog_id}}}:live"


def _blog_from_meta(raw: Any) -> Blog:
    """A Blog from its meta hash, as HGETALL returns it to Python (a dict) or to Lua (a flat list)."""
    meta: dict[bytes, bytes] = dict(zip(raw[0::2], raw[1::2], strict=True)) if isinstance(raw, list) else raw
    fields = wire.loads(meta[b"fields"])
    return Blog.model_validate({**fields, "status": meta[b"status"].decode(),
                                "updated_at": meta[b"updated_at"].decode(), "post_count": int(meta[b"count"]),
                                "seq": int(meta[b"seq"]), "epoch": meta[b"epoch"].decode()})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _flag(value: bool) -> str:
    return "1" if value else "0"


class _ResyncingPubSub(PubSub):
    """A PubSub that reports each reconnection of its connection: messages published meanwhile are lost."""

    def __init__(self, *args: Any, on_connected: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_connected = on_connected

    async def on_connect(self, connection: Connection) -> None:
        await super().on_connect(connection)
        self._on_connected()


class RedisEngine:
    """The engine on Redis (>= 6.2: Lua scripts, streams, pub/sub)."""

    name = "redis"

    def __init__(self, url: str, limits: Limits | None = None, identity_interval: float = 10.0,
                 wait_replicas: int = 0, wait_timeout: float = 1.0) -> None:
        self._target = parse_redis_url(url)
        self._limits = limits or Limits()
        self._history = self._limits.history_size
        self._history_bytes = self._limits.history_bytes
        self._identity_interval = identity_interval
        self._wait = (wait_replicas, max(1, round(wait_timeout * 1000)))
        # A WAIT holds its connection for up to its timeout: the socket must outlast it.
        self._redis = self._client(self._target, socket_timeout=max(2.0, wait_timeout + 1.0))
        sentinels = sentinels_of(self._redis)
        self._watch = SentinelWatch(self._target, sentinels, self._primary_switched) if sentinels else None
        self._scripts = {name: self._script(name) for name in
                         ("create_blog", "update_blog", "create_post", "update_post", "delete_post",
                          "events_since", "page", "identity", "rebase")}
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._deliver: Deliver | None = None
        self._resync: Resync | None = None
        self._connected_once = False
        self._identity_lock = asyncio.Lock()
        self._suspect = True  # check the server's identity before the next script
        self._complaint = ""  # what was last logged about the server, so it is logged once
        self.identity: str | None = None  # "<run_id>:<master_replid>" of the server last confirmed
        self._subscribed = False
        self._reachable = asyncio.Event()  # set when a primary answered; wakes a subscription backing off
        self.reconnects = 0
        self.epochs_moved = 0  # blogs this process moved to a new epoch
        self.wait_timeouts = 0  # writes the primary took but fewer than LIVEPUSH_REDIS_WAIT_REPLICAS replicas confirmed

    def _client(self, target: RedisTarget, socket_timeout: float) -> aioredis.Redis:
        return make_client(target, socket_timeout=socket_timeout)

    def _script(self, name: str) -> AsyncScript:
        folder = resources.files("server.engine") / "lua"
        body = (folder / f"{name}.lua").read_text()
        if name in ("identity", "rebase"):
            body = (folder / "server_identity.lua").read_text() + "\n" + body
        elif name not in ("events_since", "page", "create_blog"):
            body = (folder / "prelude.lua").read_text() + "\n" + body
        return self._redis.register_script(body)

    async def _run(self, name: str, blog_id: str, args: Sequence[Any], extra_keys: Sequence[str] = ()) -> Any:
        write = name in _WRITES
        if write and self._watch is not None and self._watch.failing_over:
            raise EngineUnavailable(f"a failover of the primary {self._target.primary!r} is under way")
        if self._suspect:
            await self._confirm_identity()
        keys = [*_keys(blog_id), *extra_keys]
        try:
            if write and self._wait[0]:
                return await self._run_and_wait(name, keys, args)
            return await self._scripts[name](keys=keys, args=list(args))
        except _FAILURES as exc:
            unavailable = self._unavailable(exc)
            if write and _maybe_ran(exc):
                raise OutcomeUnknown(str(exc)) from exc
            raise unavailable from exc

    async def _run_and_wait(self, name: str, keys: list[str], args: Sequence[Any]) -> Any:
        """The write script, then WAIT on the same connection (WAIT counts that connection's writes).

        EVALSHA rather than the Script object: a pipeline of Scripts asks SCRIPT EXISTS on every
        execute. NOSCRIPT means the script did not run (WAIT then waited for nothing): load it, again.
        """
        script = self._scripts[name]
        for _ in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                pipe.wait(*self._wait)
                reply, acked = await pipe.execute(raise_on_error=False)
            if not isinstance(reply, NoScriptError):
                break
            await self._redis.script_load(script.script)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, list) and reply[0] == b"ok":
            self._replicated(acked)
        return reply

    def _replicated(self, acked: int | Exception) -> None:
        """NotReplicated unless WAIT said enough replicas have the write (the primary has it)."""
        wanted, timeout_ms = self._wait
        if isinstance(acked, Exception) or acked < wanted:
            self.wait_timeouts += 1
            confirmed = "WAIT failed" if isinstance(acked, Exception) else f"{acked} of {wanted} replicas confirmed it"
            raise NotReplicated(f"{confirmed} within {timeout_ms} ms")

    async def _replay_replicated(self, key: str, ttl: int) -> None:
        """WAIT for a replayed create: it wrote nothing on this connection, so first touch its key (EXPIRE is a
        write, replicated after the original one), then WAIT counts replicas that have everything up to it."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.expire(key, ttl)
                pipe.wait(*self._wait)
                _, acked = await pipe.execute(raise_on_error=False)
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc
        self._replicated(acked)

    def _unavailable(self, exc: BaseException) -> EngineUnavailable:
        """The error for a lost or refused command (anything else is raised as it is).

        After a lost connection the next script first checks whom it talks to, and the idle pooled
        connections, which most likely lead to the same dead or demoted server, are dropped so that
        each does not fail one more request before reconnecting.
        """
        if not _unavailable_now(exc):
            raise exc
        if isinstance(exc, _LOST):
            self._suspect = True
            self._spawn(self._redis.connection_pool.disconnect(inuse_connections=False))
        return EngineUnavailable(str(exc))

    # lifecycle

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        """Connect; UnknownPrimary (a ValueError naming REDIS_URL) if the Sentinels monitor no such primary."""
        self._deliver, self._resync = deliver, resync
        if self._watch is not None:
            await check_primary_known(self._target)
            self._spawn(self._watch.run())
        # Before serving: a blog created now must not be moved by a check that was merely late.
        with contextlib.suppress(EngineUnavailable):  # Redis down: the first connection checks
            await self._confirm_identity()
        with contextlib.suppress(EngineUnavailable):  # Redis down: the next start copies them
            await self._index_blogs()
        self._listener = asyncio.create_task(self._listen(), name="livepush-redis-pubsub")
        self._spawn(self._check_identity_every_while())

    async def close(self) -> None:
        tasks = {task for task in (self._listener, *self._tasks) if task is not None}
        pending = tasks
        while pending:
            # Again and again: on Python 3.11 a cancel that lands as redis-py's read timeout fires is taken
            # for the timeout (asyncio.timeout), and the pub/sub loop would wait for the next message.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        await asyncio.gather(*tasks, return_exceptions=True)  # all done: collects their outcome
        await close_client(self._redis)

    def counters(self) -> dict[str, int]:
        counts = {"reconnects": self.reconnects, "epochs_moved": self.epochs_moved, "wait_timeouts": self.wait_timeouts}
        if self._watch is not None:
            counts["primary_switches"] = self._watch.switches
        return counts

    def subscriptions(self) -> dict[str, int]:
        return {}  # one pattern subscription, not one per blog

    async def not_ready(self) -> str | None:
        if self._watch is not None and self._watch.failing_over:
            return f"a failover of the redis primary {self._target.primary!r} is under way"
        try:
            await asyncio.wait_for(self._redis.ping(), 1.0)
        except ResponseError as exc:
            # A full disk (MISCONF) makes Redis refuse even PING, yet it serves every read: readers can still
            # attach and resume, so the process stays in rotation; writes answer 503.
            if not str(exc).startswith("MISCONF"):
                return f"redis at {self._target.for_logs()} refuses commands: {exc}"
        except (RedisError, OSError, TimeoutError) as exc:
            if "No master found" in str(exc):
                return f"no redis primary: the Sentinels name none for {self._target.primary!r}"
            return f"no redis primary reachable at {self._target.for_logs()}"
        if not self._subscribed:
            return "the redis pub/sub subscription is lost (reconnecting)"
        return None

    # blogs

    async def create_blog(self, blog: Blog) -> Blog:
        epoch = secrets.token_hex(4)
        reply = await self._run("create_blog", blog.id, self._blog_args(blog, epoch, self._limits.blogs),
                                extra_keys=[BLOGS, BLOG_IDS, BLOGS_UPDATED])
        if reply[0] == b"exists":
            raise BlogExists(blog.id)
        if reply[0] == b"quota":
            raise QuotaExceeded("blogs", int(reply[1]))
        return blog.model_copy(update={"seq": 0, "post_count": 0, "epoch": epoch})

    async def import_blog(self, blog: Blog, posts: Sequence[Post]) -> bool:
        args = self._blog_args(blog, secrets.token_hex(4), 0)
        for post in posts:
            args += [post.id, wire.dumps(wire.post_json(post)), millis(post), _flag(post.pinned)]
        reply = await self._run("create_blog", blog.id, args, extra_keys=[BLOGS, BLOG_IDS, BLOGS_UPDATED])
        return bool(reply[0] == b"ok")

    async def _index_blogs(self) -> None:
        """Copy `lp:blogs` into the ordered indexes once: blogs made before they existed."""
        try:
            have = min(await self._redis.zcard(BLOG_IDS), await self._redis.zcard(BLOGS_UPDATED))
            if have >= await self._redis.scard(BLOGS):
                return
            members: set[bytes] = await self._redis.smembers(BLOGS)  # type: ignore[assignment]
            ids = sorted(members)
            for start in range(0, len(ids), _REBASE_BATCH):
                batch = ids[start:start + _REBASE_BATCH]
                async with self._redis.pipeline(transaction=False) as pipe:
                    for blog_id in batch:
                        pipe.hget(_keys(blog_id.decode())[0], "updated_ms")
                    updated = await pipe.execute()
                await self._redis.zadd(BLOG_IDS, dict.fromkeys(batch, 0), nx=True)
                scores = {blog_id: int(ms) for blog_id, ms in zip(batch, updated, strict=True) if ms is not None}
                if scores:
                    await self._redis.zadd(BLOGS_UPDATED, scores, nx=True)
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc

    @staticmethod
    def _blog_args(blog: Blog, epoch: str, max_blogs: int) -> list[Any]:
        return [_static_fields(blog), blog.status, format_time(blog.updated_at), _ms(blog.updated_at), epoch,
                blog.id, max_blogs]

    async def update_blog(self, blog_id: str, changes: Mapping[str, Any], now: datetime) -> Committed[Blog]:
        for _ in range(_CAS_ATTEMPTS):
            current = await self.get_blog(blog_id)
            updated = current.model_copy(update={**changes, "updated_at": now})
            prefix = wire.dumps({**wire.blog_json(updated), "updated_at": None})
            prefix = prefix[: prefix.rindex(b',"updated_at"')]
            reply = await self._run("update_blog", blog_id, [
                _static_fields(current), current.status, _static_fields(updated), updated.status,
                format_time(now), _ms(now), self._history, channel(blog_id), wire.dumps(blog_id), prefix,
                self._history_bytes], extra_keys=[BLOGS_UPDATED])
            status = reply[0]
            if status == b"ok":
                seq, epoch, count = int(reply[1]), reply[2].decode(), int(reply[3])
                return Committed(updated.model_copy(update={"seq": seq, "epoch": epoch, "post_count": count}), seq)
            self._refuse(status, blog_id, "")
        raise EngineUnavailable("the blog kept changing under this edit; retry")

    async def get_blog(self, blog_id: str) -> Blog:
        try:
            meta = await self._redis.hgetall(_keys(blog_id)[0])
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc
        if not meta:
            raise BlogNotFound(blog_id)
        return _blog_from_meta(meta)

    async def list_blogs(self, limit: int, after: str | None = None, order: BlogOrder = "id") -> BlogPage:
        try:
            if order == "updated":
                ids, cursors = await self._recently_updated(limit, after)
            else:
                members: list[bytes] = await self._redis.zrangebylex(  # type: ignore[assignment]
                    BLOG_IDS, "-" if after is None else "(" + after, "+", start=0, num=limit + 1)
                ids = cursors = [member.decode() for member in members]
            async with self._redis.pipeline(transaction=False) as pipe:
                for blog_id in ids[:limit]:
                    pipe.hgetall(_keys(blog_id)[0])
                metas = await pipe.execute()
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc
        blogs = [_blog_from_meta(meta) for meta in metas if meta]
        return BlogPage(blogs, cursors[limit - 1] if len(ids) > limit else None)

    async def _recently_updated(self, limit: int, after: str | None) -> tuple[list[str], list[str]]:
        """Up to limit+1 ids, most recently updated first (ties: id descending), and the cursor after each."""
        top: float | str = "+inf"
        skip = 0
        if after is not None:
            ms, blog_id = parse_updated_cursor(after)
            top = ms
            # Ties come in descending id order: skip those at or above the cursor's id.
            ties: list[bytes] = await self._redis.zrangebyscore(BLOGS_UPDATED, ms, ms)  # type: ignore[assignment]
            skip = sum(1 for member in ties if member.decode() >= blog_id)
        found: list[tuple[bytes, float]] = await self._redis.zrevrangebyscore(  # type: ignore[assignment]
            BLOGS_UPDATED, top, "-inf", start=skip, num=limit + 1, withscores=True)
        ids = [member.decode() for member, _ in found]
        return ids, [updated_cursor(int(score), blog_id) for blog_id, (_, score) in zip(ids, found, strict=True)]

    # posts

    async def create_post(self, blog_id: str, post: Post, idempotency: Idempotency | None) -> Committed[Post]:
        post_json = wire.dumps(wire.post_json(post))
        key = f"lp:{{{blog_id}}}:idem:{idempotency.key}" if idempotency else f"lp:{{{blog_id}}}:idem:-"
        reply = await self._run("create_post", blog_id, [
            post.id, post_json, millis(post), _flag(post.pinned), format_time(post.updated_at), _ms(post.updated_at),
            idempotency.fingerprint if idempotency else "", idempotency.ttl if idempotency else 0,
            self._history, channel(blog_id), wire.dumps(blog_id), self._history_bytes, self._limits.posts_per_blog],
            extra_keys=[key, BLOGS_UPDATED])
        status = reply[0]
        if status == b"ok":
            return Committed(post, int(reply[1]))
        if status == b"replayed":
            if idempotency is not None and self._wait[0]:
                await self._replay_replicated(key, idempotency.ttl)
            return Committed(Post.model_validate_json(reply[2]), int(reply[1]), replayed=True)
        self._refuse(status, blog_id, post.id, reply)
        raise AssertionError("unreachable")

    async def update_post(self, blog_id: str, post_id: str, changes: Mapping[str, Any],
                          if_match: int | None, now: datetime) -> Committed[Post]:
        for _ in range(_CAS_ATTEMPTS):
            current = await self.get_post(blog_id, post_id)
            if if_match is not None and if_match != current.version:
                raise StaleVersion(current.version)
            post = current.model_copy(update={**changes, "updated_at": now, "version": current.version + 1})
            reply = await self._run("update_post", blog_id, [
                post_id, current.version, "" if if_match is None else if_match, wire.dumps(wire.post_json(post)),
                millis(post), _flag(post.pinned), format_time(now), _ms(now), self._history, channel(blog_id),
                wire.dumps(blog_id), self._history_bytes], extra_keys=[BLOGS_UPDATED])
            if reply[0] == b"ok":
                return Committed(post, int(reply[1]))
            if reply[0] != b"retry":
                self._refuse(reply[0], blog_id, post_id, reply)
        raise EngineUnavailable("the post kept changing under this edit; retry")

    async def delete_post(self, blog_id: str, post_id: str, if_match: int | None, now: datetime) -> Committed[str]:
        reply = await self._run("delete_post", blog_id, [
            post_id, "" if if_match is None else if_match, format_time(now), _ms(now), self._history,
            channel(blog_id), wire.dumps(blog_id), self._history_bytes], extra_keys=[BLOGS_UPDATED])
        if reply[0] == b"ok":
            return Committed(post_id, int(reply[1]))
        self._refuse(reply[0], blog_id, post_id, reply)
        raise AssertionError("unreachable")

    async def get_post(self, blog_id: str, post_id: str) -> Post:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.exists(_keys(blog_id)[0])
                pipe.hget(_keys(blog_id)[1], post_id)
                exists, raw = await pipe.execute()
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc
        if not exists:
            raise BlogNotFound(blog_id)
        if raw is None:
            raise PostNotFound(post_id)
        return Post.model_validate_json(raw)

    async def list_posts(self, blog_id: str, limit: int, order: Order, before: Position | None) -> Page:
        return (await self._page(blog_id, limit, order, before)).page

    async def snapshot(self, blog_id: str, limit: int) -> Snapshot:
        return await self._page(blog_id, limit, "newest", None)

    async def _page(self, blog_id: str, limit: int, order: Order, before: Position | None) -> Snapshot:
        section, ms, post_id = before if before is not None else (-1, 0, "")
        reply = await self._run("page", blog_id, [order, limit, section, ms, post_id])
        if reply[0] == b"unknown_blog":
            raise BlogNotFound(blog_id)
        posts = [Post.model_validate_json(raw) for raw in reply[2:] if raw is not None]
        return Snapshot(_blog_from_meta(reply[0]), page_of(posts, bool(reply[1])))

    # events

    async def events_since(self, blog_id: str, seq: int, epoch: str | None = None, *, limit: int = HISTORY_CHUNK,
                           max_bytes: int = HISTORY_CHUNK_BYTES) -> History | None:
        reply = await self._run("events_since", blog_id, [seq, epoch or "", limit, max_bytes])
        if reply[0] == b"unknown_blog":
            raise BlogNotFound(blog_id)
        if reply[0] != b"ok":
            return None
        current = reply[1].decode()
        frames = [Frame(blog_id, seq + index, data, current) for index, data in enumerate(reply[3:], start=1)]
        return History(frames, int(reply[2]))

    async def watch(self, blog_id: str) -> None:
        """Nothing to do per blog: the pattern subscription already carries every blog."""

    async def unwatch(self, blog_id: str) -> None:
        return None

    async def send_canary(self, token: bytes) -> None:
        try:
            await self._redis.publish(channel(CANARY_BLOG), b"- 0 " + token)
        except _FAILURES as exc:
            raise self._unavailable(exc) from exc

    # the server's identity

    async def check_identity(self) -> int:
        """Move every blog to a new epoch if the Redis server is not the one their epochs were confirmed on.

        The server's identity is its run_id and replication id. `lp:identity` holds the identity
        under which every blog's epoch was last confirmed; it lives in the data, so it travels
        with it (AOF, RDB, replication) and any node, even one started after a failover, can tell
        that the data now sits on another server. When they differ, each blog is moved by a
        compare-and-set keyed on the new identity (rebase.lua), so nodes noticing the same change
        at once agree on one new epoch per blog. Returns how many blogs this call moved.
        """
        async with self._identity_lock:
            return await self._check_identity()

    async def _confirm_identity(self) -> None:
        """check_identity, once, for the callers queued behind a suspicion (EngineUnavailable if it fails)."""
        async with self._identity_lock:
            if self._suspect:
                await self._check_identity()

    async def _check_identity(self) -> int:
        try:
            identity_raw, role, stamp = await self._scripts["identity"](keys=[IDENTITY])
            identity = identity_raw.decode()
            if role != b"master":
                # Writes fail here anyway (READONLY, answered 503); stay suspicious until a primary answers.
                if self._complaint != "replica":
                    log.error("redis at %s is a replica, not a primary; writes fail until it is promoted or "
                              "REDIS_URL leads to the primary", self._url_for_logs())
                self._complaint, self._suspect = "replica", True
                return 0
            moved = 0
            if stamp is None or stamp.decode() != identity:
                moved = await self._rebase_all()
                await self._redis.set(IDENTITY, identity)
                self._log_rebase(identity, stamp, moved)
        except _FAILURES as exc:
            if not isinstance(exc, ResponseError) or _unavailable_now(exc):
                raise self._unavailable(exc) from exc
            # INFO refused (ACL, renamed command): carry on without the check rather than refuse every write.
            if self._complaint != "unchecked":
                log.error("redis at %s: cannot read the server's identity (%s); blogs will keep their epoch after "
                          "a restart or failover", self._url_for_logs(), exc)
            self._complaint, self._suspect = "unchecked", False
            return 0
        self.identity, self._suspect, self._complaint = identity, False, ""
        self._reachable.set()
        return moved

    async def _rebase_all(self) -> int:
        members: set[bytes] = await self._redis.smembers(BLOGS)  # type: ignore[assignment]
        ids = sorted(member.decode() for member in members)
        moved = 0
        for start in range(0, len(ids), _REBASE_BATCH):
            batch = ids[start:start + _REBASE_BATCH]
            async with self._redis.pipeline(transaction=False) as pipe:
                for blog_id in batch:
                    await self._scripts["rebase"](keys=_keys(blog_id), args=[secrets.token_hex(4), channel(blog_id)],
                                                  client=pipe)
                replies = await pipe.execute()
            moved += sum(1 for reply in replies if reply[0] == b"moved")
        self.epochs_moved += moved
        return moved

    def _log_rebase(self, identity: str, stamp: bytes | None, moved: int) -> None:
        if stamp is None and moved == 0:
            log.info("redis at %s: identity %s recorded", self._url_for_logs(), identity)
            return
        log.warning("redis at %s is not the server the blogs' epochs were confirmed on (was %s, now %s: restarted "
                    "or failed over, newest events may be lost); moved %d blogs to a new epoch here, their readers "
                    "resume from a snapshot", self._url_for_logs(), stamp.decode() if stamp else "unknown", identity,
                    moved)

    async def _check_identity_every_while(self) -> None:
        while True:
            await asyncio.sleep(self._identity_interval)
            with contextlib.suppress(EngineUnavailable):
                await self.check_identity()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # pub/sub

    async def _listen(self) -> None:
        """Receive published events forever; reconnect with backoff; report each reconnection once."""
        delay, failing = 0.1, False
        while True:
            pubsub = _ResyncingPubSub(self._redis.connection_pool, on_connected=self._connected,
                                      ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(PATTERN)
                self._subscribed = True
                self._connected()  # a fresh PubSub's connect hook only covers its later reconnects
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if failing:
                        log.warning("redis pub/sub is back (%s)", self._url_for_logs())
                        failing, delay = False, 0.1
                    if message is not None and message["type"] == "pmessage":
                        self._on_message(message["channel"], message["data"])
            except asyncio.CancelledError:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                self._subscribed = False
                if not failing:
                    log.error("redis pub/sub lost (%s): %s; reconnecting", self._url_for_logs(), exc)
                    failing = True
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                # Back off, but try again at once when a command reaches a primary: readiness waits for this.
                self._reachable.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reachable.wait(), delay)
                delay = min(delay * 2, 5.0)

    def _connected(self) -> None:
        reconnected = self._connected_once
        if reconnected:
            self.reconnects += 1
        self._connected_once, self._suspect = True, True
        self._spawn(self._after_connect(reconnected))

    async def _after_connect(self, reconnected: bool) -> None:
        # The identity first: if the blogs move to a new epoch, the resync below (and the demo reload it
        # may trigger) already sees it, and nothing just reloaded is moved a second time.
        with contextlib.suppress(EngineUnavailable):  # still suspicious: the next script checks again
            await self._confirm_identity()
        if reconnected and self._resync is not None:
            self._resync()

    def _on_message(self, channel_name: bytes, data: bytes) -> None:
        # channel: lp:{<blog>}:live; data: "<epoch> <seq> <event json>"
        epoch, seq, event = data.split(b" ", 2)
        if self._deliver is not None:
            self._deliver(Frame(channel_name[4:-6].decode(), int(seq), event, epoch.decode()))

    def _url_for_logs(self) -> str:
        return self._target.for_logs()

    def _primary_switched(self, address: str) -> None:
        """The Sentinels moved the primary: drop every connection (the subscription's too), so each reconnects
        to *address*, and check whom we talk to before the next script."""
        self._suspect = True
        self._spawn(self._redis.connection_pool.disconnect(inuse_connections=True))

    @staticmethod
    def _refuse(status: bytes, blog_id: str, post_id: str, reply: Sequence[Any] = ()) -> None:
        if status == b"unknown_blog":
            raise BlogNotFound(blog_id)
        if status == b"unknown_post":
            raise PostNotFound(post_id)
        if status == b"ended":
            raise BlogEnded(blog_id)
        if status == b"id_taken":
            raise PostIdTaken(post_id)
        if status == b"idempotency_mismatch":
            raise IdempotencyMismatch(post_id)
        if status == b"stale":
            raise StaleVersion(int(reply[1]))
        if status == b"quota":
            raise QuotaExceeded("posts_per_blog", int(reply[1]))
        if status == b"retry":
            return
        raise RuntimeError(f"unexpected reply from a Lua script: {status!r}")


def _static_fields(blog: Blog) -> bytes:
    data = wire.blog_json(blog)
    return wire.dumps({name: data[name] for name in _STATIC_FIELDS})


_: type[Engine] = RedisEngine
