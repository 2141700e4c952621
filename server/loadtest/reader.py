"""One simulated reader: connect, check every message, churn or read slowly, resume with since.

A reader outlives its connections. It keeps its place (seq and epoch) in a SequenceChecker
and, whenever a connection ends, decides what a well-behaved widget would do: resume with
`since` + `epoch` after a short wait (1013 too slow, 1012 restarting, a dropped connection, its
own churn), or give up (4404 unknown blog, 1008 refused). Everything runs in callbacks on the
worker's loop: no task per reader.

Latency is recorded only for live deliveries to readers that read at full speed: a post stamped
before the current connection started was replayed on resume, and a slow reader's delay is of
its own making.

A *counting* reader (outside the `--sample`) parses its first message (the snapshot) and then
only counts messages: no seq check and no latency, just `deliveries` and a position that
advances by one per message, so a shortfall still shows as lost and an excess as
`count_excess`. Churning and slow readers always parse.
"""

from __future__ import annotations

import asyncio
import random
import time
from enum import Enum
from typing import Protocol

from orjson import loads

from server.loadtest import stamp
from server.loadtest.checker import DUPLICATE, GAP, NOT_STARTED, REORDERED, SequenceChecker
from server.loadtest.stats import WorkerStats
from server.loadtest.transport import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY,
    CLOSE_RESTARTING,
    CLOSE_TRY_LATER,
    CLOSE_UNKNOWN_BLOG,
    Connection,
    Payload,
)

EVENT_TYPES = frozenset({"post.updated", "post.deleted", "blog.updated"})
MAX_BACKOFF = 5.0
STALL_GRACE = 1.0


