"""The disk under Redis's AOF fills up: writes are refused with 503, readers keep their streams, and
everything resumes when space comes back.

A real redis-server (AOF, fsync every second) runs with its file-size limit lowered while it runs
(`prlimit`), so its AOF writes fail as on a full disk: Redis reports "No space left on device" and
answers MISCONF to every write and to PING. Raising the limit again is the operator freeing space.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import ADMIN_TOKEN, LiveServer, make_settings
from tests.faults.conftest import start_readers
from tests.redis_servers import free_port

pytestmark = pytest.mark.redis
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Disk:
    """The file-size limit of a running redis-server, standing in for the free space of its disk."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._soft, self._hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)

    def fill(self) -> None:
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (1, self._hard))  # every further AOF write fails

    def free(self) -> None:
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (self._soft, self._hard))  # only the soft limit moved


@contextlib.contextmanager
def redis_on_a_disk() -> Iterator[tuple[str, Disk]]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="livepush-redis-") as data_dir:
        # Ignoring SIGXFSZ (the disposition survives exec) makes a write over the limit fail with an error
        # instead of killing the process: what a full disk does.
        command = (f"trap '' XFSZ; exec {binary} --port {port} --bind 127.0.0.1 --dir {data_dir} --save '' "
                   "--appendonly yes --appendfsync everysec")
        process = subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port, driver_info=None)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)  # redis-server is starting, in another process
            yield f"redis://127.0.0.1:{port}/0", Disk(process.pid)
        finally:
            client.close()
            process.kill()
            process.wait(10)


async def publish(client: httpx.AsyncClient, base: str, headline: str) -> httpx.Response:
    return await client.post(f"{base}/api/blogs/b1/posts", json={"headline": headline},
                             headers={**AUTH, "Idempotency-Key": headline})


async def test_a_full_aof_disk_refuses_writes_with_503_keeps_readers_and_recovers() -> None:
    with redis_on_a_disk() as (url, disk):
        server = LiveServer(make_settings("redis", None, redis_url=url))
        await server.start()
        try:
            await server.create_blog("b1")
            readers = await start_readers([server.ws_base], "b1", 2)
            acked: list[dict[str, Any]] = []
            async with httpx.AsyncClient(timeout=10) as client:
                disk.fill()
                refused = None
                for i in range(50):  # the write that meets the full disk is still answered; the next ones not
                    response = await publish(client, server.base, f"p{i}")
                    if response.status_code != 201:
                        refused = response
                        break
                    acked.append(response.json())
                assert refused is not None and refused.status_code == 503, refused and refused.text
                assert refused.json()["code"] == "engine_unavailable" and refused.headers["retry-after"]
                assert (await client.get(f"{server.base}/readyz")).status_code == 200  # readers are still served
                await asyncio.gather(*(reader.wait_for_seq(len(acked)) for reader in readers))

                disk.free()  # Redis retries its AOF write every second and takes writes again
                async with asyncio.timeout(15):
                    while (response := await publish(client, server.base, "after")).status_code != 201:
                        assert response.status_code == 503, response.text
                        await asyncio.sleep(0.05)  # retry pacing, as a newsroom tool does
                acked.append(response.json())
            top = acked[-1]["seq"]
            await asyncio.gather(*(reader.wait_for_seq(top) for reader in readers))
            for reader in readers:
                await reader.stop()
                assert reader.seqs == list(range(1, top + 1)) and not reader.gaps and not reader.duplicates
                assert reader.snapshots == 1  # the stream never broke
        finally:
            await server.stop()
