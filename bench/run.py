"""Reproduce the benchmark table of docs/BENCHMARKS.md: livepush against the naive baseline, in one run.

    bash bench/setup_baseline.sh                  # once: the baseline's own environment
    .venv/bin/pip install py-spy                  # once, for the profiles (or: pip install -e '.[bench]')
    .venv/bin/python -m bench.run --quick         # ~9 minutes: every variant, fewer and shorter scenarios
    .venv/bin/python -m bench.run                 # the full table, about 20-25 minutes

Loopback only. The server under test is pinned to one core (`taskset -c 0`, with its Redis),
the load generator (`livepush loadtest`) to the other (`taskset -c 1`). Variants: livepush on
the memory engine, on Redis, and on memory with LIVEPUSH_DIRECT_WRITE=0 (the ASGI send path, as
an ablation of the direct write path); the naive baseline (bench/baseline) on broadcaster's
memory and Redis backends. Scenarios (bench.scenarios) at 1 000, 5 000 and 10 000 readers: CPU
per delivery, the highest delivery rate with p99 < 1 s at 5 000, time to last reader at 10 000
readers and 20 posts/s, memory per idle reader, and 10 000 readers connecting at once. Then py-spy
profiles of livepush on both write paths (bench.profile).

Results: bench/results/<date>.json (every figure, the machine, the load average around each
measurement), the Markdown table on stdout and in bench/results/<date>.md, the tool's HTML
report of the 10 000-reader run (bench/results/loadtest-10000.html) and the flame graphs; a
--quick run writes the same under bench/results/quick/ (not meant to be kept), and every run's
per-scenario JSON summaries and server logs go to bench/results/logs/ (ignored by git).
Every process started here is stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from bench import profile, references, table
from bench.procs import BASELINE_BIN, VARIANTS, Processes, Redis, Variant, load_average, raise_nofile
from bench.scenarios import Context, idle, ladder, publish
from server.loadtest.transport_ws import batch_bytes

RESULTS = Path(__file__).resolve().parent / "results"
DELIVERIES_FOR_CPU = 20_000  # deliveries/s of the CPU-per-delivery runs: within every variant's reach


class Plan:
    """What a run measures: the full table, or a quick pass over the same code paths."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.idle_readers = (1000, 10000) if quick else (1000, 5000, 10000)
        self.cpu_readers = (1000, 5000) if quick else (1000, 5000, 10000)
        self.cpu_seconds = 4.0 if quick else 8.0
        self.rush_seconds = 4.0 if quick else 10.0
        self.rush_drain = 4.0 if quick else 10.0
        self.ladder_rates = [4.0, 16.0, 64.0] if quick else [4.0, 8.0, 16.0, 32.0, 64.0, 96.0]
        self.bisections = 0 if quick else 2
        self.ladder_seconds = 3.0 if quick else 6.0
        self.profile_seconds = 5.0 if quick else 10.0
        self.reference_seconds = 5.0 if quick else 10.0


BACKLOG_SYSCTLS = ("net/core/somaxconn", "net/ipv4/tcp_max_syn_backlog")


def raise_listen_backlog(wanted: int = 65535) -> dict[str, int]:
    """As root, raise the kernel's caps on listen queues (as a production host would be tuned); return the old values.

    With the default somaxconn (4096) a 10 000-reader storm overflows the accept queue and
    clients wait out SYN retransmits (1 s, then 3 s), which measures the kernel's setting, not
    the server. Restored on exit; unprivileged runs keep the defaults and the report says so.
    """
    old: dict[str, int] = {}
    for name in BACKLOG_SYSCTLS:
        path = Path("/proc/sys") / name
        with contextlib.suppress(OSError, ValueError):
            old[name] = int(path.read_text())
            if os.geteuid() == 0 and old[name] < wanted:
                path.write_text(str(wanted))
    log("listen backlog caps: " + ", ".join(f"{n} {Path('/proc/sys', n).read_text().strip()}" for n in old))
    return old


