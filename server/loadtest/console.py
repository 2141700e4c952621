"""What the terminal shows: a live line of progress while the run goes, a summary table at the end."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from server.loadtest.aggregate import LiveView
from server.loadtest.summary import ArrivalFigures, Percentiles, Summary


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.2f} ms"


class LiveProgress:
    """A rich Live table refreshed once a second by the runner."""

    def __init__(self, console: Console) -> None:
        self._live = Live(Text("starting workers..."), console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._live.__exit__(kind, error, trace)

    def __call__(self, view: LiveView, phase: str) -> None:
        table = Table(box=None, show_edge=False, pad_edge=False)
        for name in ("t", "phase", "connected", "msgs/s", "delivered", "p50", "p99", "1013", "errors",
                     "seq faults", "tool CPU"):
            table.add_column(name, justify="right")
        table.add_row(
            f"{view.second + 1}s", phase, f"{view.connected}/{view.readers}", f"{view.deliveries_per_second:,}",
            f"{view.deliveries:,}", ms(view.p50_ms), ms(view.p99_ms), str(view.evicted),
            Text(str(view.errors), style="red" if view.errors else ""),
            Text(str(view.violations), style="bold red" if view.violations else "green"),
            f"{view.cpu_percent:.0f}%")
        self._live.update(table, refresh=True)


class PlainProgress:
    """Progress for a log rather than a terminal: one plain line every few seconds."""

    def __init__(self, console: Console, every: int = 5) -> None:
        self._console = console
        self._every = every

    def __call__(self, view: LiveView, phase: str) -> None:
        if (view.second + 1) % self._every:
            return
        self._console.print(
            f"{view.second + 1:>4}s {phase:<8} connected {view.connected}/{view.readers}  "
            f"{view.deliveries_per_second:,} msgs/s  p50 {ms(view.p50_ms)}  p99 {ms(view.p99_ms)}  "
            f"1013 {view.evicted}  errors {view.errors}  seq faults {view.violations}  "
            f"tool CPU {view.cpu_percent:.0f}%",
            highlight=False)


def _percentile_row(table: Table, name: str, figures: Percentiles) -> None:
    table.add_row(name, f"{figures.count:,}", ms(figures.p50), ms(figures.p90), ms(figures.p99), ms(figures.p999),
                  ms(figures.max))


def summary_table(summary: Summary) -> Group:
    """The end-of-run summary: verdict, volumes, latency, correctness, tool CPU."""
    config = summary.config
    head = Table(title="livepush loadtest", show_header=False, box=None, title_justify="left")
    head.add_column(style="bold")
    head.add_column()
    target = config['url'] if summary.nodes is None else f"{len(summary.nodes)} nodes"
    head.add_row("target", f"{target}  blog {config['blog']}  ({config['transport']})")
    for node in summary.nodes or ():
        head.add_row("node", f"{node.url}: {node.readers:,} readers served first here, {node.connects:,} "
                             f"connections ({node.resumes:,} resumes), {node.writes:,} writes acknowledged")
    served = "" if summary.all_served_after is None else f" (all within {summary.all_served_after:.2f} s)"
    head.add_row("readers", f"{summary.readers:,} requested, {summary.started:,} served{served}, peak "
                            f"{summary.peak_connected:,} connected at once, {summary.checks.steady_readers:,} steady; "
                            f"churn {config['churn']:.0%}, slow {config['slow']:.0%}"
                            + ("" if config.get("sample", 1) == 1 else
                               f", sample {config['sample']:.0%} parsed and timed (the rest counted)"))
    publisher = summary.publisher
    kinds = publisher.kinds
    mix = "" if set(kinds) <= {"create"} else (
        f" ({kinds.get('create', 0):,} new, {kinds.get('edit', 0):,} edits, {kinds.get('delete', 0):,} deletes)")
    head.add_row("posts", f"{publisher.acknowledged:,} acknowledged of {publisher.attempted:,}{mix} "
                          f"at {config['publish_rate']}/s; POST p50 {ms(publisher.latency.p50)}, "
                          f"p99 {ms(publisher.latency.p99)}")
    counts = summary.counts
    head.add_row("deliveries", f"{counts['deliveries']:,} ({summary.deliveries_per_second:,.0f}/s while publishing, "
                               f"peak {summary.peak_deliveries_per_second:,}/s); {counts['replayed']:,} replayed on "
                               f"resume, {counts['snapshots']:,} snapshots")
    head.add_row("connections", f"{counts['connects']:,} opened, {counts['disconnects']:,} closed: "
                                f"{counts['churned']:,} churn, {counts['evicted']:,} 1013 (slow), "
                                f"{counts['dropped_stalled']:,} dropped while stalled, "
                                f"{counts['restarted']:,} 1012, {counts['server_closed']:,} other server closes")
    if summary.arrivals is not None:
        head.add_row("arrivals", arrivals_line(summary.arrivals))
    cpu = summary.cpu
    head.add_row("tool CPU", f"{cpu.total:.1f} s over {cpu.wall:.1f} s wall = {cpu.cores:.2f} cores in "
                             f"{cpu.processes} processes ({cpu.loop}); "
                             f"busiest worker peak {cpu.peak_worker_percent:.0f}%, "
                             f"{cpu.worker_peak_rss_mib:.0f} MiB")

    latency = Table(title="latency", title_justify="left")
    latency.add_column("")
    for name in ("count", "p50", "p90", "p99", "p99.9", "max"):
        latency.add_column(name, justify="right")
    _percentile_row(latency, "publish → receive", summary.latency)
    _percentile_row(latency, "time to last reader", summary.time_to_last_reader)
    _percentile_row(latency, "POST round trip", publisher.latency)
    _percentile_row(latency, "connect + handshake", summary.handshake)
    if summary.arrivals is not None:
        _percentile_row(latency, "page request", summary.arrivals.page)
        _percentile_row(latency, "time to interactive", summary.arrivals.time_to_interactive)

    checks = Table(title="correctness (all must be 0)", title_justify="left")
    names = ("lost", "lost posts", "duplicated", "reordered", "gaps", "regressions")
    values = (summary.checks.lost, summary.checks.lost_posts, summary.checks.duplicated, summary.checks.reordered,
              summary.checks.gaps, summary.checks.regressions)
    for name in names:
        checks.add_column(name, justify="right")
    checks.add_row(*(Text(str(v), style="bold red" if v else "green") for v in values))

    lines: list[Text] = []
    for warning in summary.warnings:
        lines.append(Text(f"warning: {warning}", style="yellow"))
    for sample in summary.error_samples[:8]:
        lines.append(Text(f"  {sample}", style="dim"))
    if summary.healthy:
        lines.append(Text("healthy: no event lost, duplicated or reordered", style="bold green"))
    else:
        lines.append(Text("UNHEALTHY: " + "; ".join(summary.problems), style="bold red"))
    return Group(head, latency, checks, *lines)


def arrivals_line(arrivals: ArrivalFigures) -> str:
    share = "no ETag on the page" if arrivals.share_304 is None else f"{arrivals.share_304:.0%} answered 304"
    return (f"{arrivals.opened:,} of {arrivals.scheduled:,} streams open ({arrivals.per_second:,.1f}/s, "
            f"{arrivals.shape} up to {arrivals.rate:g}/s); {arrivals.pages:,} pages, {share}, "
            f"{arrivals.page_bytes_mean:,.0f} B on the wire; assets {arrivals.assets:,} fetched "
            f"({arrivals.assets_304:,} 304), {arrivals.assets_cached:,} from cache; {arrivals.raced:,} raced a post; "
            f"missed {arrivals.missed} of what was published after their page; {arrivals.errors} page errors")


def one_line(summary: Summary) -> str:
    """The --quiet verdict."""
    verdict = "healthy" if summary.healthy else "UNHEALTHY (" + "; ".join(summary.problems) + ")"
    if summary.interrupted:
        verdict = f"interrupted, {verdict} so far"
    return (f"{verdict}: {summary.started}/{summary.readers} readers, {summary.publisher.acknowledged} posts, "
            f"{summary.counts['deliveries']} deliveries, p99 {ms(summary.latency.p99)}, "
            f"lost {summary.checks.lost}, duplicated {summary.checks.duplicated}, "
            f"reordered {summary.checks.reordered}, gaps {summary.checks.gaps}"
            + ("" if summary.arrivals is None else
               f"; arrivals {summary.arrivals.opened}/{summary.arrivals.scheduled}, "
               f"TTI p50 {ms(summary.arrivals.time_to_interactive.p50)}, missed {summary.arrivals.missed}")
            + ("" if summary.nodes is None else
               "; readers per node " + "/".join(str(node.readers) for node in summary.nodes)
               + ", resumes per node " + "/".join(str(node.resumes) for node in summary.nodes)))
