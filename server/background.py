"""The app's long-running tasks: started in the lifespan, stopped at shutdown within a deadline.

A task is cancelled to stop it, but cancellation alone is not enough: Python 3.11's
`asyncio.wait_for` (which redis-py wraps around every command) can lose a cancellation that
arrives as the wrapped call completes, and the loop then goes on as if nothing happened. So
every loop also checks `stopping`, and `stop_all()` waits only so long: a task still running
after the deadline is logged and left behind, and the shutdown goes on without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable

log = logging.getLogger("livepush")
STOP_SECONDS = 2.0


class Background:
    """Subclasses implement `run()` and loop while not `stopping`; `start()` runs it as a task."""

    _task: asyncio.Task[None] | None = None
    stopping = False

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self.stopping = False
        self._task = asyncio.create_task(self.run(), name=f"livepush-{type(self).__name__.lower()}")

    def cancel(self) -> asyncio.Task[None] | None:
        """Ask the task to stop; the task, to wait for (None if it was not running)."""
        task, self._task = self._task, None
        self.stopping = True
        if task is not None:
            task.cancel()
        return task

    async def stop(self, seconds: float = STOP_SECONDS) -> bool:
        """Cancel the task and wait for it at most *seconds*; False if it was left running."""
        return await stop_all([self], seconds)


async def stop_all(tasks: Iterable[Background], seconds: float = STOP_SECONDS) -> bool:
    """Stop every task at once and wait at most *seconds* for all of them; False if any was left running."""
    running = {task for task in (background.cancel() for background in tasks) if task is not None}
    if not running:
        return True
    _, pending = await asyncio.wait(running, timeout=seconds)
    for task in running - pending:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed before it was stopped", task.get_name(), exc_info=task.exception())
    for task in pending:
        log.error("%s did not stop within %.1fs; shutting down without it", task.get_name(), seconds)
    return not pending


async def within(work: Awaitable[None], seconds: float, what: str) -> bool:
    """Await *work* at most *seconds*; False (logged, the work cancelled) if it was not done by then."""
    task = asyncio.ensure_future(work)
    _, pending = await asyncio.wait({task}, timeout=seconds)
    if pending:
        task.cancel()
        log.error("%s did not finish within %.1fs; shutting down without it", what, seconds)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())
    return True
