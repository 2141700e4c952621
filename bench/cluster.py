"""Three livepush nodes on one Redis Cluster, and the same three on one Redis, under `livepush loadtest` (loopback).

    .venv/bin/python -m bench.cluster [--readers 3000] [--rate 5] [--duration 30] [--churn 0.05]
                                      [--stores cluster,redis|redis,cluster] [--out FILE]

For each store, in one run: a private 3 primaries + 3 replicas Cluster (tests/redis_cluster.py),
then a private redis-server (no persistence, never the machine's 6379), or the other way round
(`--stores`); on it three `python -m server serve` processes of this checkout
(REDIS_URL=redis+cluster://... or redis://...). Three blogs, chosen so that each lives on a
different Cluster primary (the same ids on the single Redis), and one `livepush loadtest` per
blog, all three at once: the tool takes one blog per run, and one run per blog is what puts every
shard to work at the same time. Each run spreads its readers over the three nodes (`--url` three
times, rotated so each blog is created on a different node), churning readers resume at the next
node, and its writes rotate over the nodes, so every reader is held to exactly once across nodes.

Prints a table (readers, deliveries/s, publish → receive p50/p99 per blog, gaps, duplicates,
lost, resumes, each node's CPU as a share of one core over the run, the nodes' CPU per delivery,
Redis CPU) and writes bench/results/cluster-<date>.json (or --out). Nothing is pinned: on a
2-core machine the nodes, the Redis processes and the tool share both cores, so read the figures
as the cost of the path, not as capacity. Every process is stopped by its own id at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from bench.procs import (
    TOKEN,
    VENV_BIN,
    Processes,
    Redis,
    Running,
    Variant,
    cpu_seconds,
    load_average,
    raise_nofile,
    start_server,
)
from server.engine.cluster_fanout import blog_slot
from tests.redis_cluster import running_cluster

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NODES = 3
BLOGS = 3
SLOTS = 16384
TOOL_GRACE = 60.0  # seconds past ramp + duration + drain before a tool run is given up


@dataclass(frozen=True, slots=True)
class Store:
    """What the nodes share: its REDIS_URL and the redis-server processes (for their CPU)."""

    label: str
    url: str
    pids: list[int]


def shard_blogs() -> list[str]:
    """One blog id per primary of a fresh 3-primary Cluster: `redis-cli --cluster create` gives each a third of
    the slots, in order, so lt-0, lt-1, ... are taken until each third has one (checked once the Cluster is up)."""
    chosen: dict[int, str] = {}
    for number in range(1000):
        blog = f"lt-{number}"
        chosen.setdefault(blog_slot(blog) * BLOGS // SLOTS, blog)
        if len(chosen) == BLOGS:
            break
    return [chosen[third] for third in sorted(chosen)]


@contextlib.contextmanager
def cluster_store(blogs: list[str]) -> Iterator[Store]:
    with running_cluster() as cluster:
        owners = sorted({cluster.owner(blog_slot(blog)) for blog in blogs})
        if len(owners) != BLOGS:
            raise RuntimeError(f"blogs {blogs} are not on {BLOGS} different primaries: {owners}")
        yield Store("redis-cluster (3+3)", cluster.url,
                    [node.process.pid for node in cluster.nodes if node.process is not None])


@contextlib.contextmanager
def single_store(processes: Processes, logs: Path) -> Iterator[Store]:
    redis = Redis(processes, None, logs)
    try:
        yield Store("redis (one)", redis.url + "/0", [redis.process.pid])
    finally:
        redis.close()


def start_nodes(processes: Processes, store: Store, logs: Path) -> list[Running]:
    nodes = []
    for index in range(NODES):
        variant = Variant(f"{store.label}-node-{index}", f"livepush node {index}", "livepush", redis=False)
        nodes.append(start_server(processes, variant, None, None, logs, {"REDIS_URL": store.url}))
    return nodes


async def run_tool(urls: list[str], blog: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One `livepush loadtest` over every node on *blog*; its JSON summary."""
    argv = [str(VENV_BIN / "python"), "-m", "server.loadtest", "--blog", blog, "--create-blog",
            "--readers", str(args.readers // BLOGS), "--ramp", str(args.ramp), "--duration", str(args.duration),
            "--publish-rate", str(args.rate), "--churn", str(args.churn), "--churn-every", str(args.churn_every),
            "--drain", str(args.drain), "--processes", "1", "--quiet", "--json", str(out)]
    for url in urls:
        argv += ["--url", url]
    env = {**os.environ, "LIVEPUSH_TOKEN": TOKEN}
    process = await asyncio.create_subprocess_exec(*argv, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = await asyncio.wait_for(process.communicate(),
                                           args.ramp + args.duration + args.drain + TOOL_GRACE)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"the load test of {blog} did not finish") from None
    print(f"    {blog}: {output.decode(errors='replace').strip()}", flush=True)
    return read_summary(out, f"the load test of {blog} (exit {process.returncode})")


def read_summary(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise RuntimeError(f"{what} wrote no summary")
    summary: dict[str, Any] = orjson.loads(path.read_bytes())
    return summary


def kept(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures of one tool run this page reports (the full summary stays in the logs directory)."""
    return {name: summary[name] for name in (
        "started_at", "readers", "started", "deliveries_per_second", "peak_deliveries_per_second", "latency",
        "time_to_last_reader", "checks", "nodes", "healthy", "problems", "warnings", "cpu", "drained")} | {
        "publisher": {name: summary["publisher"][name] for name in ("attempted", "acknowledged", "latency")},
        "counts": {name: summary["counts"][name] for name in (
            "deliveries", "replayed", "connects", "churned", "evicted", "resume_snapshots", "abnormal_closes")}}


async def measure(processes: Processes, store: Store, blogs: list[str], args: argparse.Namespace,
                  logs: Path) -> dict[str, Any]:
    """Three nodes on *store*, one tool run per blog at once; the runs' figures and the processes' CPU."""
    nodes = start_nodes(processes, store, logs)
    try:
        bases = [node.base for node in nodes]
        node_pids = [node.pids for node in nodes]
        before = [cpu_seconds(pids) for pids in node_pids], cpu_seconds(store.pids), time.monotonic()
        runs = await asyncio.gather(*(
            run_tool(bases[i:] + bases[:i], blog, args, logs / f"{store.label}-{blog}.json")
            for i, blog in enumerate(blogs)))
        wall = time.monotonic() - before[2]
        node_cpu = [cpu_seconds(pids) - start for pids, start in zip(node_pids, before[0], strict=True)]
        return {"store": store.label, "wall": round(wall, 1), "node_cpu_seconds": [round(c, 2) for c in node_cpu],
                "node_cpu_percent": [round(100 * cpu / wall, 1) for cpu in node_cpu],
                "redis_cpu_percent": round(100 * (cpu_seconds(store.pids) - before[1]) / wall, 1),
                "blogs": {blog: kept(run) for blog, run in zip(blogs, runs, strict=True)}}
    finally:
        for node in nodes:
            processes.stop(node.process)


def table(results: list[dict[str, Any]]) -> list[str]:
    """The Markdown rows of docs/BENCHMARKS.md's "Three nodes on a Redis Cluster"."""
    lines = ["| store | readers (per node) | deliveries/s | publish → receive p50 / p99 per blog | "
             "lost / dup / reordered / gaps | resumes | node CPU | node CPU per delivery | Redis CPU |",
             "| --- | ---: | ---: | --- | --- | ---: | --- | ---: | ---: |"]
    for result in results:
        runs = list(result["blogs"].values())
        per_node = [sum(run["nodes"][(i - j) % NODES]["readers"] for j, run in enumerate(runs)) for i in range(NODES)]
        checks = [sum(run["checks"][name] for run in runs) for name in ("lost", "duplicated", "reordered", "gaps")]
        resumes = sum(node["resumes"] for run in runs for node in run["nodes"])
        latency = ", ".join(f"{run['latency']['p50']:.1f} / {run['latency']['p99']:.0f} ms" for run in runs)
        lines.append(
            f"| {result['store']} | {sum(run['started'] for run in runs):,} ({' / '.join(map(str, per_node))}) | "
            f"{sum(run['deliveries_per_second'] for run in runs):,.0f} | {latency} | "
            f"{' / '.join(map(str, checks))} | {resumes:,} | "
            f"{' / '.join(f'{cpu:.0f}%' for cpu in result['node_cpu_percent'])} | "
            f"{1e6 * sum(result['node_cpu_seconds']) / sum(run['counts']['deliveries'] for run in runs):.1f} µs | "
            f"{result['redis_cpu_percent']:.0f}% |")
    return lines


@contextlib.contextmanager
def stopped_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C, so every `finally` stops what it started."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=3000, help="readers in all (a third per blog)")
    parser.add_argument("--rate", type=float, default=5.0, help="posts per second per blog")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--drain", type=float, default=15.0)
    parser.add_argument("--churn", type=float, default=0.05)
    parser.add_argument("--churn-every", type=float, default=5.0)
    parser.add_argument("--stores", choices=("cluster,redis", "redis,cluster"), default="cluster,redis",
                        help="which store runs first (to see how much the order, i.e. the machine's drift, weighs)")
    parser.add_argument("--out", type=Path, help="the JSON results (default bench/results/cluster-<date>.json)")
    args = parser.parse_args()
    raise_nofile()
    started = datetime.now(UTC)
    logs = RESULTS / "logs" / f"cluster-{started:%Y%m%dT%H%M%S}"
    logs.mkdir(parents=True, exist_ok=True)
    processes = Processes()
    results: list[dict[str, Any]] = []
    load = [load_average()]
    blogs = shard_blogs()
    print(f"{args.readers} readers over {NODES} nodes, blogs {', '.join(blogs)} (one per Cluster primary) at "
          f"{args.rate:g} posts/s each for {args.duration:g} s, churn {args.churn:.0%}; load average {load[0]}",
          flush=True)
    try:
        for kind in args.stores.split(","):
            store_context = cluster_store(blogs) if kind == "cluster" else single_store(processes, logs)
            with store_context as store:
                print(f"  {store.label}", flush=True)
                results.append(await measure(processes, store, blogs, args, logs))
            load.append(load_average())
    finally:
        processes.stop_all()
    rows = table(results)
    print("\n".join(rows))
    print(f"load average (1, 5, 15 min) at start and after each store: {load}")
    out = args.out or RESULTS / f"cluster-{started:%Y-%m-%d}.json"
    out.write_bytes(orjson.dumps({"started_at": started.isoformat(timespec="seconds"), "args": vars(args) | {
        "out": str(out)}, "cpus": os.cpu_count(), "load_average": load, "results": results, "table": rows},
                                 option=orjson.OPT_INDENT_2))
    print(f"written {out} (full tool summaries and node logs: {logs.relative_to(ROOT)})")


if __name__ == "__main__":
    with stopped_on_sigterm():
        asyncio.run(main())
