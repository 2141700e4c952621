"""The coordinator's merge of every worker's ticks: totals, per-second series, per-post figures.

Latency histograms arrive encoded per worker per second; they are added into that second's
histogram and into the run's. Per post, receive counts add up and the slowest reader wins.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from server.loadtest.messages import Ready, Tick, WorkerResult
from server.loadtest.stats import ERROR_COUNTERS, new_histogram

VIOLATIONS = ("gaps", "duplicates", "reordered", "regressions")


@dataclass(slots=True)
class Second:
    """Everything the workers reported for one second of the run."""

    connected: dict[int, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    latency: HdrHistogram | None = None
    cpu: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LiveView:
    """What the progress display shows, once a second."""

    second: int
    connected: int
    readers: int
    deliveries_per_second: int
    deliveries: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    violations: int
    evicted: int
    cpu_percent: float


class Aggregate:
    """Merges Ticks and WorkerResults from every worker."""

    def __init__(self, workers: int, readers: int, arrivals: int = 0) -> None:
        self.workers = workers
        self.readers = readers
        self.arrivals = arrivals  # scheduled arrivals: they connect too, but are not waited for before publishing
        self.seconds: dict[int, Second] = {}
        self.latency = new_histogram()
        self.posts: dict[int, list[int]] = {}
        self.totals: Counter[str] = Counter()
        self.results: dict[int, WorkerResult] = {}
        self.coordinator_cpu: dict[int, float] = {}
        self._last_cpu: dict[int, float] = {}
        self._start_cpu: dict[int, tuple[float, float]] = {}
        self._connected: dict[int, int] = {}
        self._started: dict[int, int] = {}
        self._gave_up: dict[int, int] = {}

    def add_ready(self, ready: Ready) -> None:
        """A worker is up: its CPU so far (start-up, imports) is not part of the run."""
        self._start_cpu[ready.worker] = ready.cpu
        self._last_cpu[ready.worker] = sum(ready.cpu)

    def cpu_since_start(self, result: WorkerResult) -> tuple[float, float]:
        user, system = self._start_cpu.get(result.worker, (0.0, 0.0))
        return result.cpu[0] - user, result.cpu[1] - system

    def add_tick(self, tick: Tick) -> None:
        second = self.seconds.setdefault(tick.index, Second())
        second.connected[tick.worker] = tick.connected
        self._connected[tick.worker] = tick.connected
        self._started[tick.worker] = tick.started
        self._gave_up[tick.worker] = tick.gave_up
        second.counts.update(tick.counts)
        self.totals.update(tick.counts)
        if tick.latency is not None:
            if second.latency is None:
                second.latency = new_histogram()
            second.latency.decode_and_add(tick.latency)
            self.latency.decode_and_add(tick.latency)
        for seq, (count, worst) in tick.posts.items():
            post = self.posts.get(seq)
            if post is None:
                self.posts[seq] = [count, worst]
            else:
                post[0] += count
                post[1] = max(post[1], worst)
        cpu = sum(tick.cpu)
        second.cpu[tick.worker] = cpu - self._last_cpu.get(tick.worker, 0.0)
        self._last_cpu[tick.worker] = cpu

    def add_coordinator_cpu(self, index: int, cpu_delta: float) -> None:
        self.coordinator_cpu[index] = cpu_delta

    def add_result(self, result: WorkerResult) -> None:
        self.results[result.worker] = result

    def all_started(self) -> bool:
        """Every reader has been served its first message (or has given up for good), as of the last ticks."""
        return sum(self._started.values()) + sum(self._gave_up.values()) >= self.readers

    def errors(self) -> int:
        return sum(self.totals[name] for name in ERROR_COUNTERS)

    def violations(self) -> int:
        return sum(self.totals[name] for name in VIOLATIONS)

    def view(self, index: int) -> LiveView:
        """The progress figures after second *index*."""
        second = self.seconds.get(index, Second())
        p50 = p99 = None
        if self.latency.get_total_count():
            p50 = self.latency.get_value_at_percentile(50) / 1000
            p99 = self.latency.get_value_at_percentile(99) / 1000
        cpu = sum(second.cpu.values()) + self.coordinator_cpu.get(index, 0.0)
        return LiveView(
            second=index, connected=sum(self._connected.values()), readers=self.readers + self.arrivals,
            deliveries_per_second=second.counts["deliveries"], deliveries=self.totals["deliveries"],
            p50_ms=p50, p99_ms=p99, errors=self.errors(), violations=self.violations(),
            evicted=self.totals["evicted"], cpu_percent=100 * cpu)
