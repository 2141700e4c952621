"""What one anonymous history or paging request costs: the figures behind issue 10's bounded-work items.

    python -m bench.bounded cursor  [--root DIR]   # Redis time of one page with a forged cursor among ties
    python -m bench.bounded history [--root DIR]   # memory per stalled catch-up, Redis time per catch-up

`--root` is the checkout whose server (and Lua) is measured, so the same script prints the figures
before (`--root /work/main` as it was) and after a change. Everything runs on loopback: a private
redis-server on a free port and, for `history`, `python -m server serve` from that checkout.

- **cursor**: a blog whose N posts share one `published_at`; one `page.lua` call with a cursor
  forged to sit past all of them (the worst case for a scan from the first tie). Prints the
  median milliseconds per call, timed by the client around the script.
- **history**: a blog with `--events` posts of ~`--kib` KiB each, then (a) `--stalled` clients
  that send `GET /api/blogs/{blog}/events?since=1` and never read, (b) as many SSE resumes from
  seq 1 that never read; the server's RSS before and while they stall, and again after the write
  deadline (`LIVEPUSH_WRITE_TIMEOUT`) had time to end them. Then (c) the Redis time of the history
  reads one `?since=1` request makes, from Redis's own command statistics (`evalsha`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import redis

from bench.procs import TOKEN, Processes, Redis, free_port, rss_kib, tree

HERE = Path(__file__).resolve().parents[1]


# cursor


def bench_cursor(root: Path, sizes: list[int], calls: int) -> None:
    script = (root / "server" / "engine" / "lua" / "page.lua").read_text()
    processes = Processes()
    logs = Path(tempfile.gettempdir())
    server = Redis(processes, None, logs)
    try:
        client = redis.Redis(port=server.port)
        page = client.register_script(script)
        print(f"page.lua from {root}: one page of 20 with a forged cursor past N posts of one published_at")
        for size in sizes:
            client.flushall()
            keys = _fill(client, size)
            for order, forged in (("newest", "-"), ("oldest", "~")):
                timings = []
                for _ in range(calls):
                    started = time.perf_counter()
                    reply = page(keys=keys, args=[order, 20, 1, 1714557600000, forged])
                    timings.append(time.perf_counter() - started)
                assert len(reply) == 2, "the forged cursor sits past every post: an empty page"
                print(f"  N={size:>6}  order={order:<6}  {statistics.median(timings) * 1000:8.2f} ms per page "
                      f"(median of {calls})")
    finally:
        server.close()
        processes.stop_all()


def _fill(client: redis.Redis, size: int) -> list[str]:
    tag = "lp:{b1}:"
    keys = [tag + "meta", tag + "posts", tag + "unpinned", tag + "pinned", tag + "events"]
    client.hset(keys[0], mapping={"fields": "{}", "status": "live", "updated_at": "x", "seq": 0, "count": size,
                                  "epoch": "e"})
    pipe = client.pipeline(transaction=False)
    for i in range(size):
        post_id = f"p{i:09d}"
        pipe.hset(keys[1], post_id, "{}")
        pipe.zadd(keys[2], {post_id: 1714557600000})
    pipe.execute()
    return keys


# history


def bench_history(root: Path, engine: str, events: int, kib: int, stalled: int, deadline: float) -> None:
    processes = Processes()
    logs = Path(tempfile.gettempdir())
    store = Redis(processes, None, logs) if engine == "redis" else None
    try:
        port = free_port()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
               "LANG": "C.UTF-8", "PYTHONPATH": str(root), "LIVEPUSH_ADMIN_TOKEN": TOKEN, "LIVEPUSH_DEMO": "0",
               "LIVEPUSH_LOG_LEVEL": "error", "PORT": str(port), "LIVEPUSH_WRITE_RATE": "0",
               "LIVEPUSH_WRITE_TIMEOUT": str(deadline)}
        if store is not None:
            env["REDIS_URL"] = store.url + "/0"
        process = processes.start([sys.executable, "-m", "server", "serve"], env=env, cwd=root,
                                  log=logs / f"bench-bounded-{port}.log")
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
            _wait_ready(http)
            print(f"server from {root}, {engine} engine; {events} posts of ~{kib} KiB; write deadline {deadline:g}s "
                  "(where the server knows one)")
            epoch = _publish(http, events, kib)
            pids = tree(process.pid)
            for label, request in (("GET /events?since=1", b"GET /api/blogs/b1/events?since=1 HTTP/1.1\r\n"),
                                   ("SSE resume since=1", b"GET /sse/blogs/b1?since=1&epoch=%s HTTP/1.1\r\n"
                                    % epoch.encode())):
                idle = _settled_rss(pids)
                with _stalled_clients(port, request, stalled) as answers:
                    held = _settled_rss(pids, at_least=3.0)
                    statuses = sorted(answers())
                    time.sleep(max(0.0, deadline + 2.0 - 3.0))
                    after = _settled_rss(pids)
                print(f"  {stalled} x {label} that never read: RSS {idle / 1024:.0f} -> {held / 1024:.0f} MiB "
                      f"({(held - idle) / 1024 / stalled:.1f} MiB per request) while stalled; "
                      f"{after / 1024:.0f} MiB {deadline + 2:g}s later; answers {statuses}")
            if store is not None:
                _redis_time(http, store.port)
    finally:
        processes.stop_all()
        if store is not None:
            store.close()


def _redis_time(http: httpx.Client, port: int) -> None:
    """Redis's own time for one /events?since=1 request (its history script calls), median of five."""
    client = redis.Redis(port=port)
    runs = []
    for _ in range(5):
        client.config_resetstat()
        response = http.get("/api/blogs/b1/events?since=1")
        assert response.status_code == 200, response.text
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        runs.append((stats.get("usec", 0) / 1000, stats.get("calls", 0), len(response.content),
                     len(response.json()["events"])))
    busy, calls, size, count = sorted(runs)[2]
    print(f"  one GET /events?since=1: {size / 1e6:.2f} MB, {count} events; Redis busy {busy:.1f} ms in {calls} "
          "script call(s) (median of 5)")