def restore_listen_backlog(old: dict[str, int]) -> None:
    for name, value in old.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(str(value))


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {name: _version(name) for name in ("uvloop", "uvicorn", "websockets", "starlette", "httptools",
                                                  "orjson", "redis", "py-spy")}
    baseline: dict[str, str] = {}
    if (BASELINE_BIN / "python").exists():
        code = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
                "('broadcaster', 'starlette', 'uvicorn', 'websockets', 'uvloop', 'httptools', 'redis')}))")
        out = subprocess.run([str(BASELINE_BIN / "python"), "-c", code], capture_output=True, text=True, check=False)
        with contextlib.suppress(ValueError):
            baseline = orjson.loads(out.stdout)
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "livepush_env": versions, "baseline_env": baseline,
            "redis_server": redis, "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                                       / 2**30, 1)}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {' '.join(str(x) for x in load_average())}] {message}", flush=True)


def kernel_floor(ctx: Context, plan: Plan) -> dict[str, Any]:
    """bench.floor at the CPU runs' sizes and rates: the kernel's cost of one loopback send per delivery here."""
    floor: dict[str, Any] = {}
    for readers in plan.cpu_readers:
        rate = DELIVERIES_FOR_CPU / readers
        low_water = max(1, batch_bytes(rate, 300))
        argv = [sys.executable, "-m", "bench.floor", "--readers", str(readers), "--rate", f"{rate:g}", "--seconds",
                f"{plan.cpu_seconds:g}", "--server-cpu", str(ctx.server_cpu), "--tool-cpu", str(ctx.tool_cpu),
                "--low-water", str(low_water), "--json"]
        process = ctx.processes.start(argv, log=ctx.logs / f"floor-{readers}.log")
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            log(f"kernel floor at {readers} readers did not finish")
        ctx.processes.stop(process)
        lines = (ctx.logs / f"floor-{readers}.log").read_text().strip().splitlines()
        if lines and lines[-1].startswith("{"):
            floor[str(readers)] = {**orjson.loads(lines[-1]), "load_average": load_average()}
            log(f"kernel floor, {readers} readers at {rate:g}/s: {floor[str(readers)]['cpu_us_per_send']} µs per send "
                f"({floor[str(readers)]['system_us_per_send']} µs in the kernel)")
    return floor


