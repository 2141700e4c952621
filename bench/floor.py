"""The kernel's floor on this machine: what one loopback TCP write of a live-blog event costs, with no server around it.

    .venv/bin/python -m bench.floor [--readers 5000] [--rate 20] [--seconds 5]

A sender pinned to the server's core holds N accepted loopback connections and, `rate` times a
second, writes the same ~600-byte WebSocket frame to each with one plain `socket.send()`: the
least any server can do per delivery when every reader has its own TCP connection. A receiver
on the other core drains them all with epoll (with the same SO_RCVLOWAT batching as the load
tool's counting readers, and without). The sender's user and system CPU per send are the
floor that livepush's "CPU per delivered message" is compared with in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import socket
import subprocess
import sys
import time

import orjson

from bench.procs import free_port, raise_nofile


def frame(payload: int) -> bytes:
    """An unmasked text frame with *payload* bytes (a post is ~600: one event; ~1200: two coalesced)."""
    head = bytes([0x81, payload]) if payload < 126 else bytes([0x81, 126]) + payload.to_bytes(2, "big")
    return head + b"x" * payload


def receiver(port: int, readers: int, low_water: int) -> None:
    """Connect *readers* sockets and drain them until the sender closes them all."""
    sockets = []
    for _ in range(readers):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        if low_water > 1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, low_water)
        sockets.append(sock)
    poller = select.epoll()
    by_fd = {sock.fileno(): sock for sock in sockets}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    buffer = bytearray(1 << 16)
    open_count = len(by_fd)
    while open_count:
        for fd, _ in poller.poll(1.0):
            try:
                received = by_fd[fd].recv_into(buffer)
            except BlockingIOError:
                continue
            if received == 0:
                poller.unregister(fd)
                by_fd[fd].close()
                open_count -= 1


def sender(readers: int, rate: float, seconds: float, low_water: int, tool_cpu: int,
           payload: int = 600) -> dict[str, float]:
    """Accept *readers* connections from a receiver on *tool_cpu*; send each a *payload*-byte frame *rate*/s."""
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    child = subprocess.Popen(["taskset", "-c", str(tool_cpu), sys.executable, "-m", "bench.floor", "--receiver",
                              str(port), str(readers), str(low_water)])
    try:
        accepted: list[socket.socket] = []
        while len(accepted) < readers:
            sock, _ = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            accepted.append(sock)
        time.sleep(0.5)
        sends = [sock.send for sock in accepted]
        data = frame(payload)
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        rounds = int(rate * seconds)
        for n in range(rounds):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for send in sends:
                send(data)
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - started
        for sock in accepted:
            sock.close()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        listener.close()
    total = rounds * readers
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"readers": readers, "rate": rate, "sends": total, "wall_s": round(wall, 2),
            "sends_per_s": round(total / wall), "low_water": low_water, "payload_bytes": payload,
            "user_us_per_send": round(1e6 * user / total, 2), "system_us_per_send": round(1e6 * system / total, 2),
            "cpu_us_per_send": round(1e6 * (user + system) / total, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--tool-cpu", type=int, default=1)
    parser.add_argument("--low-water", type=int, action="append",
                        help="receiver SO_RCVLOWAT in bytes (repeat; default: 1 and 3000)")
    parser.add_argument("--payload", type=int, default=600, help="bytes per send (600: one post)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--receiver", nargs=3, type=int, metavar=("PORT", "READERS", "LOW_WATER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_nofile()
    if args.receiver:
        receiver(*args.receiver)
        return
    os.sched_setaffinity(0, {args.server_cpu})
    for low_water in args.low_water or (1, 3000):
        result = sender(args.readers, args.rate, args.seconds, low_water, args.tool_cpu, args.payload)
        print(orjson.dumps(result).decode() if args.json else result, flush=True)


if __name__ == "__main__":
    main()
