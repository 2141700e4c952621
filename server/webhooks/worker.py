"""One endpoint's delivery, while this process holds its lease: one lane per blog, each in seq order.

A lane reads its blog's history after the endpoint's cursor, POSTs each event the endpoint asked
for, and moves the cursor past it only after a 2xx (events of other types are skipped, and the
cursor moves past them too). A failed attempt is retried, same id, same body, after an
exponential backoff with jitter; lanes of other blogs carry on meanwhile. Since order per blog
is the point, a lane never skips a failing event: the endpoint is disabled instead, when it has
failed without one success for longer than the retry window, or when a blog's undelivered events
outgrow the bound (`LIVEPUSH_WEBHOOK_MAX_BACKLOG`, which is also how many events the engine
keeps per blog, so history always holds what an enabled endpoint still needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from server import wire
from server.engine import BlogNotFound, Engine, EngineUnavailable, History
from server.engine.outbox import Attempt, Endpoint, Outbox
from server.model import Blog
from server.settings import Settings
from server.webhooks.guard import Guard, Target
from server.webhooks.sender import Outcome, Sender
from server.webhooks.signing import message_id, sign
from server.wire import Frame

log = logging.getLogger("livepush.webhooks")


class Stopped(Exception):
    """This worker must stop: the lease is lost, or the endpoint was disabled or deleted."""


@dataclass(slots=True)
class Tally:
    """Running totals for metrics, shared by every worker of the process."""

    attempts: int = 0
    delivered: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # by kind: http, timeout, refused, connection
    disabled: int = 0

    def fail(self, outcome: Outcome) -> None:
        kind = ("http" if outcome.status is not None else "timeout" if outcome.error.startswith("timed out")
                else "refused" if outcome.error.startswith("refused") else "connection")
        self.failures[kind] = self.failures.get(kind, 0) + 1


async def every_blog(engine: Engine, page: int = 500) -> list[Blog]:
    """Every blog, read page by page (a `["*"]` endpoint covers them all)."""
    found: list[Blog] = []
    after: str | None = None
    while True:
        chunk = await engine.list_blogs(page, after)
        found += chunk.blogs
        if chunk.next is None:
            return found
        after = chunk.next


def event_facts(frame: Frame) -> tuple[str, float]:
    """(type, Unix time of the change) of an encoded event."""
    try:
        message = wire.loads(frame.data)
        kind = str(message.get("type", ""))
        moment = datetime.fromisoformat(str(message.get("updated_at", "")).replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return "", time.time()
    return kind, moment


class Worker:
    """Delivers one endpoint; `run()` returns when the lease is lost or the endpoint is gone or disabled."""

    def __init__(self, endpoint: Endpoint, owner: str, engine: Engine, outbox: Outbox, guard: Guard,
                 settings: Settings, tally: Tally, tls: ssl.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self._owner = owner
        self._engine = engine
        self._outbox = outbox
        self._settings = settings
        self._tally = tally
        self._target: Target = guard.parse(endpoint.url)
        self._sender = Sender(guard, settings.webhook_timeout, tls)
        self._cursors: dict[str, int] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self._failing_since = endpoint.failing_since
        self.depth: dict[str, int] = {}  # undelivered events per blog, as last read
        self.oldest: dict[str, float] = {}  # per blog, the time of the event being delivered now

    def stop(self) -> None:
        """End the worker: lanes and the lease loop check this, even if a cancellation is lost."""
        self._stop.set()
        self.wake_all()

    def wake_all(self) -> None:
        """Read every blog again (after an interruption during which hints may have been lost)."""
        for wake in self._wakes.values():
            wake.set()

    def notify(self, blog_id: str) -> None:
        """A new event of *blog_id* exists (a hint; lanes also poll)."""
        wake = self._wakes.get(blog_id)
        if wake is not None:
            wake.set()
        elif blog_id not in self._lanes and self.endpoint.wants_blog(blog_id) and not blog_id.startswith("~"):
            self._start_lane(blog_id)

    async def run(self) -> None:
        try:
            self._cursors = await self._outbox.cursors(self.endpoint.id)
            await self._start_lanes()
            renew = self._settings.webhook_lease / 3
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(renew):
                        await self._stop.wait()
                if self._stop.is_set() or not await self._renew():
                    break
                await self._start_lanes()
        finally:
            self._stop.set()  # no lane starts from now on (notify() may run while the lanes below wind down)
            lanes = list(self._lanes.values())
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            await self._sender.close()
            with contextlib.suppress(EngineUnavailable):
                await self._outbox.release(self.endpoint.id, self._owner)

    async def _renew(self) -> bool:
        try:
            return await self._outbox.acquire(self.endpoint.id, self._owner, self._settings.webhook_lease)
        except EngineUnavailable:
            return True  # storage unreachable: keep the lease's remaining time; advance() is fenced anyway

    async def _start_lanes(self) -> None:
        wanted: list[str] = []
        if self.endpoint.blogs == ("*",):
            with contextlib.suppress(EngineUnavailable):  # storage away: the next renewal lists them
                wanted = [blog.id for blog in await every_blog(self._engine)]
        else:
            wanted = list(self.endpoint.blogs)
        for blog_id in wanted:
            if blog_id not in self._lanes:
                self._start_lane(blog_id)

    def _start_lane(self, blog_id: str) -> None:
        if self._stop.is_set():
            return
        self._wakes[blog_id] = asyncio.Event()
        task = asyncio.create_task(self._lane(blog_id), name=f"livepush-webhook-{self.endpoint.id}-{blog_id}")
        self._lanes[blog_id] = task
        task.add_done_callback(lambda _: self._lane_done(blog_id))

    def _lane_done(self, blog_id: str) -> None:
        self._lanes.pop(blog_id, None)
        self._wakes.pop(blog_id, None)

    # one blog

    async def _lane(self, blog_id: str) -> None:
        wake = self._wakes[blog_id]
        cursor = self._cursors.get(blog_id, 0)
        idle = 0
        try:
            while not self._stop.is_set():
                wake.clear()
                history = await self._read(blog_id, cursor)
                if history.frames:
                    cursor, idle = await self._deliver_all(blog_id, cursor, history), 0
                    continue
                self.depth[blog_id] = 0
                # Hints wake a lane at once; the poll only covers a hint that was lost, so a quiet blog's
                # lane polls ever more rarely (up to 32 intervals) instead of reading storage every interval.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.webhook_poll_interval * 2 ** min(idle, 5)):
                        await wake.wait()
                idle += 1
        except Stopped:
            self._stop.set()
        except Exception:
            # A bug, not a receiver's fault: log it; the lane is started again at the next lease renewal.
            log.exception("webhook %s: the lane of blog %s failed", self.endpoint.id, blog_id)

    async def _read(self, blog_id: str, cursor: int) -> History:
        """The next chunk of the blog's history after *cursor* (empty when there is none yet)."""
        try:
            history = await self._engine.events_since(blog_id, cursor)
            if history is None:
                blog = await self._engine.get_blog(blog_id)
                if cursor > blog.seq:  # storage went back in time (Redis lost its newest writes): follow it
                    log.warning("webhook %s: blog %s is at seq %d, behind the cursor %d; following it",
                                self.endpoint.id, blog_id, blog.seq, cursor)
                    await self._advance_to(blog_id, blog.seq, force=True)
                    return History([], blog.seq)
                await self._disable(f"the events of blog {blog_id} after seq {cursor} are no longer kept")
        except (BlogNotFound, EngineUnavailable):
            return History([], cursor)  # a blog named before it exists, or storage away: poll again
        assert history is not None
        return history

    async def _deliver_all(self, blog_id: str, cursor: int, history: History) -> int:
        await self._bound(blog_id, cursor, history.top)
        moved = False
        for frame in history.frames:
            self.depth[blog_id] = history.top - cursor
            kind, moment = event_facts(frame)
            if self.endpoint.wants_event(kind):
                self.oldest[blog_id] = moment
                success = await self._deliver(blog_id, frame, kind)
                await self._advance_to(blog_id, frame.seq, attempts=(success,))
                moved = False
            else:
                moved = True
            cursor = frame.seq
        self.oldest.pop(blog_id, None)
        if moved:
            await self._advance_to(blog_id, cursor)
        self.depth[blog_id] = history.top - cursor
        return cursor

    async def _bound(self, blog_id: str, cursor: int, top: int) -> None:
        """Disable the endpoint when a blog's undelivered events outgrow the bound (history keeps only so many)."""
        if top - cursor > self._settings.webhook_max_backlog:
            await self._disable(f"{top - cursor} undelivered events for blog {blog_id}, more than the bound of "
                                f"{self._settings.webhook_max_backlog} (LIVEPUSH_WEBHOOK_MAX_BACKLOG)")

    async def _advance_to(self, blog_id: str, seq: int, force: bool = False,
                          attempts: Sequence[Attempt] = ()) -> None:
        while True:
            try:
                if not await self._outbox.advance(self.endpoint.id, self._owner, blog_id, seq, force, attempts):
                    raise Stopped
                self._cursors[blog_id] = seq  # a lane restarted after a failure resumes from here
                return
            except EngineUnavailable:
                await asyncio.sleep(self._settings.webhook_poll_interval)

    async def _deliver(self, blog_id: str, frame: Frame, kind: str) -> Attempt:
        """POST one event until a 2xx and return that attempt (failed ones are logged at once);
        raises Stopped when the endpoint is disabled meanwhile."""
        msg_id = message_id(blog_id, frame.epoch, frame.seq)
        attempt = 0
        while True:
            if self._stop.is_set():
                raise Stopped
            attempt += 1
            timestamp = int(time.time())
            headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                       "webhook-signature": sign(self.endpoint.secret, msg_id, timestamp, frame.data)}
            outcome = await self._sender.post(self._target, headers, frame.data)
            self._tally.attempts += 1
            record = Attempt(msg_id, blog_id, frame.seq, kind, attempt, outcome.status, outcome.error, time.time(),
                             outcome.duration_ms)
            if outcome.ok:
                self._tally.delivered += 1
                await self._succeeded()
                return record  # logged together with the cursor's move: one round trip per delivery
            await self._record(record)
            self._tally.fail(outcome)
            await self._failed()
            with contextlib.suppress(EngineUnavailable):  # the queue grows behind a failing event, too
                await self._bound(blog_id, frame.seq - 1, (await self._engine.get_blog(blog_id)).seq)
            await asyncio.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        settings = self._settings
        ceiling: float = min(settings.webhook_backoff_max, settings.webhook_backoff_base * 2.0 ** min(attempt - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)

    async def _record(self, attempt: Attempt) -> None:
        with contextlib.suppress(EngineUnavailable):
            await self._outbox.record(self.endpoint.id, [attempt])

    async def _succeeded(self) -> None:
        if self._failing_since is not None:
            self._failing_since = None
            with contextlib.suppress(EngineUnavailable):
                await self._outbox.set_failing(self.endpoint.id, None)

    async def _failed(self) -> None:
        now = time.time()
        if self._failing_since is None:
            self._failing_since = now
            with contextlib.suppress(EngineUnavailable):
                await self._outbox.set_failing(self.endpoint.id, now)
        elif now - self._failing_since > self._settings.webhook_retry_window:
            await self._disable(f"every attempt failed for {now - self._failing_since:.0f}s (the retry window "
                                f"is {self._settings.webhook_retry_window:g}s)")

    async def _disable(self, reason: str) -> None:
        log.warning("webhook %s disabled: %s", self.endpoint.id, reason)
        self._tally.disabled += 1
        while True:
            try:
                await self._outbox.disable(self.endpoint.id, reason, time.time())
                break
            except EngineUnavailable:
                await asyncio.sleep(self._settings.webhook_poll_interval)
        raise Stopped
