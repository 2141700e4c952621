"""A TCP forwarder between livepush and Redis, for tests: redirected like a failover, and a witness of what was sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.redis_servers import RedisProcess


class Redirect:
    """A TCP forwarder on a free loopback port: what moves clients to the new primary after a failover.

    In production that is Sentinel-aware routing (a proxy such as HAProxy checking `role:master`,
    or a DNS name moved by the failover tooling). `point_to()` sends new connections to another
    server and cuts the open ones, as Sentinel does when it demotes the old primary.
    """

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = bytearray()  # every byte clients sent to Redis through here
        self.connections = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def point_to(self, port: int) -> None:
        self.target = port
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.point_to(self.target)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_writer.transport.abort()
            self._writers.discard(client_writer)
            return
        self._writers.add(upstream_writer)
        pumps = [asyncio.ensure_future(self._pump(client_reader, upstream_writer, self.sent)),
                 asyncio.ensure_future(self._pump(upstream_reader, client_writer, None))]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()
                self._writers.discard(writer)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: bytearray | None) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                if record is not None:
                    record += data
                sink.write(data)
                await sink.drain()


@contextlib.asynccontextmanager
async def redirect(redis: RedisProcess) -> AsyncIterator[Redirect]:
    proxy = Redirect(redis.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
