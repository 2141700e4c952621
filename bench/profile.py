"""Where livepush's time goes: py-spy on the server during the 5 000-reader publishing scenario.

    .venv/bin/python -m bench.profile [--rate 10] [--seconds 10]      (or as part of bench.run)

For each write path (direct, and the ASGI send path with LIVEPUSH_DIRECT_WRITE=0) a fresh
livepush server (memory engine, pinned to the server core) gets 5 000 readers and posts at a
fixed rate from the tool (on the load core); py-spy samples the server twice, once for a flame
graph (SVG) and once for raw collapsed stacks, which this module sums into shares of samples:
top functions by own time, and named parts of the hot path (broadcast loop, socket writes,
JSON, HTTP, the WebSocket protocol, asyncio's scheduling, GC). The kernel's share comes from the
server's stime over the same window. py-spy only sees what runs in user space, with --native
it also sees C frames (uvloop, orjson, libc); a sample is 1/rate s of the server's CPU.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from threading import Thread
from typing import Any

from bench.procs import TICK, VARIANTS, Processes, Variant, cpu_seconds, pinned, raise_nofile
from bench.scenarios import Context, fresh_server, run_tool, sample_share

PY_SPY_RATE = 100
IDLE = re.compile(r"^(epoll_pwait|epoll_wait|__GI_epoll_pwait) ")
# Where a sample's time goes: the innermost frame (leaf first) that matches decides, so the parts
# are exclusive and add up to 100% of the busy samples (idle samples in epoll are left out).
PARTS: tuple[tuple[str, str], ...] = (
    ("kernel: socket send (write/send syscalls)", r"^(write|__write|__libc_write|send|__send|__libc_send|sendmsg|"
                                                  r"writev|__writev) \(libc"),
    ("kernel: other syscalls (read, accept, epoll_ctl, close)", r"^[\w.]+ \(libc[.-]"),
    ("garbage collector", r"(gc_collect|collect_with_callback|deduce_unreachable|move_unreachable|subtract_refs|"
                          r"update_refs|visit_reachable|gc_collect_main|_PyObject_GC_Link)"),
    ("uvloop's write path in C (before the syscall)", r"^(UVStream_write|UVStream__|write \(loop\.c|uv_try_write|"
                                                      r"uv__write|uv_write)"),
    ("JSON (orjson, pydantic, wire encoding)", r"(orjson|pydantic|model_dump|server/wire\.py)"),
    ("broadcast loop in Python (Hub.broadcast, offer, relay)", r"(Hub\.broadcast|\.offer \(server/|"
                                                              r"Relay\.(deliver|_forward)|Canary\.deliver|_wake)"),
    ("ASGI send path (_pump, Starlette/uvicorn send, websockets framing)",
     r"(_pump \(server/|WebSocket\.send|send_text|WebSocketsSansIOProtocol\.send|sender \(starlette|"
     r"websockets/frames\.py|data_to_send|Reader\.(take|wait))"),
    ("WebSocket connections (handshake, receive, ping loop, attach)",
     r"(websockets_sansio_impl|websockets/|server/streams/|server/feed\.py|starlette/websockets\.py)"),
    ("HTTP requests (httptools, Starlette, API, engine)", r"(httptools|llhttp|starlette/|server/api/|server/engine/|"
                                                          r"uvicorn/protocols/http|server/services)"),
    ("event loop (uvloop/asyncio: polling, reads, callbacks, tasks)", r"(uvloop|loop\.c|uv_run|uv__|asyncio|"
                                                                       r"Runner\.run|_asynciomodule)"),
)


def py_spy() -> str | None:
    local = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def summarise(raw: Path, seconds: float, top: int = 12) -> dict[str, Any]:
    """Shares of busy samples from py-spy's raw output (one 'frame;frame;... count' line per distinct stack)."""
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text(errors="replace").splitlines():
        head, _, number = line.rpartition(" ")
        if not head or not number.isdigit():
            continue
        stacks.append(([frame.strip() for frame in head.split(";")], int(number)))
    idle = sum(n for frames, n in stacks if frames and IDLE.match(frames[-1]))
    busy_stacks = [(frames, n) for frames, n in stacks if not (frames and IDLE.match(frames[-1]))]
    busy = sum(n for _, n in busy_stacks)
    rules = [(label, re.compile(pattern)) for label, pattern in PARTS]
    parts: Counter[str] = Counter()
    python_lines: Counter[str] = Counter()
    python_functions: Counter[str] = Counter()
    for frames, n in busy_stacks:
        parts[_part(frames, rules)] += n
        innermost = next((frame for frame in reversed(frames) if ".py:" in frame), None)
        if innermost is not None:
            python_lines[innermost] += n
            python_functions[_function(innermost)] += n

    def share(n: int) -> float:
        return round(100 * n / busy, 1) if busy else 0.0

    return {
        "samples": busy + idle, "busy_samples": busy, "idle_share": round(idle / (busy + idle), 3) if busy else None,
        "parts": {label: share(parts[label]) for label, _ in PARTS} | {"other": share(parts["other"])},
        "top_python_functions": [{"function": name, "percent": share(n)}
                                 for name, n in python_functions.most_common(top)],
        "top_python_lines": [{"line": name, "percent": share(n)} for name, n in python_lines.most_common(top)],
    }


