"""Attach a reader to a blog: its first message(s), then live events, seamless.

The order of steps is what makes the seam exact:

1. the reader is added to the hub *parked*: live events from now on are kept aside;
2. the relay is watching the blog, so every event up to `relay.position()` reached the hub
   before step 1 and every later one will reach it after;
3. the first message is read: the events after `since` when the reader resumes in the same
   epoch (or names none: SSE's Last-Event-ID) and history still holds them; otherwise a
   snapshot current at a seq no older than (2);
4. `reader.start()` drops parked events that message already covers and checks the rest
   continue it (else closes with 1013).

A replay is read in bounded chunks (`Engine.events_since`): when the missed events are more than
one chunk, the reader gets a `Replay` whose `step()` reads and queues the next chunk, and the
transport calls it only once it has written the previous one. Live events stay parked (counted
against the reader's byte bound) until the last chunk, then step 4 runs. So a resume from far
back costs the server one chunk at a time, however long the history and however slow the reader.

Snapshots are encoded once per (blog, epoch, seq) and shared by every reader that connects
while the blog stands still (a cache of the latest snapshot per blog, least recently used first
out once its encoded bytes pass `cache_bytes`), and resumes share history reads: a reader whose `since` is covered
by a read already under way for its blog joins it instead of reading again. That is what absorbs
a reconnect storm (thousands of readers resuming at about the same seq after a deploy).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from server import wire
from server.closes import Close
from server.engine import HISTORY_CHUNK_BYTES, BlogNotFound, Engine, EngineError, History
from server.hub import Hub, Reader
from server.model import is_slug
from server.relay import Relay
from server.singleflight import run_once
from server.wire import Frame


class _HistoryRead:
    """A read of a blog's events after `since`, started when the relay had handed over up to `floor`."""

    __slots__ = ("floor", "future", "since")

    def __init__(self, since: int, floor: int) -> None:
        self.since = since
        self.floor = floor
        self.future: asyncio.Future[History | None] = asyncio.get_running_loop().create_future()


class Replay:
    """The rest of a resume that is longer than one history read: read on chunk by chunk, as the reader takes them."""

    __slots__ = ("_blog_id", "_epoch", "_feeds", "_floor", "_reader")

    def __init__(self, feeds: Feeds, reader: Reader, blog_id: str, epoch: str, floor: int) -> None:
        self._feeds = feeds
        self._reader = reader
        self._blog_id = blog_id
        self._epoch = epoch  # the first chunk's: a replay never crosses into another history
        self._floor = floor

    async def step(self) -> bool:
        """Queue the next chunk; after the last, the parked live events follow (`reader.start`).

        True while more chunks remain. False when the replay is over: complete, or the reader was
        closed (1013 when the history moved past it or storage failed: it resumes with `since`).
        """
        reader = self._reader
        if reader.closed:
            return False
        try:
            history = await self._feeds.events_since(self._blog_id, reader.seq, self._epoch, self._floor)
        except EngineError:
            reader.close(Close.TRY_LATER, "storage unavailable; resume with since")
            return False
        if reader.closed:
            return False
        if history is None:
            reader.close(Close.TRY_LATER, "history moved past this replay; resume with since")
            return False
        if history.more:
            return reader.replay(history.frames)
        reader.start(history.frames, history.frames[-1].seq if history.frames else reader.seq)
        return False


@dataclass(frozen=True, slots=True)
class Attached:
    """How a reader started: from a snapshot, or by replaying `replayed` events after `since`.

    `replay` is set when the replay goes on beyond what was queued: the transport calls its
    `step()` each time it has written what the reader was given.
    """

    snapshot: bool
    seq: int
    replayed: int = 0
    replay: Replay | None = None


