"""A soak: one livepush server under steady, mixed load for minutes; its memory over time, every event checked.

    .venv/bin/python -m bench.soak --minutes 30                  # the run docs/SOAK.md reports
    .venv/bin/python -m bench.soak --minutes 30 --update-docs    # ... and put its result into docs/SOAK.md
    .venv/bin/python -m bench.soak --minutes 30 --engine redis   # with a private redis-server
    .venv/bin/python -m bench.soak --seconds 8 --readers 100     # a smoke run (tests/e2e/test_soak_smoke.py)

Starts its own server (bench.procs: `livepush serve` on a free port of 127.0.0.1, pinned to
--server-cpu, with a private redis-server on a free port and its own directory for --engine
redis, never the machine's 6379) and runs `livepush loadtest` against it in this process
(pinned to --tool-cpu, with its worker processes): readers of which a share churn (disconnect,
resume with since + epoch) and a share read slowly, while the publisher writes at --rate: new
stamped posts, edits of the newest posts (--edit-share: `post.updated`, state-only traffic) and,
past --keep-posts, deletes of the oldest, so the blog and everything the server keeps stays
bounded and memory can be expected to be flat. Every --interval seconds it reads the server's
RSS, CPU and open descriptors from /proc (and Redis's RSS), with the readers the tool has open.

The verdict (exit status 1 when it fails):
- the load-test tool's: nothing lost, duplicated or reordered, no gap, no resume back in time,
  no counting reader past the last seq, every worker reported (see docs/LOADTEST.md);
- memory is flat: after a warm-up (--warmup; by default until everything the server keeps for
  the blog has reached its bound, see `warm_up()`, and at least 10% of the run), the mean RSS of
  the last third of the publishing window may exceed that of the first third by at most
  --max-growth (10%) or --max-growth-mib (8 MiB), whichever is larger, for the server and for
  Redis alike. A window shorter than 90 s is reported but not judged.

Results: bench/results/soak-<date>.json (every reading, the figures, the verdict) and
bench/results/soak-<date>.md (the section docs/SOAK.md shows; --update-docs puts it there); the
tool's own JSON summary and the server's log under bench/results/logs/soak/. Only loopback
addresses are used; the run is bounded (MAX_MINUTES, MAX_READERS); every process started here
is stopped on exit, Ctrl-C or SIGTERM. Exit status: 0 passed, 1 failed, 2 bad options or a
server that would not start, 130 interrupted (the partial results are still written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.procs import (
    ROOT,
    TOKEN,
    VARIANTS,
    Processes,
    Redis,
    Running,
    cpu_seconds,
    load_average,
    open_fds,
    raise_nofile,
    rss_kib,
    start_server,
)
from bench.run import machine as describe_machine
from server.loadtest.aggregate import LiveView
from server.loadtest.config import ConfigError, LoadConfig
from server.loadtest.console import ms, summary_table
from server.loadtest.runner import Runner
from server.loadtest.summary import Summary
from server.loadtest.system import event_loop_factory

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "SOAK.md"
DOCS_BEGIN = "<!-- soak-result:begin -->"
DOCS_END = "<!-- soak-result:end -->"
BLOG = "soak"
MAX_MINUTES = 180.0
MAX_READERS = 10_000
MAX_RATE = 50.0  # writes/s: the server's default write limit per token is 100/s
FD_MARGIN = 500
MIN_JUDGED_SECONDS = 90.0  # thirds of at least 30 s: shorter windows say more about the allocator than a leak
EXIT_INTERRUPTED = 130
# The server's settings for a soak. Remembered Idempotency-Keys live LIVEPUSH_IDEMPOTENCY_TTL (24 h by
# default, by design): at its minimum, 60 s, they reach their steady number within the warm-up.
IDEMPOTENCY_TTL = 60
HISTORY_SIZE = 1000  # the server's default (and least) LIVEPUSH_HISTORY_SIZE, set so the warm-up can count on it
SERVER_SETTINGS = {"LIVEPUSH_IDEMPOTENCY_TTL": str(IDEMPOTENCY_TTL), "LIVEPUSH_HISTORY_SIZE": str(HISTORY_SIZE)}


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at the server: wall time, phase, memory, CPU so far, descriptors, and the tool's view."""

    at: float
    phase: str
    rss_kib: int
    cpu_s: float
    fds: int
    redis_rss_kib: int | None
    readers_open: int
    deliveries: int
    writes: int