def _function(frame: str) -> str:
    """'name (path:line)' without the line number, so one function's lines add up."""
    return re.sub(r":\d+\)$", ")", frame)


def _part(frames: list[str], rules: list[tuple[str, re.Pattern[str]]]) -> str:
    for frame in reversed(frames):
        for label, rule in rules:
            if rule.search(frame):
                return label
    return "other"


def record(spy: str, pid: int, seconds: float, output: Path, fmt: str, native: bool, cpu: int | None) -> bool:
    argv = [*pinned(cpu, [spy]), "record", "--pid", str(pid), "--duration", f"{seconds:g}", "--rate", str(PY_SPY_RATE),
            "--format", fmt, "--output", str(output)]
    if native:
        argv.append("--native")  # needs blocking sampling: the server pauses ~100 times a second
    result = subprocess.run(argv, capture_output=True, timeout=seconds + 60, check=False)
    return result.returncode == 0 and output.exists()


def profile_variant(ctx: Context, variant: Variant, readers: int, rate: float, seconds: float,
                    out_dir: Path) -> dict[str, Any]:
    """Profile one livepush variant while *readers* readers receive *rate* posts/s."""
    spy = py_spy()
    if spy is None:
        return {"variant": variant.name, "error": "py-spy is not installed (.venv/bin/pip install py-spy)"}
    server = fresh_server(ctx, variant, None)
    duration = 2 * seconds + 8
    try:
        summary: dict[str, Any] = {}

        def load() -> None:
            summary.update(run_tool(ctx, server, f"{variant.name}-profile", "--readers", str(readers), "--ramp", "2",
                                    "--connect-timeout", "30", "--publish-rate", f"{rate:g}", "--duration",
                                    f"{duration:g}", "--drain", "5", "--sample", f"{sample_share(readers):.4f}"))

        tool = Thread(target=load, daemon=True)
        tool.start()
        time.sleep(6)  # ramp (2 s), every reader served, a few seconds of publishing
        pid = server.process.pid
        svg = out_dir / f"profile-{variant.name}.svg"
        raw = ctx.logs / f"profile-{variant.name}.txt"
        native = record(spy, pid, seconds, svg, "flamegraph", True, ctx.tool_cpu)
        if not native:
            record(spy, pid, seconds, svg, "flamegraph", False, ctx.tool_cpu)
        cpu_before, stat_before = cpu_seconds([pid]), _times(pid)
        started = time.monotonic()
        if not record(spy, pid, seconds, raw, "raw", native, ctx.tool_cpu):
            return {"variant": variant.name, "error": "py-spy could not record (run as root, or allow ptrace)"}
        wall = time.monotonic() - started
        cpu_after, stat_after = cpu_seconds([pid]), _times(pid)
        tool.join(timeout=duration + 60)
    finally:
        ctx.processes.stop(server.process)
    result = summarise(raw, seconds)
    user, system = stat_after[0] - stat_before[0], stat_after[1] - stat_before[1]
    result.update({
        "variant": variant.name, "readers": readers, "rate": rate, "native_frames": native,
        "server_core_share": round((cpu_after - cpu_before) / wall, 3),
        "kernel_share_of_server_cpu": round(system / (user + system), 3) if user + system else None,
        "deliveries_per_s": summary.get("deliveries_per_second"),
        "flame_graph": svg.name if svg.exists() and svg.stat().st_size < 1_000_000 else None,
    })
    if svg.exists() and svg.stat().st_size >= 1_000_000:
        svg.unlink()  # too big to keep in the repository; the text summary stays
    return result


