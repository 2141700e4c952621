"""A long-running task of the app: started in the lifespan, cancelled at shutdown."""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """Subclasses implement `run()`; `start()` runs it as a task and `stop()` cancels and awaits it."""

    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"livepush-{type(self).__name__.lower()}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
