"""Admission control for streams: caps on open streams per client address and per process, and on load.

A process that is full, or saturated (its event loop running late by more than
LIVEPUSH_MAX_LOOP_LAG), answers new readers with 1013 (WebSocket) or 503 (SSE) and a retry
hint instead of falling over; a single address (a crawler, a runaway script) cannot take all
the sockets. All caps are off (0) unless configured, as in nginx's limit_conn and
Centrifugo's connection limits: many readers legitimately share one address behind NAT.
The client address is the peer's, or the X-Forwarded-For one when uvicorn trusts the proxy
(`--forwarded-allow-ips`, FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable

from server.background import Background


class Refused(Exception):
    """A new stream would exceed a cap; the message says which."""


class Admission:
    """Counts open streams; `admit()` raises Refused when a cap would be exceeded."""

    def __init__(self, max_streams: int = 0, max_per_address: int = 0, max_lag: float = 0.0,
                 lag: Callable[[], float] = lambda: 0.0) -> None:
        self._max_streams = max_streams
        self._max_per_address = max_per_address
        self._max_lag = max_lag
        self._lag = lag
        self._by_address: Counter[str] = Counter()
        self.open = 0
        self.refused = 0

    @property
    def lag(self) -> float:
        """The event loop's latest lag, in seconds (what LIVEPUSH_MAX_LOOP_LAG is compared with)."""
        return self._lag()

    def admit(self, address: str) -> None:
        if self._max_streams and self.open >= self._max_streams:
            self.refused += 1
            raise Refused("this server is full; retry later")
        if self._max_lag and self.lag > self._max_lag:
            self.refused += 1
            raise Refused("this server is busy; retry later")
        if self._max_per_address and self._by_address[address] >= self._max_per_address:
            self.refused += 1
            raise Refused("too many streams from your address; retry later")
        self.open += 1
        self._by_address[address] += 1

    def release(self, address: str) -> None:
        self.open -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]


class LoopLag(Background):
    """How late this process's event loop runs: a timer every `interval` measures its own overshoot.

    `lag` is the worst of the last `window` ticks (one second by default), so one stall keeps
    the process "busy" long enough for the readers arriving behind it to be turned away.
    """

    def __init__(self, interval: float = 0.25, window: int = 4) -> None:
        self._interval = interval
        self._ticks: deque[float] = deque([0.0], maxlen=window)

    @property
    def lag(self) -> float:
        return max(self._ticks)

    async def run(self) -> None:
        while not self.stopping:
            started = time.monotonic()
            await asyncio.sleep(self._interval)
            self._ticks.append(max(0.0, time.monotonic() - started - self._interval))