@dataclass(frozen=True, slots=True)
class MemoryVerdict:
    """Whether a process's RSS stayed flat over the judged window (t in seconds after the tool's t0)."""

    process: str
    judged: bool
    passed: bool
    reason: str
    window: tuple[float, float] | None = None
    samples: int = 0
    first_third_kib: float | None = None
    last_third_kib: float | None = None
    growth_kib: float | None = None
    growth_percent: float | None = None
    limit_kib: float | None = None
    slope_kib_per_min: float | None = None


class Monitor:
    """The tool's progress callback: reads the server every *interval* s and prints a line every *every* s."""

    def __init__(self, console: Console, server: Running, redis_pid: int | None, interval: float,
                 every: float) -> None:
        self.console = console
        self.pids = server.pids  # `livepush serve` is one process; read its tree once, not every time
        self.redis_pids = [redis_pid] if redis_pid is not None else []
        self.interval = interval
        self.every = every
        self.readings: list[Reading] = []
        self.runner: Runner | None = None
        self.readers_open = 0
        self.deliveries = 0
        self._last_line = 0.0

    def read(self, phase: str) -> Reading:
        writes = 0
        if self.runner is not None:
            writes = sum(1 for post in self.runner.publisher.posts if post.seq is not None)
        reading = Reading(time.time(), phase, rss_kib(self.pids), cpu_seconds(self.pids), open_fds(self.pids),
                          rss_kib(self.redis_pids) if self.redis_pids else None, self.readers_open, self.deliveries,
                          writes)
        self.readings.append(reading)
        return reading

    def finished(self, summary: Summary) -> None:
        """The tool has closed every reader: what later readings show."""
        self.readers_open = 0
        self.deliveries = summary.counts["deliveries"]

    def __call__(self, view: LiveView, phase: str) -> None:
        self.readers_open, self.deliveries = view.connected, view.deliveries
        if self.readings and time.time() - self.readings[-1].at < self.interval - 0.5:
            return
        reading = self.read(phase)
        if reading.at - self._last_line < self.every - 0.5:
            return
        self._last_line = reading.at
        before = next((r for r in reversed(self.readings[:-1]) if reading.at - r.at >= self.every - 0.5),
                      self.readings[0])
        span = max(reading.at - before.at, 1e-9)
        redis = "" if reading.redis_rss_kib is None else f"  redis {reading.redis_rss_kib / 1024:.1f} MiB"
        self.console.print(
            f"{clock(view.second + 1):>6} {phase:<7} readers {view.connected:,}  "
            f"{(reading.deliveries - before.deliveries) / span:,.0f} msgs/s  writes {reading.writes:,}  "
            f"1013 {view.evicted}  errors {view.errors}  seq faults {view.violations}  "
            f"RSS {reading.rss_kib / 1024:.1f} MiB  CPU {100 * (reading.cpu_s - before.cpu_s) / span:.0f}%{redis}",
            highlight=False, soft_wrap=True, style="bold red" if view.violations else None)


# The memory rule


def warm_up(args: argparse.Namespace) -> float:
    """Seconds of publishing after which everything the server keeps for the blog is at its bound.

    The history ring fills after HISTORY_SIZE writes, the blog after --keep-posts new posts,
    remembered Idempotency-Keys after their TTL; 10% more for the allocator to settle. Until
    then memory grows by design, so judging it would be judging the fill.
    """
    rate: float = args.rate
    creates = rate * (1 - args.edit_share)
    fill = max(HISTORY_SIZE / rate, args.keep_posts / creates if creates > 0 else 0.0, float(IDEMPOTENCY_TTL))
    seconds: float = args.seconds
    return round(max(1.1 * fill, 0.1 * seconds), 1)


