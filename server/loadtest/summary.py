"""The result of a run: the figures every report shows, and the verdict.

`lost` is counted against the publisher's acknowledgements: for each steady reader (connected
through the whole run, never closed), every acknowledged seq after the one it started from
must have arrived (for a counting reader, outside `--sample`, its message count must reach the
last seq; beyond it is `count_excess`). A gap in the middle stays a hole; a reader that stopped short is missing
everything after its last seq. Duplicates, reorders and gaps come from every reader, steady or
not, including across resumes.

With several nodes (`--url` repeated) the same checks hold across them (a reader's resumes land
on the next node, and writes rotate over the nodes); `nodes` says how the readers, connections,
resumes and acknowledged writes fell on each.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hdrh.histogram import HdrHistogram

from server.loadtest.aggregate import Aggregate
from server.loadtest.arrivals import arrival_times
from server.loadtest.config import LoadConfig
from server.loadtest.messages import SteadyReader, WorkerResult
from server.loadtest.publisher import BlogState, Post, Publisher
from server.loadtest.stats import COUNTERS, ERROR_COUNTERS, new_histogram

SATURATED_PERCENT = 90.0
CURVE_STEPS = 40


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Milliseconds at the usual percentiles of a distribution, with its size."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None

    @classmethod
    def of_histogram(cls, histogram: HdrHistogram) -> Percentiles:
        count = int(histogram.get_total_count())
        if not count:
            return cls()
        at = histogram.get_percentile_to_value_dict([50, 90, 99, 99.9])
        return cls(count, at[50] / 1000, at[90] / 1000, at[99] / 1000, at[99.9] / 1000,
                   histogram.get_max_value() / 1000, histogram.get_mean_value() / 1000)

    @classmethod
    def of_values(cls, values: Iterable[float]) -> Percentiles:
        ordered = sorted(values)
        if not ordered:
            return cls()

        def at(percent: float) -> float:
            return ordered[min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered) + 0.5) - 1))]

        return cls(len(ordered), at(50), at(90), at(99), at(99.9), ordered[-1], sum(ordered) / len(ordered))


@dataclass(frozen=True, slots=True)
class SecondFigures:
    """One second of the run (second `t` covers [t, t+1) after start)."""

    t: int
    connected: int
    deliveries: int
    live: int
    connects: int
    disconnects: int
    evicted: int
    errors: int
    published: int
    p50_ms: float | None
    p99_ms: float | None
    cpu_percent: float


@dataclass(frozen=True, slots=True)
class PostFigures:
    """One acknowledged write: when it was sent, how long the request took, and when its last live reader had it.

    Only new posts (`kind` "create") are stamped, so only they have a time to last reader.
    """

    seq: int
    number: int
    sent_at: float
    publish_ms: float
    last_reader_ms: float | None
    receivers: int
    kind: str = "create"


@dataclass(frozen=True, slots=True)
class Checks:
    """The correctness verdict's inputs; every one must be 0 in a healthy run."""

    steady_readers: int = 0
    lost: int = 0
    lost_posts: int = 0
    duplicated: int = 0
    reordered: int = 0
    gaps: int = 0
    regressions: int = 0
    resume_snapshots: int = 0
    epoch_changes: int = 0
    count_excess: int = 0


@dataclass(frozen=True, slots=True)
class ToolCpu:
    """The load generator's own CPU, to tell whether it, rather than the server, was the limit."""

    user: float
    system: float
    wall: float
    processes: int
    loop: str
    peak_worker_percent: float
    worker_peak_rss_mib: float

    @property
    def total(self) -> float:
        return self.user + self.system

    @property
    def cores(self) -> float:
        return self.total / self.wall if self.wall > 0 else 0.0

    @property
    def saturated(self) -> bool:
        return self.peak_worker_percent >= SATURATED_PERCENT


