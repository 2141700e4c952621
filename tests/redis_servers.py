"""Redis servers the tests (and benchmarks) start: a redis-server on a free loopback port, and a Sentinel group.

Never the machine's own Redis on 6379: each process has its own port and directory, so suites and
workers (pytest-xdist) run side by side. tests/redis_cluster.py builds a Cluster from RedisProcess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis as redis_sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port




@dataclasses.dataclass
class RedisProcess:
    """A redis-server this test session started; restartable for fault tests."""

    port: int
    data_dir: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `bash scripts/test` or `apt-get install redis-server`")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--save", "", "--daemonize", "no", "--protected-mode", "yes", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
            self.process = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), 2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")


SENTINEL_PRIMARY = "livepush"
QUICK_SYNC = ("--repl-diskless-sync-delay", "0")  # a primary waits 5 s for more replicas by default


class SentinelGroup:
    """A primary, two replicas and three Sentinels (`redis-server --sentinel`), each in its own dir.

    Short `down-after-milliseconds` and `failover-timeout`: a failover takes a second or three.
    `flush` empties whichever server is the primary now; `primary()` asks a Sentinel which one that is.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redises: list[RedisProcess] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SENTINEL_PRIMARY}/0"

    def start(self) -> None:
        primary = self._redis("primary")
        for index in range(2):
            self._redis(f"replica{index}", "--replicaof", "127.0.0.1", str(primary.port))
        self._until(lambda: all(self._info(redis.port).get("master_link_status") == "up"
                                for redis in self.redises[1:]), "the replicas' sync")
        for port in self.sentinel_ports:
            self._sentinel(port, primary.port)
        self._until(self._sentinels_agree, "the Sentinels to find each other and the replicas")

    def _redis(self, name: str, *args: str) -> RedisProcess:
        path = self.root / name
        path.mkdir()
        process = RedisProcess(free_port(), path, ["--appendonly", "no", *QUICK_SYNC, *args])
        process.start()
        self.redises.append(process)
        return process

    def _sentinel(self, port: int, primary_port: int) -> None:
        path = self.root / f"sentinel{port}"
        path.mkdir()
        (path / "sentinel.conf").write_text(
            f"port {port}\nbind 127.0.0.1\ndir {path}\n"
            f"sentinel monitor {SENTINEL_PRIMARY} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SENTINEL_PRIMARY} 500\n"
            f"sentinel failover-timeout {SENTINEL_PRIMARY} 2000\n"
            f"sentinel parallel-syncs {SENTINEL_PRIMARY} 2\n")
        self.sentinels.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", str(path / "sentinel.conf"), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            with contextlib.suppress(OSError, redis_sync.RedisError):
                state: Any = self.admin(port).sentinel_master(SENTINEL_PRIMARY)
                if state["num-other-sentinels"] == 2 and state["num-slaves"] == 2:
                    continue
            return False
        return True

    @staticmethod
    def admin(port: int) -> redis_sync.Redis:
        return redis_sync.Redis(port=port, socket_timeout=2, driver_info=None)

    def _info(self, port: int) -> dict[str, Any]:
        with contextlib.suppress(OSError, redis_sync.RedisError):
            info: dict[str, Any] = self.admin(port).info("replication")
            return info
        return {}

    @staticmethod
    def _until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # other processes: nothing to await
            if time.monotonic() > deadline:
                raise RuntimeError(f"Sentinel group: timed out waiting for {what}")
            time.sleep(0.05)

    def primary(self) -> RedisProcess:
        """The server the Sentinels name the primary now."""
        for port in self.sentinel_ports:
            with contextlib.suppress(OSError, redis_sync.RedisError):
                address: Any = self.admin(port).sentinel_get_master_addr_by_name(SENTINEL_PRIMARY)
                return next(redis for redis in self.redises if redis.port == int(address[1]))
        raise RuntimeError("no Sentinel answered")

    def flush(self) -> None:
        self.primary().flush()

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait(10)
        for redis in self.redises:
            redis.stop(kill=True)


@contextlib.contextmanager
def sentinel_group() -> Iterator[SentinelGroup]:
    with tempfile.TemporaryDirectory(prefix="livepush-sentinel-") as root:
        group = SentinelGroup(Path(root))
        try:
            group.start()
            yield group
        finally:
            group.stop()
