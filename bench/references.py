"""livepush beside the C references this field measures against, in one run: Nginx and Nginx + Nchan.

    bash bench/setup_references.sh                # once: nginx, libnginx-mod-nchan and wrk from Debian
    python -m bench.references                    # every row, ~3 minutes (each measurement <= --seconds)
    python -m bench.references --rows pages       # a subset: pages, handshakes, storm, deliveries, ladder, arrivals

Nginx runs with a config file of its own in a temporary directory (one worker process, loopback
port only, `taskset` on the server's core, stopped by process id like every other process here):
it serves livepush's own page bytes as a static file (and the widget's assets), and Nchan gives
it WebSocket pub/sub for the handshake and fan-out rows. Rows, each with its reference measured
in the same run and the ratio livepush / reference (throughputs: above 1 is better; costs and
times: below 1 is better):

- pages/s per core, with `wrk` (Debian's): the page cached (200, same bytes), `If-None-Match`
  answered 304 ("no ETag" when livepush's page carries none), gzip (Nginx: `gzip_static`), and
  while the blog takes 1 event/s (the reference: the same static file).
- handshakes/s and server CPU per handshake, and 10 000 readers connecting at once, with
  `livepush loadtest` (its `--server nchan` mode against Nchan).
- deliveries: server CPU per delivery at 1 000 readers x 20 posts/s, and time to last reader at
  5 000 readers x 10 posts/s, against Nchan; and the highest delivery rate with p99 < 1 s at
  5 000 readers (posts/s doubled from 4 to 96 until a step fails).
- arrivals (page + assets + stream) per second with `livepush loadtest --arrivals`; the reference
  serves the page and assets from Nginx and the stream from Nchan.

"Per core" divides by the server's measured CPU (user + system, /proc) over the window, so a
core shared with other work does not flatter or punish either side. Results:
bench/results/references-<date>.json and .md (bench/results/quick/ with --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import orjson

from bench.procs import (
    ROOT,
    TOKEN,
    VARIANTS,
    Processes,
    Running,
    Sampler,
    free_port,
    load_average,
    pinned,
    raise_nofile,
    tree,
)
from bench.scenarios import BLOG, P99_LIMIT_MS, Context, figures, fresh_server, interpolate, run_tool, sample_share

RESULTS = Path(__file__).resolve().parent / "results"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
PAGE_POSTS = 20
POST_TEXT = "Live coverage continues as correspondents report from the scene. " * 5
WRK_CONNECTIONS = 64
MEMORY = next(v for v in VARIANTS if v.name == "livepush-memory")

NGINX_CONF = """\
load_module {module};
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 30000; multi_accept on; }}
http {{
    access_log off;
    types {{ text/html html; text/css css; text/javascript js; image/svg+xml svg; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    gzip_static on;
    nchan_shared_memory_size 256M;
    nchan_message_buffer_length 1;
    nchan_message_timeout 0;
    server {{
        listen 127.0.0.1:{port} backlog=65535;
        location = /blogs/{blog} {{ default_type text/html; alias {tmp}/page.html; }}
        location /client/ {{ alias {tmp}/client/; }}
        location ~ ^/client/v/[^/]+/(?<asset>.*)$ {{
            alias {tmp}/client/$asset;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location ~ ^/sub/([a-z0-9-]+)$ {{
            nchan_subscriber websocket;
            nchan_channel_id $1;
            nchan_subscriber_first_message oldest;
        }}
        location ~ ^/pub/([a-z0-9-]+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
        }}
    }}
}}
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {' '.join(str(x) for x in load_average())}] {message}", flush=True)


class Nginx:
    """Nginx + Nchan with a config of its own in a temporary directory: one worker, loopback, pinned."""

    def __init__(self, processes: Processes, cpu: int | None, logs: Path, page: bytes) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists() or not NCHAN_MODULE.exists():
            raise SystemExit("nginx with Nchan is not installed: bash bench/setup_references.sh")
        self._processes = processes
        self._dir = tempfile.TemporaryDirectory(prefix="livepush-bench-nginx-")
        tmp = Path(self._dir.name)
        tmp.chmod(0o755)  # nginx's worker runs as nobody and reads the page and assets from here
        (tmp / "page.html").write_bytes(page)
        (tmp / "page.html.gz").write_bytes(gzip.compress(page, 6))
        shutil.copytree(ROOT / "client_demo", tmp / "client")
        for path in (tmp, *tmp.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.port = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(module=NCHAN_MODULE, tmp=tmp, port=self.port, blog=BLOG))
        self.process = processes.start(pinned(cpu, [binary, "-p", str(tmp), "-c", str(conf), "-e",
                                                    str(tmp / "error.log")]), log=logs / "nginx.log")
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        with httpx.Client(timeout=1, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    error = (tmp / "error.log").read_text()[-500:] if (tmp / "error.log").exists() else ""
                    self.close()
                    raise RuntimeError(f"nginx exited: {error}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base}/blogs/{BLOG}").status_code == 200:
                        return
                time.sleep(0.05)
        self.close()
        raise RuntimeError("nginx did not start")

    @property
    def pids(self) -> list[int]:
        return tree(self.process.pid)

    def running(self) -> Running:
        """This Nginx as a server the scenarios' helpers can drive (the load-test tool, samplers)."""
        return Running(MEMORY, self.base, self.process, None)

    def close(self) -> None:
        self._processes.stop(self.process)
        self._dir.cleanup()


# wrk


WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(ctx: Context, pids: Callable[[], list[int]], url: str, seconds: float, name: str,
        headers: Sequence[str] = ()) -> dict[str, Any]:
    """`wrk` on the tool's core against *url* for *seconds*; requests/s, latency, and the server's CPU meanwhile."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: bash bench/setup_references.sh")
    argv = [binary, "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds:g}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    out = ctx.logs / f"wrk-{name}.log"
    out.unlink(missing_ok=True)
    with Sampler(pids(), interval=0.2) as sampler:
        started = time.time()
        process = ctx.processes.start(pinned(ctx.tool_cpu, [*argv, url]), log=out)
        try:
            process.wait(timeout=seconds + 20)
        finally:
            ctx.processes.stop(process)
        ended = time.time()
    text = out.read_text()
    rate = WRK_RATE.search(text)
    if rate is None:
        raise RuntimeError(f"wrk {name}: no result (see {out})")
    window_start, window_end = started + 1.0, min(ended, started + seconds) - 0.2
    cpu = interpolate(sampler, window_end, "cpu") - interpolate(sampler, window_start, "cpu")
    cores = cpu / (window_end - window_start)
    requests = float(rate.group(1))
    non_2xx = WRK_NON_2XX.search(text)
    errors = WRK_ERRORS.search(text)
    latency = {f"p{m.group(1)}_ms": round(float(m.group(2)) * UNITS[m.group(3)], 3) for m in WRK_LATENCY.finditer(text)}
    return {"requests_per_s": round(requests, 1), "server_cores": round(cores, 3),
            "per_core": round(requests / cores, 1) if cores > 0.05 else None, **latency,
            "non_2xx_3xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0, "load_average": load_average()}


def ratio(ours: float | None, reference: float | None) -> float | None:
    if ours is None or not reference:
        return None
    return round(ours / reference, 3)


def versus(row: dict[str, Any], *path: str) -> float | None:
    """livepush's figure at *path* over Nchan's, in a side-by-side row."""
    ours: Any = row["livepush"]
    theirs: Any = row["nchan"]
    for key in path:
        ours, theirs = ours.get(key) if ours else None, theirs.get(key) if theirs else None
    return ratio(ours, theirs)


def probe(url: str, headers: dict[str, str] | None = None) -> tuple[int, int, dict[str, str]]:
    """One request: status, body bytes on the wire, response headers."""
    with httpx.Client(timeout=5, trust_env=False) as client:
        response = client.get(url, headers=headers or {})
        return response.status_code, response.num_bytes_downloaded, dict(response.headers)


# Servers


def page_server(ctx: Context) -> Running:
    """livepush (memory engine) with the benchmark's blog holding PAGE_POSTS posts, like a live blog's page."""
    server = fresh_server(ctx, MEMORY, None)
    with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
                      trust_env=False) as client:
        for number in range(PAGE_POSTS - 1):
            response = client.post(f"/api/blogs/{BLOG}/posts", json={
                "headline": f"Update {number}", "byline": "Benchmark desk", "body": f"<p>{POST_TEXT}</p>"})
            response.raise_for_status()
    return server


class Publisher1:
    """One post a second to livepush's blog from a thread, while a measurement runs.

    Its connection is opened before the measurement starts: under wrk's load a new connection
    waited seconds to be accepted (see docs/BENCHMARKS.md), and the row is about pages while the
    blog changes, not about that.
    """

    def __init__(self, base: str) -> None:
        self._client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
                                    trust_env=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.posted = 0
        self.round_trips: list[float] = []

    def __enter__(self) -> Publisher1:
        self._client.get("/readyz")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due + 1.0 - time.monotonic())):
            due += 1.0
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                response = self._client.post(f"/api/blogs/{BLOG}/posts", json={
                    "headline": f"Live {self.posted}", "body": f"<p>{POST_TEXT}</p>"})
                self.posted += response.status_code == 201
                self.round_trips.append(round(1000 * (time.monotonic() - started), 1))


# Rows


def pages(ctx: Context, seconds: float) -> dict[str, Any]:
    """Pages/s per core: cached 200, 304, gzip, and during 1 event/s; Nginx serving the same bytes beside each."""
    livepush = page_server(ctx)
    url = f"{livepush.base}/blogs/{BLOG}"
    status, size, headers = probe(url)
    page = httpx.get(url, timeout=5, trust_env=False).content
    nginx = Nginx(ctx.processes, ctx.server_cpu, ctx.logs, page)
    nginx_url = f"{nginx.base}/blogs/{BLOG}"
    rows: dict[str, Any] = {"page_bytes": len(page), "posts_on_page": PAGE_POSTS}
    try:
        def both(name: str, ours: list[str], theirs: list[str]) -> dict[str, Any]:
            mine = wrk(ctx, lambda: livepush.pids, url, seconds, f"livepush-{name}", ours)
            reference = wrk(ctx, lambda: nginx.pids, nginx_url, seconds, f"nginx-{name}", theirs)
            row = {"livepush": mine, "nginx": reference, "ratio_per_core": ratio(mine["per_core"],
                                                                                 reference["per_core"]),
                   "ratio_requests": ratio(mine["requests_per_s"], reference["requests_per_s"])}
            log(f"pages {name}: livepush {mine['requests_per_s']:,.0f}/s ({mine['per_core']} per core), nginx "
                f"{reference['requests_per_s']:,.0f}/s ({reference['per_core']} per core): ratio per core "
                f"{row['ratio_per_core']}")
            return row

        rows["cached"] = both("cached", [], [])
        etag = headers.get("etag")
        _, _, nginx_headers = probe(nginx_url)
        nginx_etag = nginx_headers["etag"]
        answer = 0 if etag is None else probe(url, {"If-None-Match": etag})[0]
        if answer == 304:
            rows["304"] = both("304", [f"If-None-Match: {etag}"], [f"If-None-Match: {nginx_etag}"])
        else:
            # Today's page: say so rather than measure 200s as if they were 304s.
            note = "no ETag" if etag is None else f"ETag, but HTTP {answer} to If-None-Match"
            rows["304"] = {"livepush": note, "nginx": wrk(ctx, lambda: nginx.pids, nginx_url, seconds, "nginx-304",
                                                          [f"If-None-Match: {nginx_etag}"])}
            log(f"pages 304: livepush: {note}; nginx {rows['304']['nginx']['requests_per_s']:,.0f}/s")
        ours_gzip = probe(url, {"Accept-Encoding": "gzip"})
        theirs_gzip = probe(nginx_url, {"Accept-Encoding": "gzip"})
        rows["gzip"] = both("gzip", ["Accept-Encoding: gzip"], ["Accept-Encoding: gzip"])
        rows["gzip"]["bytes"] = {"livepush": ours_gzip[1], "livepush_encoding": ours_gzip[2].get("content-encoding"),
                                 "nginx": theirs_gzip[1]}
        with Publisher1(livepush.base) as publisher:
            mine = wrk(ctx, lambda: livepush.pids, url, seconds, "livepush-live")
        rows["live"] = {"livepush": mine, "events": publisher.posted, "post_round_trips_ms": publisher.round_trips,
                        "nginx": "the cached row's figure (a static file does not change)",
                        "ratio_per_core": ratio(mine["per_core"], rows["cached"]["nginx"]["per_core"]),
                        "ratio_requests": ratio(mine["requests_per_s"], rows["cached"]["nginx"]["requests_per_s"])}
        log(f"pages during 1 event/s: livepush {mine['requests_per_s']:,.0f}/s ({mine['per_core']} per core), "
            f"ratio per core to nginx cached {rows['live']['ratio_per_core']}")
    finally:
        nginx.close()
        ctx.processes.stop(livepush.process)
    rows["probe"] = {"status": status, "bytes": size, "etag": headers.get("etag"),
                     "cache_control": headers.get("cache-control")}
    return rows


def connect_storm(ctx: Context, server: Running, pids: Callable[[], list[int]], readers: int, name: str,
                  extra: Sequence[str] = ()) -> dict[str, Any]:
    """*readers* connect at once and stay: time until all had their first message, handshakes/s, CPU and memory
    per connection (the server's, from /proc)."""
    with Sampler(pids(), interval=0.2) as sampler:
        before = sampler.read()
        summary = run_tool(ctx, server, name, "--readers", str(readers), "--ramp", "0", "--duration", "3",
                           "--drain", "1", "--connect-timeout", "30", "--sample", f"{sample_share(readers):.4f}",
                           *extra)
    t0, served = summary["t0"], summary["all_served_after"]
    held = sampler.between(t0 + summary["publish_start"] + 0.5, t0 + summary["publish_end"] - 0.2)
    rss = max((s.rss_kib for s in held), default=None)
    cpu = None if served is None else interpolate(sampler, t0 + served, "cpu") - interpolate(sampler, t0, "cpu")
    return {"readers": readers, "served": summary["started"], "all_served_s": served,
            "handshakes_per_s": round(readers / served, 1) if served else None,
            "server_cpu_per_handshake_us": None if cpu is None else round(1e6 * cpu / readers, 1),
            "rss_per_reader_kib": None if rss is None else round((rss - before.rss_kib) / readers, 2),
            "handshake": summary["handshake"], "errors": summary["errors"], "problems": summary["problems"],
            "load_average": load_average()}


def delivery(ctx: Context, server: Running, pids: Callable[[], list[int]], readers: int, rate: float,
             seconds: float, name: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    """*readers* readers, posts at *rate*/s: deliveries/s, latency, time to last reader, server CPU per delivery."""
    with Sampler(pids(), interval=0.2) as sampler:
        load = load_average()
        summary = run_tool(ctx, server, name, "--readers", str(readers), "--ramp", "2", "--connect-timeout", "30",
                           "--publish-rate", f"{rate:g}", "--duration", f"{seconds:g}", "--drain", "5",
                           "--sample", f"{sample_share(readers):.4f}", *extra)
    result = figures(summary, sampler, ctx, MEMORY, readers, rate, load, load_average())
    keep = ("readers", "rate", "deliveries_per_s", "expected_deliveries_per_s", "kept_up", "server_core_share",
            "server_cpu_per_delivery_us", "latency", "time_to_last_reader", "tool_cpu_percent_mean", "checks",
            "healthy", "problems", "load_average")
    return {key: result[key] for key in keep}


def arrivals_run(ctx: Context, server: Running, pids: Callable[[], list[int]], rate: float, seconds: float,
                 name: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Browser-like arrivals at *rate*/s for *seconds*: achieved arrivals/s, time to interactive, server CPU each."""
    with Sampler(pids(), interval=0.2) as sampler:
        summary = run_tool(ctx, server, name, "--readers", "0", "--arrivals", f"{rate:g}", "--duration",
                           f"{seconds:g}", "--drain", "5", "--connect-timeout", "30", *extra)
    t0, start, end = summary["t0"], summary["publish_start"], summary["publish_end"]
    cpu = interpolate(sampler, t0 + end, "cpu") - interpolate(sampler, t0 + start, "cpu")
    arrivals = summary["arrivals"]
    opened = arrivals["opened"]
    return {"offered_per_s": rate, "arrivals_per_s": arrivals["per_second"], "opened": opened,
            "scheduled": arrivals["scheduled"], "server_cores": round(cpu / (end - start), 3),
            "per_core": round(opened / cpu, 1) if cpu > 0.05 else None,
            "server_cpu_per_arrival_ms": round(1e3 * cpu / opened, 3) if opened else None,
            "time_to_interactive": arrivals["time_to_interactive"], "page": arrivals["page"],
            "share_304": arrivals["share_304"], "assets": arrivals["assets"],
            "assets_cached": arrivals["assets_cached"],
            "missed": arrivals["missed"], "errors": summary["errors"], "tool_cpu": summary["cpu"],
            "load_average": load_average()}


def side_by_side(ctx: Context, measure: Callable[[Running, Callable[[], list[int]], str, Sequence[str]],
                                                 dict[str, Any]], name: str, page: bool = False) -> dict[str, Any]:
    """Run *measure* on a fresh livepush, then on a fresh Nginx + Nchan (with livepush's page when *page*)."""
    livepush = page_server(ctx) if page else fresh_server(ctx, MEMORY, None)
    try:
        page_bytes = httpx.get(f"{livepush.base}/blogs/{BLOG}", timeout=5, trust_env=False).content
        mine = measure(livepush, lambda: livepush.pids, f"livepush-{name}", ())
    finally:
        ctx.processes.stop(livepush.process)
    nginx = Nginx(ctx.processes, ctx.server_cpu, ctx.logs, page_bytes)
    try:
        theirs = measure(nginx.running(), lambda: nginx.pids, f"nchan-{name}", ("--server", "nchan"))
    finally:
        nginx.close()
    return {"livepush": mine, "nchan": theirs}


def handshakes(ctx: Context, seconds: float) -> dict[str, Any]:
    """5 000 WebSocket readers connecting at once: handshakes/s and server CPU per handshake."""
    row = side_by_side(ctx, lambda server, pids, name, extra: connect_storm(ctx, server, pids, 5000, name, extra),
                       "handshakes-5000")
    row["ratio_per_s"] = versus(row, "handshakes_per_s")
    row["ratio_cpu"] = versus(row, "server_cpu_per_handshake_us")
    ours, theirs = row["livepush"], row["nchan"]
    log(f"handshakes: livepush {ours['handshakes_per_s']}/s, {ours['server_cpu_per_handshake_us']} µs CPU each; "
        f"nchan {theirs['handshakes_per_s']}/s, {theirs['server_cpu_per_handshake_us']} µs")
    return row


def storm(ctx: Context, seconds: float) -> dict[str, Any]:
    """10 000 readers connecting at once: until all are served, and memory per reader."""
    row = side_by_side(ctx, lambda server, pids, name, extra: connect_storm(ctx, server, pids, 10000, name, extra),
                       "storm-10000")
    row["ratio_all_served"] = versus(row, "all_served_s")
    row["ratio_rss"] = versus(row, "rss_per_reader_kib")
    log(f"10 000 at once: livepush all served in {row['livepush']['all_served_s']} s "
        f"({row['livepush']['rss_per_reader_kib']} KiB each), nchan {row['nchan']['all_served_s']} s "
        f"({row['nchan']['rss_per_reader_kib']} KiB each)")
    return row


def deliveries(ctx: Context, seconds: float) -> dict[str, Any]:
    """Fan-out: CPU per delivery at 1 000 readers x 20 posts/s; time to last reader at 5 000 x 10/s."""
    rows: dict[str, Any] = {}
    for readers, rate in ((1000, 20.0), (5000, 10.0)):
        row = side_by_side(ctx, functools.partial(_delivery, ctx, readers, rate, seconds),
                           f"delivery-{readers}-{rate:g}")
        row["ratio_cpu"] = versus(row, "server_cpu_per_delivery_us")
        row["ratio_last_reader_p99"] = versus(row, "time_to_last_reader", "p99")
        rows[f"{readers}x{rate:g}"] = row
        log(f"delivery {readers} x {rate:g}/s: livepush {row['livepush']['server_cpu_per_delivery_us']} µs per "
            f"delivery, last reader p99 {row['livepush']['time_to_last_reader']['p99']} ms; nchan "
            f"{row['nchan']['server_cpu_per_delivery_us']} µs, {row['nchan']['time_to_last_reader']['p99']} ms")
    return rows


LADDER_RATES = (4.0, 8.0, 16.0, 32.0, 64.0, 96.0)


def ladder(ctx: Context, seconds: float, readers: int = 5000) -> dict[str, Any]:
    """The highest delivery rate with p99 < 1 s at 5 000 readers: posts/s doubled until a step fails."""
    row = side_by_side(ctx, functools.partial(_ladder, ctx, readers, min(seconds, 6.0)), f"ladder-{readers}")
    row["ratio_max"] = versus(row, "max_deliveries_per_s")
    log(f"ladder at {readers} readers: livepush {row['livepush']['max_deliveries_per_s']} deliveries/s with p99 < 1 s,"
        f" nchan {row['nchan']['max_deliveries_per_s']}")
    return row


def _ladder(ctx: Context, readers: int, seconds: float, server: Running, pids: Callable[[], list[int]], name: str,
            extra: Sequence[str]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for rate in LADDER_RATES:
        step = delivery(ctx, server, pids, readers, rate, seconds, f"{name}-{rate:g}", extra)
        p99 = step["latency"]["p99"]
        step["pass"] = p99 is not None and p99 < P99_LIMIT_MS and step["kept_up"] and step["healthy"]
        steps.append(step)
        if not step["pass"]:
            break
        best = step
    return {"readers": readers, "max_rate": best["rate"] if best else None,
            "max_deliveries_per_s": best["deliveries_per_s"] if best else None,
            "capped": best is not None and best["rate"] == LADDER_RATES[-1],
            "steps": [{k: step[k] for k in ("rate", "pass", "deliveries_per_s", "latency", "server_core_share",
                                            "server_cpu_per_delivery_us", "kept_up")} for step in steps]}


def _delivery(ctx: Context, readers: int, rate: float, seconds: float, server: Running,
              pids: Callable[[], list[int]], name: str, extra: Sequence[str]) -> dict[str, Any]:
    return delivery(ctx, server, pids, readers, rate, seconds, name, extra)


def arrivals(ctx: Context, seconds: float, rate: float = 50.0) -> dict[str, Any]:
    """Arrivals (page + assets + stream) at 50/s, half of them repeat visits; Nginx + Nchan serving the same page."""
    row = side_by_side(ctx, lambda server, pids, name, extra: arrivals_run(ctx, server, pids, rate, seconds, name,
                                                                         extra), "arrivals", page=True)
    row["ratio_per_core"] = versus(row, "per_core")
    row["ratio_tti_p50"] = versus(row, "time_to_interactive", "p50")
    log(f"arrivals at {rate:g}/s offered: livepush {row['livepush']['arrivals_per_s']}/s, "
        f"{row['livepush']['per_core']} per core, TTI p50 {row['livepush']['time_to_interactive']['p50']} ms; "
        f"nginx+nchan {row['nchan']['arrivals_per_s']}/s, {row['nchan']['per_core']} per core, "
        f"TTI p50 {row['nchan']['time_to_interactive']['p50']} ms")
    return row


def measure(ctx: Context, names: Sequence[str], seconds: float,
            saved: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any]:
    """The rows *names*, in order; a row that fails is recorded with its error and the others still run."""
    rows: dict[str, Any] = {}
    for name in names:
        try:
            rows[name] = ROWS[name](ctx, seconds)
        except (RuntimeError, OSError, KeyError, httpx.HTTPError) as exc:
            log(f"{name}: failed: {exc!r}")
            rows[name] = {"error": repr(exc)}
        if saved is not None:
            saved(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of: " + ", ".join(ROWS))
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measurement (at most 20)")
    parser.add_argument("--server-cpu", type=int, default=0, help="core for livepush and Nginx")
    parser.add_argument("--tool-cpu", type=int, default=1, help="core for wrk and the load-test tool")
    parser.add_argument("--quick", action="store_true", help="results under bench/results/quick")
    parser.add_argument("--output", type=Path, help="results JSON (default: bench/results/references-<date>.json)")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.rows.split(",") if name.strip()]
    if unknown := set(wanted) - set(ROWS):
        print(f"bench.references: unknown row(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    seconds = min(max(args.seconds, 2.0), 20.0)
    raise_nofile()
    stamp = datetime.now(UTC)
    results = RESULTS / "quick" if args.quick else RESULTS
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    output = args.output or results / f"references-{stamp:%Y-%m-%d}.json"
    processes = Processes()

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    ctx = Context(processes, args.server_cpu, args.tool_cpu, logs, results, args.quick)
    from bench.run import raise_listen_backlog, restore_listen_backlog  # bench.run imports this module

    backlog = raise_listen_backlog()
    report: dict[str, Any] = {"date": stamp.isoformat(timespec="seconds").replace("+00:00", "Z"),
                              "seconds": seconds, "pinning": {"server": args.server_cpu, "tool": args.tool_cpu},
                              "nginx": _nginx_version(), "load_average_start": load_average(), "rows": {}}
    try:
        report["rows"] = measure(ctx, wanted, seconds, lambda rows: output.write_bytes(
            orjson.dumps(report, option=orjson.OPT_INDENT_2)))
    except KeyboardInterrupt:
        log("interrupted: stopping every process started here")
        return 130
    finally:
        processes.stop_all()
        restore_listen_backlog(backlog)
        report["load_average_end"] = load_average()
        output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    text = markdown(report)
    output.with_suffix(".md").write_text(text + "\n")
    print()
    print(text)
    return 0


def _nginx_version() -> str:
    found = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return found.stderr.strip()


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".strip()


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _ladder_figure(result: dict[str, Any]) -> float | str | None:
    """The ladder's best rate, or what its first step did when even that failed."""
    if result.get("max_deliveries_per_s") is not None or not result.get("steps"):
        return result.get("max_deliveries_per_s")
    first = result["steps"][0]
    return (f"none: {first['deliveries_per_s']:,.0f}/s at {first['rate']:g} posts/s, "
            f"p99 {first['latency']['p99']:,.0f} ms")


def markdown(report: dict[str, Any]) -> str:
    """The rows as a Markdown table: livepush, the reference measured in the same run, and the ratio."""
    rows = {name: row for name, row in report["rows"].items() if "error" not in row}
    lines = ["| row | livepush | reference (same run) | ratio |", "| --- | ---: | ---: | ---: |"]

    def add(label: str, ours: Any, theirs: Any, unit: str, ratio_value: Any, reference: str) -> None:
        lines.append(f"| {label} | {_fmt(ours, unit)} | {_fmt(theirs, unit)} ({reference}) | {_fmt(ratio_value)} |")

    pages = rows.get("pages", {})
    for key, label in (("cached", "pages/s per core, cached (200)"), ("304", "pages/s per core, 304"),
                       ("gzip", "pages/s per core, gzip"), ("live", "pages/s per core, blog taking 1 event/s")):
        row = pages.get(key)
        if row is None:
            continue
        ours = row["livepush"] if isinstance(row["livepush"], str) else row["livepush"]["per_core"]
        theirs = rows["pages"]["cached"]["nginx"]["per_core"] if key == "live" else row["nginx"]["per_core"]
        add(label, ours, theirs, "", row.get("ratio_per_core"), "Nginx static" + (", cached" if key == "live" else ""))
    for key, label in (("handshakes", "5 000 connecting at once"), ("storm", "10 000 connecting at once")):
        row = rows.get(key)
        if row is None:
            continue
        add(f"handshakes/s, {label}", row["livepush"]["handshakes_per_s"], row["nchan"]["handshakes_per_s"], "",
            versus(row, "handshakes_per_s"), "Nchan")
        add(f"server CPU per handshake, {label}", row["livepush"]["server_cpu_per_handshake_us"],
            row["nchan"]["server_cpu_per_handshake_us"], "µs", versus(row, "server_cpu_per_handshake_us"), "Nchan")
        add(f"all served, {label}", row["livepush"]["all_served_s"], row["nchan"]["all_served_s"], "s",
            versus(row, "all_served_s"), "Nchan")
        add(f"server memory per reader, {label}", row["livepush"]["rss_per_reader_kib"],
            row["nchan"]["rss_per_reader_kib"], "KiB", versus(row, "rss_per_reader_kib"), "Nchan")
    for key, row in rows.get("deliveries", {}).items():
        readers, rate = key.split("x")
        add(f"server CPU per delivery, {int(readers):,} readers x {rate}/s",
            row["livepush"]["server_cpu_per_delivery_us"], row["nchan"]["server_cpu_per_delivery_us"], "µs",
            versus(row, "server_cpu_per_delivery_us"), "Nchan")
        add(f"time to last reader p99, {int(readers):,} readers x {rate}/s",
            _dig(row, "livepush", "time_to_last_reader", "p99"), _dig(row, "nchan", "time_to_last_reader", "p99"),
            "ms", versus(row, "time_to_last_reader", "p99"), "Nchan")
    row = rows.get("ladder")
    if row is not None:
        capped = " (the top step)" if row["livepush"].get("capped") else ""
        add(f"max deliveries/s with p99 < 1 s, {row['livepush']['readers']:,} readers{capped}",
            _ladder_figure(row["livepush"]), _ladder_figure(row["nchan"]), "", versus(row, "max_deliveries_per_s"),
            "Nchan")
    row = rows.get("arrivals")
    if row is not None:
        reference = "Nginx page + Nchan stream"
        add(f"arrivals/s per core (page + assets + stream; {row['livepush']['offered_per_s']:g}/s offered)",
            row["livepush"]["per_core"], row["nchan"]["per_core"], "", versus(row, "per_core"), reference)
        add("arrivals: server CPU per arrival", row["livepush"]["server_cpu_per_arrival_ms"],
            row["nchan"]["server_cpu_per_arrival_ms"], "ms", versus(row, "server_cpu_per_arrival_ms"), reference)
        add("arrivals: time to interactive p50", _dig(row, "livepush", "time_to_interactive", "p50"),
            _dig(row, "nchan", "time_to_interactive", "p50"), "ms", versus(row, "time_to_interactive", "p50"),
            reference)
    return "\n".join(lines)


ROWS: dict[str, Callable[[Context, float], dict[str, Any]]] = {
    "pages": pages, "handshakes": handshakes, "storm": storm, "deliveries": deliveries, "ladder": ladder,
    "arrivals": arrivals}


if __name__ == "__main__":
    raise SystemExit(main())
