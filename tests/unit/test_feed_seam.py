"""The attach seam with the real engine, relay, hub and feeds (no sockets): nothing twice, nothing missed.

The engine commits an event (history updated) before the relay hands it to the hub, so a reader's
first message can already contain an event that is still on its way. Found by the load-test tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from server.engine.memory import MemoryEngine
from server.feed import Feeds
from server.hub import Hub, Reader
from server.model import Blog, Post
from server.relay import Relay

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def post(post_id: str) -> Post:
    return Post(id=post_id, headline=post_id, published_at=T0, updated_at=T0)


@pytest.fixture
async def stack() -> AsyncIterator[tuple[MemoryEngine, Feeds, Hub]]:
    engine, hub = MemoryEngine(), Hub()
    relay = Relay(engine, hub)
    await engine.start(relay.deliver, relay.resync)
    await engine.create_blog(Blog(id="b1", title="t", created_at=T0, updated_at=T0))
    yield engine, Feeds(engine, hub, relay, snapshot_size=20), hub
    await relay.close()


def seqs(reader: Reader) -> list[int]:
    return [frame.seq for frame in reader.take()]


async def test_a_replay_ahead_of_the_relay_is_not_delivered_twice(stack: tuple[MemoryEngine, Feeds, Hub]) -> None:
    engine, feeds, hub = stack
    first = Reader(1 << 20)
    await feeds.open(first, "b1", None, None)  # the blog is now watched and synced
    epoch = (await engine.get_blog("b1")).epoch
    await engine.create_post("b1", post("p1"), None)  # committed; its delivery is still queued
    late = Reader(1 << 20)
    await feeds.open(late, "b1", since=0, epoch=epoch)  # replay holds seq 1 already
    await engine.create_post("b1", post("p2"), None)
    await asyncio.sleep(0)  # let the queued deliveries reach the hub
    hub.flush()
    assert seqs(late) == [1, 2]
    assert seqs(first) == [0, 1, 2]  # snapshot at 0, then both events


async def test_a_snapshot_ahead_of_the_relay_is_not_followed_by_its_own_event(
        stack: tuple[MemoryEngine, Feeds, Hub]) -> None:
    engine, feeds, hub = stack
    epoch = (await engine.get_blog("b1")).epoch
    await feeds.open(Reader(1 << 20), "b1", since=0, epoch=epoch)  # watched, and no snapshot cached
    await engine.create_post("b1", post("p1"), None)  # committed, not yet handed to the hub
    late = Reader(1 << 20)
    await feeds.open(late, "b1", None, None)
    await asyncio.sleep(0)
    hub.flush()
    frames = late.take()
    assert [f.seq for f in frames] == [1]
    assert orjson.loads(frames[0].data)["type"] == "snapshot"
