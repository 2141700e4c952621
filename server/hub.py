"""Local fan-out: hand one encoded event to every reader of a blog in this process.

`Hub.broadcast()` never awaits: it queues the event for the blog's next *pass*, which hands
every event that arrived since the previous pass to each reader at once (a `Batch`), a slice
of readers per loop iteration. Each `Reader` owns a buffer bounded in bytes; `offer()` appends
to it and wakes the reader's writer. A reader that falls behind is closed (1013) and resumes
later with `since`, so one stalled browser can neither delay the others nor grow memory
without limit.

A reader starts *attaching*: while its first message (snapshot or replay) is being read, live
events are parked on the side; `start()` then drops those already covered by the first message
and checks that the rest continues it without a gap. The first message can also be *ahead* of
the relay (the engine committed an event the relay has not handed over yet), so a reader drops
any later event at or below the highest seq it was given: nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from server import wire
from server.closes import Close
from server.wire import Frame


class Reader:
    """One connected reader's outgoing queue, filled synchronously by the hub, drained by its transport."""

    __slots__ = ("_bytes", "_conflate", "_limit", "_parked", "_queue", "_superseded", "_waiter", "close_code",
                 "close_reason", "conflations", "seq")

    def __init__(self, limit_bytes: int, *, conflate: bool = False) -> None:
        self._queue: list[Frame] = []  # appended, then taken whole: a list is a tenth of a deque's size
        self._bytes = 0
        self._limit = limit_bytes
        self._parked: list[Frame] | None = []
        self._waiter: asyncio.Future[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.seq = 0  # the highest seq this reader has been given
        self._conflate = conflate
        self._superseded: list[int] = []
        self.conflations = 0

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def offer(self, frame: Frame) -> bool:
        """Queue *frame*; return False (and close with 1013) when the reader is too far behind."""
        if self.close_code is not None:
            return False
        if self._parked is not None:
            self._parked.append(frame)
        elif frame.seq <= self.seq:
            return True  # already covered by the first message
        else:
            if self._conflate and self._queue:
                self._drop_superseded(frame)
            self._queue.append(frame)
            self.seq = frame.seq
        self._bytes += len(frame.data)
        if self._bytes > self._limit:
            self.close(Close.TRY_LATER, "reader too slow; resume with since")
            return False
        self._wake()
        return True

    def offer_batch(self, batch: Batch) -> bool:
        """Queue every frame of *batch*; False (closed) when the reader fell too far behind."""
        for frame in batch.frames:
            if not self.offer(frame):
                return False
        return True

    def replay(self, frames: Sequence[Frame]) -> bool:
        """Queue one run of a replay that goes on (live events stay parked until `start`).

        Unlike a first message, the run counts against the byte bound, together with the parked
        events: a reader that does not take what it was given is closed (1013) instead of holding
        the history in memory. Returns False when closed.
        """
        if self.close_code is not None:
            return False
        self._queue.extend(frames)
        self.seq = frames[-1].seq
        self._bytes += sum(len(frame.data) for frame in frames)
        if self._bytes > self._limit:
            self.close(Close.TRY_LATER, "reader too slow; resume with since")
            return False
        self._wake()
        return True

    def start(self, first: Sequence[Frame], after: int) -> bool:
        """Queue the first messages, then the parked live events newer than *after*.

        Returns False (and closes with 1013) if the parked events do not continue at after+1:
        the reader would otherwise miss something.
        """
        parked, self._parked = self._parked or [], None
        for frame in first:
            self._queue.append(frame)
        expected = after + 1
        for frame in parked:
            if frame.seq < expected:
                continue
            if frame.seq > expected:
                self.close(Close.TRY_LATER, "missed events while attaching; resume with since")
                return False
            self._queue.append(frame)
            expected += 1
        self.seq = expected - 1
        # The first message (a snapshot can be large) is owed to every reader: only what follows counts.
        self._bytes = sum(len(f.data) for f in self._queue) - sum(len(f.data) for f in first)
        self._wake()
        return True

    def _drop_superseded(self, frame: Frame) -> None:
        """Drop queued state events that *frame* replaces (an older edit of the same post, say)."""
        key, _ = frame.state
        if not key:
            return
        kept: list[Frame] = []
        for queued in self._queue:
            queued_key, replaceable = queued.state
            if replaceable and queued_key == key:
                self._superseded.append(queued.seq)
                self._bytes -= len(queued.data)
            else:
                kept.append(queued)
        if len(kept) != len(self._queue):
            self.conflations += len(self._queue) - len(kept)
            self._queue = kept

    def close(self, code: int, reason: str = "") -> None:
        """Ask the transport to close with *code*; queued frames are dropped."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._queue.clear()
            if self._parked:
                self._parked.clear()
            self._bytes = 0
            self._wake()

    def take(self) -> list[Frame]:
        """Everything queued, oldest first, after a `conflated` notice if state events were dropped; empties it."""
        frames, self._queue = self._queue, []
        # During a replay the parked live events are still held, and still count.
        self._bytes = sum(len(frame.data) for frame in self._parked) if self._parked else 0
        if self._superseded:
            frames.insert(0, wire.conflated(frames[0].blog if frames else "", sorted(self._superseded)))
            self._superseded = []
        return frames

    async def wait(self, idle: float) -> bool:
        """Wait until frames are queued or the reader is closed; False after *idle* seconds of nothing."""
        if self._queue or self.close_code is not None:
            return True
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._waiter, idle)
        except TimeoutError:
            return False
        finally:
            self._waiter = None
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Batch:
    """Consecutive events of one blog handed to its readers in one pass; their WebSocket bytes joined once."""

    __slots__ = ("_ws", "first", "frames", "last")

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames
        self.first = frames[0].seq
        self.last = frames[-1].seq
        self._ws: bytes | None = None

    @property
    def ws(self) -> bytes:
        """Every frame's WebSocket bytes back to back: one write per reader for the whole batch."""
        if self._ws is None:
            self._ws = b"".join(frame.ws for frame in self.frames)
        return self._ws


class _Fanout:
    """One blog's fan-out in progress: the pass being written and the events waiting for the next."""

    __slots__ = ("batch", "batch_received", "blog", "handle", "index", "pending", "received", "targets")

    def __init__(self, blog: str) -> None:
        self.blog = blog
        self.pending: list[Frame] = []
        self.received: list[float] = []
        self.batch: Batch | None = None
        self.batch_received: list[float] = []
        self.targets: tuple[Reader, ...] = ()
        self.index = 0
        self.handle: asyncio.Handle | None = None


class Hub:
    """This process's readers, per blog, and the fan-out of each blog's events to them.

    `broadcast()` only queues the event and schedules a pass: events that arrive while a pass
    is being written (a busy moment) go out together in the next one, so under load a reader
    gets several events in one write instead of one system call each. A pass writes to
    `slice_size` readers per loop iteration and then yields, so publishing requests, new
    connections and other blogs are served while a fan-out to many readers runs.
    """

    def __init__(self, slice_size: int = 512) -> None:
        self._readers: dict[str, set[Reader]] = {}
        self._fanouts: dict[str, _Fanout] = {}
        self._slice = slice_size
        self.delivered = 0
        self.evicted = 0
        self._conflations_retired = 0
        self.observe_fanout: Callable[[float], None] | None = None  # seconds from broadcast() to the last reader

    def add(self, blog_id: str, reader: Reader) -> None:
        self._readers.setdefault(blog_id, set()).add(reader)

    def remove(self, blog_id: str, reader: Reader) -> None:
        readers = self._readers.get(blog_id)
        if readers is not None and reader in readers:
            readers.discard(reader)
            self._conflations_retired += reader.conflations
            if not readers:
                del self._readers[blog_id]

    @property
    def conflations(self) -> int:
        """State events dropped for lagging readers because a later one replaced them (all readers, ever)."""
        return self._conflations_retired + sum(r.conflations for rs in self._readers.values() for r in rs)

    def broadcast(self, frame: Frame) -> None:
        """Queue *frame* for every local reader of its blog; written by the next pass."""
        if frame.blog not in self._readers:
            return  # a reader attaching later starts at or after this event
        fanout = self._fanouts.get(frame.blog)
        if fanout is None:
            fanout = self._fanouts[frame.blog] = _Fanout(frame.blog)
        fanout.pending.append(frame)
        fanout.received.append(time.perf_counter())
        if fanout.handle is None:
            fanout.handle = asyncio.get_running_loop().call_soon(self._run, fanout)

    def flush(self) -> None:
        """Finish every fan-out now, without yielding (tests; shutdown)."""
        for fanout in list(self._fanouts.values()):
            if fanout.handle is not None:
                fanout.handle.cancel()
                fanout.handle = None
            while self._step(fanout):
                pass

    def _run(self, fanout: _Fanout) -> None:
        fanout.handle = None
        if self._step(fanout):
            fanout.handle = asyncio.get_running_loop().call_soon(self._run, fanout)

    def _step(self, fanout: _Fanout) -> bool:
        """Write one slice of *fanout*'s pass; True while there is more to write."""
        if fanout.batch is None:
            if not fanout.pending:
                if self._fanouts.get(fanout.blog) is fanout:
                    del self._fanouts[fanout.blog]
                return False
            fanout.batch = Batch(fanout.pending)
            fanout.batch_received, fanout.pending, fanout.received = fanout.received, [], []
            fanout.targets = tuple(self._readers.get(fanout.blog, ()))
            fanout.index = 0
        batch, end = fanout.batch, fanout.index + self._slice
        readers = self._readers.get(fanout.blog)
        count = len(batch.frames)
        delivered = 0
        for reader in fanout.targets[fanout.index:end]:
            if reader.offer_batch(batch):
                delivered += count
            elif readers is not None and reader in readers:
                readers.discard(reader)
                self.evicted += 1
                self._conflations_retired += reader.conflations
        self.delivered += delivered
        fanout.index = end
        if end < len(fanout.targets):
            return True
        self._finish_pass(fanout)
        return True

    def _finish_pass(self, fanout: _Fanout) -> None:
        observe = self.observe_fanout
        if observe is not None:
            now = time.perf_counter()
            for received in fanout.batch_received:
                observe(now - received)
        fanout.batch, fanout.batch_received, fanout.targets = None, [], ()

    def close_blog(self, blog_id: str, code: int, reason: str) -> int:
        """Close every reader of *blog_id* (they resume with since); return how many.

        Events not yet written are dropped with them: they belong to the history being left.
        """
        fanout = self._fanouts.pop(blog_id, None)
        if fanout is not None and fanout.handle is not None:
            fanout.handle.cancel()
        readers = self._readers.pop(blog_id, set())
        for reader in readers:
            reader.close(code, reason)
            self._conflations_retired += reader.conflations
        return len(readers)

    def close_some(self, limit: int, code: int, reason: str) -> int:
        """Close up to *limit* readers, any blogs; return how many (used to pace a drain)."""
        closed = 0
        for blog_id in list(self._readers):
            # A reader's close may detach its connection's other readers (server.streams.multiplex).
            readers = self._readers.get(blog_id)
            while readers and closed < limit:
                reader = readers.pop()
                reader.close(code, reason)
                self._conflations_retired += reader.conflations
                closed += 1
            if not readers:
                self._readers.pop(blog_id, None)
            if closed >= limit:
                break
        return closed

    def close_all(self, code: int, reason: str) -> int:
        return sum(self.close_blog(blog_id, code, reason) for blog_id in list(self._readers))

    def count(self, blog_id: str | None = None) -> int:
        if blog_id is not None:
            return len(self._readers.get(blog_id, ()))
        return sum(len(readers) for readers in self._readers.values())

    def blogs(self) -> list[str]:
        return list(self._readers)
