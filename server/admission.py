"""Admission control for streams: caps on open streams per client address and per process.

A process that is full answers new readers with 1013 (WebSocket) or 503 (SSE) and a retry
hint instead of falling over; a single address (a crawler, a runaway script) cannot take all
the sockets. Both caps are off (0) unless configured, as in nginx's limit_conn and
Centrifugo's connection limits: many readers legitimately share one address behind NAT.
The client address is the peer's, or the X-Forwarded-For one when uvicorn trusts the proxy
(`--forwarded-allow-ips`, FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

from collections import Counter


class Refused(Exception):
    """A new stream would exceed a cap; the message says which."""


class Admission:
    """Counts open streams; `admit()` raises Refused when a cap would be exceeded."""

    def __init__(self, max_streams: int = 0, max_per_address: int = 0) -> None:
        self._max_streams = max_streams
        self._max_per_address = max_per_address
        self._by_address: Counter[str] = Counter()
        self.open = 0
        self.refused = 0

    def admit(self, address: str) -> None:
        if self._max_streams and self.open >= self._max_streams:
            self.refused += 1
            raise Refused("this server is full; retry later")
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
