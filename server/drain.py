"""Graceful restarts: on SIGTERM, close readers with 1012 paced over a drain window, then stop.

uvicorn alone closes every WebSocket with 1012 within ~0.1 s of SIGTERM, so all readers of a
node reconnect at the same instant. Instead, once the app has started it wraps the SIGTERM
handler uvicorn installed: the first SIGTERM turns `/readyz` to 503 (load balancers stop sending
new readers), refuses new streams with 1012, closes the existing readers in small batches
spread over `LIVEPUSH_DRAIN_SECONDS`, and only then hands the signal to uvicorn, which finishes
in-flight requests and exits. A first SIGINT goes to uvicorn at once. Each worker process
drains its own readers.

Once the process is stopping (a first signal, or the lifespan's exit), a second SIGTERM or
SIGINT ends it at once (server.shutdown), and a stop that a signal started is bounded:
`LIVEPUSH_DRAIN_SECONDS` + `SHUTDOWN_GRACE` after the signal the process exits whatever it is
waiting for, and sooner when the lifespan had to leave a task behind.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from server.closes import Close
from server.hub import Hub
from server.shutdown import HardStop, exit_now

log = logging.getLogger("livepush.drain")
BATCH_INTERVAL = 0.1
SIGNALS = (signal.SIGTERM, signal.SIGINT)
SHUTDOWN_GRACE = 15.0  # after the drain: in-flight requests (5 s), the lifespan's exit (2 + 5 + 5 s at most)
LEFT_BEHIND_GRACE = 2.0  # after a lifespan exit that left a task running: time to log and return


class Drainer:
    """Owns the stop of one process: the state the edges read, the paced closing, the signals."""

    def __init__(self, hub: Hub, seconds: float) -> None:
        self._hub = hub
        self._seconds = seconds
        self.draining = False
        self.stopping = False
        self.signalled = False
        self.hard_stop = HardStop()
        self._previous: dict[int, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Wrap the current SIGTERM and SIGINT handlers (uvicorn's); only possible on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous = {}

    def begin_stop(self) -> None:
        """The lifespan's exit has begun: from now on a signal ends the process at once."""
        self.stopping = True

    def left_behind(self) -> None:
        """The lifespan's exit left a task running: do not let it hold the process (signalled stops only)."""
        if self.signalled:
            self.hard_stop.arm(LEFT_BEHIND_GRACE, "a task did not stop at shutdown")

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        name = signal.Signals(sig).name
        if self.stopping:
            exit_now(f"{name} while stopping", sig)
        self.stopping = self.signalled = True
        self.hard_stop.arm(self._seconds + SHUTDOWN_GRACE, f"still stopping {self._seconds + SHUTDOWN_GRACE:.0f}s "
                           f"after {name}")
        if sig == signal.SIGTERM and self._loop is not None:
            self.draining = True
            self._loop.call_soon_threadsafe(self._start, sig, frame)
        else:
            self._hand_over(sig, frame)

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
            self._hub.close_some(per_batch, Close.RESTARTING, "server restarting; reconnect")
            await asyncio.sleep(BATCH_INTERVAL)
        then()

    def _hand_over(self, sig: int, frame: FrameType | None) -> None:
        previous = self._previous.get(sig)
        if callable(previous):
            previous(sig, frame)
        else:  # SIG_DFL or SIG_IGN: put it back and let it act
            self.uninstall()
            signal.raise_signal(sig)