def measure_variant(ctx: Context, plan: Plan, variant: Variant) -> dict[str, Any]:
    """Every scenario of the table for one server variant (a fresh server per run, one Redis per variant)."""
    redis = Redis(ctx.processes, ctx.server_cpu, ctx.logs) if variant.redis else None
    results: dict[str, Any] = {"variant": variant.name, "label": variant.label, "idle": {}, "publish": {}}
    try:
        for readers in plan.idle_readers:
            run = idle(ctx, variant, redis, readers)
            results["idle"][str(readers)] = run
            log(f"{variant.name}: {readers} at once: all served in {run['all_served_s']} s "
                f"({run['listen_overflows']} listen-queue overflows), {run['rss_per_reader_kib']} KiB RSS per reader")
        run = idle(ctx, variant, redis, 10000, ramp=5.0)
        results["idle_ramped"] = {"10000": run}
        log(f"{variant.name}: 10000 connected over 5 s: {run['rss_per_reader_kib']} KiB RSS per reader")
        for readers in plan.cpu_readers:
            rate = DELIVERIES_FOR_CPU / readers
            run = publish(ctx, variant, redis, readers, rate, plan.cpu_seconds, name="cpu")
            results["publish"][str(readers)] = run
            log(f"{variant.name}: {readers} readers at {rate:g}/s: {run['server_cpu_per_delivery_us']} µs per "
                f"delivery, {run['deliveries_per_s']:,.0f}/s, p99 {run['latency']['p99']} ms")
        html = ctx.results / "loadtest-10000.html" if variant.name == "livepush-memory" else None
        run = publish(ctx, variant, redis, 10000, 20.0, plan.rush_seconds, drain=plan.rush_drain, html=html,
                      name="rush")
        results["rush"] = run
        log(f"{variant.name}: 10000 readers at 20/s: time to last reader p50 "
            f"{run['time_to_last_reader']['p50']} ms p99 {run['time_to_last_reader']['p99']} ms, "
            f"{run['deliveries_per_s']:,.0f}/s, tool {run['tool_cpu_percent_mean']}% of its core")
        results["ladder"] = ladder(ctx, variant, redis, 5000, plan.ladder_rates, plan.bisections,
                                   plan.ladder_seconds)
        log(f"{variant.name}: 5000 readers: max {results['ladder']['max_deliveries_per_s']} deliveries/s with "
            f"p99 < 1 s (at {results['ladder']['max_rate']} posts/s)")
    finally:
        if redis is not None:
            redis.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="~9 minutes: fewer sizes, shorter runs, a coarse ladder (results under results/quick)")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS),
                        help="comma-separated subset of: " + ", ".join(v.name for v in VARIANTS))
    parser.add_argument("--server-cpu", type=int, default=0, help="core for the server (and its Redis)")
    parser.add_argument("--tool-cpu", type=int, default=1, help="core for the load generator")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--no-references", action="store_true",
                        help="skip the rows beside Nginx and Nginx + Nchan (bench.references)")
    parser.add_argument("--output", type=Path, help="results JSON (default: bench/results/<date>.json)")
    args = parser.parse_args(argv)

    if (os.cpu_count() or 1) < 2:
        print("bench.run: needs two cores (one for the server, one for the load generator)", file=sys.stderr)
        return 2
    wanted = [name.strip() for name in args.variants.split(",") if name.strip()]
    variants = [v for v in VARIANTS if v.name in wanted]
    unknown = set(wanted) - {v.name for v in variants}
    if unknown:
        print(f"bench.run: unknown variant(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    limit = raise_nofile()
    if limit < 10000 + 500:
        # Per process: the server holds one descriptor per reader, and so does the tool's worker.
        print(f"bench.run: the open-file limit is {limit}; 10 000 readers need ~10 500 per process (raise "
              "ulimit -Hn)", file=sys.stderr)
        return 2

    plan = Plan(args.quick)
    stamp = datetime.now(UTC)
    # A quick run never overwrites the full run's report, flame graphs or results.
    results = RESULTS / "quick" if args.quick else RESULTS
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    output = args.output or results / f"{stamp:%Y-%m-%d}.json"
    processes = Processes()

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    backlog = raise_listen_backlog()
    ctx = Context(processes, args.server_cpu, args.tool_cpu, logs, results, args.quick)
    started = time.monotonic()
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="seconds").replace("+00:00", "Z"), "mode": "quick" if args.quick else "full",
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(), "pinning": {"server": args.server_cpu, "tool": args.tool_cpu},
        "load_average_start": load_average(), "variants": {}, "listen_backlog": backlog,
    }
    log(f"bench.run ({report['mode']}): {', '.join(v.name for v in variants)}; results to {output}")
    try:
        report["kernel_floor"] = kernel_floor(ctx, plan)
        for variant in variants:
            report["variants"][variant.name] = measure_variant(ctx, plan, variant)
            _write(output, report)
        if not args.no_references:
            report["references"] = references.measure(ctx, list(references.ROWS), plan.reference_seconds)
        if not args.no_profile and any(v.name == "livepush-memory" for v in variants):
            best = report["variants"].get("livepush-memory", {}).get("ladder", {}).get("max_rate") or 10.0
            log(f"profiles at 5000 readers, {best:g} posts/s")
            report["profiles"] = profile.profile_all(ctx, best, plan.profile_seconds)
    except KeyboardInterrupt:
        log("interrupted: stopping every process started here")
        report["interrupted"] = True
        return 130
    finally:
        processes.stop_all()
        restore_listen_backlog(backlog)
        report["load_average_end"] = load_average()
        report["minutes"] = round((time.monotonic() - started) / 60, 1)
        report["table"] = table.evaluate(report["variants"])
        _write(output, report)
    markdown = table.markdown(report["table"]) + "\n\n" + table.floor_markdown(report.get("kernel_floor", {}),
                                                                              report["variants"])
    if report.get("references"):
        markdown += "\n\n" + references.markdown({"rows": report["references"]})
    output.with_suffix(".md").write_text(markdown + "\n\n" + profile.text(report.get("profiles", [])) + "\n")
    print()
    print(markdown)
    missed = table.misses(report["table"])
    if missed:
        print("\ntargets missed:\n  " + "\n  ".join(missed))
    if report.get("profiles"):
        print()
        print(profile.text(report["profiles"]))
    log(f"done in {report['minutes']} min: {output}")
    return 0


def _write(path: Path, report: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


if __name__ == "__main__":
    raise SystemExit(main())