def judge_memory(process: str, points: list[tuple[float, int]], window: tuple[float, float], warmup: float,
                 ratio: float, floor_mib: float) -> MemoryVerdict:
    """Flat when the last third's mean RSS exceeds the first third's by at most max(*ratio*, *floor_mib*)."""
    start, end = window
    inside = [(t, kib) for t, kib in points if start <= t <= end]
    if end - start < MIN_JUDGED_SECONDS or len(inside) < 6:
        return MemoryVerdict(process, False, True, f"not judged: {max(end - start, 0):.0f} s of publishing after "
                             f"the {warmup:.0f} s warm-up and {len(inside)} readings (a trend needs "
                             f"{MIN_JUDGED_SECONDS:.0f} s and 6)", window, len(inside))
    third = (end - start) / 3
    first = [kib for t, kib in inside if t <= start + third]
    last = [kib for t, kib in inside if t >= end - third]
    first_mean, last_mean = sum(first) / len(first), sum(last) / len(last)
    growth = last_mean - first_mean
    limit = max(ratio * first_mean, floor_mib * 1024)
    passed = growth <= limit
    reason = (f"last third {growth / 1024:+.1f} MiB ({100 * growth / first_mean:+.1f}%) on the first; "
              f"limit {limit / 1024:.1f} MiB (max of {100 * ratio:.0f}% and {floor_mib:g} MiB)")
    return MemoryVerdict(process, True, passed, reason, window, len(inside), round(first_mean, 1),
                         round(last_mean, 1), round(growth, 1), round(100 * growth / first_mean, 2), round(limit, 1),
                         round(slope(inside) * 60, 1))


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of KiB over seconds."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else 0.0


def table_step(seconds: float) -> float:
    """Seconds between the rows of the memory table: about a minute on long runs, a dozen rows on short ones."""
    if seconds >= 15 * 60:
        return 60.0
    for step in (5.0, 10.0, 15.0, 30.0, 60.0):
        if seconds / step <= 12:
            return step
    return 60.0


