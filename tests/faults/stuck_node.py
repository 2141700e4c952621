"""`livepush serve` with one background task that misbehaves once it is cancelled at shutdown.

`STUCK_TASK=swallow`: the keepalive task swallows every cancellation and ignores `stopping`,
as a task does when Python 3.11's `asyncio.wait_for` loses its cancellation and the loop
around it has no other exit. `STUCK_TASK=block`: once cancelled, it blocks the event loop
itself, so that no await's deadline can fire. Everything else is the real server.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from server.cli import main
from server.streams.keepalive import Keepalive


async def swallow(self: Keepalive) -> None:
    while True:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            pass


async def block(self: Keepalive) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        while True:
            time.sleep(0.05)  # noqa: ASYNC251 (the point: a task that blocks the loop)


if __name__ == "__main__":
    Keepalive.run = {"swallow": swallow, "block": block}[os.environ["STUCK_TASK"]]  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
