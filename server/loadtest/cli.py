"""`livepush loadtest`: the command line of the load-test tool.

Parses the options into a LoadConfig (the token may also come from $LIVEPUSH_TOKEN, so it need
not sit in the process list), runs the test, prints progress and the summary, writes the JSON
and HTML reports. Exit status: 0 healthy, 1 unhealthy (any event lost, duplicated or reordered,
any gap, or nothing measured), 2 bad options or an unreachable target, 130 interrupted (Ctrl-C;
the reports of the part that ran are still written).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
from rich.console import Console

from server.loadtest.config import ConfigError, LoadConfig
from server.loadtest.console import LiveProgress, PlainProgress, one_line, summary_table
from server.loadtest.publisher import PublisherError
from server.loadtest.report_html import render_report
from server.loadtest.runner import Runner
from server.loadtest.summary import Summary
from server.loadtest.system import event_loop_factory, raise_fd_limit

TOKEN_VARIABLE = "LIVEPUSH_TOKEN"  # noqa: S105 (the name of a variable, not a secret)
FD_MARGIN = 64
EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT; the partial reports are still written


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except the empty ones (None, False) that say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser(prog: str = "livepush loadtest") -> argparse.ArgumentParser:
    d = LoadConfig()
    parser = argparse.ArgumentParser(
        prog=prog, description="Simulate readers of a livepush blog, publish stamped posts, measure "
        "publish-to-receive latency and check every reader's sequence for gaps, duplicates and reordering.",
        formatter_class=_HelpFormatter)
    target = parser.add_argument_group("target")
    target.add_argument("--url", action="append", dest="urls", metavar="URL",
                        help=f"the server's base URL (http or https; default {d.url}); repeat it for several nodes of "
                             "one deployment: readers are spread over them round-robin and resume at the next one, "
                             "writes rotate over them")
    target.add_argument("--blog", default=d.blog, help="blog id the readers watch and the publisher posts to")
    target.add_argument("--server", choices=("livepush", "nchan"), default=d.server,
                        help="what the target is: livepush, or Nginx + Nchan as a reference (bench/references.py: "
                             "readers on /sub/BLOG, writes to /pub/BLOG, the tool numbering them)")
    target.add_argument("--allow-remote", action="store_true",
                        help="allow a target that is not a loopback address (only servers you run)")
    readers = parser.add_argument_group("readers")
    readers.add_argument("--readers", "-n", type=int, default=d.readers, help="simulated readers")
    readers.add_argument("--transport", choices=("ws", "sse"), default=d.transport, help="stream to read")
    readers.add_argument("--ramp", type=float, default=d.ramp,
                         help="seconds over which readers connect, evenly (0: all at once)")
    readers.add_argument("--churn", type=float, default=d.churn,
                         help="fraction of readers that disconnect and resume with since+epoch periodically")
    readers.add_argument("--churn-every", type=float, default=d.churn_every,
                         help="mean seconds a churning reader stays connected (±50%%)")
    readers.add_argument("--churn-pause", type=float, default=d.churn_pause,
                         help="mean seconds a churning reader stays away before resuming (±50%%)")
    readers.add_argument("--slow", type=float, default=d.slow,
                         help="fraction of readers that stop reading for a while, so the server's per-reader "
                              "buffer fills (a 1013 close and resume is healthy)")
    readers.add_argument("--slow-every", type=float, default=d.slow_every,
                         help="mean seconds of normal reading between a slow reader's pauses (±50%%)")
    readers.add_argument("--slow-pause", type=float, default=d.slow_pause, help="seconds a slow reader stops reading")
    readers.add_argument("--sample", type=float, default=d.sample,
                         help="fraction of readers that parse, check and time every message; the rest only count "
                              "whole frames (cheap: for delivery rates one core of Python cannot parse); churning "
                              "and slow readers are always sampled")
    readers.add_argument("--connect-timeout", type=float, default=d.connect_timeout,
                         help="seconds for a TCP connect plus handshake")
    arrivals = parser.add_argument_group("arrivals (browser-like visits, while publishing)")
    arrivals.add_argument("--arrivals", type=float, default=d.arrivals, metavar="RATE",
                          help="new page views per second during --duration: each fetches the page (Accept-Encoding, "
                               "If-None-Match on a repeat visit), the widget's assets, then opens the stream from the "
                               "page's data-seq/data-epoch and stays to the end (0: none)")
    arrivals.add_argument("--arrival-shape", choices=("flat", "ramp", "spike"), default=d.arrival_shape,
                          help="flat: RATE throughout; ramp: from 0 up to RATE; spike: RATE/10, and RATE for the "
                               "middle fifth of --duration")
    arrivals.add_argument("--repeat", type=float, default=d.repeat,
                          help="fraction of arrivals that are repeat visits of an earlier visitor, with its cache")
    arrivals.add_argument("--think", type=float, default=d.think,
                          help="seconds between the page (and assets) and opening the stream, as a slow device's "
                               "script start-up")
    publish = parser.add_argument_group("publishing")
    publish.add_argument("--publish-rate", type=float, default=d.publish_rate,
                         help="writes per second (0: none); new posts unless --edit-share or --keep-posts")
    publish.add_argument("--token", default=None, help=f"bearer token for publishing (default: ${TOKEN_VARIABLE})")
    publish.add_argument("--create-blog", action="store_true", help="create the blog first (reuse it if it exists)")
    publish.add_argument("--post-bytes", type=int, default=d.post_bytes, help="size of each post's body text")
    publish.add_argument("--edit-share", type=float, default=d.edit_share,
                         help="fraction of writes that PATCH one of the run's newest posts (post.updated) instead "
                              "of creating one")
    publish.add_argument("--keep-posts", type=int, default=d.keep_posts,
                         help="at most this many of the run's posts alive: a write that finds more DELETEs the "
                              "oldest (post.deleted) instead (0: keep all)")
    run = parser.add_argument_group("run")
    run.add_argument("--duration", type=float, default=d.duration,
                     help="seconds of publishing, which starts after the ramp once every reader has its snapshot "
                          "(or --connect-timeout later)")
    run.add_argument("--drain", type=float, default=d.drain,
                     help="seconds, after publishing, for every reader to catch up before the verdict")
    run.add_argument("--processes", type=int, default=d.processes,
                     help="worker processes (0: one per 2500 readers, at most one per CPU)")
    run.add_argument("--seed", type=int, default=d.seed, help="seed for which readers churn or read slowly")
    out = parser.add_argument_group("output")
    out.add_argument("--json", dest="json_path", metavar="PATH", help="write the machine-readable summary here")
    out.add_argument("--html", dest="html_path", metavar="PATH", help="write the self-contained HTML report here")
    out.add_argument("--quiet", "-q", action="store_true", help="no live progress; one line at the end")
    return parser


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    url, *more_urls = args.urls or [LoadConfig().url]
    return LoadConfig(
        url=url, more_urls=tuple(more_urls), blog=args.blog, readers=args.readers, transport=args.transport,
        duration=args.duration, ramp=args.ramp, publish_rate=args.publish_rate, token=token,
        create_blog=args.create_blog, post_bytes=args.post_bytes, edit_share=args.edit_share,
        keep_posts=args.keep_posts, churn=args.churn, churn_every=args.churn_every, churn_pause=args.churn_pause,
        slow=args.slow, slow_every=args.slow_every, slow_pause=args.slow_pause, sample=args.sample,
        processes=args.processes,
        drain=args.drain, connect_timeout=args.connect_timeout, seed=args.seed, allow_remote=args.allow_remote,
        server=args.server, arrivals=args.arrivals, arrival_shape=args.arrival_shape, repeat=args.repeat,
        think=args.think,
        json_path=args.json_path, html_path=args.html_path, quiet=args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `livepush loadtest` with *argv* (default: sys.argv[1:]); return the exit status."""
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log, not a terminal: rich would assume 80 columns
    try:
        config.validate()
    except ConfigError as exc:
        print(f"livepush loadtest: {exc}", file=sys.stderr)
        return 2
    limit = raise_fd_limit()
    per_worker = -(-config.connections // max(config.worker_count(), 1))
    if per_worker + FD_MARGIN > limit:
        print(f"livepush loadtest: {per_worker} readers per process exceed the open-file limit ({limit}); "
              "raise it (ulimit -n) or use more --processes", file=sys.stderr)
        return 2
    try:
        summary = _run(config, console)
    except PublisherError as exc:
        print(f"livepush loadtest: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"livepush loadtest: {exc}", file=sys.stderr)
        return 2
    if config.quiet:
        print(one_line(summary))
    else:
        console.print(summary_table(summary))
    _write_reports(config, summary, console)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return 0 if summary.healthy else 1


def _run(config: LoadConfig, console: Console) -> Summary:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        if config.quiet:
            return runner.run(Runner(config).run())
        if not console.is_terminal:
            return runner.run(Runner(config, PlainProgress(console)).run())
        with LiveProgress(console) as progress:
            return runner.run(Runner(config, progress).run())


def _write_reports(config: LoadConfig, summary: Summary, console: Console) -> None:
    if config.json_path:
        Path(config.json_path).write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))
        if not config.quiet:
            console.print(f"JSON summary: {config.json_path}")
    if config.html_path:
        Path(config.html_path).write_text(render_report(summary), encoding="utf-8")
        if not config.quiet:
            console.print(f"HTML report: {config.html_path}")