def memory_rows(readings: list[Reading], t0: float, step: float) -> list[dict[str, Any]]:
    """The first and last readings and the one nearest each *step* mark between; CPU and deliveries/s since the
    previous row."""
    if not readings:
        return []
    times = [r.at - t0 for r in readings]
    picked = {0, len(readings) - 1}
    mark = (times[0] // step + 1) * step
    while mark < times[-1]:
        picked.add(min(range(len(readings)), key=lambda i: abs(times[i] - mark)))
        mark += step
    rows = []
    previous = readings[0]
    for index in sorted(picked):
        reading = readings[index]
        span = reading.at - previous.at
        rows.append({
            "t": round(times[index], 1), "phase": reading.phase, "rss_mib": round(reading.rss_kib / 1024, 1),
            "redis_rss_mib": None if reading.redis_rss_kib is None else round(reading.redis_rss_kib / 1024, 1),
            "cpu_percent": round(100 * (reading.cpu_s - previous.cpu_s) / span, 1) if span > 0 else None,
            "readers_open": reading.readers_open, "fds": reading.fds,
            "deliveries_per_s": round((reading.deliveries - previous.deliveries) / span) if span > 0 else None,
            "writes": reading.writes})
        previous = reading
    return rows


# Reports


def clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{'-' if whole < 0 else ''}{abs(whole) // 60}:{abs(whole) % 60:02d}"


def length(seconds: float) -> str:
    return f"{seconds / 60:g}-minute" if seconds >= 60 else f"{seconds:g}-second"


def markdown(report: dict[str, Any]) -> str:
    """The section docs/SOAK.md shows: the run, the verdict, the counts, memory over time."""
    options, checks, counts, publisher = report["options"], report["checks"], report["counts"], report["publisher"]
    kinds = publisher["kinds"]
    engine = "Redis engine" if options["engine"] == "redis" else "memory engine"
    pinning = report["pinning"]
    pinned = (f"server pinned to core {pinning['server']}, tool to core {pinning['tool']}" if pinning["server"]
              is not None else "not pinned")
    machine = report["machine"]
    verdict = "passed" if report["passed"] else "FAILED"
    if report.get("interrupted"):
        verdict = "interrupted"
    lines = [
        f"### {length(options['seconds']).capitalize()} run, {report['date'][:10]} ({engine})", "",
        f"`{report['command']}`: {options['readers']:,} readers ({options['churn']:.0%} churning every "
        f"~{options['churn_every']:g} s, {options['slow']:.0%} pausing {options['slow_pause']:g} s every "
        f"~{options['slow_every']:g} s), {options['rate']:g} writes/s ({options['edit_share']:.0%} edits, "
        f"at most {options['keep_posts']} posts kept), posts of {options['post_bytes']} bytes; {pinned}; "
        f"{machine.get('nproc')} CPUs ({machine.get('cpu_model', '?')}), Python {machine.get('python')}; "
        f"load average {' / '.join(str(x) for x in report['load_average_start'])} at the start, "
        f"{' / '.join(str(x) for x in report['load_average_end'])} at the end.", "",
        f"**Verdict: {verdict}.** " + "; ".join(report["verdict"]).capitalize()[:1] + "; ".join(report["verdict"])[1:]
        + ".", "",
        "| lost | lost writes | duplicated | reordered | gaps | regressions | counted past the last seq |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {checks['lost']} | {checks['lost_posts']} | {checks['duplicated']} | {checks['reordered']} | "
        f"{checks['gaps']} | {checks['regressions']} | {checks['count_excess']} |", "",
        "| | |", "| --- | --- |",
        f"| publishing | {report['publish_seconds']:,.0f} s, then up to {options['drain']:g} s of drain |",
        f"| writes acknowledged | {publisher['acknowledged']:,} of {publisher['attempted']:,}: "
        f"{kinds.get('create', 0):,} new posts, {kinds.get('edit', 0):,} edits, {kinds.get('delete', 0):,} deletes |",
        f"| deliveries | {counts['deliveries']:,} ({report['deliveries_per_second']:,.0f}/s while publishing); "
        f"{counts['replayed']:,} replayed on resume |",
        f"| readers | {report['readers_served']:,} served, {checks['steady_readers']:,} steady (never disconnected) |",
        f"| churn reconnects | {counts['churned']:,} (resumes answered by a snapshot: "
        f"{checks['resume_snapshots']:,}) |",
        f"| slow readers | {counts['slow_pauses']:,} pauses; closed while slow: {counts['evicted']:,} with 1013, "
        f"{counts['dropped_stalled']:,} dropped while stalled |",
        f"| errors | {', '.join(f'{k} {v}' for k, v in report['errors'].items()) or 'none'} |",
        f"| publish → receive | p50 {ms(report['latency']['p50'])}, p99 {ms(report['latency']['p99'])}, "
        f"max {ms(report['latency']['max'])} |",
        f"| server CPU | {'-' if report['server_cpu_percent'] is None else report['server_cpu_percent']}% of a "
        f"core while publishing |",
    ]
    for item in report["memory"]:
        name = "server RSS" if item["process"] == "server" else "Redis RSS"
        if item["judged"]:
            window = item["window"]
            lines.append(
                f"| {name} | first third of {clock(window[0])}–{clock(window[1])}: "
                f"{item['first_third_kib'] / 1024:.1f} MiB, last third: {item['last_third_kib'] / 1024:.1f} MiB "
                f"({item['growth_percent']:+.1f}%, limit {item['limit_kib'] / 1024:.1f} MiB); "
                f"slope {item['slope_kib_per_min']:+,.0f} KiB/min |")
        else:
            lines.append(f"| {name} | {item['reason']} |")
    if report.get("rss_after_kib") is not None:
        lines.append(f"| server RSS after the readers left | {report['rss_after_kib'] / 1024:.1f} MiB "
                     f"(before any reader: {report['rss_before_kib'] / 1024:.1f} MiB) |")
    redis = options["engine"] == "redis"
    lines += ["", f"Memory over time (t from the tool's start; publishing from {clock(report['publish_start'])}; "
                  f"read every {options['interval']:g} s, a row every {clock(report['table_step'])}):", "",
              "| t | phase | server RSS | " + ("Redis RSS | " if redis else "")
              + "server CPU | readers open | server fds | deliveries/s | writes |",
              "| --- | --- | --- | " + ("--- | " if redis else "") + "--- | --- | --- | --- | --- |"]
    for row in report["memory_table"]:
        cpu = "-" if row["cpu_percent"] is None else f"{row['cpu_percent']:.0f}%"
        rate = "-" if row["deliveries_per_s"] is None else f"{row['deliveries_per_s']:,}"
        lines.append(f"| {clock(row['t'])} | {row['phase']} | {row['rss_mib']:.1f} MiB | "
                     + (f"{row['redis_rss_mib']:.1f} MiB | " if redis and row["redis_rss_mib"] is not None else
                        "- | " if redis else "")
                     + f"{cpu} | {row['readers_open']:,} | {row['fds']:,} | {rate} | {row['writes']:,} |")
    return "\n".join(lines) + "\n"


def soak_table(report: dict[str, Any]) -> Table:
    table = Table(title="soak: memory over time", title_justify="left")
    redis = report["options"]["engine"] == "redis"
    for name in ("t", "phase", "server RSS", *(("Redis RSS",) if redis else ()), "server CPU", "readers open",
                 "fds", "deliveries/s", "writes"):
        table.add_column(name, justify="right")
    for row in report["memory_table"]:
        table.add_row(clock(row["t"]), row["phase"], f"{row['rss_mib']:.1f} MiB",
                      *((f"{row['redis_rss_mib'] or 0:.1f} MiB",) if redis else ()),
                      "-" if row["cpu_percent"] is None else f"{row['cpu_percent']:.0f}%", f"{row['readers_open']:,}",
                      f"{row['fds']:,}", "-" if row["deliveries_per_s"] is None else f"{row['deliveries_per_s']:,}",
                      f"{row['writes']:,}")
    return table


def update_docs(section: str, path: Path = DOCS) -> bool:
    """Replace the result between the markers of docs/SOAK.md with *section*; False when the markers are missing."""
    text = path.read_text()
    pattern = re.compile(re.escape(DOCS_BEGIN) + r".*?" + re.escape(DOCS_END), re.S)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda _: f"{DOCS_BEGIN}\n{section}{DOCS_END}", text, count=1))
    return True


