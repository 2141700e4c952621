"""The Redis client livepush builds (`server.engine.redis.make_client`), against a real redis-server.

redis-py 8 sends `CLIENT SETINFO LIB-NAME` and `LIB-VER` on every new connection, pipelined, and
ignores their error replies (Redis < 7.2 has no SETINFO). But when a health-check PING is due
between the two sends (the connection's `health_check_interval` passed while the event loop was
busy), the PING reads the first SETINFO's reply instead of PONG and the command fails: the one
500 of the Redis benchmark run. livepush's client passes `driver_info=None`, redis-py 8's
supported way to send no SETINFO at all. A health check due before every command stands in for
the busy loop here, deterministically.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from server.engine.redis import make_client
from tests.faults.conftest import private_redis
from tests.faults.redirect import Redirect, redirect

pytestmark = pytest.mark.redis
EVERY_COMMAND = 1e-6  # seconds: a health-check PING is due before every command


@contextlib.asynccontextmanager
async def redis_through_a_witness() -> AsyncIterator[tuple[Redirect, aioredis.Redis]]:
    """A private redis-server, reached through a forwarder that records what clients send."""
    with private_redis("--appendonly", "no") as redis:
        admin = aioredis.Redis(port=redis.port, driver_info=None)
        try:
            async with redirect(redis) as witness:
                yield witness, admin
        finally:
            await admin.aclose()


async def test_a_default_redis_py_client_fails_when_a_health_check_lands_between_its_setinfos() -> None:
    """The failure livepush avoids, reproduced with redis-py's defaults."""
    async with redis_through_a_witness() as (witness, admin):
        version = tuple(int(part) for part in (await admin.info("server"))["redis_version"].split(".")[:2])
        client = aioredis.Redis.from_url(witness.url, health_check_interval=EVERY_COMMAND)
        try:
            with pytest.raises(RedisError) as failure:
                await client.ping()
            assert b"SETINFO" in witness.sent
            if version < (7, 2):
                assert "SETINFO" in str(failure.value)  # the PING read "unknown subcommand 'SETINFO'"
        finally:
            await client.aclose()


async def test_livepush_s_client_sends_no_setinfo_so_fresh_connections_after_a_reconnect_work() -> None:
    """Connections made by livepush's client, the first and the ones after their predecessors were killed,
    answer every command, and none of them sent CLIENT SETINFO."""
    async with redis_through_a_witness() as (witness, admin):
        client = make_client(witness.url, health_check_interval=EVERY_COMMAND)
        try:
            assert await client.ping()
            for _ in range(3):
                assert await admin.client_kill_filter(_type="normal", skipme=True) >= 1
                with contextlib.suppress(RedisConnectionError):  # the health check finds the killed connection
                    await client.ping()
                assert await client.set("k", "v") and await client.get("k") == b"v"  # on a fresh connection
            assert witness.connections == 4  # the first connection and three fresh ones, all recorded
            assert b"SETINFO" not in witness.sent
        finally:
            await client.aclose()
