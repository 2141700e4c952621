"""A worker process: one event loop (uvloop when installed) running a share of the readers.

The worker ramps its readers in on the shared schedule (reader i of N connects at
t0 + ramp * i / N), sends a Tick every whole second after t0, and on Drain stops churning and
pausing, lets every reader catch up with the last acknowledged seq, closes them all and sends
its WorkerResult. Readers are interleaved across workers, so each ramps evenly.

Connecting is the only place with a task, and only while a TCP connect is in flight; after
that a connection is an asyncio.Protocol fed by the loop.

With several nodes (`--url` repeated), reader i's k-th connection goes to node (i + k) mod N:
the readers start spread round-robin and every resume lands on the next node, so each reader's
sequence check spans nodes. Arrival n loads its page from, and streams from, node n mod N.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import ssl
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any
from urllib.parse import quote

from hdrh.histogram import HdrHistogram

from server.loadtest.arrivals import ArrivalReader, arrival_times
from server.loadtest.browser import Browser, PageError, Visitor
from server.loadtest.config import LoadConfig
from server.loadtest.messages import Command, Drain, Publish, Ready, Start, SteadyReader, Stop, WorkerResult, listen
from server.loadtest.reader import SimReader, State
from server.loadtest.stats import HIGHEST_US, LOWEST_US, WorkerStats, cpu_seconds, peak_rss_mib
from server.loadtest.system import event_loop_factory, raise_fd_limit
from server.loadtest.transport import CLOSE_TIMEOUT, Connection
from server.loadtest.transport_sse import SseConnection
from server.loadtest.transport_ws import WsConnection, batch_bytes

SLOW_RECEIVE_BUFFER = 4096
POLL_SECONDS = 0.05
VISITORS_KEPT = 1000  # past visitors a repeat arrival is drawn from


def roles(readers: int, churn: float, slow: float, seed: int,
          sample: float = 1.0) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
    """Which reader indices churn, which read slowly, and which only count: the same draw in every worker.

    Churning and slow readers are always in the sample (they need the full check); counting
    readers are drawn from the rest until the sample is `sample` of all readers.
    """
    order = list(range(readers))
    random.Random(seed).shuffle(order)  # noqa: S311 (a simulation, not security)
    churners = round(readers * churn)
    slow_readers = round(readers * slow)
    sampled = max(churners + slow_readers, round(readers * sample), 1 if readers else 0)
    return (frozenset(order[:churners]), frozenset(order[churners:churners + slow_readers]),
            frozenset(order[sampled:]))


class Worker:
    """Runs this process's readers; implements the reader's Host."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe: Pipe, config: LoadConfig, worker: int, workers: int,
                 run_id: str) -> None:
        self.loop = loop
        self.pipe = pipe
        self.config = config
        self.worker = worker
        self.run_id = run_id
        self.stats = WorkerStats(len(config.urls))
        self.rng = random.Random(f"{config.seed}-{worker}")  # noqa: S311 (a simulation, not security)
        self.draining = False
        self.churn_every = config.churn_every
        self.churn_pause = config.churn_pause
        self.slow_every = config.slow_every
        self.slow_pause = config.slow_pause
        self._targets = config.targets
        self._ssl = ssl.create_default_context() if any(target.secure for target in self._targets) else None
        self._addresses: list[tuple[socket.AddressFamily, Any]] = []
        self._commands: asyncio.Queue[Command] = asyncio.Queue()
        self._stop_requested = False
        self._connecting: set[asyncio.Task[None]] = set()
        self._t0 = 0.0
        self._tick_index = 0
        self._tick_timer: asyncio.TimerHandle | None = None
        self._counted_at_tick = 0
        self._batch = batch_bytes(config.publish_rate, config.post_bytes)
        churners, slow, counting = roles(config.readers, config.churn, config.slow, config.seed, config.sample)
        self.readers: list[SimReader] = [SimReader(self, index, index in churners, index in slow, index in counting)
                                         for index in range(worker, config.readers, workers)]
        self.arrivals: list[ArrivalReader] = []
        self._workers = workers
        self._visitors: list[Visitor] = []
        blog = quote(config.blog, safe="")
        self._browsers = [Browser(target, f"/blogs/{blog}", config.connect_timeout)
                          for target in self._targets] if config.arrivals else []
        kind = "ws" if config.transport == "ws" else "sse"
        self._paths = [f"{target.prefix}/{kind}/blogs/{blog}" for target in self._targets]
        if config.nchan:
            self._paths = [f"{target.prefix}/sub/{blog}" for target in self._targets]  # no resume: no since, epoch

    async def run(self) -> None:
        """The whole life of the worker, from Ready to WorkerResult."""
        await self._resolve()
        listen(self.pipe, self.loop, self._on_command, self._on_coordinator_gone, "commands")
        self.pipe.send(Ready(self.worker, cpu_seconds()))
        start = await self._commands.get()
        if not isinstance(start, Start):
            return
        self._t0 = self.loop.time() + (start.t0 - time.time())
        total = max(self.config.readers, 1)
        for reader in self.readers:
            self.loop.call_at(self._t0 + self.config.ramp * reader.index / total, reader.connect)
        self._schedule_tick()
        command = await self._commands.get()
        drained = False
        if isinstance(command, Drain):
            drained = await self._drain(command.seq, command.seconds)
            if command.seq is not None:
                # A counting reader's position is its message count: past the last seq means extra messages.
                # The last seq is the highest acknowledged or seen parsed by a sampled reader here (a post
                # the server committed but whose answer the publisher never got is no excess).
                seen = max((r.checker.last for r in self.readers if not r.counting and r.checker.started),
                           default=command.seq)
                last = max(command.seq, seen)
                self.stats.count_excess += sum(r.checker.last - last for r in self.readers
                                               if r.counting and r.checker.started and r.checker.last > last)
        await self._finish()
        for browser in self._browsers:
            await browser.close()
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        self._send_tick()
        self.pipe.send(self._result(drained))

    # Host

    def open(self, reader: SimReader, since: int | None, epoch: str | None) -> Connection:
        query = []
        if since is not None and not self.config.nchan:
            query.append(f"since={since}")
            if epoch:
                query.append(f"epoch={quote(epoch, safe='')}")
        node = reader.node = (reader.index + reader.connections - 1) % len(self._targets)
        target = self._targets[node]
        path = self._paths[node] + ("?" + "&".join(query) if query else "")
        connection: WsConnection | SseConnection
        timeout = self.config.connect_timeout
        if self.config.transport == "ws":
            scheme = "wss" if target.secure else "ws"
            connection = WsConnection(reader, f"{scheme}://{target.host_header}{path}", timeout,
                                      counting=reader.counting, batch=self._batch)
        else:
            request = SseConnection.request(target.host_header, path, since)
            connection = SseConnection(reader, request, timeout)
        task = self.loop.create_task(self._connect(reader, connection))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return connection

    # internals

    async def _resolve(self) -> None:
        for target in self._targets:
            infos = await self.loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            family, _, _, _, address = infos[0]
            self._addresses.append((family, address))

    async def _connect(self, reader: SimReader, connection: WsConnection | SseConnection) -> None:
        family, address = self._addresses[reader.node]
        target = self._targets[reader.node]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if reader.slow:
                # A small receive window makes a paused reader back up into the server's buffers quickly.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RECEIVE_BUFFER)
            async with asyncio.timeout(self.config.connect_timeout):
                await self.loop.sock_connect(sock, address)
                server_hostname = target.host if target.secure else None
                await self.loop.create_connection(lambda: connection, sock=sock,
                                                  ssl=self._ssl if target.secure else None,
                                                  server_hostname=server_hostname)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            sock.close()
            reader.on_failed(0, f"connect: {exc!r}")

    def _schedule_arrivals(self, start: float) -> None:
        """Arrival n of the run's schedule starts at *start* + its time; this worker takes every K-th."""
        config = self.config
        begin = self.loop.time() + (start - time.time())
        times = arrival_times(config.arrivals, config.arrival_shape, config.duration)
        for number in range(self.worker, len(times), self._workers):
            self.loop.call_at(begin + times[number], self._arrive, config.readers + number)

    def _arrive(self, index: int) -> None:
        if self.draining or not self._browsers:
            return
        arrival = ArrivalReader(self, index)
        self.arrivals.append(arrival)
        self.readers.append(arrival)
        self.stats.arrivals += 1
        repeat = self._visitors and self.rng.random() < self.config.repeat
        visitor = self.rng.choice(self._visitors) if repeat else Visitor()
        if not repeat:
            if len(self._visitors) >= VISITORS_KEPT:
                self._visitors[self.rng.randrange(VISITORS_KEPT)] = visitor
            else:
                self._visitors.append(visitor)
        browser = self._browsers[index % len(self._browsers)]  # the node its first connection goes to
        task = self.loop.create_task(self._load_page(arrival, visitor, browser))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _load_page(self, arrival: ArrivalReader, visitor: Visitor, browser: Browser) -> None:
        stats = self.stats
        page_ns = time.time_ns()
        try:
            visit = await browser.visit(visitor)
        except PageError as exc:
            stats.error("page_errors", f"arrival {arrival.index}: {exc}")
            arrival.give_up()
            return
        stats.pages += 1
        stats.pages_304 += visit.status == 304
        stats.pages_with_etag += visit.etag
        stats.page_bytes += visit.page_bytes
        stats.page.record_value(min(max(visit.page_ns // 1000, LOWEST_US), HIGHEST_US))
        stats.assets += visit.assets
        stats.assets_304 += visit.assets_304
        stats.assets_cached += visit.assets_cached
        stats.asset_bytes += visit.asset_bytes
        if self.config.think:
            await asyncio.sleep(self.config.think)
        arrival.arrive(visit.seq, visit.epoch, page_ns)
        arrival.connect()

    def _on_command(self, command: Command) -> None:
        if isinstance(command, Publish):
            if self.config.arrivals:
                self._schedule_arrivals(command.start)
            return
        self._commands.put_nowait(command)
        if isinstance(command, Stop):
            self._stop_requested = True

    def _on_coordinator_gone(self) -> None:
        self._on_command(Stop())

    def _schedule_tick(self) -> None:
        self._tick_timer = self.loop.call_at(self._t0 + self._tick_index + 1, self._on_tick)

    def _on_tick(self) -> None:
        counted = self.stats.counted
        self._send_tick()
        self._schedule_tick()
        if counted == self._counted_at_tick:
            # A quiet second: counting readers stop batching, so nothing waits in a kernel buffer (a
            # server's WebSocket ping included) until the next message.
            for reader in self.readers:
                reader.settle()
        self._counted_at_tick = counted

    def _send_tick(self) -> None:
        self.pipe.send(self.stats.tick(self.worker, self._tick_index))
        self._tick_index += 1

    async def _drain(self, seq: int | None, seconds: float) -> bool:
        self.draining = True
        for reader in self.readers:
            reader.drain()
        return await self._wait(lambda: all(reader.caught_up(seq) for reader in self.readers), seconds)

    async def _finish(self) -> None:
        self.draining = True
        for arrival in self.arrivals:
            arrival.conclude()
        for reader in self.readers:
            reader.finish()
        if not await self._wait(lambda: all(r.state is State.DONE for r in self.readers), CLOSE_TIMEOUT + 0.5):
            for reader in self.readers:
                reader.abort()
            await asyncio.sleep(POLL_SECONDS)
        for task in list(self._connecting):
            task.cancel()

    async def _wait(self, done: Callable[[], bool], seconds: float) -> bool:
        deadline = self.loop.time() + seconds
        while not done():
            if self.loop.time() >= deadline or self._stop_requested:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    def _result(self, drained: bool) -> WorkerResult:
        steady = [SteadyReader(r.checker.start, r.checker.last, list(r.checker.holes))
                  for r in self.readers if r.steady and r.served and r.checker.started
                  and not isinstance(r, ArrivalReader)]
        arrivals = [SteadyReader(r.checker.start, r.checker.last, list(r.checker.holes))
                    for r in self.arrivals if r.steady and r.served and r.checker.started]
        return WorkerResult(
            worker=self.worker, readers=len(self.readers), counts=self.stats.totals(), steady=steady,
            started=sum(1 for r in self.readers if r.served and not isinstance(r, ArrivalReader)),
            cpu=cpu_seconds(), peak_rss_mib=peak_rss_mib(),
            errors=self.stats.error_samples, drained=drained,
            handshake=self.stats.handshake.encode().decode("ascii") if self.stats.handshake.get_total_count() else None,
            last_served_ns=self.stats.last_served_ns, arrivals=arrivals,
            page=_encoded(self.stats.page), tti=_encoded(self.stats.tti), nodes=self.stats.nodes)


def _encoded(histogram: HdrHistogram) -> str | None:
    if not histogram.get_total_count():
        return None
    encoded: bytes = histogram.encode()
    return encoded.decode("ascii")


def worker_main(pipe: Pipe, config: LoadConfig, worker: int, workers: int, run_id: str) -> None:
    """Entry point of a worker process (spawned by the runner)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the coordinator sends Stop
    raise_fd_limit()
    with contextlib.suppress(ConnectionError), asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_run(pipe, config, worker, workers, run_id))


async def _run(pipe: Pipe, config: LoadConfig, worker: int, workers: int, run_id: str) -> None:
    await Worker(asyncio.get_running_loop(), pipe, config, worker, workers, run_id).run()