# The run


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    length_group = parser.add_mutually_exclusive_group()
    length_group.add_argument("--minutes", type=float, help=f"minutes of publishing (default 30, at most "
                              f"{MAX_MINUTES:g})")
    length_group.add_argument("--seconds", type=float, help="seconds of publishing, for short runs")
    parser.add_argument("--engine", choices=("memory", "redis"), default="memory",
                        help="the server's engine (redis: a private redis-server on a free port)")
    parser.add_argument("--readers", type=int, default=2000, help=f"simulated readers (at most {MAX_READERS:,})")
    parser.add_argument("--churn", type=float, default=0.1, help="share of readers that disconnect and resume")
    parser.add_argument("--churn-every", type=float, default=5.0, help="mean seconds a churning reader stays")
    parser.add_argument("--churn-pause", type=float, default=0.5, help="mean seconds it stays away")
    parser.add_argument("--slow", type=float, default=0.05, help="share of readers that stop reading now and then")
    parser.add_argument("--slow-every", type=float, default=8.0, help="mean seconds between a slow reader's pauses")
    parser.add_argument("--slow-pause", type=float, default=3.0, help="seconds a slow reader stops reading")
    parser.add_argument("--rate", type=float, default=5.0, help=f"writes per second (at most {MAX_RATE:g})")
    parser.add_argument("--edit-share", type=float, default=0.3, help="share of writes that edit a new post")
    parser.add_argument("--keep-posts", type=int, default=200,
                        help="posts kept: past this, a write deletes the oldest (bounds the blog)")
    parser.add_argument("--post-bytes", type=int, default=300, help="size of each post's body text")
    parser.add_argument("--sample", type=float, default=1.0,
                        help="share of readers that parse every message (the rest count frames; see LOADTEST.md)")
    parser.add_argument("--reader-buffer", type=int,
                        help="the server's LIVEPUSH_READER_BUFFER_BYTES (default: the server's own, 1 MiB)")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds for readers to catch up at the end")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between readings of the server")
    parser.add_argument("--warmup", type=float,
                        help="seconds of publishing not judged for memory (default: until the server's bounded "
                             "state is full, and at least 10%% of the run)")
    parser.add_argument("--max-growth", type=float, default=0.10,
                        help="memory may grow by this share of the first third's mean RSS ...")
    parser.add_argument("--max-growth-mib", type=float, default=8.0, help="... or by this many MiB, if larger")
    parser.add_argument("--server-cpu", type=int, default=0, help="core for the server (and its Redis)")
    parser.add_argument("--tool-cpu", type=int, default=1, help="core for the load-test tool")
    parser.add_argument("--no-pin", action="store_true", help="pin nothing (the default pins on 2+ cores)")
    parser.add_argument("--seed", type=int, default=0, help="which readers churn or read slowly, and the write mix")
    parser.add_argument("--output", type=Path,
                        help="results JSON; the Markdown goes next to it (default: bench/results/soak-<date>.json)")
    parser.add_argument("--update-docs", action="store_true",
                        help=f"put the Markdown result between the markers of {DOCS.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    args.seconds = args.seconds if args.seconds is not None else 60 * (args.minutes if args.minutes is not None
                                                                       else 30.0)
    problems = [message for bad, message in (
        (not 0 < args.seconds <= 60 * MAX_MINUTES, f"--minutes: above 0, at most {MAX_MINUTES:g}"),
        (not 0 < args.readers <= MAX_READERS, f"--readers: 1 to {MAX_READERS:,}"),
        (not 0 < args.rate <= MAX_RATE, f"--rate: above 0, at most {MAX_RATE:g}"),
        (not 1 <= args.interval <= 60, "--interval: 1 to 60 seconds"),
        (args.warmup is not None and args.warmup < 0, "--warmup: at least 0"),
        (args.max_growth < 0 or args.max_growth_mib < 0, "--max-growth and --max-growth-mib: at least 0"),
        (not 0 <= args.drain <= 120, "--drain: 0 to 120 seconds"),
    ) if bad]
    if problems:
        parser.error("; ".join(problems))
    return args


