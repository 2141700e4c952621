"""Webhook storage in Redis, shared by every process and node on it.

Keys (an endpoint's keys share the hash tag `{hook:<id>}`, so the fenced scripts stay on one
Cluster shard; blog ids cannot contain `:`, so no tag collides with a blog's):

| key | type | holds |
| --- | --- | --- |
| `lp:hooks` | set | every endpoint id |
| `lp:{hook:<id>}:conf` | hash | `config` (JSON, with the secret), `disabled_reason`, `disabled_at`, `failing_since` |
| `lp:{hook:<id>}:cursors` | hash | blog id -> last seq delivered or skipped |
| `lp:{hook:<id>}:lease` | string | the owner delivering the endpoint now (`SET NX PX`, renewed) |
| `lp:{hook:<id>}:log` | list | the newest attempts, JSON, newest first |

Redis errors become EngineUnavailable, as in the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from server import wire
from server.engine import EngineUnavailable
from server.engine.outbox import LOG_SIZE, Attempt, Endpoint, Outbox
from server.engine.redis import close_client, make_client

INDEX = "lp:hooks"
T = TypeVar("T")


def _key(endpoint_id: str, part: str) -> str:
    return f"lp:{{hook:{endpoint_id}}}:{part}"


def _number(raw: bytes | None) -> float | None:
    return float(raw) if raw else None


class RedisOutbox:
    """The outbox of the Redis engine."""

    def __init__(self, url: str) -> None:
        self._redis = make_client(url)
        folder = resources.files("server.engine") / "lua"
        self._scripts: dict[str, AsyncScript] = {
            name: self._redis.register_script((folder / f"hook_{name}.lua").read_text())
            for name in ("lease", "advance", "release")}

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        try:
            return await command()
        except (RedisError, OSError) as exc:
            raise EngineUnavailable(str(exc)) from exc

    async def add(self, endpoint: Endpoint, cursors: Mapping[str, int], limit: int) -> bool:
        async def run() -> bool:
            if await self._redis.scard(INDEX) >= limit:
                return False
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(_key(endpoint.id, "conf"), "config", wire.dumps(endpoint.config()))
                if cursors:
                    pipe.hset(_key(endpoint.id, "cursors"), mapping={blog: seq for blog, seq in cursors.items()})
                pipe.sadd(INDEX, endpoint.id)
                await pipe.execute()
            return True

        return await self._call(run)

    async def get(self, endpoint_id: str) -> Endpoint | None:
        conf: dict[bytes, bytes] = await self._call(lambda: self._redis.hgetall(_key(endpoint_id, "conf")))  # type: ignore[arg-type, return-value]
        return _endpoint(conf) if conf else None

    async def all(self) -> list[Endpoint]:
        async def run() -> list[dict[bytes, bytes]]:
            members: set[bytes] = await self._redis.smembers(INDEX)  # type: ignore[assignment]
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in sorted(members):
                    pipe.hgetall(_key(member.decode(), "conf"))
                found: list[dict[bytes, bytes]] = await pipe.execute()
            return found

        return [_endpoint(conf) for conf in await self._call(run) if conf]

    async def remove(self, endpoint_id: str) -> bool:
        async def run() -> bool:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(*(_key(endpoint_id, part) for part in ("conf", "cursors", "lease", "log")))
                pipe.srem(INDEX, endpoint_id)
                deleted, _ = await pipe.execute()
            return bool(deleted)

        return await self._call(run)

    async def set_failing(self, endpoint_id: str, since: float | None) -> None:
        key = _key(endpoint_id, "conf")
        if since is None:
            await self._call(lambda: self._redis.hdel(key, "failing_since"))
        else:
            await self._call(lambda: self._redis.hset(key, "failing_since", repr(since)))

    async def disable(self, endpoint_id: str, reason: str, at: float) -> None:
        key = _key(endpoint_id, "conf")

        async def run() -> None:
            if await self._redis.exists(key):
                await self._redis.hset(key, mapping={"disabled_reason": reason, "disabled_at": repr(at)})

        await self._call(run)

    async def cursors(self, endpoint_id: str) -> dict[str, int]:
        raw: dict[bytes, bytes] = await self._call(lambda: self._redis.hgetall(_key(endpoint_id, "cursors")))  # type: ignore[arg-type, return-value]
        return {blog.decode(): int(seq) for blog, seq in raw.items()}

    async def advance(self, endpoint_id: str, owner: str, blog_id: str, seq: int, force: bool = False,
                      attempts: Sequence[Attempt] = ()) -> bool:
        keys = [_key(endpoint_id, "lease"), _key(endpoint_id, "cursors"), _key(endpoint_id, "log")]
        args: list[str | int | bytes] = [owner, blog_id, seq, "1" if force else "0", LOG_SIZE,
                                         *(wire.dumps(attempt.as_dict()) for attempt in attempts)]
        return bool(await self._call(lambda: self._scripts["advance"](keys=keys, args=args)))

    async def acquire(self, endpoint_id: str, owner: str, ttl: float) -> bool:
        keys = [_key(endpoint_id, "lease"), _key(endpoint_id, "conf")]
        held = await self._call(lambda: self._scripts["lease"](keys=keys, args=[owner, max(1, int(ttl * 1000))]))
        return bool(held == 1)

    async def release(self, endpoint_id: str, owner: str) -> None:
        await self._call(lambda: self._scripts["release"](keys=[_key(endpoint_id, "lease")], args=[owner]))

    async def record(self, endpoint_id: str, attempts: Sequence[Attempt]) -> None:
        if not attempts:
            return
        key = _key(endpoint_id, "log")

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.lpush(key, *(wire.dumps(attempt.as_dict()) for attempt in attempts))
                pipe.ltrim(key, 0, LOG_SIZE - 1)
                await pipe.execute()

        await self._call(run)

    async def attempts(self, endpoint_id: str, limit: int) -> list[Attempt]:
        raw: list[bytes] = await self._call(lambda: self._redis.lrange(_key(endpoint_id, "log"), 0, limit - 1))  # type: ignore[arg-type, return-value]
        return [Attempt(**wire.loads(item)) for item in raw]

    async def close(self) -> None:
        await close_client(self._redis)  # behind Sentinels, their clients too


def _endpoint(conf: Mapping[bytes, bytes]) -> Endpoint:
    config: dict[str, Any] = wire.loads(conf[b"config"])
    return Endpoint.from_config(config, disabled_reason=conf.get(b"disabled_reason", b"").decode(),
                                disabled_at=_number(conf.get(b"disabled_at")),
                                failing_since=_number(conf.get(b"failing_since")))


_: type[Outbox] = RedisOutbox
