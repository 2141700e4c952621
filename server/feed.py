"""Attach a reader to a blog: its first message(s), then live events, seamless.

The order of steps is what makes the seam exact:

1. the reader is added to the hub *parked*: live events from now on are kept aside;
2. the relay is watching the blog, so every event up to `relay.last_seq()` reached the hub
   before step 1 and every later one will reach it after;
3. the first message is read: the events after `since` when the reader resumes in the same
   epoch (or names none: SSE's Last-Event-ID) and history still holds them; otherwise a
   snapshot current at a seq no older than (2);
4. `reader.start()` drops parked events that message already covers and checks the rest
   continue it (else closes with 1013).

Snapshots are encoded once per (blog, epoch, seq) and shared by every reader that connects
while the blog stands still, and resumes share history reads: a reader whose `since` is covered
by a read already under way for its blog joins it instead of reading again. That is what absorbs
a reconnect storm (thousands of readers resuming at about the same seq after a deploy).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from server import wire
from server.engine import BlogNotFound, Engine
from server.hub import Hub, Reader
from server.model import is_slug
from server.relay import Relay
from server.wire import Frame


class _HistoryRead:
    """A read of a blog's events after `since`, started when the relay had handed over up to `floor`."""

    __slots__ = ("floor", "future", "since")

    def __init__(self, since: int, floor: int) -> None:
        self.since = since
        self.floor = floor
        self.future: asyncio.Future[list[Frame] | None] = asyncio.get_running_loop().create_future()


@dataclass(frozen=True, slots=True)
class Attached:
    """How a reader started: from a snapshot, or by replaying `replayed` events after `since`."""

    snapshot: bool
    seq: int
    replayed: int = 0


class Feeds:
    """Opens and closes readers' feeds for the stream endpoints."""

    def __init__(self, engine: Engine, hub: Hub, relay: Relay, snapshot_size: int) -> None:
        self._engine = engine
        self._hub = hub
        self._relay = relay
        self._snapshot_size = snapshot_size
        self._snapshots: dict[str, Frame] = {}
        self._reading: dict[str, asyncio.Future[Frame]] = {}
        self._history_reads: dict[tuple[str, str | None], _HistoryRead] = {}
        self.snapshots_encoded = 0
        self.history_reads = 0

    async def open(self, reader: Reader, blog_id: str, since: int | None, epoch: str | None) -> Attached:
        """Attach *reader* to *blog_id*; raises BlogNotFound (the reader is then not attached)."""
        if not is_slug(blog_id):
            raise BlogNotFound(blog_id)
        self._hub.add(blog_id, reader)
        try:
            await self._relay.watch(blog_id)
        except BaseException:
            self._hub.remove(blog_id, reader)
            raise
        try:
            floor, current_epoch = self._relay.position(blog_id)
            if since is not None:
                missed = await self._events_since(blog_id, since, epoch, floor)
                if missed is not None:
                    reader.start(missed, missed[-1].seq if missed else since)
                    return Attached(snapshot=False, seq=since, replayed=len(missed))
            frame = await self.snapshot(blog_id, floor, current_epoch)
            reader.start([frame], frame.seq)
            return Attached(snapshot=True, seq=frame.seq)
        except BaseException:
            self.close(reader, blog_id)
            raise

    def close(self, reader: Reader, blog_id: str) -> None:
        """Detach *reader*; safe to call more than once."""
        self._hub.remove(blog_id, reader)
        self._relay.unwatch(blog_id)

    async def _events_since(self, blog_id: str, since: int, epoch: str | None, floor: int) -> list[Frame] | None:
        """The events after *since* (None: history cannot serve it), from a read under way when one covers it.

        A read can be joined when it started from at or before *since* and after the relay had
        handed the hub everything up to *floor*: it then holds every event the caller's parked
        live events do not. Seqs are contiguous, so the caller's part is a slice.
        """
        shared = self._history_reads.get((blog_id, epoch))
        if shared is not None and shared.since <= since and shared.floor >= floor:
            frames = await asyncio.shield(shared.future)
            if frames is not None and since <= shared.since + len(frames):
                return frames[since - shared.since:]
        return await self._read_history(blog_id, since, epoch, floor)

    async def _read_history(self, blog_id: str, since: int, epoch: str | None, floor: int) -> list[Frame] | None:
        key = (blog_id, epoch)
        read = self._history_reads[key] = _HistoryRead(since, floor)
        try:
            frames = await self._engine.events_since(blog_id, since, epoch)
        except BaseException as exc:
            read.future.set_exception(exc)
            read.future.exception()  # consumed here; joiners re-raise it themselves
            raise
        finally:
            if self._history_reads.get(key) is read:
                del self._history_reads[key]
        self.history_reads += 1
        read.future.set_result(frames)
        return frames

    async def snapshot(self, blog_id: str, floor: int, epoch: str) -> Frame:
        """The encoded snapshot of *blog_id* in *epoch* at a seq no older than *floor*, shared when possible."""
        cached = self._snapshots.get(blog_id)
        if cached is not None and cached.epoch == epoch and cached.seq >= floor:
            return cached
        reading = self._reading.get(blog_id)
        if reading is not None:
            frame = await asyncio.shield(reading)
            if frame.epoch == epoch and frame.seq >= floor:
                return frame
        return await self._read_snapshot(blog_id)

    async def _read_snapshot(self, blog_id: str) -> Frame:
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._reading[blog_id] = future
        try:
            snap = await self._engine.snapshot(blog_id, self._snapshot_size)
            frame = wire.snapshot(snap.blog, snap.page.posts, snap.page.has_more)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed here; joiners re-raise it themselves
            raise
        finally:
            if self._reading.get(blog_id) is future:
                del self._reading[blog_id]
        self.snapshots_encoded += 1
        future.set_result(frame)
        cached = self._snapshots.get(blog_id)
        if cached is None or cached.epoch != frame.epoch or cached.seq < frame.seq:
            self._snapshots[blog_id] = frame
        return frame
