"""A stop always ends: bounded waits in the lifespan's exit, a hard deadline, and a second signal that forces it.

Python 3.11's `asyncio.wait_for` (around every redis-py command) can lose a cancellation that
arrives as the command completes; a node then hung in `Waiting for application shutdown.` for
good. These run on Redis (real `redis-server`), on the venv's Python 3.11. The misbehaving
tasks of the node tests are injected by tests/faults/stuck_node.py; the rest is `livepush serve`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from server.canary import Canary
from server.engine.redis import RedisEngine
from server.wire import Frame
from tests.conftest import wait_until
from tests.faults.conftest import Node
from tests.redis_servers import RedisProcess


def test_the_suite_runs_on_python_3_11() -> None:
    assert sys.version_info[:2] == (3, 11), "the lost-cancellation bug these tests guard against is 3.11's"


def ignore(frame: Frame) -> None:
    pass


async def test_the_canary_stops_every_time_on_redis(redis_process: RedisProcess) -> None:
    """With its interval at zero, a cancel often lands as a PUBLISH completes: it used to hang 2 times in 3."""
    engine = RedisEngine(redis_process.url)
    await engine.start(ignore, lambda blogs=None: None)
    try:
        for attempt in range(30):
            sent = 0

            async def send(token: bytes) -> None:
                nonlocal sent
                sent += 1
                await engine.send_canary(token)

            canary = Canary(send, ignore, interval=0.0)
            canary.start()
            await wait_until(lambda: sent >= 20, what="canaries sent")  # noqa: B023 (awaited in this iteration)
            async with asyncio.timeout(10):  # a guard against the old hang; stop() has its own 2 s deadline
                assert await canary.stop(), f"attempt {attempt}: the canary task was left running"
    finally:
        await engine.close()


async def stuck_node(log_dir: Path, redis: RedisProcess, mode: str) -> Node:
    node = Node(redis.url, log_dir, module="tests.faults.stuck_node",
                env={"STUCK_TASK": mode, "LIVEPUSH_DRAIN_SECONDS": "0", "LIVEPUSH_LOG_LEVEL": "info"})
    await node.start()
    return node


async def exited(node: Node, timeout: float) -> int:
    assert node.process is not None
    process = node.process
    async with asyncio.timeout(timeout):  # a guard: the node must end by itself
        while process.poll() is None:  # noqa: ASYNC110 (another process)
            await asyncio.sleep(0.05)
    return process.returncode


async def test_a_task_that_ignores_its_cancellation_does_not_hold_the_stop(
        nodes: list[Node], log_dir: Path, redis_process: RedisProcess) -> None:
    node = await stuck_node(log_dir, redis_process, "swallow")
    nodes.append(node)
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    # The lifespan's exit gives up on the task after 2 s, and uvicorn ends the process with the signal it caught.
    assert await exited(node, 20) == -signal.SIGTERM
    assert "livepush-keepalive did not stop within 2.0s; shutting down without it" in node.log_path.read_text()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_second_signal_ends_a_stuck_stop_at_once(nodes: list[Node], log_dir: Path,
                                                         redis_process: RedisProcess, second: int) -> None:
    """Here the task blocks the event loop itself, so no await's deadline can fire: only the signal can act."""
    node = await stuck_node(log_dir, redis_process, "block")
    nodes.append(node)
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        while "Waiting for application shutdown." not in node.log_path.read_text():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    node.process.send_signal(second)
    assert await exited(node, 10) == -second  # ended by the signal, well before the hard deadline (15 s)
    assert f"exiting now: {signal.Signals(second).name} while stopping" in node.log_path.read_text()


async def test_a_stop_blocked_for_good_ends_at_the_hard_deadline(nodes: list[Node], log_dir: Path,
                                                                 redis_process: RedisProcess) -> None:
    node = await stuck_node(log_dir, redis_process, "block")
    nodes.append(node)
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    assert await exited(node, 40) == 1  # LIVEPUSH_DRAIN_SECONDS (0) + 15 s after the signal
    assert "exiting now: still stopping 15s after SIGTERM" in node.log_path.read_text()
