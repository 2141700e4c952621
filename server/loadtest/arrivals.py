"""Browser-like arrivals: a reader that loads the page first and opens its stream from the page's position.

An arrival fetches the blog page and the widget's assets (browser.py), then connects like the
widget: `since=<data-seq>&epoch=<data-epoch>`. Its SequenceChecker starts at the page's seq, so
the run's loss check holds it to every write acknowledged after the page it was shown: an event
published between its page and its stream must reach it, by replay or live. It stays connected
to the end of the run, like a reader, and is checked the same way.

Time to interactive runs from the page request to the moment the widget is current: the stream's
first message when the server had something to send at once (the replay of posts published after
the page, or a snapshot), else the handshake (a page at the top gets nothing until the next event).
An arrival whose first message replays a post stamped before its stream opened is *raced*: those
are the arrivals the miss check is about.

Arrival n of the schedule goes to worker n mod K; the schedule is an open loop (arrival n starts
at its time whether or not earlier ones finished) with one of three shapes over --duration.
"""

from __future__ import annotations

import time

from orjson import loads

from server.loadtest import stamp
from server.loadtest.reader import Host, SimReader, State
from server.loadtest.transport import Payload

STEP = 0.001
SPIKE_FROM, SPIKE_TO, SPIKE_BASE = 0.4, 0.6, 0.1


def rate_at(rate: float, shape: str, duration: float, t: float) -> float:
    """Arrivals per second at *t* seconds into the arrival window."""
    if shape == "ramp":
        return rate * t / duration
    if shape == "spike":
        return rate if SPIKE_FROM * duration <= t < SPIKE_TO * duration else rate * SPIKE_BASE
    return rate


def arrival_times(rate: float, shape: str, duration: float) -> list[float]:
    """Seconds after the window opens at which each arrival starts (the rate integrated in 1 ms steps)."""
    times: list[float] = []
    if rate <= 0 or duration <= 0:
        return times
    total = 0.0
    steps = round(duration / STEP)
    for step in range(steps):
        start = step * STEP
        current = rate_at(rate, shape, duration, start)
        after = total + current * STEP
        while current > 0 and len(times) < after - 1e-9 and len(times) >= total - 1e-9:
            times.append(start + (len(times) - total) / current)
        total = after
    return times


class ArrivalReader(SimReader):
    """A reader whose first position comes from the page it loaded."""

    __slots__ = ("_open_connection", "decided", "open_ns", "page_ns")

    def __init__(self, host: Host, index: int) -> None:
        super().__init__(host, index)
        self.page_ns = 0
        self.open_ns = 0
        self.decided = False
        self._open_connection = 0

    def arrive(self, seq: int, epoch: str, page_ns: int) -> None:
        """The page showed the blog at *seq* in *epoch*; the page request began at *page_ns*."""
        self.checker.snapshot(seq, epoch)
        self.page_ns = page_ns

    def give_up(self) -> None:
        """The page could not be loaded: nothing to connect, nothing to wait for."""
        self.fatal = True
        self.state = State.DONE

    def on_open(self) -> None:
        first = not self.served
        super().on_open()
        if first:
            self.served = True
            self.open_ns = time.time_ns()
            self._open_connection = self.connections
            self.host.stats.arrivals_open += 1

    def on_message(self, data: Payload, now_ns: int) -> None:
        if not self.decided and self.connections == self._open_connection:
            self._decide(data, now_ns)
        super().on_message(data, now_ns)

    def conclude(self) -> None:
        """The run is over: an arrival that never had a first message was interactive at its handshake."""
        if not self.decided and self.open_ns:
            self.decided = True
            self.host.stats.record_arrival(self.page_ns, self.open_ns)

    def _decide(self, data: Payload, now_ns: int) -> None:
        self.decided = True
        ready = self.open_ns
        try:
            message = loads(data)
            kind = message["type"]
            if kind == "snapshot":
                ready = now_ns
            elif kind == "post.created":
                sent = stamp.sent_ns(message["post"].get("byline"), self.host.run_id)
                if sent is not None and sent < self.connect_ns:
                    ready = now_ns
                    self.host.stats.arrivals_raced += 1
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # counted as a protocol error by the reader
        self.host.stats.record_arrival(self.page_ns, ready)
