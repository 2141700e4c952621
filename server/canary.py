"""Proof that this process still hears its own fan-out: a canary every second, end to end.

The canary is published through the engine exactly like an event (on Redis: PUBLISH on a
channel the pattern subscription covers) and must come back through the same delivery path.
A process whose subscription died silently, or whose event loop stalls, stops seeing it:
`/readyz` then says 503 even though Redis still answers PING. Canaries of other processes
arrive too and are ignored; none ever reaches a reader.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable

from server.background import Background
from server.engine import CANARY_BLOG
from server.wire import Frame

log = logging.getLogger("livepush.canary")


class Canary(Background):
    """Sends canaries through the engine and filters them out of what is delivered."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], deliver: Callable[[Frame], None],
                 interval: float = 1.0, timeout: float = 10.0) -> None:
        self._send = send
        self._deliver = deliver
        self._interval = interval
        self._timeout = timeout
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}".encode()
        self._last_heard = time.monotonic()
        self._deaf = False

    def deliver(self, frame: Frame) -> None:
        """The engine's sink: canaries are taken here, everything else goes on to the relay."""
        if frame.blog != CANARY_BLOG:
            self._deliver(frame)
        elif frame.data == self._token:
            self._last_heard = time.monotonic()

    @property
    def age(self) -> float:
        """Seconds since this process last heard its own canary."""
        return time.monotonic() - self._last_heard

    @property
    def healthy(self) -> bool:
        # Generous by default: a saturated loop answers late but is not deaf; readiness must not flap on load.
        return self.age < self._timeout

    def start(self) -> None:
        self._last_heard = time.monotonic()
        super().start()

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self._send(self._token)
            except Exception as exc:  # the engine is down: readiness already says so
                log.debug("canary not sent: %s", exc)
            if not self.healthy and not self._deaf:
                log.error("this process has not heard its own canary for %.1fs: deaf to events", self.age)
            elif self.healthy and self._deaf:
                log.warning("canary heard again")
            self._deaf = not self.healthy
            await asyncio.sleep(self._interval)
