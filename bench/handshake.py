"""What a WebSocket handshake costs the server: CPU per handshake and the time a connect storm takes.

    .venv/bin/python -m bench.handshake [--readers 10000] [--runs 3] [--direct 1] [--profile]

For each run a fresh livepush server (`python -m server serve` from this checkout, memory
engine, pinned to core 0) gets the benchmark blog with one post; then the load-test tool
(pinned to core 1) opens *readers* WebSockets at once (`--ramp 0`) and every reader waits for
its first message (the snapshot). Printed per run: the time until every reader was served, and
the server's CPU (utime + stime from /proc) from the first connect to the last first message,
divided by the readers: the cost of one handshake with its first message. With `--profile`,
py-spy samples the server during the storm and the hottest Python functions are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.procs import (
    LIVEPUSH_MEMORY,
    LIVEPUSH_MEMORY_ASGI,
    ROOT,
    TICK,
    Processes,
    Sampler,
    pinned,
    raise_nofile,
    start_server,
    tree,
)
from bench.profile import py_spy, summarise
from bench.scenarios import interpolate, seed_blogs

TOKEN = "bench-admin-token-0123456789"
BLOG = "bench"
PYTHON = Path(sys.executable)


def start(processes: Processes, logs: Path, direct: bool, spy: list[str]) -> tuple[subprocess.Popen[bytes], int, str]:
    """A fresh server (under *spy*, py-spy's command line, if given); its process, the server's pid and base URL."""
    server = start_server(processes, LIVEPUSH_MEMORY if direct else LIVEPUSH_MEMORY_ASGI, 0, None, logs, wrapper=spy)
    seed_blogs(server, [BLOG])
    pid = tree(server.process.pid)[-1]  # the server itself, under py-spy when profiled
    return server.process, pid, server.base


def storm(processes: Processes, logs: Path, readers: int, direct: bool, profile: bool,
          rate: float = 0.0) -> dict[str, Any]:
    raw = logs / "handshake-profile.txt"
    raw.unlink(missing_ok=True)
    local = PYTHON.parent / "py-spy"
    binary = (str(local) if local.exists() else py_spy()) if profile else None
    # py-spy cannot attach to a running server here ("failed to find python version"): it starts the server.
    spy = [binary, "record", "--rate", "250", "--format", "raw", "--duration", "45", "--output", str(raw),
           "--"] if binary else []
    server, pid, base = start(processes, logs, direct, spy)
    json_path = logs / "handshake-storm.json"
    json_path.unlink(missing_ok=True)
    argv = [str(PYTHON), "-m", "server.loadtest", "--url", base, "--blog", BLOG, "--processes", "1", "--quiet",
            "--json", str(json_path), "--readers", str(readers), "--ramp", "0", "--duration", "8" if rate else "2",
            "--drain", "2" if rate else "1", "--connect-timeout", "30", "--sample", f"{min(1.0, 250 / readers):.4f}"]
    if rate:
        argv += ["--publish-rate", f"{rate:g}"]
    try:
        time.sleep(0.5)
        times: list[tuple[float, float, float]] = []
        with Sampler([pid], interval=0.05) as sampler:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "LIVEPUSH_TOKEN": TOKEN}
            tool = processes.start(pinned(1, argv), env=env, log=logs / "handshake-tool.log")
            while tool.poll() is None:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                times.append((time.time(), int(fields[11]) / TICK, int(fields[12]) / TICK))
                time.sleep(0.02)
        deadline = time.monotonic() + 60
        while spy and not raw.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        processes.stop(server)
    summary = orjson.loads(json_path.read_bytes())
    t0, served = summary["t0"], summary["all_served_after"]
    result: dict[str, Any] = {"readers": readers, "started": summary["started"], "all_served_s": served}
    if served is not None:
        cpu = interpolate(sampler, t0 + served, "cpu") - interpolate(sampler, t0, "cpu")
        result["cpu_per_handshake_us"] = round(1e6 * cpu / readers, 1)
        begin = max((t for t in times if t[0] <= t0), default=times[0])
        end = min((t for t in times if t[0] >= t0 + served), default=times[-1])
        user, system = end[1] - begin[1], end[2] - begin[2]
        result["kernel_share"] = round(system / (user + system), 2) if user + system else None
        held = sampler.between(t0 + served + 0.3, t0 + summary["publish_end"] - 0.2)
        if held and not rate:
            rss = statistics.median(sample.rss_kib for sample in held)
            result["rss_per_reader_kib"] = round((rss - sampler.at(t0).rss_kib) / readers, 2)
    if rate and served is not None:  # the fan-out: server CPU per delivery over the publishing seconds
        seconds = [row for row in summary["series"] if t0 + row["t"] >= t0 + summary["publish_start"] + 1
                   and row["t"] + 1 <= summary["publish_end"]]
        if seconds:
            start_t, end_t = seconds[0]["t"], seconds[-1]["t"] + 1
            cpu = interpolate(sampler, t0 + end_t, "cpu") - interpolate(sampler, t0 + start_t, "cpu")
            delivered = sum(row["deliveries"] for row in seconds)
            result["deliveries_per_s"] = round(delivered / (end_t - start_t))
            result["cpu_per_delivery_us"] = round(1e6 * cpu / delivered, 2) if delivered else None
        result["healthy"] = summary["healthy"]
    if profile and raw.exists():
        result["profile"] = summarise(raw, 45, top=25)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--direct", type=int, default=1, help="LIVEPUSH_DIRECT_WRITE (1: fast path; 0: ASGI)")
    parser.add_argument("--profile", action="store_true", help="py-spy the server during the last run")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="then publish this many posts/s for 8 s: the fan-out's CPU per delivery")
    args = parser.parse_args()
    raise_nofile()
    logs = ROOT / "bench" / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = Processes()
    results = []
    try:
        for run in range(args.runs):
            result = storm(processes, logs, args.readers, bool(args.direct), args.profile and run == args.runs - 1,
                           args.rate)
            profile = result.pop("profile", None)
            results.append(result)
            print(result, flush=True)
            if profile:
                for row in profile["top_python_functions"]:
                    print(f"  {row['percent']:5.1f}%  {row['function']}")
                print("  parts:", {k: v for k, v in profile["parts"].items() if v})
    finally:
        processes.stop_all()
    cpu = [r["cpu_per_handshake_us"] for r in results if "cpu_per_handshake_us" in r]
    served = [r["all_served_s"] for r in results if r["all_served_s"] is not None]
    if cpu and served:
        print(f"median of {len(results)}: {statistics.median(cpu):.0f} µs server CPU per handshake, "
              f"{readers_text(args.readers)} served in {statistics.median(served):.2f} s (ticks of {1 / TICK:g} s)")


def readers_text(readers: int) -> str:
    return f"{readers:,} readers"


if __name__ == "__main__":
    main()
