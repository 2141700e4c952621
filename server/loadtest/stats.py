"""What a worker counts, and what it sends to the coordinator each second and at the end.

Latencies go into an HDR histogram (microseconds, 1 µs to 60 s, 3 significant digits), one per
tick, sent encoded and reset, so the coordinator can merge workers and also keep a per-second
series. Per post, a worker keeps how many of its readers got it live and the slowest of them,
which the coordinator merges into "time to last reader". Counters are plain attributes: the
hot path increments them and nothing else.
"""

from __future__ import annotations

import resource

from hdrh.histogram import HdrHistogram

from server.loadtest.messages import NodeTally, Tick

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3

# Counter names, in the order reports show them. Each is an attribute of WorkerStats.
COUNTERS = (
    "deliveries", "live", "counted", "count_excess", "replayed", "snapshots", "pings", "other_messages",
    "connects", "disconnects", "churned", "evicted", "dropped_stalled", "restarted", "server_closed", "slow_pauses",
    "connect_failures", "refused", "abnormal_closes", "protocol_errors", "unknown_blog",
    "gaps", "duplicates", "reordered", "regressions", "resume_snapshots", "epoch_changes",
    "arrivals", "arrivals_open", "arrivals_raced", "pages", "pages_304", "pages_with_etag", "page_bytes",
    "assets", "assets_304", "assets_cached", "asset_bytes", "page_errors",
)
ERROR_COUNTERS = ("connect_failures", "refused", "abnormal_closes", "protocol_errors", "unknown_blog", "page_errors")


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> tuple[float, float]:
    """This process's (user, system) CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class WorkerStats:
    """A worker's counters and this tick's latencies and per-post figures."""

    def __init__(self, nodes: int = 1) -> None:
        self.connected = 0
        self.deliveries = 0
        self.live = 0
        self.counted = 0
        self.count_excess = 0
        self.replayed = 0
        self.snapshots = 0
        self.pings = 0
        self.other_messages = 0
        self.connects = 0
        self.disconnects = 0
        self.churned = 0
        self.evicted = 0
        self.dropped_stalled = 0
        self.restarted = 0
        self.server_closed = 0
        self.slow_pauses = 0
        self.connect_failures = 0
        self.refused = 0
        self.abnormal_closes = 0
        self.protocol_errors = 0
        self.unknown_blog = 0
        self.gaps = 0
        self.duplicates = 0
        self.reordered = 0
        self.regressions = 0
        self.resume_snapshots = 0
        self.epoch_changes = 0
        self.arrivals = 0
        self.arrivals_open = 0
        self.arrivals_raced = 0
        self.pages = 0
        self.pages_304 = 0
        self.pages_with_etag = 0
        self.page_bytes = 0
        self.assets = 0
        self.assets_304 = 0
        self.assets_cached = 0
        self.asset_bytes = 0
        self.page_errors = 0
        self.page = new_histogram()
        self.tti = new_histogram()
        self.started = 0
        self.gave_up = 0
        self.last_served_ns = 0
        self.handshake = new_histogram()
        self.latency = new_histogram()
        self.posts: dict[int, list[int]] = {}
        self.error_samples: list[str] = []
        self.nodes = [NodeTally() for _ in range(nodes)]
        self._sent = dict.fromkeys(COUNTERS, 0)

    def record_live(self, seq: int, latency_us: int) -> None:
        """One live delivery of post *seq*, *latency_us* after it was sent."""
        if latency_us < LOWEST_US:
            latency_us = LOWEST_US
        elif latency_us > HIGHEST_US:
            latency_us = HIGHEST_US
        self.latency.record_value(latency_us)
        self.live += 1
        post = self.posts.get(seq)
        if post is None:
            self.posts[seq] = [1, latency_us]
        else:
            post[0] += 1
            if latency_us > post[1]:
                post[1] = latency_us

    def record_handshake(self, started_ns: int, now_ns: int) -> None:
        """A connection opened: TCP connect plus the upgrade (or the SSE response head) took this long."""
        self.handshake.record_value(min(max((now_ns - started_ns) // 1000, LOWEST_US), HIGHEST_US))

    def record_arrival(self, page_ns: int, ready_ns: int) -> None:
        """An arrival became interactive *ready_ns* after its page request began (both time.time_ns())."""
        self.tti.record_value(min(max((ready_ns - page_ns) // 1000, LOWEST_US), HIGHEST_US))

    def error(self, counter: str, detail: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{counter}: {detail}")

    def totals(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def tick(self, worker: int, index: int) -> Tick:
        """This second's figures; resets the per-tick histogram and posts."""
        totals = self.totals()
        deltas = {name: value - self._sent[name] for name, value in totals.items() if value != self._sent[name]}
        self._sent = totals
        latency = None
        if self.latency.get_total_count():
            encoded: bytes = self.latency.encode()
            latency = encoded.decode("ascii")
            self.latency.reset()
        posts = {seq: (count, worst) for seq, (count, worst) in self.posts.items()}
        self.posts.clear()
        return Tick(worker, index, self.connected, self.started, self.gave_up, deltas, latency, posts, cpu_seconds())
