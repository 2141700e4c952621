"""The processes a benchmark starts, and what it reads about them from /proc.

Every process is started here, in its own session, pinned to a core with `taskset`, and
registered, so `Processes.stop_all()` (called on exit, Ctrl-C or SIGTERM) ends each one by its
own id and nothing else. Servers under test: livepush (`livepush serve`, either engine, either
write path) and the naive baseline (bench/baseline, uvicorn in its own venv); Redis: a private
redis-server on a free loopback port with its own --dir, never the machine's 6379.

Readings come from /proc only (no psutil): a process tree's CPU (utime + stime of every live
process in it, children included), its resident memory (VmRSS summed), its open descriptors,
each core's busy time (/proc/stat), and the kernel's TCP buffer pages (/proc/net/sockstat).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# The project's venv (scripts/serve, scripts/test), else the interpreter running the bench.
VENV_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin" / "python").exists() else Path(sys.executable).parent
BASELINE_BIN = BENCH / ".venv-baseline" / "bin"
TOKEN = "bench-admin-token-0123456789"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NOFILE = 65536


def raise_nofile(wanted: int = NOFILE) -> int:
    """Raise this process's open-file limit (inherited by every child); root may raise the hard limit too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((max(wanted, hard), max(wanted, hard)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            return limit[0]
        except (ValueError, OSError):
            continue
    return soft


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """*argv* pinned to *cpu* with taskset (unpinned when None)."""
    return list(argv) if cpu is None else ["taskset", "-c", str(cpu), *argv]


