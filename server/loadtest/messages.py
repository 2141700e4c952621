"""What crosses between the coordinator and its worker processes (pickled over a pipe).

Coordinator to worker: Start (the shared start time), Publish (when publishing and arrivals begin),
Drain (the last acknowledged seq to wait for), Stop. Worker to coordinator: Ready, a Tick every
second, and one WorkerResult at the end.

Each side receives on a thread of its own, never with loop.add_reader: the event loop would put
the pipe's socket in non-blocking mode, and multiprocessing's send() and recv() of a message
larger than the socket buffer then fail half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker is up; *cpu* is what starting it cost (user, system seconds), left out of the run's figures."""

    worker: int
    cpu: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Start:
    """Second 0 of the run, as time.time(): every worker ramps and ticks from it."""

    t0: float


@dataclass(frozen=True, slots=True)
class Publish:
    """Publishing began at *start* (time.time()): arrivals follow their schedule from then."""

    start: float


@dataclass(frozen=True, slots=True)
class Drain:
    """Publishing is over: wait up to *seconds* until every reader has seen *seq* (None: nothing was published)."""

    seq: int | None
    seconds: float


@dataclass(frozen=True, slots=True)
class Stop:
    """Finish now (the user interrupted the run)."""


@dataclass(slots=True)
class Tick:
    """One worker's second: counter deltas, the `connected` level, this second's latencies and posts, CPU so far."""

    worker: int
    index: int
    connected: int
    started: int
    gave_up: int
    counts: dict[str, int]
    latency: str | None
    posts: dict[int, tuple[int, int]]
    cpu: tuple[float, float]


@dataclass(slots=True)
class SteadyReader:
    """A reader connected through the whole run: where it started, where it ended, what it missed."""

    start: int
    last: int
    holes: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class NodeTally:
    """One node's share of a worker's readers: served there first, connections opened there, resumes among them."""

    readers: int = 0
    connects: int = 0
    resumes: int = 0


@dataclass(slots=True)
class WorkerResult:
    """A worker's final word: totals, its steady readers, its CPU, a few error samples, and connect times:
    the handshake histogram (encoded) and when its last reader got its first message."""

    worker: int
    readers: int
    counts: dict[str, int]
    steady: list[SteadyReader]
    started: int
    cpu: tuple[float, float]
    peak_rss_mib: float
    errors: list[str]
    drained: bool
    handshake: str | None
    last_served_ns: int
    arrivals: list[SteadyReader] = field(default_factory=list)
    page: str | None = None
    tti: str | None = None
    nodes: list[NodeTally] = field(default_factory=list)


Command = Start | Publish | Drain | Stop
Report = Ready | Tick | WorkerResult


def listen(pipe: Pipe, loop: asyncio.AbstractEventLoop, on_message: Callable[[Any], None],
           on_closed: Callable[[], None], name: str) -> threading.Thread:
    """Receive from *pipe* on a daemon thread; call back on *loop* per message and once at the end."""

    def receive() -> None:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                break
            try:
                loop.call_soon_threadsafe(on_message, message)
            except RuntimeError:  # the loop is closed: nobody listens any more
                return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(on_closed)

    thread = threading.Thread(target=receive, name=name, daemon=True)
    thread.start()
    return thread