def _wait_ready(http: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if http.get("/readyz").status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit("the server did not get ready")


def _publish(http: httpx.Client, events: int, kib: int) -> str:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    blog = http.post("/api/blogs", json={"id": "b1", "title": "Bench"}, headers=auth)
    assert blog.status_code == 201, blog.text
    paragraph = "<p>" + "word " * 200 + "</p>"
    body = paragraph * max(1, kib * 1024 // len(paragraph))
    for i in range(events):
        response = http.post("/api/blogs/b1/posts", json={"headline": f"P{i}", "body": body}, headers=auth)
        assert response.status_code == 201, response.text
    epoch: str = blog.json()["epoch"]
    return epoch


@contextlib.contextmanager
def _stalled_clients(port: int, request_line: bytes, count: int) -> Iterator[Callable[[], list[str]]]:
    """*count* connections that send one request and never read the answer (a tiny receive buffer).

    Yields a function giving each answer's status (peeked, not read) once the test is done with them.
    """
    sockets: list[socket.socket] = []

    def statuses() -> list[str]:
        found = []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.settimeout(0.5)
                found.append(sock.recv(12, socket.MSG_PEEK)[9:12].decode() or "closed")
                continue
            found.append("reset")
        return found

    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(request_line + b"Host: bench\r\n\r\n")
            sockets.append(sock)
        yield statuses
    finally:
        for sock in sockets:
            sock.close()


def _settled_rss(pids: list[int], at_least: float = 1.0) -> int:
    """The server's RSS once it stops moving (KiB)."""
    time.sleep(at_least)
    last = rss_kib(pids)
    for _ in range(20):
        time.sleep(0.5)
        now = rss_kib(pids)
        if abs(now - last) < 1024:
            return now
        last = now
    return last


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bounded", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("cursor", "history"))
    parser.add_argument("--root", type=Path, default=HERE, help="the checkout to measure (default: this one)")
    parser.add_argument("--sizes", default="3000,6000,24000", help="cursor: posts sharing one time")
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--engine", choices=("memory", "redis"), default="redis", help="history: the engine")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--kib", type=int, default=64)
    parser.add_argument("--stalled", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=10.0)
    args = parser.parse_args()
    if args.what == "cursor":
        bench_cursor(args.root.resolve(), [int(n) for n in args.sizes.split(",")], args.calls)
    else:
        bench_history(args.root.resolve(), args.engine, args.events, args.kib, args.stalled, args.deadline)


if __name__ == "__main__":
    main()