class State(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    DONE = "done"


class Host(Protocol):
    """What a reader needs from its worker."""

    stats: WorkerStats
    loop: asyncio.AbstractEventLoop
    rng: random.Random
    run_id: str
    draining: bool
    churn_every: float
    churn_pause: float
    slow_every: float
    slow_pause: float

    def open(self, reader: SimReader, since: int | None, epoch: str | None) -> Connection:
        """Start connecting *reader* (resuming after *since* in *epoch* when given)."""
        ...


class SimReader:
    """A simulated reader; also the Listener of its current connection."""

    __slots__ = (
        "_by_us",
        "_churn_timer",
        "_first_pending",
        "_retry_timer",
        "_slow_timer",
        "checker",
        "churner",
        "connect_ns",
        "connection",
        "connections",
        "counting",
        "failures",
        "fatal",
        "host",
        "index",
        "node",
        "paused",
        "received",
        "resumed_after",
        "served",
        "slow",
        "stall_ended",
        "state",
        "steady",
    )

    def __init__(self, host: Host, index: int, churner: bool = False, slow: bool = False,
                 counting: bool = False) -> None:
        self.host = host
        self.index = index
        self.churner = churner
        self.slow = slow
        self.counting = counting and not churner and not slow
        self.checker = SequenceChecker()
        self.connection: Connection | None = None
        self.state = State.IDLE
        self.steady = True
        self.served = False
        self.fatal = False
        self.paused = False
        self.stall_ended = -1.0
        self.failures = 0
        self.connect_ns = 0
        self.connections = 0
        self.node = 0  # the node (index into --url) of the current or last connection; the host sets it
        self.resumed_after: int | None = None
        self.received = 0
        self._first_pending = False
        self._by_us = ""
        self._churn_timer: asyncio.TimerHandle | None = None
        self._slow_timer: asyncio.TimerHandle | None = None
        self._retry_timer: asyncio.TimerHandle | None = None

    # lifecycle driven by the worker

    def connect(self) -> None:
        if self.state is not State.IDLE or self.fatal:
            return
        self._retry_timer = None
        self.state = State.CONNECTING
        self.connect_ns = time.time_ns()
        checker = self.checker
        since = checker.last if checker.started else None
        self.connections += 1
        self.resumed_after = since
        self.received = 0
        self.connection = self.host.open(self, since, checker.epoch)

    def caught_up(self, seq: int | None) -> bool:
        """True when this reader needs nothing more to finish: open at *seq* or beyond, or given up."""
        if self.fatal:
            return True
        return self.state is State.OPEN and self.checker.started and (seq is None or self.checker.last >= seq)

    def drain(self) -> None:
        """Stop churning and pausing; reconnect now if waiting to."""
        self.settle()
        if self.paused and self.connection is not None:
            self.connection.resume()
        self.paused = False
        self._cancel_timers(retry=False)
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self.connect()

    def settle(self) -> None:
        """A counting reader reads what has arrived now instead of waiting for a batch."""
        if self.counting and self.connection is not None:
            self.connection.settle()

    def finish(self) -> None:
        """Close for good (the run is over)."""
        if self.paused and self.connection is not None:
            self.connection.resume()
        self.paused = False
        self._cancel_timers(retry=True)
        if self.state is State.OPEN and self.connection is not None:
            self._by_us = "final"
            self.state = State.CLOSING
            self.connection.close()
        elif self.state is State.IDLE:
            self.state = State.DONE
        elif self.state in (State.CONNECTING, State.CLOSING):
            self._by_us = "final"

    def abort(self) -> None:
        if self.connection is not None:
            self.connection.abort()

    # Listener

    def on_open(self) -> None:
        host = self.host
        stats = host.stats
        stats.connects += 1
        stats.connected += 1
        stats.record_handshake(self.connect_ns, time.time_ns())
        tally = stats.nodes[self.node]
        tally.connects += 1
        if self.resumed_after is not None:
            tally.resumes += 1
        self.state = State.OPEN
        self.failures = 0
        self._first_pending = True
        if self._by_us == "final":
            self.finish()
            return
        if host.draining:
            return
        if self.churner:
            self._churn_timer = host.loop.call_later(host.churn_every * host.rng.uniform(0.5, 1.5), self._churn)
        if self.slow:
            self._slow_timer = host.loop.call_later(host.slow_every * host.rng.uniform(0.5, 1.5), self._pause)

    def on_message(self, data: Payload, now_ns: int) -> None:
        stats = self.host.stats
        self.received += 1
        try:
            message = loads(data)
            kind = message["type"]
            if kind == "post.created":
                stats.deliveries += 1
                seq = message["seq"]
                self._first_pending = False
                result = self.checker.event(seq)
                if result:
                    self._violation(result, seq)
                sent = stamp.sent_ns(message["post"].get("byline"), self.host.run_id)
                if sent is not None:
                    if sent < self.connect_ns:
                        stats.replayed += 1
                    elif not self.slow:
                        stats.record_live(seq, (now_ns - sent) // 1000)
            elif kind == "ping":
                stats.pings += 1
            elif kind in EVENT_TYPES:
                stats.deliveries += 1
                self._first_pending = False
                seq = message["seq"]
                result = self.checker.event(seq)
                if result:
                    self._violation(result, seq)
            elif kind == "snapshot":
                self._snapshot(message["seq"], message["epoch"])
            else:
                stats.other_messages += 1
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            stats.error("protocol_errors", f"reader {self.index}: unreadable message ({exc!r}): {bytes(data[:80])!r}")

    def on_frames(self, count: int) -> None:
        """A counting reader's *count* more messages: assumed to be the next seqs (the sample checks order)."""
        stats = self.host.stats
        stats.deliveries += count
        stats.counted += count
        self.received += count
        self.checker.last += count
        self._first_pending = False

    def on_failed(self, status: int, detail: str) -> None:
        stats = self.host.stats
        self.connection = None
        self.state = State.IDLE
        if status == 404:
            stats.error("unknown_blog", f"reader {self.index}: HTTP 404")
            self._give_up()
            return
        if status:
            stats.error("refused", f"reader {self.index}: {detail}")
        else:
            stats.error("connect_failures", f"reader {self.index}: {detail}")
        if self._by_us == "final":
            self.state = State.DONE
            return
        self.failures += 1
        self._retry(min(MAX_BACKOFF, 0.1 * 2 ** min(self.failures, 6)))

    def on_closed(self, code: int | None, reason: str) -> None:
        host = self.host
        stats = host.stats
        stats.connected -= 1
        stats.disconnects += 1
        self.connection = None
        stalled = self._stalled()
        self.paused = False
        self._cancel_timers(retry=True)
        by_us, self._by_us = self._by_us, ""
        if by_us == "final":
            self.state = State.DONE
            return
        self.state = State.IDLE
        self.steady = False
        if by_us == "churn":
            stats.churned += 1
            self._retry(host.churn_pause * host.rng.uniform(0.5, 1.5))
        elif code == CLOSE_TRY_LATER:
            stats.evicted += 1
            self._retry(host.rng.uniform(0.05, 0.5))
        elif code == CLOSE_RESTARTING:
            stats.restarted += 1
            self._retry(host.rng.uniform(0.1, 1.0))
        elif code == CLOSE_UNKNOWN_BLOG:
            stats.error("unknown_blog", f"reader {self.index}: closed 4404 {reason}")
            self._give_up()
        elif code == CLOSE_POLICY:
            stats.error("refused", f"reader {self.index}: closed 1008 {reason}")
            self._give_up()
        elif code is None and stalled:
            # A server may abort a reader that stopped reading instead of queueing a 1013 frame behind
            # megabytes it cannot send: the same eviction, noticed when reading resumes.
            stats.dropped_stalled += 1
            self._retry(host.rng.uniform(0.05, 0.5))
        elif code is None or code >= CLOSE_INTERNAL_ERROR or code == 1006:
            stats.error("abnormal_closes", f"reader {self.index}: {code} {reason}")
            self._retry(host.rng.uniform(0.1, 1.0))
        else:
            stats.server_closed += 1
            self._retry(host.rng.uniform(0.1, 1.0))

    # internals

    def _snapshot(self, seq: int, epoch: str) -> None:
        stats = self.host.stats
        stats.snapshots += 1
        if not self.served:
            # Served: the first snapshot of the reader's first connection.
            self.served = True
            stats.started += 1
            stats.nodes[self.node].readers += 1
            stats.last_served_ns = max(stats.last_served_ns, time.time_ns())
        if not self._first_pending:
            stats.error("protocol_errors", f"reader {self.index}: a snapshot in the middle of a stream")
        self._first_pending = False
        checker = self.checker
        was_started, old_epoch = checker.started, checker.epoch
        if type(seq) is not int or type(epoch) is not str:
            raise TypeError("snapshot without an integer seq and a string epoch")
        if checker.snapshot(seq, epoch) == REORDERED:
            stats.regressions += 1
            stats.error("protocol_errors", f"reader {self.index}: resumed at {seq}, older than {checker.last}")
        elif was_started:
            if epoch != old_epoch:
                stats.epoch_changes += 1
            else:
                stats.resume_snapshots += 1

    def _violation(self, result: int, seq: int) -> None:
        stats = self.host.stats
        last = self.checker.last
        if result == GAP:
            stats.gaps += 1
            what = f"gap before seq {seq}"
        elif result == DUPLICATE:
            stats.duplicates += 1
            what = f"duplicate seq {seq} (at {last})"
        elif result == REORDERED:
            stats.reordered += 1
            what = f"seq {seq} out of order (at {last})"
        else:
            assert result == NOT_STARTED, result
            stats.error("protocol_errors", f"reader {self.index}: event seq {seq} before any snapshot")
            return
        if len(stats.error_samples) < 20:
            start = "from a snapshot" if self.resumed_after is None else f"resumed with since={self.resumed_after}"
            stats.error_samples.append(f"reader {self.index}: {what}; message {self.received} of connection "
                                       f"{self.connections} ({start})")

    def _churn(self) -> None:
        self._churn_timer = None
        if self.state is State.OPEN and self.connection is not None and not self.host.draining:
            self._by_us = "churn"
            self.steady = False
            self.state = State.CLOSING
            self.connection.close()

    def _pause(self) -> None:
        self._slow_timer = None
        if self.state is State.OPEN and self.connection is not None and not self.host.draining:
            self.host.stats.slow_pauses += 1
            self.paused = True
            self.connection.pause()
            self._slow_timer = self.host.loop.call_later(self.host.slow_pause, self._unpause)

    def _unpause(self) -> None:
        self._slow_timer = None
        if self.paused and self.connection is not None:
            self.paused = False
            self.stall_ended = self.host.loop.time()
            self.connection.resume()
        if self.state is State.OPEN and not self.host.draining:
            host = self.host
            self._slow_timer = host.loop.call_later(host.slow_every * host.rng.uniform(0.5, 1.5), self._pause)

    def _stalled(self) -> bool:
        """Paused now, or only just resumed (a dropped connection shows once reading resumes)."""
        return self.slow and (self.paused or self.host.loop.time() - self.stall_ended < STALL_GRACE)

    def _retry(self, delay: float) -> None:
        if self.host.draining:
            delay = min(delay, 0.05)
        self._retry_timer = self.host.loop.call_later(delay, self.connect)

    def _give_up(self) -> None:
        self.host.stats.gave_up += 1
        self.fatal = True
        self.state = State.DONE
        self._cancel_timers(retry=True)

    def _cancel_timers(self, retry: bool) -> None:
        for timer in (self._churn_timer, self._slow_timer):
            if timer is not None:
                timer.cancel()
        self._churn_timer = self._slow_timer = None
        if retry and self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None

