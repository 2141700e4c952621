"""A real Redis Cluster for tests: 3 primaries + 3 replicas, each a redis-server with its own dir and ports.

Ports are picked at random below 55536 (the cluster bus listens on port + 10000) and checked free;
the nodes are joined with `redis-cli --cluster create ... --cluster-replicas 1`. The fixture is
session-scoped; `flush()` empties every primary between tests. `running_cluster()` starts the same
Cluster for a test of its own or for code that is not a test (bench.cluster, bench.latency);
`running_cluster(tls=True)` one whose clients and cluster bus speak TLS only (a throwaway CA made
with openssl), as managed Clusters do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_servers import RedisProcess

NODE_TIMEOUT_MS = 1000


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """*count* ports p, each free with p + 10000 free too, both below the kernel's ephemeral range (32768 and up
    by default), where no outgoing connection can take one between this check and the server's start."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(min(12000, low - 10001), low - 10001)
        if port not in chosen and _free(port) and _free(port + 10000):
            chosen.append(port)
    return chosen


def cli(port: int, *args: str) -> str:
    """Run one redis-cli command against the node on *port*; its output."""
    done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=20,
                          check=True)
    return done.stdout


@dataclasses.dataclass(frozen=True)
class Tls:
    """A TLS Cluster's client ports (one per node, beside the plain port the tests administer it on) and CA."""

    ports: dict[int, int]
    ca: Path


def make_certificates(folder: Path) -> tuple[Path, list[str]]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it; the CA's path and redis-server's TLS flags."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=livepush test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "node.crt", "-days", "2", "-extfile", "san.cnf")
    return folder / "ca.crt", ["--tls-cert-file", str(folder / "node.crt"), "--tls-key-file", str(folder / "node.key"),
                               "--tls-ca-cert-file", str(folder / "ca.crt"), "--tls-cluster", "yes",
                               "--tls-replication", "yes", "--tls-auth-clients", "no"]


class RedisCluster:
    """The nodes of a test Cluster and the operations fault tests need."""

    def __init__(self, nodes: list[RedisProcess], tls: Tls | None = None) -> None:
        self.nodes = nodes
        self.tls = tls

    @property
    def url(self) -> str:
        if self.tls is not None:
            hosts = ",".join(f"127.0.0.1:{self.tls.ports[node.port]}" for node in self.nodes[:2])
            return f"rediss+cluster://{hosts}?ssl_ca_certs={self.tls.ca}"
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:2])

    def node(self, port: int) -> RedisProcess:
        return next(node for node in self.nodes if node.port == port)

    def topology(self) -> list[dict[str, str]]:
        """CLUSTER NODES as seen from a live node: id, port, role (master/slave), master id, slots."""
        for node in self.nodes:
            if node.process is None:
                continue
            with contextlib.suppress(subprocess.SubprocessError):
                rows = []
                for line in cli(node.port, "cluster", "nodes").splitlines():
                    fields = line.split()
                    rows.append({"id": fields[0], "port": fields[1].split(":")[1].split("@")[0],
                                 "role": "master" if "master" in fields[2] else "slave",
                                 "failed": str("fail" in fields[2] and "fail?" not in fields[2]),
                                 "master": fields[3], "slots": " ".join(fields[8:])})
                return rows
        raise RuntimeError("no cluster node answers")

    def primaries(self) -> list[int]:
        return sorted(int(row["port"]) for row in self.topology() if row["role"] == "master" and row["slots"]
                      and row["failed"] == "False")

    def owner(self, slot: int) -> int:
        for row in self.topology():
            if row["role"] != "master" or row["failed"] == "True":
                continue
            for item in row["slots"].split():
                if item.startswith("["):
                    continue
                low, _, high = item.partition("-")
                if int(low) <= slot <= int(high or low):
                    return int(row["port"])
        raise RuntimeError(f"slot {slot} has no owner")

    def flush(self) -> None:
        for port in self.primaries():
            cli(port, "flushall")

    @staticmethod
    def _replicas_info(live: list[RedisProcess]) -> list[str]:
        infos = [cli(node.port, "info", "replication") for node in live]
        return [info for info in infos if "role:slave" in info]

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [node for node in self.nodes if node.process is not None]
            with contextlib.suppress(subprocess.SubprocessError):
                if all("cluster_state:ok" in cli(node.port, "cluster", "info") for node in live) and all(
                        "master_link_status:up" in info for info in self._replicas_info(live)):
                    return
            time.sleep(0.05)
        raise RuntimeError("the cluster did not become healthy")


def start_nodes(root: Path, count: int = 6, tls: list[str] | None = None,
                attempts: int = 3) -> tuple[list[RedisProcess], dict[int, int]]:
    """*count* cluster-enabled redis-servers, on fresh ports again if another process took one meanwhile;
    with *tls* (redis-server's TLS flags) each also listens for TLS on a port of its own: {port: TLS port}."""
    for attempt in range(attempts):
        nodes, tls_ports = [], {}
        for port in cluster_ports(count):
            data_dir = root / f"{attempt}-{port}"
            data_dir.mkdir()
            extra = []
            if tls is not None:
                tls_ports[port] = cluster_ports(1)[0]
                extra = ["--tls-port", str(tls_ports[port]), *tls]
            nodes.append(RedisProcess(port, data_dir, [
                "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--repl-diskless-sync-delay", "0",
                "--cluster-replica-validity-factor", "0", *extra]))
        try:
            for node in nodes:
                node.start()
            return nodes, tls_ports
        except RuntimeError:
            for node in nodes:
                node.stop(kill=True)
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_cluster(replicas: int = 1, tls: bool = False) -> Iterator[RedisCluster]:
    """3 primaries with *replicas* replicas each, joined and healthy, in a temporary directory; every node
    killed on exit."""
    if shutil.which("redis-cli") is None:
        raise RuntimeError("redis-cli is not installed: run `bash scripts/test` or `apt-get install redis-tools`")
    with tempfile.TemporaryDirectory(prefix="livepush-cluster-") as root:
        ca, flags = make_certificates(Path(root)) if tls else (None, None)
        nodes, tls_ports = start_nodes(Path(root), 3 * (1 + replicas), flags)
        found = RedisCluster(nodes, Tls(tls_ports, ca) if ca is not None else None)
        try:
            cli(nodes[0].port, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas", str(replicas), "--cluster-yes")
            found.wait_healthy()
            yield found
        finally:
            for node in nodes:
                node.stop(kill=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with running_cluster() as started:
        yield started
