"""What an idle reader costs livepush in memory, by allocation site (tracemalloc), in-process.

    .venv/bin/python -m bench.memory [--readers 2000]

Runs livepush (memory engine, the direct write path, uvicorn configured as `livepush serve`
does) inside this process with tracemalloc on, connects N idle readers with `livepush loadtest`
(a separate process), and compares snapshots taken before and while they are connected: the
Python heap per reader and the allocation sites that hold it, next to the process's RSS per
reader. tracemalloc sees Python allocations only: what uvloop/libuv allocate in C (a stream
handle per connection, its read buffer) shows in RSS but not in the sites.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import httpx
import uvicorn

from bench.procs import TOKEN, free_port, raise_nofile, rss_kib
from server.app import create_app, keep_gc_off_the_hot_path
from server.cli import WS_MAX_MESSAGE
from server.protocols.direct import DirectWebSocketProtocol
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


async def measure(readers: int, hold: float, top: int) -> None:
    port = free_port()
    app = create_app(Settings(admin_token=TOKEN, demo=False, port=port, log_level="warning"))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="none", http="httptools",
                            ws=DirectWebSocketProtocol, ws_per_message_deflate=False, ws_max_size=WS_MAX_MESSAGE,
                            log_level="warning", access_log=False, server_header=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
        await asyncio.sleep(0.05)
    keep_gc_off_the_hot_path()
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                                 trust_env=False) as client:
        await client.post("/api/blogs", json={"id": "bench", "title": "Memory"})
        await client.post("/api/blogs/bench/posts", json={"headline": "warm-up", "body": "<p>warm-up</p>"})
    gc.collect()
    before, rss_before = tracemalloc.take_snapshot(), rss_kib([os.getpid()])
    tool = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.loadtest", "--url", base, "--blog", "bench", "--readers", str(readers),
        "--ramp", "1", "--duration", str(hold), "--drain", "1", "--processes", "1", "--quiet",
        "--sample", f"{min(1.0, 250 / readers):.4f}", cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        fds_before = _fds()
        while loop.time() < deadline and _fds() - fds_before < readers:  # noqa: ASYNC110 (polling /proc)
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        gc.collect()
        after, rss_after = tracemalloc.take_snapshot(), rss_kib([os.getpid()])
        connected = _fds() - fds_before
    finally:
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(tool.wait(), hold + 30)
        server.should_exit = True
        await serving
    stats = after.compare_to(before, "lineno")
    heap = sum(stat.size_diff for stat in stats)
    n = connected if connected > 0 else readers
    print(f"{n} idle readers: RSS +{(rss_after - rss_before) / n:.1f} KiB per reader, "
          f"Python heap (tracemalloc) +{heap / 1024 / n:.1f} KiB per reader")
    print("| allocation site | bytes per reader | blocks per reader |\n| --- | --- | --- |")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        print(f"| `{where}` | {stat.size_diff / n:.0f} | {stat.count_diff / n:.1f} |")
    by_file = after.compare_to(before, "filename")
    print("\n| file | KiB per reader |\n| --- | --- |")
    for stat in by_file[:12]:
        print(f"| `{_short(stat.traceback[0].filename)}` | {stat.size_diff / 1024 / n:.2f} |")


def _fds() -> int:
    """Open descriptors of this process: one per connected reader, plus a constant."""
    return len(os.listdir("/proc/self/fd"))


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=12.0, help="seconds the tool keeps its readers connected")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    raise_nofile()
    tracemalloc.start(1)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(measure(args.readers, args.hold, args.top))


if __name__ == "__main__":
    main()
