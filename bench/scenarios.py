"""The benchmark's scenarios, each driven by `livepush loadtest` against a fresh server.

Every scenario starts its own server (so memory and backlogs never leak from one into the
next), runs the load-test tool pinned to the load core, and reads the server from /proc while
it runs (bench.procs.Sampler). Figures come from two clocks lined up by the tool's `t0`:
deliveries per second from the tool's series, the server's CPU and memory from the samples.

- `idle`: N readers connect at once and stay idle: time until every one had its snapshot,
  server RSS per reader, kernel TCP buffer memory per reader, server CPU per connection.
- `publish`: N readers, posts at a fixed rate: deliveries/s, publish-to-receive latency, time
  to last reader, and server CPU per delivery over the steady seconds of publishing.
- `ladder`: N readers, the publish rate stepped up (doubling, then bisecting) until p99 >= 1 s
  or the readers fall behind; the last passing step's deliveries/s.

Only a sample of readers (SAMPLED of them) parses and times every message; the rest count
frames (the tool's `--sample`), so one core of Python can absorb the server's fan-out. Latency
figures are therefore over the sample; deliveries and the loss check cover every reader.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.procs import (
    TOKEN,
    VENV_BIN,
    Processes,
    Redis,
    Running,
    Sampler,
    Variant,
    listen_overflows,
    load_average,
    pinned,
    start_server,
)

SAMPLED = 250
P99_LIMIT_MS = 1000.0
KEEP_UP = 0.95  # a step passes only if this share of the expected deliveries/s arrived
BLOG = "bench"


@dataclass(frozen=True, slots=True)
class Context:
    """Where things run and go: cores, the process registry, logs and results, and the time budget."""

    processes: Processes
    server_cpu: int | None
    tool_cpu: int | None
    logs: Path
    results: Path
    quick: bool


def sample_share(readers: int) -> float:
    return min(1.0, SAMPLED / max(readers, 1))


def fresh_server(ctx: Context, variant: Variant, redis: Redis | None) -> Running:
    """A new server with the benchmark's blog and one post in it (every path warmed once)."""
    if redis is not None:
        redis.flush()
    server = start_server(ctx.processes, variant, ctx.server_cpu, redis, ctx.logs)
    seed_blogs(server, [BLOG])
    return server