class Feeds:
    """Opens and closes readers' feeds for the stream endpoints."""

    def __init__(self, engine: Engine, hub: Hub, relay: Relay, snapshot_size: int,
                 chunk_bytes: int = HISTORY_CHUNK_BYTES, *, cache_bytes: int = 16 << 20) -> None:
        self._engine = engine
        self._chunk_bytes = chunk_bytes  # a replay's chunks count against the reader's bound: keep them under it
        self._hub = hub
        self._relay = relay
        self._snapshot_size = snapshot_size
        self._snapshots = _SnapshotCache(cache_bytes)
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
                missed = await self.events_since(blog_id, since, epoch, floor)
                if missed is not None:
                    frames = missed.frames
                    if not missed.more:
                        reader.start(frames, frames[-1].seq if frames else since)
                        return Attached(snapshot=False, seq=since, replayed=len(frames))
                    reader.replay(frames)
                    replay = Replay(self, reader, blog_id, frames[0].epoch, floor)
                    return Attached(snapshot=False, seq=since, replayed=len(frames), replay=replay)
            frame = await self.snapshot(blog_id, floor, current_epoch)
            reader.start([frame], frame.seq)
            return Attached(snapshot=True, seq=frame.seq)
        except BaseException:
            self.close(reader, blog_id)
            raise

    def open_now(self, reader: Reader, blog_id: str, since: int | None, epoch: str | None) -> Attached | None:
        """`open()` when nothing needs reading; None (nothing changed) when it would have to wait.

        That is the common handshake: the blog is watched and in sync, and either its snapshot
        is cached at the relay's position, or the reader resumes from exactly that position (it
        missed nothing). Without an await, no live event can arrive between add and start.
        Raises BlogNotFound for an id that is not a slug, as `open()` does.
        """
        if not is_slug(blog_id):
            raise BlogNotFound(blog_id)
        floor, current_epoch = self._relay.position(blog_id)
        frame = None
        if since is None:
            frame = self._cached(blog_id, floor, current_epoch)
            if frame is None:
                return None
        elif since != floor or (epoch is not None and epoch != current_epoch) or not floor:
            return None
        if not self._relay.watch_now(blog_id):
            return None
        self._hub.add(blog_id, reader)
        if frame is None:
            reader.start((), floor)
            return Attached(snapshot=False, seq=floor)
        reader.start((frame,), frame.seq)
        return Attached(snapshot=True, seq=frame.seq)

    def close(self, reader: Reader, blog_id: str) -> None:
        """Detach *reader*; safe to call more than once."""
        self._hub.remove(blog_id, reader)
        self._relay.unwatch(blog_id)

    async def events_since(self, blog_id: str, since: int, epoch: str | None, floor: int) -> History | None:
        """A chunk of the events after *since* (None: history cannot serve it), from a read under way when one
        covers it.

        A read can be joined when it started from at or before *since* and after the relay had
        handed the hub everything up to *floor*: read on to its end, it holds every event the
        caller's parked live events do not. Seqs are contiguous, so the caller's part is a slice;
        an empty slice of a chunk that has more after it says nothing, so the caller reads itself.
        """
        shared = self._history_reads.get((blog_id, epoch))
        if shared is not None and shared.since <= since and shared.floor >= floor:
            history = await asyncio.shield(shared.future)
            if history is not None:
                end = shared.since + len(history.frames)
                if since < end or (since == end and not history.more):
                    return History(history.frames[since - shared.since:], history.top)
        return await self._read_history(blog_id, since, epoch, floor)

    async def _read_history(self, blog_id: str, since: int, epoch: str | None, floor: int) -> History | None:
        key = (blog_id, epoch)
        read = self._history_reads[key] = _HistoryRead(since, floor)
        try:
            history = await self._engine.events_since(blog_id, since, epoch, max_bytes=self._chunk_bytes)
        except BaseException as exc:
            read.future.set_exception(exc)
            read.future.exception()  # consumed here; joiners re-raise it themselves
            raise
        finally:
            if self._history_reads.get(key) is read:
                del self._history_reads[key]
        self.history_reads += 1
        read.future.set_result(history)
        return history

    async def snapshot(self, blog_id: str, floor: int, epoch: str) -> Frame:
        """The encoded snapshot of *blog_id* in *epoch* at a seq no older than *floor*, shared when possible."""
        cached = self._cached(blog_id, floor, epoch)
        if cached is not None:
            return cached
        reading = self._reading.get(blog_id)
        if reading is not None:
            frame = await asyncio.shield(reading)
            if frame.epoch == epoch and frame.seq >= floor:
                return frame
        return await self._read_snapshot(blog_id)

    def _cached(self, blog_id: str, floor: int, epoch: str) -> Frame | None:
        cached = self._snapshots.get(blog_id)
        if cached is not None and cached.epoch == epoch and cached.seq >= floor:
            return cached
        return None

    async def _read_snapshot(self, blog_id: str) -> Frame:
        frame = await run_once(self._reading, blog_id, lambda: self._encode_snapshot(blog_id))
        self.snapshots_encoded += 1
        cached = self._snapshots.get(blog_id)
        if cached is None or cached.epoch != frame.epoch or cached.seq < frame.seq:
            self._snapshots.put(blog_id, frame)
        return frame

    async def _encode_snapshot(self, blog_id: str) -> Frame:
        snap = await self._engine.snapshot(blog_id, self._snapshot_size)
        return wire.snapshot(snap.blog, snap.page.posts, snap.page.has_more)

    @property
    def cached_snapshots(self) -> tuple[int, int]:
        """(snapshots cached, their encoded bytes)."""
        return len(self._snapshots), self._snapshots.bytes


class _SnapshotCache:
    """The latest snapshot of each blog, least recently used evicted first once over *limit* bytes.

    Bounded by bytes rather than by count: a snapshot is 20 small posts or 200 posts of 64 KB, so
    a count says little about memory. A frame is charged twice its JSON: the JSON, and the
    WebSocket frame its first reader computes and the frame keeps (an SSE reader adds as much
    again). Evicting costs one engine read on the blog's next connection; a blog with readers
    connecting is touched on each and stays in.
    """

    __slots__ = ("_frames", "bytes", "limit")

    def __init__(self, limit: int) -> None:
        self._frames: OrderedDict[str, Frame] = OrderedDict()
        self.limit = limit
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, blog_id: str) -> Frame | None:
        frame = self._frames.get(blog_id)
        if frame is not None:
            self._frames.move_to_end(blog_id)
        return frame

    def put(self, blog_id: str, frame: Frame) -> None:
        old = self._frames.pop(blog_id, None)
        if old is not None:
            self.bytes -= _cost(old)
        if _cost(frame) > self.limit:
            return
        self._frames[blog_id] = frame
        self.bytes += _cost(frame)
        while self.bytes > self.limit:
            _, evicted = self._frames.popitem(last=False)
            self.bytes -= _cost(evicted)


def _cost(frame: Frame) -> int:
    return 2 * len(frame.data)
