"""A plain EventSource that reconnects on its own resumes exactly: the `eventsource` npm package.

No livepush code runs on the client: the package reconnects after the stream ends (a drain) and
sends the last `id:` it saw as Last-Event-ID. The id carries the epoch, so after a drain it gets
exactly the missed events, and after a new epoch it gets a snapshot, never a replay of another history.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from server.engine.memory import MemoryEngine
from tests.conftest import LiveServer, make_settings
from tests.redis_servers import free_port

CLIENT = Path(__file__).resolve().parents[1] / "js" / "sse_client.mjs"


class Restartable:
    """livepush servers that follow one another on one port, as a deploy restarts a node."""

    def __init__(self) -> None:
        self.port = free_port()
        self.live: LiveServer | None = None

    async def start(self, engine: MemoryEngine) -> LiveServer:
        live = LiveServer(make_settings("memory", None), engine)
        live.server.config.port = self.port
        await live.start()
        self.live = live
        return live

    async def drain(self) -> None:
        """SIGTERM's path: readers closed 1012 by the drainer, then the server stops."""
        live = self.live
        assert live is not None
        await live.services.drainer.drain(lambda: setattr(live.server, "should_exit", True))
        await live.stop()
        self.live = None


class NodeEventSource:
    """The npm `eventsource` client in a node process, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.opens = 0

    async def message(self, timeout: float = 15.0) -> tuple[str, dict[str, Any]]:
        """The next message (its lastEventId and data), counting the (re)connections on the way."""
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            assert line, "the eventsource client exited"
            record = orjson.loads(line)
            if "open" in record:
                self.opens = record["open"]
            elif "data" in record:
                return record["id"], record["data"]


@pytest.fixture
async def servers() -> AsyncIterator[Restartable]:
    chain = Restartable()
    yield chain
    if chain.live is not None:
        await chain.live.stop()


@pytest.fixture
def node() -> str:
    found = shutil.which("node")
    if found is None or not (CLIENT.parent / "node_modules" / "eventsource").exists():
        pytest.fail("node and tests/js/node_modules are needed: run `bash scripts/test` (npm ci --prefix tests/js)")
    return found


async def test_a_plain_eventsource_resumes_exactly_through_a_drain_and_restarts_on_a_new_epoch(
        servers: Restartable, node: str) -> None:
    engine = MemoryEngine()
    first = await servers.start(engine)
    await first.create_blog("b1")
    await first.publish(headline="one")
    await first.publish(headline="two")
    process = await asyncio.create_subprocess_exec(
        node, str(CLIENT), f"{first.base}/sse/blogs/b1", "100", stdout=asyncio.subprocess.PIPE)
    client = NodeEventSource(process)
    try:
        snapshot_id, snapshot = await client.message()
        epoch = snapshot["epoch"]
        assert (snapshot["type"], snapshot["seq"], snapshot_id) == ("snapshot", 2, f"{epoch}:2")
        await first.publish(headline="three")
        assert (await client.message())[0] == f"{epoch}:3"

        await servers.drain()
        second = await servers.start(engine)  # same storage: the history survives the restart
        await second.publish(headline="four")
        await second.publish(headline="five")
        resumed = [await client.message(), await client.message()]
        assert [(event_id, data["type"], data["seq"]) for event_id, data in resumed] == [
            (f"{epoch}:4", "post.created", 4), (f"{epoch}:5", "post.created", 5)]
        assert client.opens == 2

        await servers.drain()
        third = await servers.start(MemoryEngine())  # storage lost: the blog comes back in a new epoch
        await third.create_blog("b1")
        await third.publish(headline="after the loss")
        fresh_id, fresh = await client.message()
        assert fresh["type"] == "snapshot" and fresh["epoch"] != epoch
        assert fresh_id == f"{fresh['epoch']}:1" and [p["headline"] for p in fresh["posts"]] == ["after the loss"]
        assert client.opens == 3
    finally:
        process.kill()
        await process.wait()
