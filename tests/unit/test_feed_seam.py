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

from server.engine import HISTORY_CHUNK, HISTORY_CHUNK_BYTES, Deliver, History, Resync
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


class GatedEngine(MemoryEngine):
    """The memory engine whose history reads wait at a gate, and are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.reads = 0

    async def events_since(self, blog_id: str, seq: int, epoch: str | None = None, *, limit: int = HISTORY_CHUNK,
                           max_bytes: int = HISTORY_CHUNK_BYTES) -> History | None:
        self.reads += 1
        await self.gate.wait()
        return await super().events_since(blog_id, seq, epoch, limit=limit, max_bytes=max_bytes)


async def test_a_storm_of_resumes_shares_one_history_read_and_each_gets_exactly_its_part() -> None:
    engine, hub = GatedEngine(), Hub()
    relay = Relay(engine, hub)
    await engine.start(relay.deliver, relay.resync)
    await engine.create_blog(Blog(id="b1", title="t", created_at=T0, updated_at=T0))
    feeds = Feeds(engine, hub, relay, snapshot_size=20)
    engine.gate.set()
    await feeds.open(Reader(1 << 20), "b1", None, None)  # watched and synced
    for n in range(10):
        await engine.create_post("b1", post(f"p{n}"), None)
    await asyncio.sleep(0)
    hub.flush()
    epoch = (await engine.get_blog("b1")).epoch
    engine.gate.clear()
    engine.reads = 0
    readers = [Reader(1 << 20) for _ in range(30)]
    opening = [asyncio.ensure_future(feeds.open(r, "b1", since=3 + i % 5, epoch=epoch)) for i, r in
               enumerate(readers)]
    await asyncio.sleep(0)  # every open is now waiting on a history read
    engine.gate.set()
    await asyncio.gather(*opening)
    assert engine.reads == 1  # the first resume (the lowest since) reads; the other 29 join it
    for i, reader in enumerate(readers):
        assert seqs(reader) == list(range(3 + i % 5 + 1, 11))
    await relay.close()


class LossyEngine(MemoryEngine):
    """The memory engine whose deliveries can be lost (as Redis pub/sub loses messages while it reconnects)."""

    def __init__(self) -> None:
        super().__init__()
        self.losing = False
        self.reads: list[int] = []

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        await super().start(lambda frame: None if self.losing else deliver(frame), resync)

    async def events_since(self, blog_id: str, seq: int, epoch: str | None = None, *, limit: int = HISTORY_CHUNK,
                           max_bytes: int = HISTORY_CHUNK_BYTES) -> History | None:
        history = await super().events_since(blog_id, seq, epoch, limit=limit, max_bytes=max_bytes)
        self.reads.append(len(history.frames) if history is not None else -1)
        return history


async def test_the_relay_repairs_a_gap_longer_than_one_history_read_in_order_once() -> None:
    """250 lost events (three history reads) are read back chunk by chunk after a resync: every seq once, in
    order, counted as one repair."""
    engine, hub = LossyEngine(), Hub()
    relay = Relay(engine, hub)
    await engine.start(relay.deliver, relay.resync)
    await engine.create_blog(Blog(id="b1", title="t", created_at=T0, updated_at=T0))
    feeds = Feeds(engine, hub, relay, snapshot_size=20)
    reader = Reader(1 << 24)
    await feeds.open(reader, "b1", None, None)
    assert seqs(reader) == [0]
    engine.losing = True
    for n in range(250):
        await engine.create_post("b1", post(f"p{n}"), None)
    await asyncio.sleep(0)  # the lost deliveries run (and go nowhere)
    engine.losing = False
    relay.resync()
    received: list[int] = []
    while len(received) < 250:
        await asyncio.sleep(0)
        hub.flush()
        received += seqs(reader)
    assert received == list(range(1, 251))
    assert engine.reads[-3:] == [100, 100, 50] and relay.gaps_repaired == 1
    await relay.close()