def load_config(args: argparse.Namespace, base: str) -> LoadConfig:
    return LoadConfig(
        url=base, blog=BLOG, readers=args.readers, duration=args.seconds, ramp=min(10.0, max(1.0, args.readers / 500)),
        publish_rate=args.rate, token=TOKEN, create_blog=True, post_bytes=args.post_bytes, edit_share=args.edit_share,
        keep_posts=args.keep_posts, churn=args.churn, churn_every=args.churn_every, churn_pause=args.churn_pause,
        slow=args.slow, slow_every=args.slow_every, slow_pause=args.slow_pause, sample=args.sample,
        drain=args.drain, connect_timeout=30.0, seed=args.seed, allow_remote=False, quiet=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console() if Console().is_terminal else Console(width=120)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    server_cpu, tool_cpu = (args.server_cpu, args.tool_cpu) if pin else (None, None)
    limit = raise_nofile()
    if limit < args.readers + FD_MARGIN:
        print(f"bench.soak: the open-file limit is {limit}; {args.readers:,} readers need "
              f"~{args.readers + FD_MARGIN:,} per process (the server holds one per reader, and so does the tool)",
              file=sys.stderr)
        return 2
    stamp = datetime.now(UTC)
    output: Path = args.output or RESULTS / f"soak-{stamp:%Y-%m-%d}.json"
    logs = RESULTS / "logs" / "soak" if args.output is None else output.parent / f"{output.stem}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    warmup = args.warmup if args.warmup is not None else warm_up(args)

    signal.signal(signal.SIGTERM, _terminate)
    processes = Processes()
    settings = dict(SERVER_SETTINGS)
    if args.reader_buffer is not None:
        settings["LIVEPUSH_READER_BUFFER_BYTES"] = str(args.reader_buffer)
    command = " ".join(["python -m bench.soak", *(argv if argv is not None else sys.argv[1:])])
    report: dict[str, Any] = {"date": stamp.isoformat(timespec="seconds").replace("+00:00", "Z"), "command": command,
                              "load_average_start": load_average(), "server_settings": settings,
                              "pinning": {"server": server_cpu, "tool": tool_cpu}}
    try:
        outcome = run(args, console, processes, settings, server_cpu, tool_cpu, logs, output)
    except KeyboardInterrupt:
        console.print("bench.soak: interrupted before the load test ran; every process started here is stopped")
        return EXIT_INTERRUPTED
    finally:
        processes.stop_all()
    if outcome is None:
        return 2
    summary, monitor, after, server_status = outcome
    report["load_average_end"] = load_average()
    report.update(evaluate(args, summary, monitor, warmup, after, server_status, server_cpu is not None))
    report["machine"] = machine()
    with contextlib.suppress(OSError):
        (logs / "loadtest.json").write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))
    if summary.interrupted and args.output is None:  # a cut-short run never replaces a whole one of the same day
        output = output.with_name(f"{output.stem}-interrupted.json")
    output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    section = markdown(report)
    output.with_suffix(".md").write_text(section)
    console.print(summary_table(summary))
    console.print(soak_table(report))
    for line in report["verdict"]:
        console.print(f"  {line}", highlight=False)
    style = "bold green" if report["passed"] else "bold red"
    console.print(Text(f"soak {'passed' if report['passed'] else 'FAILED'}" + (" (interrupted)" if summary.interrupted
                                                                                 else ""), style=style))
    console.print(f"results: {output} and {output.with_suffix('.md')}", highlight=False)
    if args.update_docs:
        if summary.interrupted:
            console.print("not updating the docs with an interrupted run")
        elif update_docs(section):
            console.print(f"updated {DOCS.relative_to(ROOT)}")
        else:
            console.print(f"{DOCS.relative_to(ROOT)} has no {DOCS_BEGIN} ... {DOCS_END} markers: not updated")
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return 0 if report["passed"] else 1


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace, console: Console, processes: Processes, settings: dict[str, str],
        server_cpu: int | None, tool_cpu: int | None, logs: Path,
        output: Path) -> tuple[Summary, Monitor, Reading, int | None] | None:
    """Start Redis (if asked) and the server, run the tool, read the server once more; None if nothing could start."""
    try:
        redis = Redis(processes, server_cpu, logs) if args.engine == "redis" else None
        variant = next(v for v in VARIANTS if v.name == f"livepush-{args.engine}")
        server = start_server(processes, variant, server_cpu, redis, logs, settings)
    except (RuntimeError, OSError) as exc:
        print(f"bench.soak: {exc}", file=sys.stderr)
        return None
    config = load_config(args, server.base)
    try:
        config.validate()  # among others: a loopback target, or nothing
    except ConfigError as exc:
        print(f"bench.soak: {exc}", file=sys.stderr)
        return None
    if tool_cpu is not None:
        os.sched_setaffinity(0, {tool_cpu})  # this process and the tool's workers, spawned from it
    monitor = Monitor(console, server, server.redis_pid, args.interval, 10.0 if args.seconds <= 300 else 60.0)
    monitor.read("idle")
    console.print(f"bench.soak: {args.readers:,} readers, {args.rate:g} writes/s for {clock(args.seconds)} against "
                  f"{server.base} ({args.engine} engine, server pid {server.process.pid}); results to {output}",
                  highlight=False)
    summary = run_tool(config, monitor)
    monitor.finished(summary)
    # The tool's event loop put SIGTERM back to its default on the way out: keep stopping our processes on it.
    signal.signal(signal.SIGTERM, _terminate)
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C only skips the wait: the run is reported
        time.sleep(min(2.0, args.interval))  # the readers have gone: what does the server keep?
    after = monitor.read("after")
    return summary, monitor, after, server.process.poll()


