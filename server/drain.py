"""Graceful restarts: on SIGTERM, close readers with 1012 paced over a drain window, then stop.

uvicorn alone closes every WebSocket with 1012 within ~0.1 s of SIGTERM, so all readers of a
node reconnect at the same instant. Instead, once the app has started it wraps the SIGTERM
handler uvicorn installed: the first SIGTERM turns `/readyz` to 503 (load balancers stop sending
new readers), refuses new streams with 1012, closes the existing readers in small batches
spread over `LIVEPUSH_DRAIN_SECONDS`, and only then hands the signal to uvicorn, which finishes
in-flight requests and exits. A second SIGTERM (or SIGINT) stops at once. Each worker process
drains its own readers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from server.hub import CLOSE_RESTARTING, Hub

log = logging.getLogger("livepush.drain")
BATCH_INTERVAL = 0.1


class Drainer:
    """Owns the drain of one process: the state the edges read, and the paced closing."""

    def __init__(self, hub: Hub, seconds: float) -> None:
        self._hub = hub
        self._seconds = seconds
        self.draining = False
        self._previous: Any = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Wrap the current SIGTERM handler (uvicorn's); only possible on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        if self._previous is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            signal.signal(signal.SIGTERM, self._previous)
        self._previous = None

    def _on_sigterm(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self._loop is None:
            self._hand_over(sig, frame)  # a second SIGTERM: stop now
            return
        self.draining = True
        self._loop.call_soon_threadsafe(self._start, sig, frame)

    def _start(self, sig: int, frame: FrameType | None) -> None:
        self._task = asyncio.ensure_future(self.drain(lambda: self._hand_over(sig, frame)))

    async def drain(self, then: Callable[[], None]) -> None:
        """Close every reader with 1012, in batches spread over the window; then call *then*."""
        self.draining = True
        total = self._hub.count()
        batches = max(1, int(self._seconds / BATCH_INTERVAL))
        per_batch = max(1, -(-total // batches))  # ceiling division
        if total:
            log.warning("draining %d readers over %.1fs before stopping", total, self._seconds)
        while self._hub.count():
            self._hub.close_some(per_batch, CLOSE_RESTARTING, "server restarting; reconnect")
            await asyncio.sleep(BATCH_INTERVAL)
        then()

    def _hand_over(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous
        if callable(previous):
            previous(sig, frame)
        else:  # SIG_DFL or SIG_IGN: put it back and let it act
            self.uninstall()
            signal.raise_signal(sig)
