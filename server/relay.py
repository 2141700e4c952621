"""Engine to hub: each watched blog's events, in seq order, with no gap and no duplicate.

An engine's delivery is a hint (Redis pub/sub is at most once, and says nothing when it drops
a message). The relay keeps, per blog this process watches, the last seq it handed to the hub:

- an event at last+1 goes to the hub at once (the hot path: no await);
- an event at or below last is a duplicate and is dropped;
- an event beyond last+1 parks the blog in a backlog while the missing events are read from
  history, then everything is handed over in order;
- when history no longer reaches back (or the blog's epoch changed) the blog's readers are
  closed with 1013: they reconnect and start from a fresh snapshot.

Invariant for readers attaching (server.feed): every event up to `position(blog)` has been
handed to the hub already, and every later one will be, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

from server.closes import Close
from server.engine import BlogNotFound, Engine, History
from server.hub import Hub
from server.wire import Frame

log = logging.getLogger("livepush.relay")


@dataclass(slots=True)
class _Channel:
    watchers: int = 0
    last: int | None = None
    epoch: str = ""
    backlog: list[Frame] | None = field(default_factory=list)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


class Relay:
    """Moves events from the engine to the hub for the blogs that have readers here."""

    def __init__(self, engine: Engine, hub: Hub, linger: float = 10.0) -> None:
        self._engine = engine
        self._hub = hub
        self._linger = linger
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribing = asyncio.Lock()
        self.gaps_repaired = 0
        self.resets = 0
        self.rechecks = 0  # watched blogs checked against history after an engine interruption

    # called by the engine

    def deliver(self, frame: Frame) -> None:
        """Take one event from the engine (on the event loop, never awaiting)."""
        channel = self._channels.get(frame.blog)
        if channel is None:
            return
        if channel.backlog is not None:
            channel.backlog.append(frame)
            return
        self._forward(frame.blog, channel, frame)

    def resync(self, blogs: Collection[str] | None = None) -> None:
        """After an engine reconnect: check every watched blog (or those of *blogs*) against history."""
        for blog_id, channel in self._channels.items():
            if channel.backlog is None and (blogs is None or blog_id in blogs):
                self.rechecks += 1
                channel.backlog = []
                self._spawn(self._catch_up(blog_id, channel))

    # called by feeds

    async def watch(self, blog_id: str) -> None:
        """Make sure this blog's events reach the hub; raises BlogNotFound for an unknown blog."""
        channel = self._channels.get(blog_id)
        if channel is None:
            channel = self._channels[blog_id] = _Channel()
            self._spawn(self._catch_up(blog_id, channel))
        channel.watchers += 1
        if not channel.synced.is_set():
            await channel.synced.wait()
        if channel.error is not None:
            channel.watchers -= 1
            raise channel.error

    def watch_now(self, blog_id: str) -> bool:
        """`watch()` when it would not wait (the blog is watched and in sync); False, changing nothing, otherwise."""
        channel = self._channels.get(blog_id)
        if channel is None or not channel.synced.is_set() or channel.error is not None:
            return False
        channel.watchers += 1
        return True

    def unwatch(self, blog_id: str) -> None:
        """One reader fewer; the subscription lingers a while to absorb reconnects."""
        channel = self._channels.get(blog_id)
        if channel is None:
            return
        channel.watchers -= 1
        if channel.watchers <= 0:
            self._spawn(self._expire(blog_id, channel))

    def position(self, blog_id: str) -> tuple[int, str]:
        """(last seq handed to the hub, epoch) for a watched blog; (0, "") while it resyncs."""
        channel = self._channels.get(blog_id)
        if channel is None or channel.last is None:
            return 0, ""
        return channel.last, channel.epoch

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._channels.clear()

    # internals

    def _forward(self, blog_id: str, channel: _Channel, frame: Frame) -> None:
        assert channel.last is not None
        if frame.epoch != channel.epoch:
            self._reset(blog_id, channel, "the blog's history was reset")
            channel.backlog = [frame]
            self._spawn(self._catch_up(blog_id, channel))
        elif frame.seq == channel.last + 1:
            channel.last = frame.seq
            self._hub.broadcast(frame)
        elif frame.seq > channel.last + 1:
            channel.backlog = [frame]
            self._spawn(self._catch_up(blog_id, channel))

    def _reset(self, blog_id: str, channel: _Channel, why: str) -> None:
        closed = self._hub.close_blog(blog_id, Close.TRY_LATER, why + "; reconnect")
        self.resets += 1
        log.warning("blog %s: %s; %d readers told to reconnect", blog_id, why, closed)
        channel.last = None

    async def _catch_up(self, blog_id: str, channel: _Channel) -> None:
        """Bring the channel to the engine's present, then hand the parked events over in order."""
        delay, repaired = 0.05, False
        while self._channels.get(blog_id) is channel:
            try:
                if channel.last is None:
                    async with self._subscribing:
                        await self._engine.watch(blog_id)
                    blog = await self._engine.get_blog(blog_id)
                    channel.last, channel.epoch = blog.seq, blog.epoch
                    missing: History | None = History([], blog.seq)
                    channel.synced.set()
                else:
                    # One bounded chunk at a time: each goes to the hub (and the readers' bounded buffers)
                    # before the next is read.
                    missing = await self._engine.events_since(blog_id, channel.last, channel.epoch)
            except BlogNotFound as exc:
                self._drop(blog_id, channel, exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("blog %s: catching up failed (%s); retrying in %.2fs", blog_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if missing is None:
                self._reset(blog_id, channel, "history no longer reaches back")
                continue
            if missing.frames and not repaired:
                self.gaps_repaired += 1
                repaired = True
            for frame in missing.frames:
                if frame.seq == channel.last + 1:
                    channel.last = frame.seq
                    self._hub.broadcast(frame)
            if missing.more:
                continue
            if self._hand_over_backlog(blog_id, channel):
                return

    def _hand_over_backlog(self, blog_id: str, channel: _Channel) -> bool:
        """Forward parked events that continue the sequence; True when the backlog is done."""
        assert channel.backlog is not None and channel.last is not None
        parked = sorted(channel.backlog, key=lambda f: f.seq)
        channel.backlog = []
        for index, frame in enumerate(parked):
            if frame.epoch != channel.epoch:
                self._reset(blog_id, channel, "the blog's history was reset")
                channel.backlog = parked[index:]
                return False
            if frame.seq <= channel.last:
                continue
            if frame.seq > channel.last + 1:
                channel.backlog = parked[index:]
                return False
            channel.last = frame.seq
            self._hub.broadcast(frame)
        channel.backlog = None
        return True

    def _drop(self, blog_id: str, channel: _Channel, error: BaseException) -> None:
        if self._channels.get(blog_id) is channel:
            del self._channels[blog_id]
        channel.error = error
        first_sync = not channel.synced.is_set()
        channel.synced.set()
        if not first_sync:
            # The blog existed and is gone from storage (e.g. Redis came back empty): readers come back
            # later and get a fresh start (or 4404 if it stays gone).
            closed = self._hub.close_blog(blog_id, Close.TRY_LATER, "blog no longer in storage; reconnect later")
            log.warning("blog %s vanished from storage; %d readers told to reconnect", blog_id, closed)

    async def _expire(self, blog_id: str, channel: _Channel) -> None:
        await asyncio.sleep(self._linger)
        async with self._subscribing:
            if channel.watchers > 0 or self._channels.get(blog_id) is not channel:
                return
            del self._channels[blog_id]
            await self._engine.unwatch(blog_id)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