@dataclass(frozen=True, slots=True)
class PublisherFigures:
    """Writes attempted and acknowledged (every kind), and the acknowledged ones by kind: create, edit, delete."""

    attempted: int = 0
    acknowledged: int = 0
    skipped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latency: Percentiles = Percentiles()
    errors: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ArrivalFigures:
    """Browser-like arrivals: how many, how fast, what the page cost, and whether any missed an event.

    `per_second` is the streams opened over the arrival window (--duration); `share_304` is the
    share of page requests answered 304 (None when no page carried an ETag, so no visit could
    ask); `missed` counts, over arrivals connected to the end, acknowledged writes after their
    page's seq that they never received (`missed_events` the distinct writes).
    """

    rate: float = 0.0
    shape: str = "flat"
    scheduled: int = 0
    launched: int = 0
    opened: int = 0
    per_second: float = 0.0
    pages: int = 0
    pages_304: int = 0
    share_304: float | None = None
    etag: bool = False
    page_bytes_mean: float = 0.0
    assets: int = 0
    assets_304: int = 0
    assets_cached: int = 0
    page: Percentiles = Percentiles()
    time_to_interactive: Percentiles = Percentiles()
    raced: int = 0
    checked: int = 0
    missed: int = 0
    missed_events: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class NodeFigures:
    """One node of a several-node run: readers served there first, connections and resumes opened there,
    and the writes it acknowledged."""

    url: str
    readers: int
    connects: int
    resumes: int
    writes: int


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything a report shows about one run."""

    started_at: str
    config: dict[str, Any]
    blog_seq_at_start: int
    blog_epoch: str
    wall_seconds: float
    ramp_end: float
    publish_start: float
    publish_end: float
    readers: int
    started: int
    peak_connected: int
    counts: dict[str, int]
    errors: dict[str, int]
    error_samples: list[str]
    publisher: PublisherFigures
    latency: Percentiles
    latency_curve: list[tuple[float, float]]
    time_to_last_reader: Percentiles
    deliveries_per_second: float
    peak_deliveries_per_second: int
    handshake: Percentiles
    all_served_after: float | None
    posts: list[PostFigures]
    series: list[SecondFigures]
    checks: Checks
    cpu: ToolCpu
    drained: bool
    interrupted: bool
    problems: list[str]
    warnings: list[str]
    t0: float = 0.0  # second 0 of the run as Unix time, so series and posts can be lined up with other clocks
    arrivals: ArrivalFigures | None = None
    nodes: list[NodeFigures] | None = None  # None with one --url: a one-node report is what it always was

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.nodes is None:
            del data["nodes"]
        data["healthy"] = self.healthy
        data["cpu"].update(total=round(self.cpu.total, 3), cores=round(self.cpu.cores, 3),
                           saturated=self.cpu.saturated)
        data["version"] = 1
        return data


def count_lost(acknowledged: Sequence[int], steady: Iterable[SteadyReader]) -> tuple[int, int]:
    """(reader x post deliveries missing, distinct posts missing) among *acknowledged* seqs (sorted)."""
    lost = 0
    lowest_last: int | None = None
    holes: list[tuple[int, int]] = []
    for reader in steady:
        first = bisect_right(acknowledged, reader.start)
        after_last = bisect_right(acknowledged, max(reader.last, reader.start))
        if after_last < len(acknowledged):
            lost += len(acknowledged) - after_last
            lowest_last = reader.last if lowest_last is None else min(lowest_last, reader.last)
        for low, high in reader.holes:
            low = max(low, reader.start + 1)
            count = bisect_right(acknowledged, high) - max(bisect_left(acknowledged, low), first)
            if count > 0:
                lost += count
                holes.append((low, high))
    missing: set[int] = set()
    if lowest_last is not None:
        missing.update(acknowledged[bisect_right(acknowledged, lowest_last):])
    for low, high in holes:
        missing.update(acknowledged[bisect_left(acknowledged, low):bisect_right(acknowledged, high)])
    return lost, len(missing)


def latency_curve(histogram: HdrHistogram) -> list[tuple[float, float]]:
    """(percentile, ms) points from p0 to p99.999 spaced evenly on a 1/(1-p) scale, then the max."""
    if not histogram.get_total_count():
        return []
    percents = [100 * (1 - 10 ** (-step / 8)) for step in range(CURVE_STEPS + 1)]
    values = histogram.get_percentile_to_value_dict(percents)
    curve = [(percent, values[percent] / 1000) for percent in percents]
    curve.append((100.0, histogram.get_max_value() / 1000))
    return curve


def summarize(config: LoadConfig, blog: BlogState, aggregate: Aggregate, publisher: Publisher, t0: float,
              publish_start: float, wall: float, coordinator_cpu: tuple[float, float], loop: str,
              interrupted: bool) -> Summary:
    """Turn a finished run's raw figures into its Summary and verdict."""
    totals = {name: aggregate.totals[name] for name in COUNTERS}
    results = list(aggregate.results.values())
    if results and len(results) == aggregate.workers:  # final totals, in case a last tick went missing
        totals = {name: sum(r.counts.get(name, 0) for r in results) for name in COUNTERS}
    steady = [reader for result in results for reader in result.steady]
    acked = publisher.acknowledged()
    acked_seqs = [post.seq for post in acked if post.seq is not None]
    lost, lost_posts = count_lost(acked_seqs, steady)
    checks = Checks(len(steady), lost, lost_posts, totals["duplicates"], totals["reordered"], totals["gaps"],
                    totals["regressions"], totals["resume_snapshots"], totals["epoch_changes"], totals["count_excess"])

    series = _series(aggregate, publisher, t0)
    posts = [PostFigures(
        seq=post.seq, number=post.number, sent_at=round(post.sent_ns / 1e9 - t0, 4),
        publish_ms=round((post.acked_ns - post.sent_ns) / 1e6, 3),
        last_reader_ms=aggregate.posts[post.seq][1] / 1000 if post.seq in aggregate.posts else None,
        receivers=aggregate.posts.get(post.seq, [0, 0])[0], kind=post.kind) for post in acked if post.seq is not None]
    publish_end = publish_start + config.duration
    publishing = [s for s in series if math.ceil(publish_start) <= s.t and s.t + 1 <= publish_end]
    rate = sum(s.deliveries for s in publishing) / len(publishing) if publishing else 0.0

    worker_cpu = [aggregate.cpu_since_start(result) for result in results]
    peak = max((max(s.cpu.values()) for s in aggregate.seconds.values() if s.cpu), default=0.0)
    cpu = ToolCpu(
        user=round(sum(c[0] for c in worker_cpu) + coordinator_cpu[0], 3),
        system=round(sum(c[1] for c in worker_cpu) + coordinator_cpu[1], 3),
        wall=round(wall, 3), processes=aggregate.workers + 1, loop=loop, peak_worker_percent=round(100 * peak, 1),
        worker_peak_rss_mib=round(max((r.peak_rss_mib for r in results), default=0.0), 1))

    errors = {name: totals[name] for name in ERROR_COUNTERS if totals[name]}
    failed_posts = len(publisher.posts) - len(acked)  # refused, unanswered, or answered without a seq
    if failed_posts:
        errors["publish_failures"] = failed_posts
    if publisher.skipped:
        errors["publish_skipped"] = publisher.skipped
    samples = [sample for result in results for sample in result.errors][:30] + publisher.errors[:10]
    started = sum(result.started for result in results)
    handshake = new_histogram()
    for result in results:
        if result.handshake is not None:
            handshake.decode_and_add(result.handshake)
    served = [result.last_served_ns for result in results if result.last_served_ns]
    all_served_after = round(max(served) / 1e9 - t0, 3) if served and started == config.readers else None
    drained = all(result.drained for result in results) and len(results) == aggregate.workers

    arrivals = _arrivals(config, totals, results, acked_seqs)
    problems = [f"{name}: {value}" for name, value in (
        ("lost", checks.lost), ("duplicated", checks.duplicated), ("reordered", checks.reordered),
        ("gaps", checks.gaps), ("regressions", checks.regressions),
        ("counted beyond the last seq", checks.count_excess)) if value]
    if arrivals is not None and arrivals.missed:
        problems.append(f"arrivals missed {arrivals.missed} events published after their page "
                        f"({arrivals.missed_events} distinct)")
    if arrivals is not None and not arrivals.opened:
        problems.append("no arrival ever opened its stream")
    if config.readers and not started:
        problems.append("no reader ever connected")
    if config.publishing and not acked:
        problems.append("no post was acknowledged")
    if len(results) < aggregate.workers:
        problems.append(f"{aggregate.workers - len(results)} worker process(es) did not report")
    warnings = []
    if errors:
        warnings.append("errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    if not drained and not interrupted:
        warnings.append("some readers had not caught up when --drain ran out")
    if config.readers and publish_start > config.ramp + 1 and started < config.readers:
        warnings.append(f"publishing started {publish_start - config.ramp:.1f} s after the ramp with "
                        f"{config.readers - started} readers still not served")
    if cpu.saturated:
        warnings.append(f"a load-test worker reached {cpu.peak_worker_percent:.0f}% of a core: "
                        "the tool may be the bottleneck (use more --processes or machines)")
    if interrupted:
        warnings.append("interrupted before the end")

    return Summary(
        started_at=datetime.fromtimestamp(t0, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        config=config.public(), blog_seq_at_start=blog.seq, blog_epoch=blog.epoch, wall_seconds=round(wall, 3),
        ramp_end=config.ramp, publish_start=round(publish_start, 3), publish_end=round(publish_end, 3),
        readers=config.readers, started=started, handshake=Percentiles.of_histogram(handshake),
        all_served_after=all_served_after,
        peak_connected=max((s.connected for s in series), default=0), counts=totals, errors=errors,
        error_samples=samples,
        publisher=PublisherFigures(len(publisher.posts) + publisher.skipped, len(acked), publisher.skipped,
                                   {str(k): v for k, v in sorted(publisher.statuses.items())},
                                   Percentiles.of_histogram(publisher.latency), publisher.errors,
                                   dict(Counter(post.kind for post in acked))),
        latency=Percentiles.of_histogram(aggregate.latency), latency_curve=latency_curve(aggregate.latency),
        time_to_last_reader=Percentiles.of_values(p.last_reader_ms for p in posts if p.last_reader_ms is not None),
        deliveries_per_second=round(rate, 1), peak_deliveries_per_second=max((s.deliveries for s in series), default=0),
        posts=posts, series=series, checks=checks, cpu=cpu, drained=drained, interrupted=interrupted,
        problems=problems, warnings=warnings, t0=round(t0, 6), arrivals=arrivals,
        nodes=_nodes(config, results, acked) if config.more_urls else None)


def _nodes(config: LoadConfig, results: Sequence[WorkerResult], acked: Sequence[Post]) -> list[NodeFigures]:
    writes = Counter(post.node for post in acked)
    return [NodeFigures(url, sum(r.nodes[i].readers for r in results if len(r.nodes) > i),
                        sum(r.nodes[i].connects for r in results if len(r.nodes) > i),
                        sum(r.nodes[i].resumes for r in results if len(r.nodes) > i), writes[i])
            for i, url in enumerate(config.urls)]


def _arrivals(config: LoadConfig, totals: dict[str, int], results: Sequence[WorkerResult],
              acked_seqs: Sequence[int]) -> ArrivalFigures | None:
    if not config.arrivals:
        return None
    page, tti = new_histogram(), new_histogram()
    for result in results:
        if result.page is not None:
            page.decode_and_add(result.page)
        if result.tti is not None:
            tti.decode_and_add(result.tti)
    checked = [reader for result in results for reader in result.arrivals]
    missed, missed_events = count_lost(acked_seqs, checked)
    pages = totals["pages"]
    etag = totals["pages_with_etag"] > 0
    return ArrivalFigures(
        rate=config.arrivals, shape=config.arrival_shape,
        scheduled=len(arrival_times(config.arrivals, config.arrival_shape, config.duration)),
        launched=totals["arrivals"], opened=totals["arrivals_open"],
        per_second=round(totals["arrivals_open"] / config.duration, 1), pages=pages, pages_304=totals["pages_304"],
        share_304=round(totals["pages_304"] / pages, 4) if etag and pages else None, etag=etag,
        page_bytes_mean=round(totals["page_bytes"] / pages, 1) if pages else 0.0, assets=totals["assets"],
        assets_304=totals["assets_304"], assets_cached=totals["assets_cached"],
        page=Percentiles.of_histogram(page), time_to_interactive=Percentiles.of_histogram(tti),
        raced=totals["arrivals_raced"], checked=len(checked), missed=missed, missed_events=missed_events,
        errors=totals["page_errors"])


def _series(aggregate: Aggregate, publisher: Publisher, t0: float) -> list[SecondFigures]:
    published: dict[int, int] = {}
    for post in publisher.posts:
        if post.seq is not None:
            index = int(post.sent_ns / 1e9 - t0)
            published[index] = published.get(index, 0) + 1
    series: list[SecondFigures] = []
    connected: dict[int, int] = {}
    last = max(aggregate.seconds, default=-1)
    for index in range(last + 1):
        second = aggregate.seconds.get(index)
        if second is None:
            series.append(SecondFigures(index, sum(connected.values()), 0, 0, 0, 0, 0, 0, published.get(index, 0),
                                        None, None, 0.0))
            continue
        connected.update(second.connected)
        counts = second.counts
        p50 = p99 = None
        if second.latency is not None:
            p50 = second.latency.get_value_at_percentile(50) / 1000
            p99 = second.latency.get_value_at_percentile(99) / 1000
        cpu = sum(second.cpu.values()) + aggregate.coordinator_cpu.get(index, 0.0)
        series.append(SecondFigures(
            t=index, connected=sum(connected.values()), deliveries=counts["deliveries"], live=counts["live"],
            connects=counts["connects"], disconnects=counts["disconnects"], evicted=counts["evicted"],
            errors=sum(counts[name] for name in ERROR_COUNTERS), published=published.get(index, 0),
            p50_ms=p50, p99_ms=p99, cpu_percent=round(100 * cpu, 1)))
    return series