class Processes:
    """Every process this benchmark started; stops them all, by id, whatever happens."""

    def __init__(self) -> None:
        self._running: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
              log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log is not None else subprocess.DEVNULL
        try:
            process = subprocess.Popen(list(argv), env=dict(env) if env is not None else None, cwd=cwd,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log is not None and not isinstance(out, int):
                out.close()
        with self._lock:
            self._running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        """SIGTERM the process's own group (it is a session leader we made), then SIGKILL after *timeout*."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        else:
            # The leader is gone; anything left in its group (a worker) is still ours to end.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        with self._lock:
            if process in self._running:
                self._running.remove(process)

    def stop_all(self) -> None:
        with self._lock:
            running = list(reversed(self._running))
        for process in running:
            self.stop(process, timeout=5.0)


# Readings from /proc


def tree(pid: int) -> list[int]:
    """*pid* and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime (and reaped children's cutime + cstime) of *pids*, in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICK


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def open_fds(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


def core_busy() -> dict[int, float]:
    """Seconds each core has spent busy (everything but idle and iowait) since boot."""
    busy: dict[int, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            numbers = [int(v) for v in values]
            busy[int(name[3:])] = (sum(numbers[:8]) - numbers[3] - numbers[4]) / TICK
    return busy


def tcp_mem_kib() -> int:
    """Pages the kernel holds for TCP socket buffers, machine-wide (/proc/net/sockstat), in KiB."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1]) * PAGE // 1024
    return 0


def listen_overflows() -> int:
    """Machine-wide count of connections dropped because a listen queue was full (TcpExt ListenOverflows)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(fields.get("ListenOverflows", 0))
    return 0


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a server: wall time, its CPU seconds, RSS, open fds; each core's busy seconds; TCP pages."""

    at: float
    cpu: float
    rss_kib: int
    fds: int
    cores: dict[int, float]
    tcp_kib: int
    redis_cpu: float


@dataclass(slots=True)
class Sampler:
    """Reads a server's figures every *interval* seconds on a thread, for later windows."""

    pids: list[int]
    redis_pids: list[int] = field(default_factory=list)
    interval: float = 0.2
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def read(self) -> Sample:
        return Sample(time.time(), cpu_seconds(self.pids), rss_kib(self.pids), open_fds(self.pids), core_busy(),
                      tcp_mem_kib(), cpu_seconds(self.redis_pids))

    def __enter__(self) -> Sampler:
        self.samples.append(self.read())
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self.read())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.read())

    def at(self, when: float) -> Sample:
        """The reading closest to wall time *when*."""
        return min(self.samples, key=lambda sample: abs(sample.at - when))

    def between(self, start: float, end: float) -> list[Sample]:
        return [sample for sample in self.samples if start <= sample.at <= end]


# Servers


@dataclass(frozen=True, slots=True)
class Variant:
    """A server under test: livepush (engine, write path) or the naive baseline (backend)."""

    name: str
    label: str
    kind: str  # "livepush" or "baseline"
    redis: bool
    direct_write: bool = True

    @property
    def is_baseline(self) -> bool:
        return self.kind == "baseline"


VARIANTS = (
    Variant("livepush-memory", "livepush, memory engine", "livepush", redis=False),
    Variant("livepush-redis", "livepush, Redis engine", "livepush", redis=True),
    Variant("livepush-memory-asgi", "livepush, memory, LIVEPUSH_DIRECT_WRITE=0 (ASGI send path)", "livepush",
            redis=False, direct_write=False),
    Variant("baseline-memory", "naive baseline, broadcaster memory://", "baseline", redis=False),
    Variant("baseline-redis", "naive baseline, broadcaster redis://", "baseline", redis=True),
)
LIVEPUSH_MEMORY = VARIANTS[0]
LIVEPUSH_MEMORY_ASGI = VARIANTS[2]


@dataclass(slots=True)
class Running:
    """A server that answered /readyz (or its blog API, for the baseline)."""

    variant: Variant
    base: str
    process: subprocess.Popen[bytes]
    redis_pid: int | None

    @property
    def pids(self) -> list[int]:
        return tree(self.process.pid)

    @property
    def python_pids(self) -> list[int]:
        """The server's own processes: the tree under `taskset` (which execs, so it is the server itself)."""
        return self.pids


class Redis:
    """A private redis-server for one variant, pinned with the server, no persistence."""

    def __init__(self, processes: Processes, cpu: int | None, logs: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="livepush-bench-redis-")
        self._processes = processes
        self.process = processes.start(
            pinned(cpu, [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._dir.name,
                         "--save", "", "--appendonly", "no", "--protected-mode", "yes"]),
            log=logs / f"redis-{self.port}.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(64)

    def close(self) -> None:
        self._processes.stop(self.process)
        self._dir.cleanup()


def start_server(processes: Processes, variant: Variant, cpu: int | None, redis: Redis | None,
                 logs: Path, settings: Mapping[str, str] | None = None, wrapper: Sequence[str] = ()) -> Running:
    """Start *variant* on a free port pinned to *cpu*; wait until it answers.

    *settings*: more environment for livepush (LIVEPUSH_* variables); the baseline ignores them.
    *wrapper*: a command livepush runs under (a profiler's `record ... --`).
    """
    port = free_port()
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
                "LANG": "C.UTF-8"}
    log = logs / f"{variant.name}.log"
    if variant.is_baseline:
        if not (BASELINE_BIN / "uvicorn").exists():
            raise SystemExit("the baseline's environment is missing: bash bench/setup_baseline.sh")
        env = {**base_env, "BROADCAST_URL": redis.url if redis is not None else "memory://"}
        argv = [str(BASELINE_BIN / "uvicorn"), "app:app", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--no-access-log"]
        process = processes.start(pinned(cpu, argv), env=env, cwd=BENCH / "baseline", log=log)
    else:
        env = {**base_env, "LIVEPUSH_ADMIN_TOKEN": TOKEN, "LIVEPUSH_DEMO": "0", "LIVEPUSH_LOG_LEVEL": "warning",
               "PORT": str(port), "LIVEPUSH_DIRECT_WRITE": "1" if variant.direct_write else "0",
               # a long ladder publishes more than the default 10 000 posts to one blog
               "LIVEPUSH_MAX_POSTS_PER_BLOG": "0"}
        if redis is not None:
            env["REDIS_URL"] = redis.url + "/0"
        env.update(settings or {})
        # `python -m server` from ROOT: this checkout's code, whatever the venv's `livepush` script points at.
        process = processes.start(pinned(cpu, [*wrapper, str(VENV_BIN / "python"), "-m", "server", "serve"]), env=env,
                                  cwd=ROOT, log=log)
    base = f"http://127.0.0.1:{port}"
    probe = "/api/blogs/none" if variant.is_baseline else "/readyz"
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=1, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{variant.name} exited during start (see {log})")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(base + probe).status_code in (200, 404):
                    return Running(variant, base, process, redis.process.pid if redis is not None else None)
            time.sleep(0.05)
    processes.stop(process)
    raise RuntimeError(f"{variant.name} did not get ready (see {log})")
