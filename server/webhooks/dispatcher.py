"""Which endpoints this process delivers, and waking them when events arrive.

Every second or so (`LIVEPUSH_WEBHOOK_POLL_INTERVAL`) the dispatcher lists the enabled
endpoints and tries to take the lease of each one it does not deliver yet. On Redis the lease is
a key set with `NX PX` and renewed by its holder every third of `LIVEPUSH_WEBHOOK_LEASE`: exactly
one process delivers an endpoint at a time, and when it dies, any other takes over once the
lease has expired, from the cursors stored beside it. Each event the engine hands this process
(`notify`, on the fan-out path: a dict lookup and an `Event.set()` per endpoint) wakes the lanes
of its blog; lanes also poll, since pub/sub may drop a hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
import time

import httpx

from server.background import Background
from server.engine import Engine, EngineUnavailable
from server.engine.outbox import Outbox
from server.settings import Settings
from server.webhooks.guard import Guard, Refused
from server.webhooks.worker import Tally, Worker
from server.wire import Frame

log = logging.getLogger("livepush.webhooks")


class Dispatcher(Background):
    """Runs a Worker for every endpoint whose lease this process holds."""

    def __init__(self, engine: Engine, outbox: Outbox, guard: Guard, settings: Settings) -> None:
        self._engine = engine
        self._outbox = outbox
        self._guard = guard
        self._settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.tally = Tally()
        self.workers: dict[str, Worker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._kick = asyncio.Event()
        self._tls: ssl.SSLContext | None = None

    def notify(self, frame: Frame) -> None:
        """The engine delivered an event of `frame.blog` to this process."""
        for worker in self.workers.values():
            worker.notify(frame.blog)

    def resync(self) -> None:
        """The engine's fan-out was interrupted: hints may be lost, so every lane reads its blog again."""
        for worker in self.workers.values():
            worker.wake_all()

    def kick(self) -> None:
        """Look for endpoints to deliver now (a new one was created here)."""
        self._kick.set()

    async def run(self) -> None:
        while not self.stopping:
            self._kick.clear()
            try:
                await self._claim()
            except EngineUnavailable as exc:
                log.warning("webhooks: cannot read the endpoints (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.webhook_poll_interval):
                    await self._kick.wait()

    async def _claim(self) -> None:
        for endpoint in await self._outbox.all():
            if not endpoint.enabled or endpoint.id in self.workers:
                continue
            if not await self._outbox.acquire(endpoint.id, self.owner, self._settings.webhook_lease):
                continue
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            try:
                worker = Worker(endpoint, self.owner, self._engine, self._outbox, self._guard, self._settings,
                                self.tally, self._tls)
            except Refused as exc:  # the rules changed since it was created (private addresses no longer allowed)
                await self._outbox.disable(endpoint.id, f"its URL is refused now: {exc}", time.time())
                continue
            self.workers[endpoint.id] = worker
            task = asyncio.create_task(self._run(worker), name=f"livepush-webhook-{endpoint.id}")
            self._tasks[endpoint.id] = task

    async def _run(self, worker: Worker) -> None:
        try:
            await worker.run()
        except Exception:
            log.exception("webhook %s: the worker failed; another attempt at the next scan", worker.endpoint.id)
        finally:
            self.workers.pop(worker.endpoint.id, None)
            self._tasks.pop(worker.endpoint.id, None)

    def cancel(self) -> asyncio.Task[None] | None:
        """Stop the scan and every worker (each releases its lease, so another node takes over at once).

        The task returned ends when all of them have; workers also check a flag, in case a cancellation
        is lost inside a Redis call (see server.background).
        """
        self.stopping = True
        for worker in self.workers.values():
            worker.stop()
        tasks = [task for task in (self._task, *self._tasks.values()) if task is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        return asyncio.ensure_future(_joined(tasks)) if tasks else None


async def _joined(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