def _times(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def profile_connect(ctx: Context, readers: int = 10000, seconds: float = 6.0) -> dict[str, Any]:
    """Profile livepush (memory, direct) while *readers* connect at once: where a connection's CPU goes."""
    spy = py_spy()
    variant = next(v for v in VARIANTS if v.name == "livepush-memory")
    if spy is None:
        return {"variant": variant.name, "error": "py-spy is not installed"}
    server = fresh_server(ctx, variant, None)
    raw = ctx.logs / "profile-connect.txt"
    summary: dict[str, Any] = {}
    try:
        tool = Thread(target=lambda: summary.update(run_tool(
            ctx, server, "profile-connect", "--readers", str(readers), "--ramp", "0", "--duration", "2",
            "--drain", "1", "--connect-timeout", "30", "--sample", f"{sample_share(readers):.4f}")), daemon=True)
        pid = server.process.pid
        stat_before = _times(pid)
        tool.start()
        time.sleep(0.3)  # the tool's start-up (imports, workers) before its first connect
        native = record(spy, pid, seconds, raw, "raw", True, ctx.tool_cpu)
        stat_after = _times(pid)
        tool.join(timeout=90)
    finally:
        ctx.processes.stop(server.process)
    if not raw.exists():
        return {"variant": variant.name, "error": "py-spy could not record"}
    result = summarise(raw, seconds)
    user, system = stat_after[0] - stat_before[0], stat_after[1] - stat_before[1]
    result.update({
        "variant": variant.name, "scenario": f"{readers} readers connecting at once", "readers": readers, "rate": 0,
        "native_frames": native, "server_core_share": round((user + system) / seconds, 3),
        "kernel_share_of_server_cpu": round(system / (user + system), 3) if user + system else None,
        "all_served_s": summary.get("all_served_after"), "deliveries_per_s": None, "flame_graph": None,
        "server_cpu_per_connection_us": round(1e6 * (user + system) / readers, 1),
    })
    return result


def profile_all(ctx: Context, rate: float, seconds: float, readers: int = 5000) -> list[dict[str, Any]]:
    variants = [v for v in VARIANTS if v.name in ("livepush-memory", "livepush-memory-asgi")]
    results = [profile_variant(ctx, variant, readers, rate, seconds, ctx.results) for variant in variants]
    return [*results, profile_connect(ctx)]


def text(profiles: list[dict[str, Any]]) -> str:
    """The profiles as Markdown: the parts of the hot path, then the hottest Python functions and lines."""
    lines: list[str] = []
    for p in profiles:
        if "error" in p:
            lines.append(f"- {p['variant']}: {p['error']}")
            continue
        kernel = p["kernel_share_of_server_cpu"]
        if p.get("scenario"):
            lines.append(f"#### {p['variant']}: {p['scenario']} (all served after {p['all_served_s']} s; "
                         f"{p['server_cpu_per_connection_us']:.0f} µs of server CPU per connection)\n")
        else:
            lines.append(f"#### {p['variant']}: {p['readers']} readers, {p['rate']:g} posts/s "
                         f"({p['deliveries_per_s'] or 0:,.0f} deliveries/s over the run)\n")
        lines.append(f"Server core busy {100 * p['server_core_share']:.0f}% while sampled, {100 * kernel:.0f}% of it "
                     f"in the kernel (stime); {p['busy_samples']} busy samples"
                     f"{', native frames included' if p['native_frames'] else ''}"
                     + (f"; flame graph: [{p['flame_graph']}]({p['flame_graph']})" if p.get("flame_graph") else "")
                     + "\n")
        lines.append("| where the time goes (innermost matching frame) | % of busy samples |\n| --- | --- |")
        lines += [f"| {label} | {value} |" for label, value in p["parts"].items() if value]
        lines.append("\n| innermost Python line | % of busy samples |\n| --- | --- |")
        lines += [f"| `{row['line']}` | {row['percent']} |" for row in p["top_python_lines"][:8]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0, help="posts per second during the profile")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds py-spy samples, per format")
    parser.add_argument("--readers", type=int, default=5000)
    args = parser.parse_args()
    raise_nofile()
    root = Path(__file__).resolve().parent
    results, logs = root / "results", root / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = Processes()
    try:
        ctx = Context(processes, 0, 1, logs, results, quick=False)
        print(text(profile_all(ctx, args.rate, args.seconds, args.readers)))
    finally:
        processes.stop_all()


if __name__ == "__main__":
    main()
