"""Ending the process when the graceful stop does not: a second signal, and a hard deadline.

The graceful stop (server.drain, then uvicorn, then the lifespan's exit) waits on tasks,
connections and Redis. Each of those waits has its own deadline, but a task can also block
the event loop itself, where no deadline can fire. So a stop that a signal started is also
watched from a thread: past its deadline the process exits with status 1, whatever the loop
is doing. A second SIGTERM or SIGINT ends the process at once, by that signal.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import NoReturn

log = logging.getLogger("livepush.drain")
EXIT_STATUS_OVERRAN = 1


def exit_now(why: str, sig: int | None = None) -> NoReturn:
    """End the process at once: killed by *sig* (main thread only) or with status 1; logs are flushed first."""
    log.error("exiting now: %s", why)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    if sig is not None and threading.current_thread() is threading.main_thread():
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)
    os._exit(EXIT_STATUS_OVERRAN)


class HardStop:
    """A deadline for the whole process, kept by a daemon thread: it fires unless the process ended first."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None
        self._at = float("inf")

    def arm(self, seconds: float, why: str) -> None:
        """Exit *seconds* from now, or at the deadline already armed if that is earlier."""
        at = time.monotonic() + seconds
        if at >= self._at:
            return
        self.disarm()
        self._at = at
        self._timer = threading.Timer(seconds, exit_now, (why,))
        self._timer.daemon = True
        self._timer.name = "livepush-hard-stop"
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._at = None, float("inf")