def run_tool(config: LoadConfig, monitor: Monitor) -> Summary:
    """`livepush loadtest` in this process, the monitor as its progress display (Ctrl-C ends it with a summary)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as loop:
        runner = Runner(config, monitor)
        monitor.runner = runner
        return loop.run(runner.run())


def evaluate(args: argparse.Namespace, summary: Summary, monitor: Monitor, warmup: float, after: Reading,
             server_status: int | None, pinned: bool) -> dict[str, Any]:
    """Every figure of the report, and the verdict."""
    t0 = summary.t0
    publish_start, publish_end = summary.publish_start, summary.publish_start + args.seconds
    window = (publish_start + warmup, publish_end)
    readings = monitor.readings
    verdicts = [judge_memory("server", [(r.at - t0, r.rss_kib) for r in readings], window, warmup, args.max_growth,
                             args.max_growth_mib)]
    if args.engine == "redis":
        verdicts.append(judge_memory("redis", [(r.at - t0, r.redis_rss_kib or 0) for r in readings], window, warmup,
                                     args.max_growth, args.max_growth_mib))
    publishing = [r for r in monitor.readings if publish_start <= r.at - t0 <= publish_end]
    cpu_percent = None
    if len(publishing) >= 2 and publishing[-1].at > publishing[0].at:
        cpu_percent = round(100 * (publishing[-1].cpu_s - publishing[0].cpu_s)
                            / (publishing[-1].at - publishing[0].at), 1)
    checks = summary.checks
    verdict = []
    if summary.interrupted:
        verdict.append("interrupted before the end: the figures cover the part that ran, without the drain, so "
                       "what was still on its way counts as lost")
    if summary.problems:
        verdict.append("delivery: " + "; ".join(summary.problems))
    else:
        verdict.append(f"nothing lost, duplicated or reordered ({summary.counts['deliveries']:,} deliveries of "
                       f"{summary.publisher.acknowledged:,} writes checked)")
    for item in verdicts:
        name = "server memory" if item.process == "server" else "Redis memory"
        state = "" if not item.judged else " flat" if item.passed else " GREW"
        verdict.append(f"{name}{state}: {item.reason}")
    if server_status is not None:
        verdict.append(f"the server exited during the run (status {server_status})")
    if not monitor.readings or len(monitor.readings) < 2:
        verdict.append("no memory readings were taken")
    passed = (not summary.problems and all(v.passed for v in verdicts) and server_status is None
              and len(monitor.readings) >= 2 and not summary.interrupted)
    rss_before = monitor.readings[0].rss_kib if monitor.readings else None
    return {
        "options": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "warmup": warmup},
        "pinned": pinned, "t0": t0, "publish_start": publish_start, "publish_end": publish_end,
        "publish_seconds": args.seconds, "table_step": table_step(args.seconds + args.drain),
        "passed": passed, "interrupted": summary.interrupted, "verdict": verdict,
        "memory": [asdict(v) for v in verdicts],
        "memory_table": memory_rows(monitor.readings, t0, table_step(args.seconds + args.drain)),
        "rss_before_kib": rss_before, "rss_after_kib": after.rss_kib, "server_cpu_percent": cpu_percent,
        "checks": asdict(checks), "counts": summary.counts, "errors": summary.errors,
        "error_samples": summary.error_samples, "publisher": asdict(summary.publisher),
        "latency": asdict(summary.latency), "time_to_last_reader": asdict(summary.time_to_last_reader),
        "deliveries_per_second": summary.deliveries_per_second, "readers_served": summary.started,
        "tool_problems": summary.problems, "tool_warnings": summary.warnings,
        "tool_cpu": {"total_s": round(summary.cpu.total, 1), "wall_s": summary.cpu.wall,
                     "peak_worker_percent": summary.cpu.peak_worker_percent},
        "readings": [{**asdict(r), "t": round(r.at - t0, 2)} for r in monitor.readings],
    }


def machine() -> dict[str, Any]:
    """The benchmark's description of this machine (CPU, kernel, versions)."""
    try:
        return describe_machine()
    except OSError:  # no redis-server to ask its version
        return {"nproc": os.cpu_count()}


if __name__ == "__main__":
    raise SystemExit(main())
