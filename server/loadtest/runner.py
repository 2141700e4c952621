"""The coordinator: starts the worker processes, publishes, collects, and ends the run.

Timeline, in seconds after t0 (shared with the workers as a wall-clock time):

    0 .. ramp                    readers connect, evenly spread
    ramp .. start                until every reader has had its first message (at most
                                 --connect-timeout more), so a connect backlog does not pollute
                                 the latency of the first posts
    start .. start + duration    the publisher posts at --publish-rate; readers churn and pause;
                                 arrivals (--arrivals) load the page and open their stream
    then, up to --drain          no more posts, churn or pauses; readers catch up with the last
                                 acknowledged seq; then every reader closes and reports

The coordinator process runs the publisher and the progress display; it reads the workers'
pipes from its event loop, so a busy worker never blocks it for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import secrets
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess

from server.loadtest.aggregate import Aggregate, LiveView
from server.loadtest.arrivals import arrival_times
from server.loadtest.config import LoadConfig
from server.loadtest.messages import Command, Drain, Publish, Ready, Report, Start, Stop, Tick, WorkerResult, listen
from server.loadtest.publisher import Publisher
from server.loadtest.stats import cpu_seconds
from server.loadtest.summary import Summary, summarize
from server.loadtest.system import loop_name
from server.loadtest.worker import worker_main

START_DELAY = 0.5
READY_TIMEOUT = 60.0
RESULT_GRACE = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Progress = Callable[[LiveView, str], None]


class Runner:
    """One run of the load test."""

    def __init__(self, config: LoadConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress
        self.run_id = secrets.token_hex(4)
        self.workers = config.worker_count() if config.readers or config.arrivals else 0
        arrivals = len(arrival_times(config.arrivals, config.arrival_shape, config.duration))
        self.aggregate = Aggregate(self.workers, config.readers, arrivals)
        self.publisher = Publisher(config, self.run_id)
        self._pipes: list[Pipe] = []
        self._processes: list[BaseProcess] = []
        self._ready: set[int] = set()
        self._dead: set[int] = set()
        self._changed = asyncio.Event()
        self._interrupted = asyncio.Event()
        self._phase = "starting"
        self._t0 = 0.0
        self.publish_start = config.ramp

    async def run(self) -> Summary:
        """Run to the end (or until interrupted) and summarize."""
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self._interrupted.set)
        try:
            blog = await self.publisher.prepare()
            self._spawn()
            await self._wait_for(lambda: len(self._ready) + len(self._dead) >= self.workers, READY_TIMEOUT)
            if self._dead:
                raise RuntimeError(f"{len(self._dead)} worker process(es) failed to start")
            cpu_start = cpu_seconds()
            self._t0 = time.time() + START_DELAY
            self._send(Start(self._t0))
            ticker = asyncio.create_task(self._tick())
            try:
                interrupted = await self._phases()
                self._phase = "closing"
                await self._wait_for(lambda: len(self.aggregate.results) + len(self._dead) >= self.workers,
                                     self.config.drain + RESULT_GRACE)
            finally:
                ticker.cancel()
            cpu_end = cpu_seconds()
            wall = time.time() - self._t0
            coordinator = (cpu_end[0] - cpu_start[0], cpu_end[1] - cpu_start[1])
            return summarize(self.config, blog, self.aggregate, self.publisher, self._t0, self.publish_start, wall,
                             coordinator, loop_name(), interrupted)
        finally:
            for signum in STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
            await self.publisher.close()
            self._reap()

    async def _phases(self) -> bool:
        """Ramp, publish, drain; True when interrupted."""
        config = self.config
        self._phase = "ramp"
        if await self._sleep_until(self._t0 + config.ramp):
            self._send(Stop())
            return True
        self._phase = "connect"
        deadline = time.time() + config.connect_timeout
        while not self.aggregate.all_started() and time.time() < deadline:
            if await self._sleep_until(time.time() + 0.1):
                self._send(Stop())
                return True
        start = time.time()
        self.publish_start = start - self._t0
        self._phase = "publish"
        self._send(Publish(start))
        publishing = asyncio.create_task(self.publisher.run(start, config.duration))
        interrupted = asyncio.create_task(self._interrupted.wait())
        await asyncio.wait({publishing, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        if self._interrupted.is_set() or await self._sleep_until(start + config.duration):
            publishing.cancel()
            self._send(Stop())
            return True
        interrupted.cancel()
        self._phase = "drain"
        self._send(Drain(self.publisher.last_seq(), config.drain))
        waiting = asyncio.create_task(self._wait_for(lambda: len(self.aggregate.results) >= self.workers,
                                                     config.drain + RESULT_GRACE))
        interrupted = asyncio.create_task(self._interrupted.wait())
        await asyncio.wait({waiting, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        interrupted.cancel()
        if self._interrupted.is_set():
            self._send(Stop())
            return True
        return False

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds an event loop
        worker_config = self.config.for_workers()
        loop = asyncio.get_running_loop()
        for index in range(self.workers):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, name=f"livepush-loadtest-{index}", daemon=True,
                                      args=(child, worker_config, index, self.workers, self.run_id))
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
            listen(parent, loop, functools.partial(self._receive, index), functools.partial(self._closed, index),
                   f"worker-{index}")

    def _receive(self, index: int, report: Report) -> None:
        if isinstance(report, Tick):
            self.aggregate.add_tick(report)
        elif isinstance(report, WorkerResult):
            self.aggregate.add_result(report)
        elif isinstance(report, Ready):
            self.aggregate.add_ready(report)
            self._ready.add(index)
        self._changed.set()

    def _closed(self, index: int) -> None:
        if index not in self.aggregate.results:
            self._dead.add(index)
        self._changed.set()

    def _send(self, command: Command) -> None:
        for index, pipe in enumerate(self._pipes):
            if index not in self._dead:
                with contextlib.suppress(OSError):
                    pipe.send(command)

    async def _tick(self) -> None:
        """Once a second after t0: record the coordinator's CPU and refresh the progress display."""
        index = 0
        last_cpu = sum(cpu_seconds())
        while True:
            await asyncio.sleep(max(0.0, self._t0 + index + 1.05 - time.time()))
            cpu = sum(cpu_seconds())
            self.aggregate.add_coordinator_cpu(index, cpu - last_cpu)
            last_cpu = cpu
            if self.progress is not None:
                self.progress(self.aggregate.view(index), self._phase)
            index += 1

    async def _sleep_until(self, wall: float) -> bool:
        """Sleep until wall-clock *wall*; True if interrupted first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._interrupted.wait(), max(0.0, wall - time.time()))
        return self._interrupted.is_set()

    async def _wait_for(self, done: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(1.0, max(0.0, deadline - time.monotonic())))

    def _reap(self) -> None:
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2)
        for pipe in self._pipes:
            pipe.close()