def seed_blogs(server: Running, blogs: Sequence[str]) -> None:
    """Create each blog (if new) with one post in it, so every path has run once before measuring."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=10, trust_env=False) as client:
        for blog in blogs:
            created = client.post("/api/blogs", json={"id": blog, "title": "Benchmark"})
            if created.status_code not in (201, 409):
                raise RuntimeError(f"{server.variant.name}: creating {blog}: HTTP {created.status_code} "
                                   f"{created.text[:200]}")
            posted = client.post(f"/api/blogs/{blog}/posts", json={"headline": "warm-up", "body": "<p>warm-up</p>"})
            if posted.status_code != 201:
                raise RuntimeError(f"{server.variant.name}: warm-up post in {blog}: HTTP {posted.status_code} "
                                   f"{posted.text[:200]}")


def run_tool(ctx: Context, server: Running, name: str, *args: str, html: Path | None = None) -> dict[str, Any]:
    """Run `livepush loadtest` against *server*; return its JSON summary (exit 1, unhealthy, is data too)."""
    json_path = ctx.logs / f"{name}.json"
    json_path.unlink(missing_ok=True)
    argv = [str(VENV_BIN / "python"), "-m", "server.loadtest", "--url", server.base, "--blog", BLOG,
            "--processes", "1", "--quiet", "--json", str(json_path), *args]
    if html is not None:
        argv += ["--html", str(html)]
    env = {**os.environ, "LIVEPUSH_TOKEN": TOKEN}
    process = ctx.processes.start(pinned(ctx.tool_cpu, argv), env=env, log=ctx.logs / f"{name}.log")
    try:
        status = process.wait(timeout=240)
    except subprocess.TimeoutExpired:
        ctx.processes.stop(process)
        raise RuntimeError(f"{name}: the load-test tool did not finish in 240 s") from None
    ctx.processes.stop(process)
    if status not in (0, 1) or not json_path.exists():
        raise RuntimeError(f"{name}: the load-test tool failed with status {status} (see {ctx.logs / name}.log)")
    summary: dict[str, Any] = orjson.loads(json_path.read_bytes())
    summary["exit_status"] = status
    return summary


def interpolate(sampler: Sampler, when: float, field: str) -> float:
    """A sampled quantity (cpu, redis_cpu) at wall time *when*, linear between the two nearest readings."""
    samples = sampler.samples
    before = [s for s in samples if s.at <= when]
    after = [s for s in samples if s.at >= when]
    if not before or not after:
        return float(getattr(sampler.at(when), field))
    a, b = before[-1], after[0]
    va, vb = float(getattr(a, field)), float(getattr(b, field))
    return va if b.at == a.at else va + (vb - va) * (when - a.at) / (b.at - a.at)


def core_share(sampler: Sampler, start: float, end: float, core: int | None) -> float | None:
    """Busy share of *core* between two wall times (everything on it: the server, the tool, anyone else)."""
    if core is None:
        return None
    a, b = sampler.at(start), sampler.at(end)
    if b.at <= a.at or core not in a.cores:
        return None
    return round((b.cores[core] - a.cores[core]) / (b.at - a.at), 3)


def idle(ctx: Context, variant: Variant, redis: Redis | None, readers: int, ramp: float = 0.0) -> dict[str, Any]:
    """*readers* connect at once (or over *ramp* s) and stay idle: all-served time, memory and CPU per reader."""
    hold = 3.0 if ctx.quick else 4.0
    server = fresh_server(ctx, variant, redis)
    try:
        time.sleep(0.5)
        redis_pids = [server.redis_pid] if server.redis_pid else []
        with Sampler(server.pids, redis_pids, interval=0.2) as sampler:
            before = sampler.read()
            load = load_average()
            overflows = listen_overflows()
            summary = run_tool(ctx, server, f"{variant.name}-idle-{readers}-{ramp:g}", "--readers", str(readers),
                               "--ramp", f"{ramp:g}", "--duration", str(hold), "--drain", "1",
                               "--connect-timeout", "30", "--sample", f"{sample_share(readers):.4f}")
            overflows = listen_overflows() - overflows
    finally:
        ctx.processes.stop(server.process)
    t0 = summary["t0"]
    hold_start, hold_end = t0 + summary["publish_start"] + 1.0, t0 + summary["publish_end"] - 0.2
    held = sampler.between(hold_start, hold_end)
    rss = statistics.median(s.rss_kib for s in held) if held else None
    fds = statistics.median(s.fds for s in held) if held else None
    tcp = statistics.median(s.tcp_kib for s in held) if held else None
    served = summary["all_served_after"]
    connect_cpu = None
    if served is not None:
        connect_cpu = interpolate(sampler, t0 + served, "cpu") - interpolate(sampler, t0, "cpu")
    return {
        "scenario": "idle", "variant": variant.name, "readers": readers, "ramp_s": ramp, "load_average": load,
        "served": summary["started"], "all_served_s": served, "handshake": summary["handshake"],
        "listen_overflows": overflows,
        "rss_before_kib": before.rss_kib, "rss_held_kib": rss, "fds_held": fds,
        "rss_per_reader_kib": None if rss is None else round((rss - before.rss_kib) / readers, 2),
        "tcp_mem_per_reader_kib": None if tcp is None else round((tcp - before.tcp_kib) / readers, 3),
        "server_cpu_connect_s": None if connect_cpu is None else round(connect_cpu, 3),
        "server_cpu_per_connection_us": None if connect_cpu is None else round(1e6 * connect_cpu / readers, 1),
        "errors": summary["errors"], "problems": summary["problems"], "tool_cpu": summary["cpu"],
    }


def publish(ctx: Context, variant: Variant, redis: Redis | None, readers: int, rate: float, duration: float,
            *, drain: float = 8.0, html: Path | None = None, name: str = "publish") -> dict[str, Any]:
    """*readers* readers, posts at *rate*/s for *duration* s: throughput, latency, server CPU per delivery."""
    server = fresh_server(ctx, variant, redis)
    ramp = 2.0 if readers <= 5000 else 3.0
    try:
        redis_pids = [server.redis_pid] if server.redis_pid else []
        with Sampler(server.pids, redis_pids, interval=0.2) as sampler:
            load_before = load_average()
            summary = run_tool(ctx, server, f"{variant.name}-{name}-{readers}-{rate:g}", "--readers", str(readers),
                               "--ramp", str(ramp), "--connect-timeout", "30", "--publish-rate", f"{rate:g}",
                               "--duration", f"{duration:g}", "--drain", f"{drain:g}",
                               "--sample", f"{sample_share(readers):.4f}", html=html)
            load_after = load_average()
    finally:
        ctx.processes.stop(server.process)
    return figures(summary, sampler, ctx, variant, readers, rate, load_before, load_after)


def figures(summary: dict[str, Any], sampler: Sampler, ctx: Context, variant: Variant, readers: int, rate: float,
            load_before: tuple[float, float, float], load_after: tuple[float, float, float]) -> dict[str, Any]:
    """A publishing run's figures, the server's CPU taken over the steady seconds of publishing."""
    t0, start, end = summary["t0"], summary["publish_start"], summary["publish_end"]
    first, last = math.ceil(start) + 1, math.floor(end) - 1  # skip the first second (warming up)
    if last - first < 1:
        first, last = math.ceil(start), math.floor(end) - 1
    seconds = [s for s in summary["series"] if first <= s["t"] <= last]
    deliveries = sum(s["deliveries"] for s in seconds)
    window_start, window_end = t0 + first, t0 + last + 1
    cpu = interpolate(sampler, window_end, "cpu") - interpolate(sampler, window_start, "cpu")
    redis_cpu = interpolate(sampler, window_end, "redis_cpu") - interpolate(sampler, window_start, "redis_cpu")
    wall = window_end - window_start
    tool = [s["cpu_percent"] for s in seconds]
    expected = readers * rate
    delivered_rate = deliveries / wall if wall > 0 else 0.0
    server_share = cpu / wall if wall > 0 else 0.0
    core0 = core_share(sampler, window_start, window_end, ctx.server_cpu)
    return {
        "scenario": "publish", "variant": variant.name, "readers": readers, "rate": rate,
        "load_average": load_before, "load_average_after": load_after,
        "expected_deliveries_per_s": expected, "deliveries_per_s": round(delivered_rate, 1),
        "tool_deliveries_per_s": summary["deliveries_per_second"],
        "kept_up": delivered_rate >= KEEP_UP * expected,
        "window_s": round(wall, 2), "window_deliveries": deliveries,
        "server_cpu_s": round(cpu, 3), "server_core_share": round(server_share, 3),
        "server_cpu_per_delivery_us": round(1e6 * cpu / deliveries, 2) if deliveries else None,
        "redis_cpu_per_delivery_us": round(1e6 * redis_cpu / deliveries, 2) if deliveries and redis_cpu else None,
        "server_core_busy_share": core0,
        "others_on_server_core_share": None if core0 is None else round(max(0.0, core0 - server_share
                                                                             - redis_cpu / wall), 3),
        "tool_core_busy_share": core_share(sampler, window_start, window_end, ctx.tool_cpu),
        "tool_cpu_percent_mean": round(statistics.mean(tool), 1) if tool else None,
        "tool_cpu_percent_peak": max(tool) if tool else None,
        "tool_saturated": bool(tool) and statistics.mean(tool) >= 90.0,
        "latency": summary["latency"], "time_to_last_reader": summary["time_to_last_reader"],
        "post_round_trip": summary["publisher"]["latency"], "acknowledged": summary["publisher"]["acknowledged"],
        "attempted": summary["publisher"]["attempted"], "sampled_share": summary["config"]["sample"],
        "checks": summary["checks"], "drained": summary["drained"], "healthy": summary["healthy"],
        "problems": summary["problems"], "warnings": summary["warnings"], "errors": summary["errors"],
        "rss_end_kib": sampler.samples[-1].rss_kib if sampler.samples else None,
    }


def passes(result: dict[str, Any]) -> bool:
    p99 = result["latency"]["p99"]
    return (p99 is not None and p99 < P99_LIMIT_MS and result["kept_up"] and result["drained"]
            and not result["checks"]["lost"] and result["acknowledged"] == result["attempted"])


def ladder(ctx: Context, variant: Variant, redis: Redis | None, readers: int, rates: list[float],
           bisections: int, duration: float) -> dict[str, Any]:
    """Step the publish rate up (*rates*, then *bisections* halvings of the gap) while p99 < 1 s and readers keep up."""
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    failed: float | None = None
    for rate in rates:
        step = publish(ctx, variant, redis, readers, rate, duration, drain=5.0, name="ladder")
        step["pass"] = passes(step)
        steps.append(step)
        if not step["pass"]:
            failed = rate
            break
        best = step
    low = best["rate"] if best is not None else 0.0
    for _ in range(bisections if failed is not None else 0):
        rate = round((low + failed) / 2, 1) if failed is not None else low
        if failed is None or rate in (low, failed) or rate <= 0:
            break
        step = publish(ctx, variant, redis, readers, rate, duration, drain=5.0, name="ladder")
        step["pass"] = passes(step)
        steps.append(step)
        if step["pass"]:
            best, low = step, rate
        else:
            failed = rate
    return {
        "scenario": "ladder", "variant": variant.name, "readers": readers,
        "max_rate": best["rate"] if best is not None else None,
        "max_deliveries_per_s": best["deliveries_per_s"] if best is not None else None,
        "first_failing_rate": failed, "capped": failed is None,
        "tool_saturated_at_best": best["tool_saturated"] if best is not None else None,
        "steps": [{k: step[k] for k in ("rate", "pass", "deliveries_per_s", "expected_deliveries_per_s", "latency",
                                        "server_core_share", "server_cpu_per_delivery_us", "tool_cpu_percent_mean",
                                        "others_on_server_core_share", "load_average", "kept_up", "drained")}
                  for step in steps],
    }
