"""Token buckets for writes: per publisher token and per client IP (HTTP 429 with Retry-After).

A bucket holds up to `burst` tokens and refills at `rate` per second; a write takes one. The
table of buckets is bounded: when it is full, the least recently used bucket is forgotten
(a forgotten bucket comes back full, which only ever errs on the side of allowing).
"""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    """Many token buckets keyed by a string; `take(key)` is 0.0 when allowed, else seconds to wait."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, key: str, now: float | None = None) -> float:
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, then = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
