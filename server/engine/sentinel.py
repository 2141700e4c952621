"""Redis behind Sentinels: the client that follows the primary, and a watch on the Sentinels' own events.

redis-py's Sentinel pool asks the Sentinels for the primary only when it opens a connection, so
after a failover it keeps using every open connection to the old primary until that one fails;
a primary demoted by `SENTINEL FAILOVER` stays up and may accept writes for seconds more, and
its remaining replicas may acknowledge them (`WAIT`) before they are moved to the new primary,
which then drops them. `SentinelWatch` subscribes to every Sentinel: from `+try-failover` until
`+switch-master` (or the attempt's abort) writes are refused before they are sent, and on
`+switch-master` every connection is dropped so the next one, the subscription's included,
goes to the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.redis_url import RedisTarget

log = logging.getLogger("livepush.redis")
_CHANNELS = ("+try-failover", "+switch-master", "-failover-abort-*")
_FENCE_LIMIT = 60.0  # seconds a missed +switch-master or abort can keep writes refused


class UnknownPrimary(ValueError):
    """The Sentinels answered and none of them monitors the primary REDIS_URL names."""


def sentinel_client(target: RedisTarget, **connection: Any) -> aioredis.Redis:
    """A client of the primary the Sentinels of *target* name, discovered at each new connection."""
    manager = Sentinel(  # type: ignore[no-untyped-call]
        list(target.hosts), sentinel_kwargs=_sentinel_kwargs(target), **connection,
        db=target.db, username=target.username, password=target.password, ssl=target.tls)
    client: aioredis.Redis = manager.master_for(target.primary)
    return client


def sentinels_of(client: aioredis.Redis) -> list[aioredis.Redis]:
    """The Sentinel clients behind a client made by `sentinel_client` (none for a plain one)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)  # a Cluster has no pool
    return list(manager.sentinels) if manager is not None else []


def _sentinel_kwargs(target: RedisTarget) -> dict[str, Any]:
    return {"socket_connect_timeout": 1.0, "socket_timeout": 1.0, "retry": Retry(NoBackoff(), 0),
            "driver_info": None, "username": target.sentinel_username, "password": target.sentinel_password,
            "ssl": target.tls}


async def check_primary_known(target: RedisTarget) -> None:
    """UnknownPrimary when a Sentinel answers and none knows the primary; nothing if none answers (yet)."""
    known: set[Any] = set()
    answered = False
    sentinels = [aioredis.Redis(host=host, port=port, **_sentinel_kwargs(target)) for host, port in target.hosts]
    try:
        for sentinel in sentinels:
            with contextlib.suppress(RedisError, OSError):
                masters = await sentinel.sentinel_masters()
                answered = True
                if target.primary in masters:
                    return
                known.update(masters)
    finally:
        for sentinel in sentinels:
            await sentinel.aclose()
    if answered:
        hosts = ",".join(f"{host}:{port}" for host, port in target.hosts)
        monitored = ", ".join(sorted(known)) or "none"
        raise UnknownPrimary(f"REDIS_URL: the Sentinels at {hosts} monitor no primary named {target.primary!r} "
                             f"(they monitor: {monitored})")


class SentinelWatch:
    """Follows the Sentinels' failover events for one primary."""

    def __init__(self, target: RedisTarget, sentinels: list[aioredis.Redis], on_switch: Callable[[str], None]) -> None:
        self._target = target
        self._sentinels = sentinels
        self._on_switch = on_switch
        self._trying: dict[int, float] = {}  # Sentinel index -> when its failover attempt began
        self._switched_to: list[str] = []  # the address of the last +switch-master
        self.switches = 0

    @property
    def failing_over(self) -> bool:
        """A Sentinel is failing the primary over: a write sent now might land on a primary about to be dropped."""
        now = time.monotonic()
        return any(now - began < _FENCE_LIMIT for began in self._trying.values())

    async def run(self) -> None:
        """Listen to every Sentinel, each with its own reconnecting subscription."""
        await asyncio.gather(*(self._listen(index, sentinel) for index, sentinel in enumerate(self._sentinels)))

    async def _listen(self, index: int, sentinel: aioredis.Redis) -> None:
        delay = 0.1
        while True:
            pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(*_CHANNELS)
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message["type"] == "pmessage":
                        self._on_event(index, message["channel"].decode(), message["data"].decode())
            except (RedisError, OSError):
                self._trying.pop(index, None)  # an attempt this Sentinel announced is no longer followed
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_event(self, index: int, channel: str, data: str) -> None:
        # +try-failover: "master <name> <ip> <port> ..."
        # +switch-master: "<name> <old ip> <old port> <new ip> <new port>"
        words = data.split()
        if channel == "+switch-master":
            if words[:1] == [self._target.primary]:
                self._trying.clear()
                if words[3:5] == self._switched_to:  # every Sentinel announces the same switch
                    return
                self._switched_to = words[3:5]
                self.switches += 1
                log.warning("redis sentinel: primary %r moved from %s:%s to %s:%s", *words[:5])
                self._on_switch(f"{words[3]}:{words[4]}")
        elif words[1:2] == [self._target.primary]:
            if channel == "+try-failover":
                self._trying[index] = time.monotonic()
                log.warning("redis sentinel: failover of primary %r begins; writes wait for the new primary",
                            self._target.primary)
            else:
                self._trying.pop(index, None)
